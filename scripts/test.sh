#!/usr/bin/env bash
# THE test command of shelfsync (README "Quick start", CI: .ci/run).
#
#   bash scripts/test.sh                      deps, yamllint of deploy/, clippy (fail fast), every test
#   bash scripts/test.sh -p shelfsync-tests   deps, clippy, then `cargo test --locked -p shelfsync-tests`
#
# Arguments, when given, replace `--workspace --no-fail-fast` in the cargo test command line.
# SHELFSYNC_SKIP_CLIPPY=1 skips the clippy phase (local iteration only; CI never sets it).
# Integration tests start their own Apache Kafka brokers through the shelfsync-tests harness,
# which runs scripts/kafka.sh with the jars scripts/deps.sh fetched (KAFKA_LIBS, scripts/env.sh).
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."
# shellcheck source=scripts/env.sh
source scripts/env.sh
export RUST_BACKTRACE="${RUST_BACKTRACE:-1}"

phase() {
    local name="$1" started=${SECONDS} rc=0
    shift
    shelfsync_log "==> ${name}: $*"
    "$@" || rc=$?
    shelfsync_log "<== ${name}: $( ((rc == 0)) && echo ok || echo "FAILED (exit ${rc})") in $((SECONDS - started))s"
    return "${rc}"
}

shelfsync_log "CARGO_TARGET_DIR=${CARGO_TARGET_DIR} KAFKA_LIBS=${KAFKA_LIBS}"
phase deps bash scripts/deps.sh
# deps.sh installs yamllint (apt); the Rust test deploy_manifests checks what the files mean.
phase yamllint yamllint --strict --config-file deploy/.yamllint.yaml deploy
if [[ "${SHELFSYNC_SKIP_CLIPPY:-0}" != 1 ]]; then
    phase clippy cargo clippy --workspace --all-targets --locked -- -D warnings
fi
if [[ $# -gt 0 ]]; then
    phase test cargo test --locked "$@"
else
    phase test cargo test --workspace --locked --no-fail-fast
fi
