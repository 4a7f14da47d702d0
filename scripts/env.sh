# shellcheck shell=bash
# Common environment of the shelfsync scripts. `source` it; it does not change shell options.
#
# Every variable keeps the caller's value when already set, so CI or a developer can override it:
#   SHELFSYNC_CACHE   cache root (tansu install, cargo target dir)   default ~/.cache/shelfsync
#   CARGO_TARGET_DIR  cargo build output                             default $SHELFSYNC_CACHE/target
#   TANSU_BIN         the tansu broker binary used by scripts/tests  default $TANSU_ROOT/bin/tansu
#   TANSU_ROOT        `cargo install --root` of the pinned tansu     default $SHELFSYNC_CACHE/tansu

SHELFSYNC_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
SHELFSYNC_CACHE="${SHELFSYNC_CACHE:-${HOME}/.cache/shelfsync}"

# The Kafka-API broker used by the integration tests, the demo and the benchmarks.
# Pinned: bump the version here (and nowhere else); scripts/deps.sh reinstalls on mismatch.
TANSU_VERSION="0.6.0"
TANSU_FEATURES="dynostore,libsql"
TANSU_ROOT="${TANSU_ROOT:-${SHELFSYNC_CACHE}/tansu}"
TANSU_TARGET_DIR="${TANSU_TARGET_DIR:-${SHELFSYNC_CACHE}/tansu-target}"
TANSU_BIN="${TANSU_BIN:-${TANSU_ROOT}/bin/tansu}"

CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-${SHELFSYNC_CACHE}/target}"

export SHELFSYNC_ROOT SHELFSYNC_CACHE TANSU_VERSION TANSU_FEATURES TANSU_ROOT TANSU_TARGET_DIR \
    TANSU_BIN CARGO_TARGET_DIR

# Helpers shared by the scripts.
shelfsync_log() { printf '[shelfsync] %s\n' "$*" >&2; }
shelfsync_die() { printf '[shelfsync] ERROR: %s\n' "$*" >&2; exit 1; }
