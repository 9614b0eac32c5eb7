#!/usr/bin/env bash
# The multi-host overlay walkthrough, run from the host after `vagrant up`:
#   cd vagrant && vagrant up && ./demo.sh
# Every command is printed (as "+ nodeN# ...") before it runs on that VM
# through `vagrant ssh nodeN -c`, as root. It shows:
#   - the three nodes registered in the cluster store (etcd on node1);
#   - overlay networks created on node1 are visible on node2;
#   - a container on node1 pings one on node2 by name over the same overlay;
#   - a container on another overlay network cannot be reached (isolation);
#   - a port published on node2 answers on node2's address from node1;
#   - node2's daemon killed (kill -9) while a1 pings a2 across the overlay:
#     systemd restarts it, its container is untouched (same pid, same start
#     time) and no ping is lost after the restart;
#   - node3 powered off (`vagrant halt --force`, a crash for the cluster):
#     within the node TTL its VTEP's FDB entries and its container's
#     neighbour entry are gone from node1 and node2, and node ls shows it
#     down. It is booted again at the end (RESTORE_HALTED=0: left halted).
# Exits non-zero if any expectation fails. Containers and networks are removed
# at the end, also after a failure or Ctrl-C.
# Env: NODE_A (node1), NODE_B (node2), NODE_C (node3), NODE_B_ADDR
# (192.168.56.12), NODE_C_ADDR (192.168.56.13), NODE_TTL (15, the daemons'
# --node-ttl), RESTORE_HALTED (1).
# shellcheck disable=SC2016  # ('...' commands are expanded on the VMs)
set -euo pipefail
cd "$(dirname "$0")"

NODE_A=${NODE_A:-node1}
NODE_B=${NODE_B:-node2}
NODE_C=${NODE_C:-node3}
NODE_B_ADDR=${NODE_B_ADDR:-192.168.56.12}
NODE_C_ADDR=${NODE_C_ADDR:-192.168.56.13}
NODE_TTL=${NODE_TTL:-15}
RESTORE_HALTED=${RESTORE_HALTED:-1}
FAILED=()
HALTED=""
TMPD=""   # the power-off watchers' output, removed by cleanup

bold() { if [ -t 1 ]; then printf '\033[1m%s\033[0m\n' "$*"; else printf '%s\n' "$*"; fi; }
step() { echo; bold "## $*"; }
# on NODE 'COMMAND': prints the command (on fd 3, our stdout, so that
# $(on ...) captures only its output), runs it as root on NODE, returns its
# exit status.
exec 3>&1
on() {
    local node=$1 cmd=$2
    bold "+ $node# $cmd" >&3
    vagrant ssh "$node" -c "sudo bash -c $(printf '%q' "$cmd")" </dev/null
}
# A command on the host (vagrant itself), printed the same way.
on_host() { bold "+ host\$ $1" >&3; bash -c "$1" </dev/null; }
# Like `on` but quiet (no echo of the command, output not shown).
on_quiet() { vagrant ssh "$1" -c "sudo bash -c $(printf '%q' "$2")" </dev/null 2>/dev/null; }
ok() { echo "   ok: $*"; }
fail() { echo "   FAILED: $*" >&2; FAILED+=("$*"); }
# Runs `on NODE CMD` up to TRIES times (2 s apart) until it succeeds: the other
# nodes learn about a new endpoint through the store, which takes a moment.
retry_on() { # TRIES NODE CMD
    local n=$1 i
    for ((i = 1; i <= n; i++)); do
        on "$2" "$3" && return 0
        ((i < n)) && { echo "   (not yet, retrying in 2 s: $i/$n)"; sleep 2; }
    done
    return 1
}

# The first JSON document's FIELD path (python syntax: [0]["State"]["Pid"])
# of `runtimectl inspect NAME` on NODE.
inspect_field() { # NODE NAME PATH
    on_quiet "$1" "runtimectl inspect $2 | python3 -c 'import json, sys; print(json.load(sys.stdin)$3)'" | tr -d '\r'
}

