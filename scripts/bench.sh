#!/usr/bin/env bash
# The end-to-end benchmark as the README reports it: `shelfsync bench` (release build) RUNS
# times, each on a fresh Apache Kafka broker started with scripts/kafka.sh, one JSON report per
# run in OUT_DIR.
#
#   bash scripts/bench.sh [RUNS=3] [OUT_DIR=bench-results] [extra `shelfsync bench` flags]
#
# Every ratio in a report (pipeline vs passthrough) comes from one run on one broker; take the
# median over the runs.
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."
# shellcheck source=scripts/env.sh
source scripts/env.sh

runs="${1:-3}"
out="${2:-bench-results}"
shift $(($# < 2 ? $# : 2))
[[ "${runs}" =~ ^[0-9]+$ && "${runs}" -ge 1 ]] || shelfsync_die "RUNS must be a number >= 1"

bash scripts/deps.sh
cargo build --locked --release -p shelfsync-cli --bin shelfsync
mkdir -p "${out}"
broker_dir="$(mktemp -d "${TMPDIR:-/tmp}/shelfsync-bench-broker.XXXXXX")"
trap 'bash scripts/kafka.sh stop --dir "${broker_dir}" >/dev/null 2>&1 || true; rm -rf -- "${broker_dir}"' EXIT

for i in $(seq 1 "${runs}"); do
    bootstrap="$(bash scripts/kafka.sh start --dir "${broker_dir}" | sed -n 's/^bootstrap=//p')"
    [[ -n "${bootstrap}" ]] || shelfsync_die "the broker did not report its bootstrap address"
    shelfsync_log "run ${i}/${runs} on Apache Kafka ${KAFKA_VERSION} at ${bootstrap}"
    "${CARGO_TARGET_DIR}/release/shelfsync" bench --bootstrap "${bootstrap}" \
        --json "${out}/run-${i}.json" "$@" | tee "${out}/run-${i}.txt"
    bash scripts/kafka.sh stop --dir "${broker_dir}"
done
shelfsync_log "reports in ${out}/run-*.json"
