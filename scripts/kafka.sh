#!/usr/bin/env bash
# A local single-node Apache Kafka broker (KRaft, combined broker + controller) for development,
# the demo, the benchmarks and the tests. The jars come from Maven Central through
# scripts/deps.sh (~/.cache/shelfsync/kafka-<version>/libs); no tarball, no Docker.
#
#   bash scripts/kafka.sh start  [--dir DIR] [--port PORT] [SECURITY]
#   bash scripts/kafka.sh status [--dir DIR]
#   bash scripts/kafka.sh stop   [--dir DIR]
#   bash scripts/kafka.sh run     --dir DIR  [--port PORT] [SECURITY]   (foreground; the test harness)
#
# start  starts a broker on 127.0.0.1 (free ports unless --port), waits until it answers a
#        Metadata request with itself as a broker and prints `bootstrap=127.0.0.1:PORT` on stdout
#        (everything else goes to stderr). If DIR's broker is already running it prints its
#        bootstrap and succeeds.
# status prints `running pid=… bootstrap=… log=…` (exit 0) or `not running` (exit 1).
# stop   stops DIR's broker only (TERM, then KILL after 30 s) and deletes its data.
# run    writes the configuration, formats the storage if it is new and execs the JVM in the
#        foreground; the same ports and data survive a kill and a second `run`.
#
# SECURITY adds a SASL_SSL listener for clients (PLAINTEXT stays for the broker's own use):
#   --sasl-ssl-port PORT   its port
#   --tls-keystore FILE    PEM file: the broker's private key (unencrypted PKCS#8) + certificate chain
#   --scram USER:PASSWORD  a SCRAM-SHA-512 user created when the storage is formatted
#
# State (pid, ports, data, kafka.log) lives in DIR, default ${SHELFSYNC_BROKER_DIR:-/tmp/shelfsync-kafka}.
# SHELFSYNC_KAFKA_HEAP sets the JVM heap flags (default "-Xms256m -Xmx768m").
set -euo pipefail

# shellcheck source=scripts/env.sh
source "$(dirname "${BASH_SOURCE[0]}")/env.sh"

START_TIMEOUT_SECS="${SHELFSYNC_BROKER_START_TIMEOUT:-90}"

usage() {
    sed -n '2,26p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//' >&2
    exit 2
}

cmd="${1:-}"
[[ -n "${cmd}" ]] || usage
shift
state_dir="${SHELFSYNC_BROKER_DIR:-/tmp/shelfsync-kafka}"
want_port=""
sasl_port=""
keystore=""
scram=""
while [[ $# -gt 0 ]]; do
    case "$1" in
        --dir) state_dir="${2:?--dir needs a directory}"; shift 2 ;;
        --dir=*) state_dir="${1#*=}"; shift ;;
        --port) want_port="${2:?--port needs a number}"; shift 2 ;;
        --port=*) want_port="${1#*=}"; shift ;;
        --sasl-ssl-port) sasl_port="${2:?--sasl-ssl-port needs a number}"; shift 2 ;;
        --tls-keystore) keystore="${2:?--tls-keystore needs a PEM file}"; shift 2 ;;
        --scram) scram="${2:?--scram needs USER:PASSWORD}"; shift 2 ;;
        -h | --help) usage ;;
        *) shelfsync_log "unknown argument: $1"; usage ;;
    esac
done
[[ -z "${want_port}" || "${want_port}" =~ ^[0-9]+$ ]] || shelfsync_die "--port must be a number"
[[ -z "${sasl_port}" || "${sasl_port}" =~ ^[0-9]+$ ]] || shelfsync_die "--sasl-ssl-port must be a number"
if [[ -n "${sasl_port}" ]]; then
    [[ -f "${keystore}" ]] || shelfsync_die "--sasl-ssl-port needs --tls-keystore FILE (a PEM key + certificate chain)"
    [[ "${scram}" == ?*:?* ]] || shelfsync_die "--sasl-ssl-port needs --scram USER:PASSWORD"
