#!/usr/bin/env bash
# A local tansu (Kafka-API) broker for development, the demo and benchmarks.
#
#   bash scripts/tansu.sh start  [--engine sqlite|memory] [--dir DIR] [--port PORT]
#   bash scripts/tansu.sh status [--dir DIR]
#   bash scripts/tansu.sh stop   [--dir DIR]
#
# start  starts tansu on 127.0.0.1 (a free port unless --port), waits until it accepts
#        connections and prints `bootstrap=127.0.0.1:PORT` on stdout (everything else goes to
#        stderr). If the broker of DIR is already running it prints its bootstrap and succeeds.
#        sqlite (default) keeps correct offsets and lives in a fresh directory under /dev/shm
#        (else /tmp); memory is for benchmarks only.
# status prints `running pid=… bootstrap=… engine=… log=…` (exit 0) or `not running` (exit 1).
# stop   stops the broker (TERM, then KILL after 10 s), deletes its data; no-op if not running.
#
# State (pid, port, engine, data, log) lives in DIR, default ${SHELFSYNC_BROKER_DIR:-/tmp/shelfsync-broker}.
set -euo pipefail

# shellcheck source=scripts/env.sh
source "$(dirname "${BASH_SOURCE[0]}")/env.sh"

START_TIMEOUT_SECS="${SHELFSYNC_BROKER_START_TIMEOUT:-30}"

usage() {
    sed -n '2,16p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//' >&2
    exit 2
}

cmd="${1:-}"
[[ -n "${cmd}" ]] || usage
shift
engine="sqlite"
state_dir="${SHELFSYNC_BROKER_DIR:-/tmp/shelfsync-broker}"
want_port=""
while [[ $# -gt 0 ]]; do
    case "$1" in
        --engine) engine="${2:?--engine needs sqlite or memory}"; shift 2 ;;
        --engine=*) engine="${1#*=}"; shift ;;
        --dir) state_dir="${2:?--dir needs a directory}"; shift 2 ;;
        --dir=*) state_dir="${1#*=}"; shift ;;
        --port) want_port="${2:?--port needs a number}"; shift 2 ;;
        --port=*) want_port="${1#*=}"; shift ;;
        -h | --help) usage ;;
        *) shelfsync_log "unknown argument: $1"; usage ;;
    esac
done
case "${engine}" in sqlite | memory) ;; *) shelfsync_die "--engine must be sqlite or memory, not ${engine}" ;; esac
[[ -z "${want_port}" || "${want_port}" =~ ^[0-9]+$ ]] || shelfsync_die "--port must be a number"

pid_file="${state_dir}/pid"
port_file="${state_dir}/port"
engine_file="${state_dir}/engine"
data_file="${state_dir}/data"
log_file="${state_dir}/tansu.log"

# True when something accepts TCP connections on 127.0.0.1:$1.
port_open() {
    (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null
}

free_port() {
    if command -v python3 >/dev/null 2>&1; then
        python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1]); s.close()'
        return
    fi
    local port _
    for _ in $(seq 1 100); do
        port=$((20000 + RANDOM % 40000))
        if ! port_open "${port}"; then
            echo "${port}"
            return
        fi
    done
    shelfsync_die "found no free port"
}

# Prints the pid of the running broker of the state dir; fails (and removes stale state) otherwise.
running_pid() {
    [[ -f "${pid_file}" ]] || return 1
    local pid
    pid="$(cat "${pid_file}")"
    if [[ "${pid}" =~ ^[0-9]+$ ]] && kill -0 "${pid}" 2>/dev/null &&
        tr '\0' ' ' <"/proc/${pid}/cmdline" 2>/dev/null | grep -q "tansu.* broker "; then
        echo "${pid}"
        return 0
    fi
    shelfsync_log "removing stale state of a broker that is gone (pid ${pid})"
    remove_state
    return 1
}

remove_state() {
    if [[ -f "${data_file}" ]]; then
        local data
        data="$(cat "${data_file}")"
        # Only ever delete the directories this script created.
        case "${data}" in */shelfsync-tansu.*) rm -rf -- "${data}" ;; esac
    fi
    rm -f -- "${pid_file}" "${port_file}" "${engine_file}" "${data_file}"
}

print_status() {
    local pid="$1"
    echo "running pid=${pid} bootstrap=127.0.0.1:$(cat "${port_file}") engine=$(cat "${engine_file}") log=${log_file}"
}

