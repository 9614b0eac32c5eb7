#!/usr/bin/env bash
# The multi-host overlay walkthrough, run from the host after `vagrant up`:
#   cd vagrant && vagrant up && ./demo.sh
# Every command is printed (as "+ nodeN# ...") before it runs on that VM
# through `vagrant ssh nodeN -c`, as root. It shows:
#   - the three nodes registered in the cluster store (etcd on node1);
#   - overlay networks created on node1 are visible on node2;
#   - a container on node1 pings one on node2 by name over the same overlay;
#   - a container on another overlay network cannot be reached (isolation);
#   - a port published on node2 answers on node2's address from node1.
# Exits non-zero if any expectation fails. Containers and networks are removed
# at the end, also after a failure or Ctrl-C.
# Env: NODE_A (node1), NODE_B (node2), NODE_B_ADDR (192.168.56.12).
set -euo pipefail
cd "$(dirname "$0")"

NODE_A=${NODE_A:-node1}
NODE_B=${NODE_B:-node2}
NODE_B_ADDR=${NODE_B_ADDR:-192.168.56.12}
FAILED=()

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

cleanup() {
    local rc=$?
    set +e
    step "cleaning up"
    on "$NODE_A" "runtimectl rm -f a1" >/dev/null
    on "$NODE_B" "runtimectl rm -f a2 b2 web" >/dev/null
    on "$NODE_A" "runtimectl network rm net1 net2"
    on "$NODE_A" "runtimectl network ls"
    exit "$rc"
}

command -v vagrant >/dev/null || { echo "vagrant is not installed" >&2; exit 1; }
# Leftovers of an earlier, interrupted run.
on_quiet "$NODE_A" "runtimectl rm -f a1" || true
on_quiet "$NODE_B" "runtimectl rm -f a2 b2 web" || true
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

step "containers: a1 on $NODE_A (net1); a2 (net1) and b2 (net2) on $NODE_B"
on "$NODE_A" "runtimectl run -d --name a1 --network net1 busybox sleep 3600"
on "$NODE_B" "runtimectl run -d --name a2 --network net1 busybox sleep 3600"
on "$NODE_B" "runtimectl run -d --name b2 --network net2 busybox sleep 3600"

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

echo
if ((${#FAILED[@]})); then
    bold "${#FAILED[@]} expectation(s) failed:"
    printf '  - %s\n' "${FAILED[@]}"
    exit 1
fi
bold "all expectations met"
