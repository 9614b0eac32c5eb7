#!/usr/bin/env bash
# One "node" of the namespace cluster of run-netns.sh: a network namespace
# rt-vg-NODE with its own runtimed, restarted by a supervisor the way
# systemd restarts it on the VMs (Restart=always, RestartSec=2, the
# daemon's containers left running: KillMode=process).
#   node.sh start NODE      start its supervisor (and so its daemon); brings
#                           its underlay link up (a powered-on VM)
#   node.sh halt NODE       SIGKILL the supervisor and the daemon, link down:
#                           for the others, the node lost power
#   node.sh stop NODE       SIGTERM the daemon (graceful), supervisor ended
#   node.sh pid NODE        the daemon's pid (systemctl show -p MainPID)
#   node.sh restarts NODE   how many times the supervisor restarted it
#   node.sh supervise NODE  (internal) the supervisor's loop
# State in $NETNS_RUN/NODE (root, run dir, socket, logs, pid files); the
# node's address, store and TTL in $NETNS_RUN/NODE/env, written by
# run-netns.sh. Processes are ended by the pids this script recorded.
set -euo pipefail

cmd=${1:?usage: node.sh start|halt|stop|pid|restarts|supervise NODE}
node=${2:?usage: node.sh $cmd NODE}
: "${NETNS_RUN:?NETNS_RUN is not set (run-netns.sh sets it)}"
dir=$NETNS_RUN/$node
[ -d "$dir" ] || { echo "node.sh: no node $node" >&2; exit 1; }
ns=rt-vg-$node
alive() { [ -f "$1" ] && kill -0 "$(cat "$1")" 2>/dev/null; }

case $cmd in
supervise)
    # shellcheck source=/dev/null
    . "$dir/env"
    while :; do
        nsenter --net="/run/netns/$ns" "$RUNTIMED_BIN" \
            --root "$dir/root" --run-dir "$dir/run" --socket "$dir/run/runtimed.sock" \
            --cgroup-parent "runtimed-vg-$node" \
            --cluster-store "$STORE" --advertise "$ADDR" --node-name "$node" --node-ttl "$TTL" \
            >>"$dir/daemon.log" 2>&1 &
        echo $! >"$dir/daemon.pid"
        wait $! || true
        [ -e "$dir/stopping" ] && exit 0
        sleep 2
        echo $(($(cat "$dir/restarts" 2>/dev/null || echo 0) + 1)) >"$dir/restarts"
    done
    ;;
start)
    alive "$dir/supervisor.pid" && exit 0
    # shellcheck source=/dev/null
    . "$dir/env"
    rm -f "$dir/stopping"
    ip -n "$ns" link set eth1 up
    setsid "$0" supervise "$node" </dev/null >>"$dir/supervisor.log" 2>&1 &
    echo $! >"$dir/supervisor.pid"
    for _ in $(seq 100); do
        RUNTIMED_HOST=unix://$dir/run/runtimed.sock timeout 2 "$RUNTIMECTL_BIN" version >/dev/null 2>&1 && exit 0
        sleep 0.2
    done
    echo "node.sh: $node's runtimed does not answer; its log:" >&2
    tail -20 "$dir/daemon.log" >&2
    exit 1
    ;;
halt)
    touch "$dir/stopping"
    alive "$dir/supervisor.pid" && kill -9 "$(cat "$dir/supervisor.pid")"
    alive "$dir/daemon.pid" && kill -9 "$(cat "$dir/daemon.pid")"
    ip -n "$ns" link set eth1 down
    ;;
stop)
    touch "$dir/stopping"
    if alive "$dir/daemon.pid"; then
        pid=$(cat "$dir/daemon.pid")
        kill "$pid"
        for _ in $(seq 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
        kill -9 "$pid" 2>/dev/null || true
    fi
    if alive "$dir/supervisor.pid"; then
        pid=$(cat "$dir/supervisor.pid")
        for _ in $(seq 30); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
        kill -9 "$pid" 2>/dev/null || true
    fi
    ;;
pid) alive "$dir/daemon.pid" && cat "$dir/daemon.pid" || echo 0 ;;
restarts) cat "$dir/restarts" 2>/dev/null || echo 0 ;;
*) echo "node.sh: unknown command $cmd" >&2; exit 2 ;;
esac