cleanup() {
    local rc=$?
    set +e
    step "cleaning up"
    if [ -n "$HALTED" ] && [ "$RESTORE_HALTED" = 1 ]; then
        on_host "vagrant up $HALTED --no-provision"
    fi
    on "$NODE_A" "runtimectl rm -f a1" >/dev/null
    on "$NODE_B" "runtimectl rm -f a2 b2 web" >/dev/null
    [ -z "$HALTED" ] || [ "$RESTORE_HALTED" = 1 ] && on "$NODE_C" "runtimectl rm -f c3" >/dev/null
    on "$NODE_A" "runtimectl network rm net1 net2"
    on "$NODE_A" "runtimectl network ls"
    for job in $(jobs -p); do kill "$job" 2>/dev/null; done   # watchers left by a failure
    [ -n "$TMPD" ] && rm -rf "$TMPD"
    exit "$rc"
}

command -v vagrant >/dev/null || { echo "vagrant is not installed" >&2; exit 1; }
# Leftovers of an earlier, interrupted run.
on_quiet "$NODE_A" "runtimectl rm -f a1" || true
on_quiet "$NODE_B" "runtimectl rm -f a2 b2 web" || true
on_quiet "$NODE_C" "runtimectl rm -f c3" || true
on_quiet "$NODE_A" "runtimectl network rm net1 net2" || true
trap cleanup EXIT
trap 'exit 130' INT TERM

step "the cluster: every node registered in etcd (on node1)"
nodes=$(on "$NODE_A" "runtimectl node ls")
echo "$nodes"
for n in node1 node2 node3; do
    if grep -qw "$n" <<<"$nodes"; then ok "$n is listed"; else fail "$n missing from node ls"; fi
done

step "two overlay networks, created on $NODE_A"
on "$NODE_A" "runtimectl network create --driver overlay net1"
on "$NODE_A" "runtimectl network create --driver overlay net2"

step "$NODE_B sees them (the store is shared)"
nets=$(on "$NODE_B" "runtimectl network ls")
echo "$nets"
for n in net1 net2; do
    if grep -w "$n" <<<"$nets" | grep -qw overlay; then ok "$n (overlay) on $NODE_B"; else fail "$n not listed as overlay on $NODE_B"; fi
done

step "containers: a1 on $NODE_A (net1); a2 (net1) and b2 (net2) on $NODE_B; c3 (net1) on $NODE_C"
on "$NODE_A" "runtimectl run -d --name a1 --network net1 busybox sleep 3600"
on "$NODE_B" "runtimectl run -d --name a2 --network net1 busybox sleep 3600"
on "$NODE_B" "runtimectl run -d --name b2 --network net2 busybox sleep 3600"
on "$NODE_C" "runtimectl run -d --name c3 --network net1 busybox sleep 3600"

step "a1 ($NODE_A) -> a2 ($NODE_B) by name, across hosts over VXLAN"
if retry_on 5 "$NODE_A" "runtimectl exec a1 ping -c 3 a2"; then ok "a1 reaches a2 by name"; else fail "a1 cannot ping a2"; fi

step "isolation: a1 (net1) -> b2 (net2) must fail"
B2_IP=$(on_quiet "$NODE_B" "runtimectl inspect b2 | python3 -c 'import json, sys; print(json.load(sys.stdin)[0][\"NetworkSettings\"][\"Networks\"][\"net2\"][\"IPAddress\"])'" | tr -d '\r') || true
if [ -z "$B2_IP" ]; then
    fail "no IP address for b2 in \`runtimectl inspect b2\`"
else
    echo "   b2's address on net2: $B2_IP"
    if on "$NODE_A" "runtimectl exec a1 ping -c 2 -W 1 $B2_IP"; then
        fail "a1 (net1) reached b2 (net2) at $B2_IP"
    else
        ok "a1 cannot reach b2 at $B2_IP (expected)"
    fi
fi

step "a published port: web on $NODE_B (net1, -p 8080:80), fetched from $NODE_A"
on "$NODE_B" "runtimectl run -d --name web --network net1 -p 8080:80 busybox sh -c 'mkdir -p /www && echo hello > /www/index.html && exec httpd -f -p 80 -h /www'"
body=""
for i in 1 2 3 4 5; do
    body=$(on "$NODE_A" "curl -fsS --max-time 5 http://$NODE_B_ADDR:8080/" | tr -d '\r') && [ -n "$body" ] && break
    echo "   (not yet, retrying in 1 s: $i/5)"
    sleep 1
done
echo "$body"
if [ "$body" = hello ]; then ok "http://$NODE_B_ADDR:8080/ answered from $NODE_A"; else fail "http://$NODE_B_ADDR:8080/ did not answer hello"; fi

