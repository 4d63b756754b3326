#!/usr/bin/env bash
# Starts a three-master Redis Cluster on loopback for the store-redis tests,
# unless one is already running there. Idempotent: run it as often as you like.
#
#   .ci/redis-cluster.sh            # ports 7001 7002 7003
#   REDIS_CLUSTER_PORTS="7101 7102 7103" .ci/redis-cluster.sh
#
# Nodes keep no data on disk (--save "" --appendonly no); only their cluster
# config files and logs live in $REDIS_CLUSTER_DIR. Tests connect with
#   REDIS_CLUSTER_URLS=redis://127.0.0.1:7001,redis://127.0.0.1:7002,redis://127.0.0.1:7003
set -euo pipefail

PORTS=(${REDIS_CLUSTER_PORTS:-7001 7002 7003})
HOST=127.0.0.1
DIR="${REDIS_CLUSTER_DIR:-${TMPDIR:-/tmp}/proxy-reserve-redis-cluster}"

say() { printf 'redis-cluster: %s\n' "$*"; }
fail() { printf 'redis-cluster: error: %s\n' "$*" >&2; exit 1; }
cli() { local port=$1; shift; redis-cli -h "$HOST" -p "$port" "$@"; }
up() { cli "$1" ping 2>/dev/null | grep -q PONG; }
info_field() { cli "$1" cluster info 2>/dev/null | tr -d '\r' | sed -n "s/^$2://p"; }
cluster_ok() { [ "$(info_field "$1" cluster_state)" = ok ]; }
# Every node up, ok, aware of all the others, and all slots served.
healthy() {
    local port
    for port in "${PORTS[@]}"; do
        up "$port" && cluster_ok "$port" || return 1
        [ "$(info_field "$port" cluster_known_nodes)" -ge "${#PORTS[@]}" ] || return 1
        [ "$(info_field "$port" cluster_slots_assigned)" = 16384 ] || return 1
    done
}
ours() { [ "$(cli "$1" config get dir 2>/dev/null | tr -d '\r' | sed -n 2p)" = "$DIR" ]; }

command -v redis-server >/dev/null || fail "redis-server is not installed"
command -v redis-cli >/dev/null || fail "redis-cli is not installed"
[ "${#PORTS[@]}" -ge 3 ] || fail "a cluster needs at least 3 masters, got ports: ${PORTS[*]}"
mkdir -p "$DIR"

# Already running and healthy: nothing to do.
if healthy; then
    say "already running and ok on ports ${PORTS[*]}; nothing to do"
    exit 0
fi

# A port that answers must be a cluster-mode Redis.
running=()
for port in "${PORTS[@]}"; do
    if up "$port"; then
        [ "$(cli "$port" info cluster | tr -d '\r' | sed -n 's/^cluster_enabled://p')" = 1 ] ||
            fail "port $port runs a Redis without cluster mode; stop it or choose REDIS_CLUSTER_PORTS"
        running+=("$port")
    fi
done

# Nothing running: start from a clean slate (stale node configs from an
# earlier cluster would make the new nodes refuse to form a new one).
if [ "${#running[@]}" -eq 0 ]; then
    for port in "${PORTS[@]}"; do rm -f "$DIR/nodes-$port.conf"; done
fi

for port in "${PORTS[@]}"; do
    if up "$port"; then
        say "node $port already running"
        continue
    fi
    say "starting node $port (dir $DIR)"
    redis-server --port "$port" --bind "$HOST" \
        --cluster-enabled yes --cluster-config-file "nodes-$port.conf" \
        --cluster-node-timeout 5000 \
        --save "" --appendonly no \
        --dir "$DIR" --logfile "redis-$port.log" --pidfile "$DIR/redis-$port.pid" \
        --daemonize yes
done
for port in "${PORTS[@]}"; do
    for _ in $(seq 1 50); do up "$port" && break; sleep 0.1; done
    up "$port" || fail "node $port did not start; see $DIR/redis-$port.log"
done

# Restarted nodes with their old config rejoin on their own; give them a moment.
for port in "${PORTS[@]}"; do
    if [ "$(info_field "$port" cluster_slots_assigned)" != 0 ]; then
        for _ in $(seq 1 20); do healthy && break; sleep 0.5; done
        break
    fi
done

if ! healthy; then
    fresh=yes
    for port in "${PORTS[@]}"; do
        if [ "$(info_field "$port" cluster_known_nodes)" != 1 ] ||
            [ "$(info_field "$port" cluster_slots_assigned)" != 0 ]; then
            fresh=no
        fi
    done
    if [ "$fresh" = no ]; then
        # Half-formed cluster. Reset it only if every node is ours.
        for port in "${PORTS[@]}"; do
            ours "$port" || fail "nodes on ${PORTS[*]} form a broken cluster that this script did not start (port $port); fix or stop it"
        done
        say "resetting a half-formed cluster of our own nodes"
        for port in "${PORTS[@]}"; do
            cli "$port" flushall >/dev/null
            cli "$port" cluster reset hard >/dev/null
        done
    fi
    nodes=()
    for port in "${PORTS[@]}"; do nodes+=("$HOST:$port"); done
    say "creating the cluster: ${nodes[*]}"
    redis-cli --cluster create "${nodes[@]}" --cluster-replicas 0 --cluster-yes >"$DIR/create.log" 2>&1 ||
        { cat "$DIR/create.log" >&2; fail "redis-cli --cluster create failed"; }
fi

for _ in $(seq 1 60); do healthy && break; sleep 0.5; done
if ! healthy; then
    for port in "${PORTS[@]}"; do printf -- '--- node %s\n' "$port" >&2; cli "$port" cluster info >&2 || true; done
    fail "the cluster did not become healthy"
fi
say "ok: $(info_field "${PORTS[0]}" cluster_known_nodes) nodes, $(info_field "${PORTS[0]}" cluster_slots_assigned) slots assigned, ports ${PORTS[*]}"
