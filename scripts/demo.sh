#!/usr/bin/env bash
# The main job, locally: installs what is missing, starts a throw-away Apache Kafka broker
# (scripts/kafka.sh: single-node KRaft on a free 127.0.0.1 port) and runs `shelfsync demo`
# against it. The broker is stopped and its data deleted on exit (Ctrl-C too).
#
#   bash scripts/demo.sh [extra arguments of `shelfsync demo`]
#   bash scripts/demo.sh --duration 30s --skus 500 --rate 10     # shorter, lighter
#   bash scripts/demo.sh --help                                   # every flag
#
# The demo writes the catalog (2000 SKUs), waits for the pipeline to take it in, sends 60 s of
# orders and ERP updates with a flash sale, waits for the pipeline to drain, and prints a summary
# (about 2 minutes after the build). Ctrl-C stops it early and still prints the summary.
#
# Built in the dev profile, like scripts/test.sh, on purpose: the dependencies (librdkafka,
# RocksDB, Avro) are optimised there anyway ([profile.dev.package."*"] opt-level = 2 in
# Cargo.toml), the demo's bottleneck is the broker rather than shelfsync's own code, and the
# build shares the test build's cache. A --release build would compile librdkafka and RocksDB a
# second time (15+ minutes on 2 cores) for no visible difference.
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."
# shellcheck source=scripts/env.sh
source scripts/env.sh

bash scripts/deps.sh

# A private state dir, so the demo never reuses or stops a broker started with scripts/kafka.sh.
SHELFSYNC_BROKER_DIR="$(mktemp -d "${TMPDIR:-/tmp}/shelfsync-demo-broker.XXXXXX")"
export SHELFSYNC_BROKER_DIR
cleanup() {
    bash scripts/kafka.sh stop || true
    rm -rf -- "${SHELFSYNC_BROKER_DIR}"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

bootstrap="$(bash scripts/kafka.sh start | sed -n 's/^bootstrap=//p')"
[[ -n "${bootstrap}" ]] || shelfsync_die "the broker did not report its bootstrap address"

shelfsync_log "running: shelfsync demo --bootstrap ${bootstrap} $*"
cargo run --locked -p shelfsync-cli --bin shelfsync -- demo --bootstrap "${bootstrap}" "$@"
