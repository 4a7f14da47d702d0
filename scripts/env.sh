# shellcheck shell=bash
# Common environment of the shelfsync scripts. `source` it; it does not change shell options.
#
# Every variable keeps the caller's value when already set, so CI or a developer can override it:
#   SHELFSYNC_CACHE   cache root (Kafka jars, cargo target dir)      default ~/.cache/shelfsync
#   CARGO_TARGET_DIR  cargo build output                             default $SHELFSYNC_CACHE/target
#   KAFKA_LIBS        the Apache Kafka broker's jars (scripts/deps.sh fetches them with Maven)
#                                                                    default $SHELFSYNC_CACHE/kafka-$KAFKA_VERSION/libs
#   AVRO_LIBS         Apache Avro for Java, for the Avro interoperability test
#                                                                    default $SHELFSYNC_CACHE/avro-$AVRO_VERSION/libs

SHELFSYNC_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
SHELFSYNC_CACHE="${SHELFSYNC_CACHE:-${HOME}/.cache/shelfsync}"

# The broker of the integration tests, the demo and the benchmarks: Apache Kafka from Maven
# Central. Pinned here and in scripts/kafka/pom.xml; scripts/deps.sh refetches on a change.
KAFKA_VERSION="4.4.0"
KAFKA_LIBS="${KAFKA_LIBS:-${SHELFSYNC_CACHE}/kafka-${KAFKA_VERSION}/libs}"

# Apache Avro for Java (tests/tests/avro_interop.rs writes and reads records with it). Pinned
# here and in scripts/avro/pom.xml.
AVRO_VERSION="1.12.1"
AVRO_LIBS="${AVRO_LIBS:-${SHELFSYNC_CACHE}/avro-${AVRO_VERSION}/libs}"

CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-${SHELFSYNC_CACHE}/target}"

export SHELFSYNC_ROOT SHELFSYNC_CACHE KAFKA_VERSION KAFKA_LIBS AVRO_VERSION AVRO_LIBS CARGO_TARGET_DIR

# Helpers shared by the scripts.
shelfsync_log() { printf '[shelfsync] %s\n' "$*" >&2; }
shelfsync_die() { printf '[shelfsync] ERROR: %s\n' "$*" >&2; exit 1; }