start() {
    [[ -x "${TANSU_BIN}" ]] || shelfsync_die "no tansu at ${TANSU_BIN}: run scripts/deps.sh"
    mkdir -p "${state_dir}"
    local pid
    if pid="$(running_pid)"; then
        shelfsync_log "already $(print_status "${pid}")"
        echo "bootstrap=127.0.0.1:$(cat "${port_file}")"
        return 0
    fi

    local shm=/tmp data port storage
    [[ -d /dev/shm && -w /dev/shm ]] && shm=/dev/shm
    data="$(mktemp -d "${shm}/shelfsync-tansu.XXXXXX")"
    echo "${data}" >"${data_file}"
    port="${want_port:-$(free_port)}"
    port_open "${port}" && { remove_state; shelfsync_die "port ${port} is already in use"; }
    # tansu resolves sqlite:// paths relative to its working directory.
    case "${engine}" in
        sqlite) storage="sqlite://tansu.db" ;;
        memory) storage="memory://tansu/" ;;
    esac

    shelfsync_log "starting tansu on 127.0.0.1:${port} (engine ${engine}, data ${data}, log ${log_file})"
    (
        cd "${data}"
        # Detached from this shell: own session, no terminal, survives the script.
        exec setsid "${TANSU_BIN}" broker \
            --cluster-id shelfsync-local \
            --listener-url "tcp://127.0.0.1:${port}" \
            --advertised-listener-url "tcp://127.0.0.1:${port}" \
            --storage-engine "${storage}" \
            </dev/null >"${log_file}" 2>&1
    ) &
    pid=$!
    echo "${pid}" >"${pid_file}"
    echo "${port}" >"${port_file}"
    echo "${engine}" >"${engine_file}"

    local deadline=$((SECONDS + START_TIMEOUT_SECS))
    until port_open "${port}"; do
        if ! kill -0 "${pid}" 2>/dev/null; then
            shelfsync_log "tansu exited during start-up; log tail:"
            tail -n 30 "${log_file}" >&2 || true
            remove_state
            exit 1
        fi
        if ((SECONDS >= deadline)); then
            shelfsync_log "tansu did not accept connections on port ${port} within ${START_TIMEOUT_SECS}s; log tail:"
            tail -n 30 "${log_file}" >&2 || true
            stop
            exit 1
        fi
        sleep 0.1
    done
    if [[ "${engine}" == sqlite ]]; then
        # tansu 0.6.0 has no index on header(topition, offset_id) but looks up every fetched
        # record's headers by those columns: a scan of the whole header table per record, which
        # makes fetches slower with every record written until the broker stops answering.
        # The same fix as tests/broker.rs (TANSU_HEADER_INDEX_SQL); idempotent.
        local tries=0
        until sqlite3 -cmd ".timeout 5000" "${data}/tansu.db" \
            "create index if not exists shelfsync_header_topition_offset on header (topition, offset_id);" 2>/dev/null; do
            tries=$((tries + 1))
            ((tries < 100)) || { stop; shelfsync_die "could not index tansu's header table in ${data}/tansu.db"; }
            sleep 0.1
        done
    fi
    shelfsync_log "$(print_status "${pid}")"
    echo "bootstrap=127.0.0.1:${port}"
}

stop() {
    local pid
    if ! pid="$(running_pid)"; then
        shelfsync_log "not running"
        return 0
    fi
    shelfsync_log "stopping tansu pid ${pid}"
    kill -TERM "${pid}" 2>/dev/null || true
    local i
    for i in $(seq 1 100); do
        kill -0 "${pid}" 2>/dev/null || break
        if ((i == 100)); then
            shelfsync_log "tansu ignored TERM for 10 s; killing it"
            kill -KILL "${pid}" 2>/dev/null || true
        fi
        sleep 0.1
    done
    # Wait for the kernel to reap it (it is our child only when started by this same shell).
    for _ in $(seq 1 50); do
        kill -0 "${pid}" 2>/dev/null || break
        sleep 0.1
    done
    remove_state
    shelfsync_log "stopped"
}

status() {
    local pid
    if pid="$(running_pid 2>/dev/null)"; then
        print_status "${pid}"
    else
        echo "not running"
        return 1
    fi
}

case "${cmd}" in
    start) start ;;
    stop) stop ;;
    status) status ;;
    *) usage ;;
esac
