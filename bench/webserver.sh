#!/usr/bin/env bash
# Web server benchmark (not a test): Debian's nginx (one worker) inside a
# container against the same binary outside any container, in the same
# network namespace, under the same wrk load, in alternating rounds. The
# variants tell the suspects apart:
#   host        the binary on the host, serving the page from a host dir;
#   container   `run -d --network host` with the defaults (seccomp filter,
#               cgroup, the page read through the overlay rootfs);
#   unconfined  the same with --security-opt seccomp=unconfined;
#   tmpfs       the same with the page copied to the container's /dev/shm
#               (no overlayfs on the request path);
#   host-cg     the host binary in a cgroup of its own beside the
#               container's (cgroup accounting).
# Prints each variant's median requests/s over the rounds and its ratio to
# `host` (the issue's target: the container within 5 %). runtimed runs in
# its own netns, dirs, socket and cgroup parent; everything is removed on
# exit. Usage (as root):  bench/webserver.sh
# Env: ROUNDS (default 5), SECONDS_PER (5), CONNS (16).
set -euo pipefail
export LC_ALL=C

ROUNDS=${ROUNDS:-5}
SECONDS_PER=${SECONDS_PER:-5}
CONNS=${CONNS:-16}
# shellcheck source-path=SCRIPTDIR source=lib.sh
. "$(dirname "$0")/lib.sh"
bench_init

install_missing wrk=wrk /bin/busybox=busybox-static dpkg-deb=dpkg
build_release -q -p runtimed -p runtimectl

HOST_PIDS=()
extra_cleanup() {
    local p
    for p in "${HOST_PIDS[@]}"; do kill "$p" 2>/dev/null && wait "$p" 2>/dev/null; done
}
bench_daemon
ip -n "$NS" link set lo up   # the servers listen on, and wrk loads, 127.0.0.1

# --- the image: busybox, nginx and its libraries, a config, a 5 KB page -----------
DEBS=/var/cache/runtimed-tests
deb=$(compgen -G "$DEBS/nginx_*.deb" | head -n1 || true)
if [ -z "$deb" ]; then
    (cd "$TMP" && apt-get download -qq -o APT::Sandbox::User=root nginx >/dev/null 2>&1) \
        || { apt-get update -qq && (cd "$TMP" && apt-get download -qq -o APT::Sandbox::User=root nginx); }
    deb=$(compgen -G "$TMP/nginx_*.deb" | head -n1)
fi
ROOT=$TMP/nginx-rootfs
chmod 711 "$TMP"   # the host server's workers (nobody) read the page below
busybox_rootfs "$ROOT"
dpkg-deb -x "$deb" "$TMP/deb"
mkdir -p "$ROOT"/{usr/sbin,etc/nginx,var/log/nginx,var/lib/nginx,run,usr/share/nginx/html}
cp "$TMP/deb/usr/sbin/nginx" "$ROOT/usr/sbin/nginx"
for f in $(ldd "$ROOT/usr/sbin/nginx" | awk '$2 == "=>" && $3 ~ /^\// {print $3} $1 ~ /^\// {print $1}'); do
    cp -L --parents "$f" "$ROOT/"
done
echo 'nobody:x:65534:65534:nobody:/nonexistent:/bin/false' >"$ROOT/etc/passwd"
echo 'nogroup:x:65534:' >"$ROOT/etc/group"
head -c 5000 /dev/zero | tr '\0' x >"$ROOT/usr/share/nginx/html/index.html"
# conf PORT ROOT_DIR STATE_DIR: one worker, no access log, the page from
# ROOT_DIR, pid and temporary files in STATE_DIR.
conf() {
    cat <<CONF
user nobody nogroup;
worker_processes 1;
error_log stderr;
pid $3/nginx-$1.pid;
events { worker_connections 256; }
http {
    access_log off;
    client_body_temp_path $3/body-$1;
    proxy_temp_path $3/proxy-$1;
    fastcgi_temp_path $3/fastcgi-$1;
    uwsgi_temp_path $3/uwsgi-$1;
    scgi_temp_path $3/scgi-$1;
    server { listen $1; root $2; }
}
CONF
}
conf 8081 /usr/share/nginx/html /run >"$ROOT/etc/nginx/container.conf"
conf 8082 /usr/share/nginx/html /run >"$ROOT/etc/nginx/unconfined.conf"
conf 8084 /dev/shm/html /run >"$ROOT/etc/nginx/tmpfs.conf"
tar -C "$ROOT" -cf "$TMP/nginx.tar" .
rtc_at "$SOCK" image import nginxbench "$TMP/nginx.tar" >/dev/null