step "$NODE_B's daemon killed (kill -9) and restarted while a1 ($NODE_A) pings a2 ($NODE_B)"
A2_PID=$(inspect_field "$NODE_B" a2 '[0]["State"]["Pid"]') || true
A2_STARTED=$(inspect_field "$NODE_B" a2 '[0]["State"]["StartedAt"]') || true
echo "   a2: pid $A2_PID, started $A2_STARTED"
# 5 pings a second for 30 s, from inside a1, across the kill and the restart.
on "$NODE_A" "runtimectl exec -d a1 sh -c 'ping -i 0.2 -c 150 a2 >/tmp/across-restart.log 2>&1'"
sleep 3
on "$NODE_B" 'pid=$(systemctl show -p MainPID --value runtimed); echo "runtimed is pid $pid"; kill -9 "$pid"'
# systemd starts it again (Restart=always, RestartSec=2).
restarted=""
for i in $(seq 30); do
    if on_quiet "$NODE_B" 'systemctl is-active -q runtimed && runtimectl version >/dev/null'; then restarted=$i; break; fi
    sleep 1
done
if [ -n "$restarted" ]; then
    on "$NODE_B" 'echo "runtimed is pid $(systemctl show -p MainPID --value runtimed) now"; systemctl show -p NRestarts runtimed'
    ok "$NODE_B's runtimed is back"
else
    fail "$NODE_B's runtimed did not come back within 30 s"
fi
# After the restart: 5 s of pings, none may be lost.
after=$(on "$NODE_A" "runtimectl exec a1 ping -i 0.2 -c 25 a2" | tr -d '\r') || true
echo "$after" | tail -2
if grep -q ' 0% packet loss' <<<"$after"; then ok "no ping lost after the restart"; else fail "pings lost after $NODE_B's daemon restarted"; fi
A2_PID2=$(inspect_field "$NODE_B" a2 '[0]["State"]["Pid"]') || true
A2_STARTED2=$(inspect_field "$NODE_B" a2 '[0]["State"]["StartedAt"]') || true
A2_STATUS=$(inspect_field "$NODE_B" a2 '[0]["State"]["Status"]') || true
echo "   a2: pid $A2_PID2, started $A2_STARTED2, $A2_STATUS"
if [ -n "$A2_PID" ] && [ "$A2_PID" = "$A2_PID2" ] && [ "$A2_STARTED" = "$A2_STARTED2" ] && [ "$A2_STATUS" = running ]; then
    ok "a2 untouched by the restart (same pid and start time, running)"
else
    fail "a2 changed across the daemon restart"
fi
# The pinger that ran across the kill: it is done 30 s after it started.
for _ in $(seq 30); do
    on_quiet "$NODE_A" "runtimectl exec a1 grep -q 'packet loss' /tmp/across-restart.log" && break
    sleep 1
done
across=$(on "$NODE_A" "runtimectl exec a1 tail -2 /tmp/across-restart.log" | tr -d '\r') || true
echo "$across"
if grep -q ' 0% packet loss' <<<"$across"; then
    ok "not one of the 150 pings across the kill and the restart was lost"
else
    echo "   (pings lost while the daemon was down or restarting: reported, not an expectation)"
fi

step "$NODE_C powered off: its entries leave $NODE_A and $NODE_B within the node TTL ($NODE_TTL s)"
VNI=$(on_quiet "$NODE_A" "runtimectl network inspect net1 | python3 -c 'import json, sys; print(json.load(sys.stdin)[0][\"Options\"][\"vni\"])'" | tr -d '\r') || true
C3_IP=$(inspect_field "$NODE_C" c3 '[0]["NetworkSettings"]["Networks"]["net1"]["IPAddress"]') || true
C3_MAC=$(inspect_field "$NODE_C" c3 '[0]["NetworkSettings"]["Networks"]["net1"]["MacAddress"]') || true
echo "   net1: VNI $VNI (device ovx$VNI); c3 on $NODE_C: $C3_IP, $C3_MAC; $NODE_C's VTEP $NODE_C_ADDR"
if [ -z "$VNI" ] || [ -z "$C3_IP" ] || [ -z "$C3_MAC" ]; then
    fail "no VNI or c3 address to watch"