fi

state_dir="$(realpath -m -- "${state_dir}")"
pid_file="${state_dir}/pid"
port_file="${state_dir}/port"
ctl_port_file="${state_dir}/controller-port"
sasl_port_file="${state_dir}/sasl-ssl-port"
data_dir="${state_dir}/data"
log_file="${state_dir}/kafka.log"

port_open() {
    (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null
}

# A free port below Linux's ephemeral range (32768+), so that no outgoing connection takes it
# between a kill and a restart of the broker.
free_port() {
    local port _
    for _ in $(seq 1 200); do
        port=$((15000 + RANDOM % 17000))
        if ! port_open "${port}"; then
            echo "${port}"
            return
        fi
    done
    shelfsync_die "found no free port"
}

# True when 127.0.0.1:$1 answers a Kafka Metadata request (v4, no topics) listing at least one
# broker: the broker has joined its own KRaft quorum and serves clients, not just a TCP socket.
metadata_answers() {
    timeout 3 bash -c '
        exec 3<>"/dev/tcp/127.0.0.1/$1" || exit 1
        # size 17 | api_key 3 (Metadata) | version 4 | correlation id 1 | client id "ss" |
        # topics: empty array | allow_auto_topic_creation false
        printf "\x00\x00\x00\x11\x00\x03\x00\x04\x00\x00\x00\x01\x00\x02ss\x00\x00\x00\x00\x00" >&3
        # size(4) correlation id(4) throttle ms(4) broker count(4)
        read -r -a bytes < <(head -c 16 <&3 | od -An -tu1 -v | tr -s " \n" "  ")
        [[ ${#bytes[@]} -eq 16 ]] || exit 1
        [[ ${bytes[7]} -eq 1 ]] || exit 1
        count=$(( (bytes[12] << 24) | (bytes[13] << 16) | (bytes[14] << 8) | bytes[15] ))
        (( count >= 1 ))
    ' _ "$1" 2>/dev/null
}

java_bin() {
    if [[ -n "${JAVA_HOME:-}" && -x "${JAVA_HOME}/bin/java" ]]; then
        echo "${JAVA_HOME}/bin/java"
    elif command -v java >/dev/null 2>&1; then
        command -v java
    else
        shelfsync_die "no java (OpenJDK 17+): run scripts/deps.sh"
    fi
}

check_libs() {
    [[ -f "${KAFKA_LIBS}/.complete" ]] ||
        shelfsync_die "no Apache Kafka ${KAFKA_VERSION} jars in ${KAFKA_LIBS}: run scripts/deps.sh"
}

write_config() {
    local port="$1" ctl_port="$2"
    local listeners="PLAINTEXT://127.0.0.1:${port},CONTROLLER://127.0.0.1:${ctl_port}"
    local advertised="PLAINTEXT://127.0.0.1:${port}"
    if [[ -n "${sasl_port}" ]]; then
        listeners+=",SASL_SSL://127.0.0.1:${sasl_port}"
        advertised+=",SASL_SSL://127.0.0.1:${sasl_port}"
    fi
    cat >"${state_dir}/server.properties" <<EOF
# Written by scripts/kafka.sh: a single-node KRaft broker for local use only.
process.roles=broker,controller
node.id=1
controller.quorum.voters=1@127.0.0.1:${ctl_port}
controller.listener.names=CONTROLLER
listeners=${listeners}
advertised.listeners=${advertised}
inter.broker.listener.name=PLAINTEXT
listener.security.protocol.map=PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT,SASL_SSL:SASL_SSL
log.dirs=${data_dir}
num.partitions=1
# shelfsync creates every topic it uses; a typo must fail, not create a topic (as on MSK and
# Confluent Cloud, where auto-creation is off).
auto.create.topics.enable=false
# One node: every internal topic has one replica, and few partitions so that they are created fast.
offsets.topic.replication.factor=1
offsets.topic.num.partitions=10
transaction.state.log.replication.factor=1
transaction.state.log.min.isr=1
transaction.state.log.num.partitions=4
share.coordinator.state.topic.replication.factor=1
share.coordinator.state.topic.min.isr=1
min.insync.replicas=1
default.replication.factor=1
group.initial.rebalance.delay.ms=0
# Tests use short session timeouts to notice a SIGKILLed member quickly.
group.min.session.timeout.ms=1000
log.retention.check.interval.ms=60000
EOF
    if [[ -n "${sasl_port}" ]]; then
        cat >>"${state_dir}/server.properties" <<EOF
# Clients: TLS + SCRAM-SHA-512 (credentials live in the cluster metadata, added at format time).
sasl.enabled.mechanisms=SCRAM-SHA-512
listener.name.sasl_ssl.scram-sha-512.sasl.jaas.config=org.apache.kafka.common.security.scram.ScramLoginModule required;
listener.name.sasl_ssl.ssl.keystore.type=PEM
listener.name.sasl_ssl.ssl.keystore.location=$(realpath "${keystore}")
EOF
    fi
    cat >"${state_dir}/log4j2.properties" <<EOF
status = warn
appender.out.type = Console
appender.out.name = out
appender.out.layout.type = PatternLayout
appender.out.layout.pattern = [%d] %p %m (%c)%n
rootLogger.level = INFO
rootLogger.appenderRef.out.ref = out
logger.request.name = kafka.request.logger
logger.request.level = WARN
logger.cleaner.name = org.apache.kafka.storage.internals.log.LogCleaner
logger.cleaner.level = WARN
EOF
}

# Foreground: configure, format when new, exec the broker (the pid stays this shell's).
run() {
    check_libs
    mkdir -p "${state_dir}"
    local port ctl_port
    port="${want_port:-$(cat "${port_file}" 2>/dev/null || free_port)}"
    ctl_port="$(cat "${ctl_port_file}" 2>/dev/null || free_port)"
    echo "${port}" >"${port_file}"
    echo "${ctl_port}" >"${ctl_port_file}"
    [[ -z "${sasl_port}" ]] || echo "${sasl_port}" >"${sasl_port_file}"
    write_config "${port}" "${ctl_port}"
    local java
    java="$(java_bin)"
    local log4j="-Dlog4j2.configurationFile=${state_dir}/log4j2.properties"
    if [[ ! -f "${data_dir}/meta.properties" ]]; then
        # A random cluster id (16 bytes, URL-safe base64) that does not start with '-': the
        # tool's argument parser would take it for an option.
        local cluster_id="-"
        while [[ "${cluster_id}" == -* ]]; do
            cluster_id="$(head -c 16 /dev/urandom | base64 | tr '+/' '-_' | tr -d '=')"
        done
        local format=(kafka.tools.StorageTool format --ignore-formatted
            --cluster-id "${cluster_id}" --config "${state_dir}/server.properties")
        if [[ -n "${scram}" ]]; then
            format+=(--add-scram "SCRAM-SHA-512=[name=${scram%%:*},password=${scram#*:}]")
        fi
        "${java}" -Xmx256m "${log4j}" -cp "${KAFKA_LIBS}/*" "${format[@]}" >&2 ||
            shelfsync_die "formatting the broker's storage in ${data_dir} failed"
    fi
    # shellcheck disable=SC2086 # SHELFSYNC_KAFKA_HEAP is a list of flags
    exec "${java}" ${SHELFSYNC_KAFKA_HEAP:--Xms256m -Xmx768m} \
        -XX:+UseG1GC -XX:MaxGCPauseMillis=20 -XX:InitiatingHeapOccupancyPercent=35 \
        -XX:+ExplicitGCInvokesConcurrent -Djava.awt.headless=true "${log4j}" \
        -cp "${KAFKA_LIBS}/*" kafka.Kafka "${state_dir}/server.properties"
}

running_pid() {
    [[ -f "${pid_file}" ]] || return 1
    local pid
    pid="$(cat "${pid_file}")"
    [[ "${pid}" =~ ^[0-9]+$ ]] && kill -0 "${pid}" 2>/dev/null || return 1
    # The JVM, or the `kafka.sh run` shell that is about to exec it (formatting the storage).
    local cmdline
    cmdline="$(tr '\0' ' ' <"/proc/${pid}/cmdline" 2>/dev/null)" || return 1
    if [[ "${cmdline}" == *"kafka.Kafka ${state_dir}/server.properties"* ||
        "${cmdline}" == *"kafka.sh run --dir ${state_dir} "* ]]; then
        echo "${pid}"
        return 0
    fi
    return 1
}

print_status() {
    echo "running pid=$1 bootstrap=127.0.0.1:$(cat "${port_file}") log=${log_file}"
}

start() {
    check_libs
    mkdir -p "${state_dir}"
    local pid
    if pid="$(running_pid)"; then
        shelfsync_log "already $(print_status "${pid}")"
        echo "bootstrap=127.0.0.1:$(cat "${port_file}")"
        return 0
    fi
    local port
    port="${want_port:-$(free_port)}"
    port_open "${port}" && shelfsync_die "port ${port} is already in use"
    rm -f -- "${ctl_port_file}"
    local args=(run --dir "${state_dir}" --port "${port}")
    [[ -z "${sasl_port}" ]] || args+=(--sasl-ssl-port "${sasl_port}" --tls-keystore "${keystore}" --scram "${scram}")
    shelfsync_log "starting Apache Kafka ${KAFKA_VERSION} on 127.0.0.1:${port} (dir ${state_dir}, log ${log_file})"
    # Detached from this shell: own session, no terminal, survives the script.
    setsid bash "${BASH_SOURCE[0]}" "${args[@]}" </dev/null >>"${log_file}" 2>&1 &
    pid=$!
    echo "${pid}" >"${pid_file}"

    local deadline=$((SECONDS + START_TIMEOUT_SECS))
    until metadata_answers "${port}"; do
        if ! kill -0 "${pid}" 2>/dev/null; then
            shelfsync_log "the broker exited during start-up; log tail:"
            tail -n 30 "${log_file}" >&2 || true
            rm -f -- "${pid_file}"
            exit 1
        fi
        if ((SECONDS >= deadline)); then
            shelfsync_log "the broker did not answer a Metadata request on ${port} within ${START_TIMEOUT_SECS}s; log tail:"
            tail -n 30 "${log_file}" >&2 || true
            stop
            exit 1
        fi
        sleep 0.2
    done
    shelfsync_log "$(print_status "${pid}")"
    echo "bootstrap=127.0.0.1:${port}"
}

stop() {
    local pid
    if ! pid="$(running_pid)"; then
        shelfsync_log "not running"
        rm -rf -- "${data_dir}"
        rm -f -- "${pid_file}" "${port_file}" "${ctl_port_file}" "${sasl_port_file}"
        return 0
    fi
    shelfsync_log "stopping the broker, pid ${pid}"
    kill -TERM "${pid}" 2>/dev/null || true
    local i
    for i in $(seq 1 300); do
        kill -0 "${pid}" 2>/dev/null || break
        if ((i == 300)); then
            shelfsync_log "the broker ignored TERM for 30 s; killing it"
            kill -KILL "${pid}" 2>/dev/null || true
        fi
        sleep 0.1
    done
    for _ in $(seq 1 50); do
        kill -0 "${pid}" 2>/dev/null || break
        sleep 0.1
    done
    rm -rf -- "${data_dir}"
    rm -f -- "${pid_file}" "${port_file}" "${ctl_port_file}" "${sasl_port_file}"
    shelfsync_log "stopped"
}

status() {
    local pid
    if pid="$(running_pid)"; then
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
    run) run ;;
    *) usage ;;
esac
