//! Overrides from `SHELFSYNC_*` environment variables.

use crate::model::Topology;

/// Sets `application_id`.
pub const ENV_APPLICATION_ID: &str = "SHELFSYNC_APPLICATION_ID";
/// Sets `kafka.bootstrap_servers`.
pub const ENV_BOOTSTRAP_SERVERS: &str = "SHELFSYNC_BOOTSTRAP_SERVERS";
/// Sets `kafka.schema_registry_url`.
pub const ENV_SCHEMA_REGISTRY_URL: &str = "SHELFSYNC_SCHEMA_REGISTRY_URL";
/// Prefix of variables that set a librdkafka property: `SHELFSYNC_KAFKA_SASL_USERNAME` →
/// `kafka.properties."sasl.username"`.
pub const ENV_KAFKA_PREFIX: &str = "SHELFSYNC_KAFKA_";

/// The librdkafka property a `SHELFSYNC_KAFKA_<NAME>` variable sets: `<NAME>` lowercased with
/// `_` turned into `.` (`SECURITY_PROTOCOL` → `security.protocol`). `None` for other variables.
pub fn kafka_property_for_env(var: &str) -> Option<String> {
    let name = var.strip_prefix(ENV_KAFKA_PREFIX)?;
    (!name.is_empty()).then(|| name.to_ascii_lowercase().replace('_', "."))
}

impl Topology {
    /// Applies `SHELFSYNC_*` overrides from `vars` (pass `std::env::vars()`), and returns the
    /// names of the variables applied (for a log line; values may be secrets).
    ///
    /// - `SHELFSYNC_APPLICATION_ID` → `application_id`;
    /// - `SHELFSYNC_BOOTSTRAP_SERVERS` → `kafka.bootstrap_servers`;
    /// - `SHELFSYNC_SCHEMA_REGISTRY_URL` → `kafka.schema_registry_url` (empty: none);
    /// - `SHELFSYNC_KAFKA_<NAME>` → `kafka.properties.<name>` with `_` → `.`, lowercase. A
    ///   librdkafka property whose name has an underscore cannot be set this way: set it in the file.
    ///
    /// Other variables (runtime knobs such as the state directory) are ignored here. Validate
    /// after applying.
    pub fn apply_env(&mut self, vars: impl Iterator<Item = (String, String)>) -> Vec<String> {
        let mut applied = Vec::new();
        // Sorted so that the result does not depend on the environment's order.
        let mut vars: Vec<(String, String)> =
            vars.filter(|(k, _)| k.starts_with("SHELFSYNC_")).collect();
        vars.sort();
        for (key, value) in vars {
            match key.as_str() {
                ENV_APPLICATION_ID => self.application_id = value,
                ENV_BOOTSTRAP_SERVERS => self.kafka.bootstrap_servers = value,
                ENV_SCHEMA_REGISTRY_URL => {
                    self.kafka.schema_registry_url = Some(value).filter(|v| !v.is_empty())
                }
                other => match kafka_property_for_env(other) {
                    Some(property) => {
                        self.kafka.properties.insert(property, value);
                    }
                    None => continue,
                },
            }
            applied.push(key);
        }
        applied
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn vars(pairs: &[(&str, &str)]) -> impl Iterator<Item = (String, String)> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect::<Vec<_>>()
            .into_iter()
    }

    #[test]
    fn env_overrides_the_file() {
        let mut topology = Topology {
            application_id: "from-file".into(),
            ..Topology::default()
        };
        let applied = topology.apply_env(vars(&[
            ("SHELFSYNC_APPLICATION_ID", "from-env"),
            ("SHELFSYNC_BOOTSTRAP_SERVERS", "broker-1:9092,broker-2:9092"),
            ("SHELFSYNC_KAFKA_SECURITY_PROTOCOL", "SASL_SSL"),
            ("SHELFSYNC_KAFKA_SASL_PASSWORD", "hunter2"),
            ("SHELFSYNC_STATE_DIR", "/var/lib/shelfsync"),
            ("SHELFSYNC_KAFKA_", "ignored"),
            ("PATH", "/usr/bin"),
        ]));
        assert_eq!(topology.application_id, "from-env");
        assert_eq!(
            topology.kafka.bootstrap_servers,
            "broker-1:9092,broker-2:9092"
        );
        assert_eq!(
            topology
                .kafka
                .properties
                .get("security.protocol")
                .map(String::as_str),
            Some("SASL_SSL")
        );
        assert_eq!(
            topology
                .kafka
                .properties
                .get("sasl.password")
                .map(String::as_str),
            Some("hunter2")
        );
        assert_eq!(
            applied,
            [
                "SHELFSYNC_APPLICATION_ID",
                "SHELFSYNC_BOOTSTRAP_SERVERS",
                "SHELFSYNC_KAFKA_SASL_PASSWORD",
                "SHELFSYNC_KAFKA_SECURITY_PROTOCOL"
            ]
        );
    }

    #[test]
    fn property_names() {
        assert_eq!(
            kafka_property_for_env("SHELFSYNC_KAFKA_SSL_CA_LOCATION").as_deref(),
            Some("ssl.ca.location")
        );
        assert_eq!(kafka_property_for_env("SHELFSYNC_KAFKA_"), None);
        assert_eq!(kafka_property_for_env("SHELFSYNC_HTTP_PORT"), None);
    }
}
