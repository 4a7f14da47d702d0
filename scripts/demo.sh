#!/usr/bin/env bash
# The main job, locally: installs what is missing, starts a throw-away tansu broker (sqlite) and
# runs `shelfsync demo` against it. The broker is stopped and its data deleted on exit (Ctrl-C too).
#
#   bash scripts/demo.sh [extra arguments of `shelfsync demo`]
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."
# shellcheck source=scripts/env.sh
source scripts/env.sh

bash scripts/deps.sh

# A private state dir, so the demo never reuses or stops a broker started with scripts/tansu.sh.
SHELFSYNC_BROKER_DIR="$(mktemp -d "${TMPDIR:-/tmp}/shelfsync-demo-broker.XXXXXX")"
export SHELFSYNC_BROKER_DIR
cleanup() {
    bash scripts/tansu.sh stop || true
    rm -rf -- "${SHELFSYNC_BROKER_DIR}"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

bootstrap="$(bash scripts/tansu.sh start --engine sqlite | sed -n 's/^bootstrap=//p')"
[[ -n "${bootstrap}" ]] || shelfsync_die "the broker did not report its bootstrap address"

shelfsync_log "running: shelfsync demo --bootstrap ${bootstrap} $*"
cargo run --release --locked -p shelfsync-pipeline --bin shelfsync -- demo --bootstrap "${bootstrap}" "$@"
