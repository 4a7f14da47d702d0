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

# The runtime jars of a pom's dependencies, from Maven Central into a directory, once (a marker
# holds the pom's hash; a changed pom fetches again). $4, when given, is a function that checks
# the fetched directory before it replaces the old one.
#   maven_libs <label> <pom> <dest> [check]
maven_libs() {
    local label="$1" pom="$2" dest="$3" check="${4:-}" marker="$3/.complete"
    local stamp
    stamp="$(sha256sum "${pom}" | cut -d' ' -f1)"
    if [[ -f "${marker}" && "$(cat "${marker}")" == "${stamp}" ]]; then
        shelfsync_log "${label}: present in ${dest}"
        return 0
    fi
    mkdir -p "${SHELFSYNC_CACHE}"
    exec 9>"${SHELFSYNC_CACHE}/maven-install.lock"
    flock 9
    if [[ -f "${marker}" && "$(cat "${marker}")" == "${stamp}" ]]; then
        return 0
    fi
    shelfsync_log "${label}: fetching $(basename "$(dirname "${pom}")")/pom.xml's runtime dependencies with Maven"
    local tmp="${dest}.tmp.$$"
    rm -rf -- "${tmp}"
    # (Maven's console library prints bare colour codes even with -q -B: strip them.)
    mvn -B -q -Dstyle.color=never -f "${pom}" dependency:copy-dependencies -DincludeScope=runtime \
        -DoutputDirectory="${tmp}" 2>&1 | sed -e 's/\x1b\[[0-9;]*m//g' -e '/^$/d' >&2 ||
        shelfsync_die "mvn could not fetch ${label} (see above; Maven Central must be reachable)"
    if [[ -n "${check}" ]]; then
        "${check}" "${tmp}" || { rm -rf -- "${tmp}"; exit 1; }
    fi
    echo "${stamp}" >"${tmp}/.complete"
    rm -rf -- "${dest}"
    mkdir -p "$(dirname "${dest}")"
    mv -- "${tmp}" "${dest}"
    shelfsync_log "${label}: $(find "${dest}" -name '*.jar' | wc -l) jars in ${dest}"
}

# The SLF4J binding must match slf4j-api's major version or the broker logs nothing.
check_kafka_libs() {
    local dir="$1" api binding
    api="$(cd "${dir}" && ls slf4j-api-*.jar 2>/dev/null | head -n 1 || true)"
    binding="$(cd "${dir}" && ls log4j-slf4j*-impl-*.jar 2>/dev/null | head -n 1 || true)"
    case "${api}:${binding}" in
        slf4j-api-1.*:log4j-slf4j-impl-*.jar | slf4j-api-2.*:log4j-slf4j2-impl-*.jar) ;;
        *) shelfsync_log "ERROR: kafka: SLF4J binding '${binding}' does not match '${api}': fix scripts/kafka/pom.xml"
           return 1 ;;
    esac
    [[ -f "${dir}/kafka_2.13-${KAFKA_VERSION}.jar" ]] || {
        shelfsync_log "ERROR: kafka: kafka_2.13-${KAFKA_VERSION}.jar missing"
        return 1
    }
}

install_apt_packages
install_java
check_rust
check_java
# Apache Kafka (the broker of the tests, the demo and the bench), ~20 s once.
maven_libs "kafka ${KAFKA_VERSION}" "${SHELFSYNC_ROOT}/scripts/kafka/pom.xml" "${KAFKA_LIBS}" check_kafka_libs
# Apache Avro for Java: the standard library the interoperability test writes and reads with.
maven_libs "avro ${AVRO_VERSION}" "${SHELFSYNC_ROOT}/scripts/avro/pom.xml" "${AVRO_LIBS}"
