#!/usr/bin/env bash
# Installs, only when missing, what building and testing shelfsync needs on Debian/Ubuntu:
#   - the apt packages for librdkafka (cmake build), rocksdb (bindgen/clang) and tansu, and
#     yamllint (scripts/test.sh lints deploy/), sqlite3 (indexes tansu's sqlite file, see
#     scripts/tansu.sh);
#   - the pinned tansu broker (cargo install into $TANSU_ROOT, ~20 min on 2 cores, once).
# Idempotent and quiet when everything is present. Run it as `bash scripts/deps.sh`.
set -euo pipefail

# shellcheck source=scripts/env.sh
source "$(dirname "${BASH_SOURCE[0]}")/env.sh"

APT_PACKAGES=(
    libclang-dev clang cmake build-essential pkg-config
    libssl-dev libsasl2-dev zlib1g-dev libzstd-dev libcurl4-openssl-dev
    yamllint sqlite3
)

as_root() {
    if [[ ${EUID} -eq 0 ]]; then
        "$@"
    elif command -v sudo >/dev/null 2>&1; then
        sudo "$@"
    else
        shelfsync_die "need root for: $*  (run as root or install sudo)"
    fi
}

is_installed() {
    [[ "$(dpkg-query -W -f='${Status}' "$1" 2>/dev/null)" == "install ok installed" ]]
}

install_apt_packages() {
    if ! command -v dpkg-query >/dev/null 2>&1 || ! command -v apt-get >/dev/null 2>&1; then
        shelfsync_log "not a Debian-based system: install the equivalents of ${APT_PACKAGES[*]} yourself"
        return 0
    fi
    local missing=() pkg
    for pkg in "${APT_PACKAGES[@]}"; do
        is_installed "${pkg}" || missing+=("${pkg}")
    done
    if [[ ${#missing[@]} -eq 0 ]]; then
        shelfsync_log "apt packages: all ${#APT_PACKAGES[@]} present"
        return 0
    fi
    shelfsync_log "apt packages: installing ${missing[*]}"
    as_root env DEBIAN_FRONTEND=noninteractive apt-get update -q
    as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "${missing[@]}"
}

check_rust() {
    command -v cargo >/dev/null 2>&1 ||
        shelfsync_die "cargo not found: install Rust >= 1.85 with rustup (https://rustup.rs), then re-run"
    shelfsync_log "rust: $(rustc --version)"
    if ! cargo clippy --version >/dev/null 2>&1 || ! cargo fmt --version >/dev/null 2>&1; then
        if command -v rustup >/dev/null 2>&1; then
            shelfsync_log "rust: adding the clippy and rustfmt components"
            rustup component add clippy rustfmt
        else
            shelfsync_die "cargo clippy/fmt missing and no rustup to add them"
        fi
    fi
}

tansu_is_pinned_version() {
    [[ -x "${TANSU_BIN}" ]] &&
        cargo install --list --root "${TANSU_ROOT}" 2>/dev/null | grep -q "^tansu v${TANSU_VERSION}:"
}

install_tansu() {
    if [[ "${TANSU_BIN}" != "${TANSU_ROOT}/bin/tansu" ]]; then
        # The caller pointed TANSU_BIN at their own broker binary: use it as it is.
        [[ -x "${TANSU_BIN}" ]] || shelfsync_die "TANSU_BIN=${TANSU_BIN} is not an executable file"
        shelfsync_log "tansu: using TANSU_BIN=${TANSU_BIN} (not managed by deps.sh)"
        return 0
    fi
    mkdir -p "${SHELFSYNC_CACHE}"
    # Serialise concurrent runs (e.g. two checkouts sharing the cache).
    exec 9>"${SHELFSYNC_CACHE}/tansu-install.lock"
    if ! flock -n 9; then
        shelfsync_log "tansu: another install holds ${SHELFSYNC_CACHE}/tansu-install.lock; waiting"
        flock 9
    fi
    if tansu_is_pinned_version; then
        shelfsync_log "tansu: ${TANSU_VERSION} present at ${TANSU_BIN}"
        return 0
    fi
    if [[ -x "${TANSU_BIN}" ]]; then
        shelfsync_log "tansu: ${TANSU_BIN} is not the pinned version ${TANSU_VERSION}; reinstalling"
    fi
    shelfsync_log "tansu: installing ${TANSU_VERSION} (features ${TANSU_FEATURES}) into ${TANSU_ROOT}; takes ~20 min on 2 cores, once"
    CARGO_TARGET_DIR="${TANSU_TARGET_DIR}" cargo install tansu \
        --version "=${TANSU_VERSION}" --locked --force \
        --features "${TANSU_FEATURES}" --root "${TANSU_ROOT}"
    [[ -x "${TANSU_BIN}" ]] || shelfsync_die "tansu install finished but ${TANSU_BIN} is missing"
    shelfsync_log "tansu: installed ${TANSU_BIN}"
}

install_apt_packages
check_rust
install_tansu
