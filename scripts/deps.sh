#!/usr/bin/env bash
# Installs, only when missing, what building and testing shelfsync needs on Debian/Ubuntu:
#   - the apt packages for librdkafka (cmake build with OpenSSL: TLS and SASL SCRAM), rocksdb
#     (bindgen/clang), yamllint (scripts/test.sh lints deploy/), openssl (the SASL_SSL test makes
#     its CA and certificates), and a Java 17 runtime and Maven for the broker;
#   - Apache Kafka's jars from Maven Central (scripts/kafka/pom.xml) into $KAFKA_LIBS, ~20 s once.
# Idempotent and quiet when everything is present. Run it as `bash scripts/deps.sh`.
set -euo pipefail

# shellcheck source=scripts/env.sh
source "$(dirname "${BASH_SOURCE[0]}")/env.sh"

APT_PACKAGES=(
    libclang-dev clang cmake build-essential pkg-config
    libssl-dev libcurl4-openssl-dev zlib1g-dev libzstd-dev openssl
    yamllint
    maven
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
            rustup component add clippy rustfmt ||
                shelfsync_die "cargo clippy/fmt are missing and 'rustup component add clippy rustfmt' failed (is the Rust distribution server reachable?): install both components with your toolchain, then re-run"
        else
            shelfsync_die "cargo clippy/fmt missing and no rustup to add them"
        fi
    fi
}

# A Java runtime >= 17 for the broker: the one on PATH or in JAVA_HOME when it is new enough,
# else the first OpenJDK >= 17 this release of Debian/Ubuntu packages (bookworm: 17, trixie: 21).
java_major() {
    "$1" -version 2>&1 | sed -n 's/.*version "\([0-9]*\).*/\1/p' | head -n 1
}

install_java() {
    local java="java" major
    [[ -n "${JAVA_HOME:-}" && -x "${JAVA_HOME}/bin/java" ]] && java="${JAVA_HOME}/bin/java"
    if command -v "${java}" >/dev/null 2>&1; then
        major="$(java_major "${java}")"
        [[ "${major}" =~ ^[0-9]+$ && "${major}" -ge 17 ]] && return 0
    fi
    command -v apt-get >/dev/null 2>&1 ||
        shelfsync_die "Apache Kafka ${KAFKA_VERSION} needs Java 17 or newer: install one (or set JAVA_HOME), then re-run"
    as_root env DEBIAN_FRONTEND=noninteractive apt-get update -q
    local pkg
    for pkg in openjdk-17-jre-headless openjdk-21-jre-headless openjdk-25-jre-headless; do
        if apt-cache show "${pkg}" >/dev/null 2>&1; then
            shelfsync_log "java: installing ${pkg}"
            as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "${pkg}"
            return 0
        fi
    done
    shelfsync_die "no OpenJDK 17, 21 or 25 package in apt: install Java 17 or newer (or set JAVA_HOME), then re-run"
}

check_java() {
    local java="java"
    [[ -n "${JAVA_HOME:-}" && -x "${JAVA_HOME}/bin/java" ]] && java="${JAVA_HOME}/bin/java"
    command -v "${java}" >/dev/null 2>&1 || shelfsync_die "java missing after the apt install"
    local major
    major="$(java_major "${java}")"
    [[ "${major}" =~ ^[0-9]+$ && "${major}" -ge 17 ]] ||
        shelfsync_die "Apache Kafka ${KAFKA_VERSION} needs Java 17 or newer; ${java} is ${major:-unknown} (set JAVA_HOME)"
    command -v mvn >/dev/null 2>&1 || shelfsync_die "mvn missing after the apt install"
}

# Apache Kafka's jars from Maven Central (scripts/kafka/pom.xml) into $KAFKA_LIBS, once.
install_kafka() {
    local pom="${SHELFSYNC_ROOT}/scripts/kafka/pom.xml" marker="${KAFKA_LIBS}/.complete"
    local stamp
    stamp="$(sha256sum "${pom}" | cut -d' ' -f1)"
    if [[ -f "${marker}" && "$(cat "${marker}")" == "${stamp}" ]]; then
        shelfsync_log "kafka: ${KAFKA_VERSION} present in ${KAFKA_LIBS}"
        return 0
    fi
    mkdir -p "${SHELFSYNC_CACHE}"
    exec 9>"${SHELFSYNC_CACHE}/kafka-install.lock"
    flock 9
    if [[ -f "${marker}" && "$(cat "${marker}")" == "${stamp}" ]]; then
        return 0
    fi
    shelfsync_log "kafka: fetching org.apache.kafka:kafka_2.13:${KAFKA_VERSION} and its runtime dependencies with Maven"
    local tmp="${KAFKA_LIBS}.tmp.$$"
    rm -rf -- "${tmp}"
    # (Maven's console library prints bare colour codes even with -q -B: strip them.)
    mvn -B -q -Dstyle.color=never -f "${pom}" dependency:copy-dependencies -DincludeScope=runtime \
        -DoutputDirectory="${tmp}" 2>&1 | sed -e 's/\x1b\[[0-9;]*m//g' -e '/^$/d' >&2 ||
        shelfsync_die "mvn could not fetch Apache Kafka ${KAFKA_VERSION} (see above; Maven Central must be reachable)"
    # The SLF4J binding must match slf4j-api's major version or the broker logs nothing.
    local api binding
    api="$(cd "${tmp}" && ls slf4j-api-*.jar 2>/dev/null | head -n 1 || true)"
    binding="$(cd "${tmp}" && ls log4j-slf4j*-impl-*.jar 2>/dev/null | head -n 1 || true)"
    case "${api}:${binding}" in
        slf4j-api-1.*:log4j-slf4j-impl-*.jar | slf4j-api-2.*:log4j-slf4j2-impl-*.jar) ;;
        *) rm -rf -- "${tmp}"
           shelfsync_die "kafka: SLF4J binding '${binding}' does not match '${api}': fix scripts/kafka/pom.xml" ;;
    esac
    [[ -f "${tmp}/kafka_2.13-${KAFKA_VERSION}.jar" ]] || shelfsync_die "kafka: kafka_2.13-${KAFKA_VERSION}.jar missing"
    echo "${stamp}" >"${tmp}/.complete"
    rm -rf -- "${KAFKA_LIBS}"
    mkdir -p "$(dirname "${KAFKA_LIBS}")"
    mv -- "${tmp}" "${KAFKA_LIBS}"
    shelfsync_log "kafka: $(find "${KAFKA_LIBS}" -name '*.jar' | wc -l) jars in ${KAFKA_LIBS} (${api}, ${binding})"
}

install_apt_packages
install_java
check_rust
check_java
install_kafka