else
    if retry_on 5 "$NODE_A" "runtimectl exec a1 ping -c 2 c3"; then ok "a1 reaches c3 ($NODE_C) by name"; else fail "a1 cannot ping c3"; fi
    for n in "$NODE_A" "$NODE_B"; do
        if on "$n" "bridge fdb show dev ovx$VNI | grep -i '$C3_MAC'; ip neigh show dev ovx$VNI | grep -w '$C3_IP'"; then
            ok "$n has c3's FDB and neighbour entries"
        else
            fail "$n lacks c3's entries before the halt"
        fi
    done
    # On each watcher: the clock starts when $NODE_C's VTEP stops answering
    # (the power-off), and stops when its FDB entries (dst $NODE_C_ADDR) and
    # c3's neighbour entry are gone.
    watch='limit=$((NTTL + 20)); t0=""; s0=$(date +%s%N); echo watching
        while :; do
            now=$(date +%s%N)
            if [ -z "$t0" ]; then
                busybox ping -c 1 -W 1 ADDR >/dev/null 2>&1 || t0=$now
            elif ! bridge fdb show dev ovxVNI | grep -q "dst ADDR " && ! ip neigh show dev ovxVNI | grep -qw "CIP"; then
                echo "gone $(( (now - t0) / 1000000 )) ms after ADDR stopped answering"; exit 0
            fi
            if [ $(( (now - s0) / 1000000000 )) -ge $((limit + 40)) ] || { [ -n "$t0" ] && [ $(( (now - t0) / 1000000000 )) -ge $limit ]; }; then
                echo "still there:"; bridge fdb show dev ovxVNI | grep "dst ADDR "; ip neigh show dev ovxVNI | grep -w "CIP"; exit 1
            fi
            sleep 0.2
        done'
    watch=${watch//NTTL/$NODE_TTL}
    watch=${watch//ADDR/$NODE_C_ADDR}
    watch=${watch//VNI/$VNI}
    watch=${watch//CIP/$C3_IP}
    TMPD=$(mktemp -d "${TMPDIR:-/tmp}/demo-watch.XXXXXX")
    tmpd=$TMPD
    on_quiet "$NODE_A" "$watch" >"$tmpd/a" & wa=$!
    on_quiet "$NODE_B" "$watch" >"$tmpd/b" & wb=$!
    for _ in $(seq 60); do
        grep -q watching "$tmpd/a" && grep -q watching "$tmpd/b" && break
        sleep 0.5
    done
    HALTED=$NODE_C
    on_host "vagrant halt --force $NODE_C"
    for pair in "$NODE_A:$wa:a" "$NODE_B:$wb:b"; do
        IFS=: read -r n pid f <<<"$pair"
        if wait "$pid"; then
            res=$(tr -d '\r' <"$tmpd/$f")
            ms=$(sed -n 's/^gone \([0-9]*\) ms.*/\1/p' <<<"$res")
            echo "   $n: $res"
            if [ -n "$ms" ] && ((ms <= NODE_TTL * 1000 + 2000)); then
                ok "$NODE_C's FDB and neighbour entries gone from $n within the TTL (${ms} ms, TTL ${NODE_TTL} s)"
            else
                fail "$NODE_C's entries left $n only after ${ms:-?} ms (TTL ${NODE_TTL} s)"
            fi
        else
            tr -d '\r' <"$tmpd/$f"
            fail "$NODE_C's entries still on $n $((NODE_TTL + 20)) s after it went down"
        fi
    done
    rm -rf "$tmpd"
    nodes=$(on "$NODE_A" "runtimectl node ls")
    echo "$nodes"
    c_alive=$(on_quiet "$NODE_A" "runtimectl node ls --format json | python3 -c 'import json, sys; print([n[\"Alive\"] for n in json.load(sys.stdin) if n[\"Name\"] == \"$NODE_C\"])'" | tr -d '\r') || true
    if [ "$c_alive" = "[False]" ] || [ "$c_alive" = "[]" ]; then ok "$NODE_C is down in node ls"; else fail "$NODE_C still alive in node ls ($c_alive)"; fi
    if on "$NODE_A" "runtimectl exec a1 ping -c 1 -W 1 c3"; then fail "a1 still reaches c3"; else ok "c3 is gone for a1 (expected)"; fi
    if retry_on 3 "$NODE_A" "runtimectl exec a1 ping -c 2 a2"; then ok "a1 still reaches a2"; else fail "a1 lost a2 after $NODE_C went down"; fi
fi

echo
if ((${#FAILED[@]})); then
    bold "${#FAILED[@]} expectation(s) failed:"
    printf '  - %s\n' "${FAILED[@]}"
    exit 1
fi
bold "all expectations met"