# --- the servers ------------------------------------------------------------------------
say "starting the servers"
run_web() { # NAME [OPTIONS...]: the container NAME, nginx with NAME.conf
    local name=$1
    shift
    rtc_at "$SOCK" run -d --name "$name" --network host "$@" nginxbench sh -c \
        "mkdir -p /dev/shm/html && cp /usr/share/nginx/html/index.html /dev/shm/html/ && exec nginx -e stderr -c /etc/nginx/$name.conf -g 'daemon off;'" >/dev/null
}
run_web container
run_web unconfined --security-opt seccomp=unconfined
run_web tmpfs
# The same binary outside, with the host's libraries (the ones ldd copied).
host_web() { # NAME PORT
    conf "$2" "$ROOT/usr/share/nginx/html" "$TMP" >"$TMP/$1.conf"
    exec nsenter --net="/run/netns/$NS" "$ROOT/usr/sbin/nginx" -e stderr -p "$TMP" -c "$TMP/$1.conf" -g 'daemon off;' 2>"$TMP/$1.err"
}
host_web host 8080 &
HOST_PIDS+=($!)
# host-cg: a cgroup of its own under the daemon's parent, in every hierarchy
# (cgroup v1 controllers, or v2's one tree) where the containers have theirs.
(
    for d in /sys/fs/cgroup/"$NS" /sys/fs/cgroup/*/"$NS"; do
        [ -d "$d" ] || continue
        mkdir -p "$d/host-nginx"
        # A new v1 cpuset has no CPUs or memory nodes: its parent's.
        for f in cpuset.cpus cpuset.mems; do
            [ -f "$d/$f" ] && cat "$d/$f" >"$d/host-nginx/$f"
        done
        echo "$BASHPID" >"$d/host-nginx/cgroup.procs"
    done
    host_web host-cg 8083
) &
HOST_PIDS+=($!)

declare -A PORT=([host]=8080 [container]=8081 [unconfined]=8082 [host-cg]=8083 [tmpfs]=8084)
VARIANTS=(host container unconfined tmpfs host-cg)
for v in "${VARIANTS[@]}"; do
    for _ in $(seq 100); do
        nsenter --net="/run/netns/$NS" busybox wget -q -O /dev/null "http://127.0.0.1:${PORT[$v]}/" 2>/dev/null && continue 2
        sleep 0.1
    done
    echo "$v (port ${PORT[$v]}) never answered" >&2
    tail -n 5 "$TMP"/*.err >&2 2>/dev/null || true
    rtc_at "$SOCK" logs "$v" >&2 2>/dev/null || true
    exit 1
done

# --- rounds: every variant once per round, in a rotated order --------------------------
rps() { # PORT -> requests/s of one wrk run
    nsenter --net="/run/netns/$NS" wrk -t1 -c"$CONNS" -d"${SECONDS_PER}s" "http://127.0.0.1:$1/" |
        awk '/^Requests\/sec:/ {print $2}'
}
declare -A RESULTS
for ((r = 0; r < ROUNDS; r++)); do
    n=${#VARIANTS[@]}
    for ((i = 0; i < n; i++)); do
        v=${VARIANTS[$(((i + r) % n))]}
        RESULTS[$v]+="$(rps "${PORT[$v]}") "
    done
    say "round $((r + 1))/$ROUNDS done"
done

median() { tr ' ' '\n' | grep . | sort -g | awk '{a[NR]=$1} END {m=(NR%2)?a[(NR+1)/2]:(a[NR/2]+a[NR/2+1])/2; printf "%.0f\n", m}'; }
HOST=$(median <<<"${RESULTS[host]}")
printf '\nnginx, 5 KB page, wrk -c%s, %s rounds of %s s (median requests/s; load %s)\n' \
    "$CONNS" "$ROUNDS" "$SECONDS_PER" "$(cut -d' ' -f1-3 /proc/loadavg)"
for v in "${VARIANTS[@]}"; do
    m=$(median <<<"${RESULTS[$v]}")
    printf '%-12s %10s %8s   rounds: %s\n' "$v" "$m" "$(python3 -c "print('%.3f' % ($m / $HOST))")" "${RESULTS[$v]}"
done
summary_row "nginx in a container (requests/s)" "$(median <<<"${RESULTS[container]}")" \
    "the same binary outside" "$HOST" ">= 0.95x"
