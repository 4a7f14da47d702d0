//! Semantic validation of a parsed topology: every problem at once, each with its field path.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::time::Duration;

use crate::defaults;
use crate::graph::{TopicId, TopicRole};
use crate::model::{ChannelSpec, Guarantee, PushKind, PushSpec, Topology};
use crate::units::ByteSize;

mod intake;

/// Longest `application_id`: leaves room for `-inventory-changelog` within Kafka's 249 characters.
pub const MAX_APPLICATION_ID_LEN: usize = 200;
/// Longest topic name Kafka accepts.
pub const MAX_TOPIC_NAME_LEN: usize = 249;
/// Longest channel name.
pub const MAX_CHANNEL_NAME_LEN: usize = 64;
/// Smallest `processing.rocksdb_memory_budget`.
pub const MIN_ROCKSDB_MEMORY_BUDGET: ByteSize = ByteSize::mib(8);
/// Shortest `processing.max_future_skew` (clocks of producers drift by this much anyway).
const MIN_FUTURE_SKEW: Duration = Duration::from_secs(1);
/// Longest `processing.max_future_skew`.
const MAX_FUTURE_SKEW: Duration = Duration::from_secs(7 * 24 * 3600);
/// Longest `processing.max_alignment_delay`.
pub const MAX_ALIGNMENT_DELAY: Duration = Duration::from_secs(24 * 3600);
/// Longest `processing.epoch_interval`.
pub const MAX_EPOCH_INTERVAL: Duration = Duration::from_secs(60);

/// Longest `channels[].push.timeout`.
const MAX_PUSH_TIMEOUT: Duration = Duration::from_secs(300);

/// librdkafka properties that the pipeline sets itself, with what to do instead.
const RESERVED_PROPERTIES: [(&str, &str); 7] = [
    ("bootstrap.servers", "set kafka.bootstrap_servers instead"),
    ("group.id", "the group id is application_id"),
    (
        "enable.idempotence",
        "the pipeline always enables the idempotent producer",
    ),
    ("acks", "the pipeline always produces with acks=all"),
    (
        "enable.auto.commit",
        "the pipeline commits offsets after each epoch",
    ),
    (
        "transactional.id",
        "transactions are chosen by processing.guarantee",
    ),
    (
        "partitioner",
        "the pipeline uses murmur2_random, like Java clients",
    ),
];

/// One problem in a topology: where it is and what is allowed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ValidationError {
    /// The field path, e.g. `channels[2].share_pct` (indices count from 0).
    pub path: String,
    /// What is wrong and what is allowed, e.g. `must be between 0 and 100, got 140`.
    pub message: String,
}

impl ValidationError {
    /// A problem at `path`.
    pub fn new(path: impl Into<String>, message: impl Into<String>) -> Self {
        Self {
            path: path.into(),
            message: message.into(),
        }
    }
}

impl fmt::Display for ValidationError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.path, self.message)
    }
}

/// Whether `name` is a legal Kafka topic name character set: `[a-zA-Z0-9._-]`.
pub fn is_topic_safe(name: &str) -> bool {
    name.bytes()
        .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'))
}

/// Collects problems with their paths.
#[derive(Default)]
struct Problems(Vec<ValidationError>);

impl Problems {
    fn push(&mut self, path: impl Into<String>, message: impl Into<String>) {
        self.0.push(ValidationError::new(path, message));
    }

    fn range(&mut self, path: &str, value: i64, min: i64, max: Option<i64>) {
        match max {
            Some(max) if value < min || value > max => self.push(
                path,
                format!("must be between {min} and {max}, got {value}"),
            ),
            None if value < min => self.push(path, format!("must be at least {min}, got {value}")),
            _ => {}
        }
    }

    fn duration(&mut self, path: &str, value: Duration, max: Option<Duration>) {
        if value.is_zero() {
            self.push(
                path,
                "must be longer than 0 (e.g. \"100ms\", \"30m\", \"7d\")",
            );
        } else if i64::try_from(value.as_millis()).is_err() {
            self.push(
                path,
                format!(
                    "must fit in 2^63 milliseconds, got {}",
                    humantime::format_duration(value)
                ),
            );
        } else if let Some(max) = max.filter(|max| value > *max) {
            self.push(
                path,
                format!(
                    "must be at most {}, got {}",
                    humantime::format_duration(max),
                    humantime::format_duration(value)
                ),
            );
        }
    }

    fn topic_name(&mut self, path: &str, name: &str) {
        if name.is_empty() {
            self.push(path, "must not be empty");
        } else if name == "." || name == ".." {
            self.push(path, format!("{name:?} is not a legal Kafka topic name"));
        } else if !is_topic_safe(name) {
            self.push(
                path,
                format!("may contain only letters, digits, '.', '_' and '-', got {name:?}"),
            );
        } else if name.len() > MAX_TOPIC_NAME_LEN {
            self.push(
                path,
                format!(
                    "must be at most {MAX_TOPIC_NAME_LEN} characters, got {}",
                    name.len()
                ),
            );
        }
    }
}

impl Topology {
    /// Checks everything parsing cannot: ranges, names, references and uniqueness.
    ///
    /// # Errors
    /// Every problem found, in file order, each naming its field path (`channels[2].share_pct`)
    /// and what is allowed.
    pub fn validate(&self) -> Result<(), Vec<ValidationError>> {
        let mut p = Problems::default();
        self.validate_application_id(&mut p);
        self.validate_kafka(&mut p);
        self.validate_processing(&mut p);
        self.validate_topics(&mut p);
        p.duration("dedupe.window", self.dedupe.window, None);
        p.duration(
            "inventory.soft_hold_ttl",
            self.inventory.soft_hold_ttl,
            None,
        );
        p.duration(
            "inventory.shipped_line_retention",
            self.inventory.shipped_line_retention,
            None,
        );
        p.duration("assemble.retention", self.assemble.retention, None);
        let locations = self.validate_locations(&mut p);
        self.validate_channels(&mut p, &locations);
        if p.0.is_empty() {
            Ok(())
        } else {
            Err(p.0)
        }
    }

    fn validate_application_id(&self, p: &mut Problems) {
        let id = &self.application_id;
        if id.is_empty() {
            p.push(
                "application_id",
                "must be set (in the file or by SHELFSYNC_APPLICATION_ID)",
            );
        } else if id == "." || id == ".." {
            p.push(
                "application_id",
                format!("{id:?} is not a legal Kafka topic prefix"),
            );
        } else if !is_topic_safe(id) {
            p.push(
                "application_id",
                format!("may contain only letters, digits, '.', '_' and '-', got {id:?}"),
            );
        } else if id.len() > MAX_APPLICATION_ID_LEN {
            p.push(
                "application_id",
                format!(
                    "must be at most {MAX_APPLICATION_ID_LEN} characters, got {}",
                    id.len()
                ),
            );
        }
    }

    fn validate_kafka(&self, p: &mut Problems) {
        let kafka = &self.kafka;
        if kafka.bootstrap_servers.trim().is_empty() {
            p.push("kafka.bootstrap_servers", "must be set (in the file or by SHELFSYNC_BOOTSTRAP_SERVERS), e.g. \"localhost:9092\"");
        } else {
            for (i, server) in kafka
                .bootstrap_servers
                .split(',')
                .map(str::trim)
                .enumerate()
            {
                let ok = server
                    .rsplit_once(':')
                    .is_some_and(|(host, port)| !host.is_empty() && port.parse::<u16>().is_ok());
                if !ok {
                    p.push(
                        "kafka.bootstrap_servers",
                        format!("entry {} must be host:port, got {server:?}", i + 1),
                    );
                }
            }
        }
        if let Some(url) = &kafka.schema_registry_url {
            if let Err(message) = check_url(url) {
                p.push("kafka.schema_registry_url", message);
            }
        }
        for key in kafka.properties.keys() {
            let path = format!("kafka.properties.{key:?}");
            if key.trim().is_empty() {
                p.push(path, "property names must not be empty");
            } else if let Some((_, why)) = RESERVED_PROPERTIES.iter().find(|(name, _)| name == key)
            {
                p.push(
                    path,
                    format!("is set by shelfsync and cannot be overridden: {why}"),
                );
            }
        }
    }

    fn validate_processing(&self, p: &mut Problems) {
        let processing = &self.processing;
        if processing.guarantee == Guarantee::ExactlyOnceV2 {
            p.push(
                "processing.guarantee",
                "\"exactly_once_v2\" (Kafka broker transactions) is not implemented yet; use \"effectively_once\"",
            );
        }
        p.duration(
            "processing.epoch_interval",
            processing.epoch_interval,
            Some(MAX_EPOCH_INTERVAL),
        );
        if i64::try_from(processing.max_alignment_delay.as_millis()).is_err()
            || processing.max_alignment_delay > MAX_ALIGNMENT_DELAY
        {
            p.push(
                "processing.max_alignment_delay",
                format!(
                    "must be at most {} (\"0s\" turns alignment off), got {}",
                    humantime::format_duration(MAX_ALIGNMENT_DELAY),
                    humantime::format_duration(processing.max_alignment_delay)
                ),
            );
        }
        if processing.max_future_skew < MIN_FUTURE_SKEW
            || processing.max_future_skew > MAX_FUTURE_SKEW
        {
            p.push(
                "processing.max_future_skew",
                format!(
                    "must be between {} and {}, got {}",
                    humantime::format_duration(MIN_FUTURE_SKEW),
                    humantime::format_duration(MAX_FUTURE_SKEW),
                    humantime::format_duration(processing.max_future_skew)
                ),
            );
        }
        p.range(
            "processing.epoch_max_records",
            processing.epoch_max_records,
            1,
            None,
        );
        if processing.rocksdb_memory_budget < MIN_ROCKSDB_MEMORY_BUDGET {
            p.push(
                "processing.rocksdb_memory_budget",
                format!(
                    "must be at least {MIN_ROCKSDB_MEMORY_BUDGET}, got {}",
                    processing.rocksdb_memory_budget
                ),
            );
        }
    }

    fn validate_topics(&self, p: &mut Problems) {
        let topics = &self.topics;
        for (key, name) in [
            ("raw_orders", &topics.raw_orders),
            ("erp_inventory", &topics.erp_inventory),
            ("erp_products", &topics.erp_products),
            ("availability", &topics.availability),
            ("validated_orders", &topics.validated_orders),
            ("order_status", &topics.order_status),
            ("dlq", &topics.dlq),
        ] {
            p.topic_name(&format!("topics.{key}"), name);
        }
        p.range(
            "topics.partitions",
            topics.partitions,
            1,
            Some(i64::from(i32::MAX)),
        );
        for (key, count) in &topics.partition_overrides {
            let path = format!("topics.partition_overrides.{key}");
            if TopicId::OVERRIDABLE.iter().any(|id| id.key() == key) {
                p.range(&path, *count, 1, Some(i64::from(i32::MAX)));
            } else {
                let known: Vec<&str> = TopicId::OVERRIDABLE.iter().map(|id| id.key()).collect();
                let hint = if key.ends_with("_changelog") {
                    " (a changelog always has its stage input's partition count)"
                } else {
                    ""
                };
                p.push(
                    path,
                    format!(
                        "unknown topic key{hint}; expected one of {}",
                        known.join(", ")
                    ),
                );
            }
        }
        p.range(
            "topics.replication_factor",
            topics.replication_factor,
            1,
            Some(i64::from(i16::MAX)),
        );

        // Two roles on one topic would mix record types; names differing only in '.' vs '_'
        // collide in Kafka's metric names, and the broker refuses the second one.
        if !self.application_id.is_empty() {
            let mut seen: BTreeMap<String, TopicId> = BTreeMap::new();
            for id in TopicId::ALL {
                let name = self.topic_name(id);
                if name.is_empty() {
                    continue;
                }
                let Some(&first) = seen.get(&name.replace('.', "_")) else {
                    seen.insert(name.replace('.', "_"), id);
                    continue;
                };
                // Report at the field the user can change: internal names follow application_id.
                let (here, other) = if is_configurable(id) {
                    (id, first)
                } else {
                    (first, id)
                };
                let other_name = self.topic_name(other);
                let message = if other_name == self.topic_name(here) {
                    format!(
                        "topic {other_name:?} is already used by {}",
                        describe_topic(other)
                    )
                } else {
                    format!(
                        "topic {:?} collides with {other_name:?} ({}): Kafka treats '.' and '_' alike in topic names",
                        self.topic_name(here),
                        describe_topic(other)
                    )
                };
                p.push(format!("topics.{}", here.key()), message);
            }
        }
    }

    /// Validates `[[locations]]` and returns the declared ids.
    fn validate_locations(&self, p: &mut Problems) -> BTreeSet<&str> {
        if self.locations.is_empty() {
            p.push(
                "locations",
                "declare at least one [[locations]] entry (id and name)",
            );
        }
        let mut first: BTreeMap<&str, usize> = BTreeMap::new();
        for (i, location) in self.locations.iter().enumerate() {
            let id = location.id.as_str();
            if id.trim().is_empty() {
                p.push(format!("locations[{i}].id"), "must not be empty");
            } else if id.trim() != id {
                p.push(
                    format!("locations[{i}].id"),
                    format!("must not start or end with whitespace, got {id:?}"),
                );
            } else if let Some(j) = first.get(id) {
                p.push(
                    format!("locations[{i}].id"),
                    format!("duplicate location id {id:?} (first declared at locations[{j}])"),
                );
            } else {
                first.insert(id, i);
            }
            if location.name.trim().is_empty() {
                p.push(format!("locations[{i}].name"), "must not be empty");
            }
        }
        first.into_keys().collect()
    }

    fn validate_channels(&self, p: &mut Problems, locations: &BTreeSet<&str>) {
        if self.channels.is_empty() {
            p.push(
                "channels",
                "declare at least one [[channels]] entry (name and adapter)",
            );
        }
        let mut first: BTreeMap<&str, usize> = BTreeMap::new();
        for (i, channel) in self.channels.iter().enumerate() {
            let at = |field: &str| format!("channels[{i}].{field}");
            let name = channel.name.as_str();
            if name.is_empty() {
                p.push(at("name"), "must not be empty");
            } else if !is_topic_safe(name) {
                p.push(
                    at("name"),
                    format!("may contain only letters, digits, '.', '_' and '-', got {name:?}"),
                );
            } else if name.len() > MAX_CHANNEL_NAME_LEN {
                p.push(
                    at("name"),
                    format!(
                        "must be at most {MAX_CHANNEL_NAME_LEN} characters, got {}",
                        name.len()
                    ),
                );
            } else if let Some(j) = first.get(name) {
                p.push(
                    at("name"),
                    format!("duplicate channel name {name:?} (first declared at channels[{j}])"),
                );
            } else {
                first.insert(name, i);
            }
            validate_policy(p, i, channel, locations);
            if let Some(push) = &channel.push {
                validate_push(p, &format!("channels[{i}].push"), push);
            }
        }
    }
}

fn validate_policy(p: &mut Problems, i: usize, channel: &ChannelSpec, locations: &BTreeSet<&str>) {
    let at = |field: &str| format!("channels[{i}].{field}");
    intake::validate_order_intake(p, i, channel);
    match &channel.share_pct {
        crate::model::PercentValue::Whole(v) => p.range(&at("share_pct"), *v, 0, Some(100)),
        other => {
            if let Err(reason) = other.percent() {
                p.push(at("share_pct"), reason);
            }
        }
    }
    p.range(&at("buffer"), channel.buffer, 0, None);
    if let Some(max_qty) = channel.max_qty {
        p.range(&at("max_qty"), max_qty, 0, None);
    }
    p.range(&at("min_publish"), channel.min_publish, 0, None);
    if let Some(eligible) = &channel.eligible_locations {
        if eligible.is_empty() {
            p.push(
                at("eligible_locations"),
                "must list at least one location id (omit it to sell from every location)",
            );
        }
        let mut seen = BTreeSet::new();
        for (j, id) in eligible.iter().enumerate() {
            let path = format!("channels[{i}].eligible_locations[{j}]");
            if !locations.contains(id.as_str()) {
                let declared: Vec<&str> = locations.iter().copied().collect();
                p.push(
                    path,
                    format!(
                        "unknown location {id:?}; declared locations: {}",
                        declared.join(", ")
                    ),
                );
            } else if !seen.insert(id.as_str()) {
                p.push(path, format!("location {id:?} is listed twice"));
            }
        }
    }
}

fn validate_push(p: &mut Problems, at: &str, push: &PushSpec) {
    if push.endpoint.is_empty() {
        p.push(
            format!("{at}.endpoint"),
            "must be set to the API's base URL (https://…)",
        );
    } else if let Err(message) = check_push_endpoint(&push.endpoint) {
        p.push(format!("{at}.endpoint"), message);
    }
    if !(push.rate_per_sec.is_finite() && push.rate_per_sec > 0.0) {
        p.push(
            format!("{at}.rate_per_sec"),
            format!(
                "must be a number above 0 (e.g. 0.5 or 10), got {}",
                push.rate_per_sec
            ),
        );
    }
    p.range(&format!("{at}.burst"), push.burst, 1, None);
    p.range(&format!("{at}.batch_size"), push.batch_size, 1, None);
    p.duration(
        &format!("{at}.timeout"),
        push.timeout,
        Some(MAX_PUSH_TIMEOUT),
    );
    p.range(
        &format!("{at}.max_retries"),
        push.max_retries,
        0,
        Some(1000),
    );
    p.range(
        &format!("{at}.max_in_flight"),
        push.max_in_flight,
        1,
        Some(64),
    );
    for (operation, limit) in &push.operation_limits {
        let here = format!("{at}.operation_limits.{operation}");
        if !(limit.rate_per_sec.is_finite() && limit.rate_per_sec > 0.0) {
            p.push(
                format!("{here}.rate_per_sec"),
                format!(
                    "must be a number above 0 (e.g. 0.0083 or 5), got {}",
                    limit.rate_per_sec
                ),
            );
        }
        p.range(&format!("{here}.burst"), limit.burst, 1, None);
    }
    if let (PushKind::Shopify, Some(version)) = (push.kind, &push.api_version) {
        let min = defaults::PUSH_SHOPIFY_MIN_API_VERSION;
        let well_formed = version.len() == 7
            && version.as_bytes()[4] == b'-'
            && version
                .bytes()
                .enumerate()
                .all(|(i, b)| i == 4 || b.is_ascii_digit());
        if !well_formed || version.as_str() < min {
            p.push(
                format!("{at}.api_version"),
                format!(
                    "must be a Shopify Admin API version {min} or newer (YYYY-MM; \
                     inventorySetQuantities' @idempotent and changeFromQuantity need it), got {version:?}"
                ),
            );
        }
    }
    match &push.credentials_env {
        None if push.kind != PushKind::Webhook => p.push(
            format!("{at}.credentials_env"),
            format!("must name the environment variable holding the {} API credentials", push.kind.as_str()),
        ),
        Some(var) if !is_env_var_name(var) => p.push(
            format!("{at}.credentials_env"),
            format!(
                "must be an environment variable name ([A-Z_][A-Z0-9_]*, e.g. \"SHELFSYNC_AMAZON_CREDENTIALS\"), \
                 not the credentials themselves; got {} characters",
                var.len()
            ),
        ),
        _ => {}
    }
}

impl Topology {
    /// Checks what `shelfsync push` needs beyond [`Topology::validate`]: the settings specific
    /// to each channel's marketplace (`location_id` for Shopify, `seller_id` and
    /// `marketplace_ids` for Amazon). `shelfsync run` does not need them, so a topology without
    /// them stays valid for the pipeline; `shelfsync push` refuses to start without them.
    ///
    /// # Errors
    /// Every problem found, each naming its field path (`channels[0].push.seller_id`).
    pub fn validate_push(&self) -> Result<(), Vec<ValidationError>> {
        let mut p = Problems::default();
        for (i, channel) in self.channels.iter().enumerate() {
            let Some(push) = &channel.push else { continue };
            let at = |field: &str| format!("channels[{i}].push.{field}");
            let blank = |v: &Option<String>| v.as_deref().is_none_or(|v| v.trim().is_empty());
            match push.kind {
                PushKind::Shopify => match push.location_id.as_deref() {
                    None | Some("") => p.push(
                        at("location_id"),
                        "must be set for shopify: the location's global id, e.g. \"gid://shopify/Location/124656943\"",
                    ),
                    Some(id) if !id.starts_with("gid://shopify/Location/") => p.push(
                        at("location_id"),
                        format!("must be a Shopify location global id (gid://shopify/Location/<number>), got {id:?}"),
                    ),
                    Some(_) => {}
                },
                PushKind::Amazon => {
                    if blank(&push.seller_id) {
                        p.push(at("seller_id"), "must be set for amazon: the selling partner id of the listings");
                    }
                    if push.marketplace_ids.is_empty() {
                        p.push(
                            at("marketplace_ids"),
                            "must list at least one marketplace id for amazon, e.g. [\"ATVPDKIKX0DER\"]",
                        );
                    }
                    for (j, id) in push.marketplace_ids.iter().enumerate() {
                        if id.trim().is_empty() || !id.bytes().all(|b| b.is_ascii_alphanumeric()) {
                            p.push(
                                format!("channels[{i}].push.marketplace_ids[{j}]"),
                                format!("must be letters and digits (e.g. \"ATVPDKIKX0DER\"), got {id:?}"),
                            );
                        }
                    }
                }
                PushKind::Walmart | PushKind::Ebay | PushKind::Webhook => {}
            }
            for (field, value) in [
                ("api_version", &push.api_version),
                ("product_type", &push.product_type),
            ] {
                if value.is_some() && blank(value) {
                    p.push(
                        at(field),
                        "must not be empty (leave it out for the default)",
                    );
                }
            }
        }
        if p.0.is_empty() {
            Ok(())
        } else {
            Err(p.0)
        }
    }
}

fn is_env_var_name(name: &str) -> bool {
    let mut bytes = name.bytes();
    bytes
        .next()
        .is_some_and(|b| b.is_ascii_uppercase() || b == b'_')
        && bytes.all(|b| b.is_ascii_uppercase() || b.is_ascii_digit() || b == b'_')
}

/// Checks an `http(s)://host…` URL without credentials in it.
fn check_url(url: &str) -> Result<(), String> {
    let rest = url
        .strip_prefix("https://")
        .or_else(|| url.strip_prefix("http://"))
        .ok_or_else(|| format!("must be an http:// or https:// URL, got {url:?}"))?;
    let authority = rest.split(['/', '?', '#']).next().unwrap_or_default();
    if authority.contains('@') {
        return Err(
            "must not contain credentials (user:password@); name an environment variable instead"
                .to_string(),
        );
    }
    if authority.is_empty() || url.chars().any(char::is_whitespace) {
        return Err(format!(
            "must be an http:// or https:// URL with a host, got {url:?}"
        ));
    }
    Ok(())
}

/// A marketplace endpoint: a URL as [`check_url`] wants it, and `https://` unless its host is
/// a loopback address or `localhost` (the marketplace simulators of the tests): the push sink
/// sends marketplace tokens in headers, which plain HTTP would show to the network.
fn check_push_endpoint(url: &str) -> Result<(), String> {
    check_url(url)?;
    let Some(rest) = url.strip_prefix("http://") else {
        return Ok(());
    };
    let authority = rest.split(['/', '?', '#']).next().unwrap_or_default();
    let host = match authority.strip_prefix('[') {
        Some(v6) => v6.split(']').next().unwrap_or_default(),
        None => authority.split(':').next().unwrap_or_default(),
    };
    let loopback = host.eq_ignore_ascii_case("localhost")
        || host
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback());
    if loopback {
        Ok(())
    } else {
        Err(format!(
            "must be an https:// URL (plain http:// only for 127.0.0.1, [::1] or localhost): the marketplace credentials travel in its headers; got {url:?}"
        ))
    }
}

/// Whether the topic's name is a field of `[topics]` (sources and sinks).
fn is_configurable(id: TopicId) -> bool {
    matches!(id.role(), TopicRole::Source | TopicRole::Sink)
}

/// How an error message refers to a topic: its field, or how its name is derived.
fn describe_topic(id: TopicId) -> String {
    if is_configurable(id) {
        format!("topics.{}", id.key())
    } else {
        format!(
            "the internal topic `{}` (named after application_id)",
            id.key()
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls() {
        assert!(check_url("https://sellingpartnerapi-na.amazon.com").is_ok());
        assert!(check_url("http://localhost:8081/path").is_ok());
        assert!(check_url("ftp://x").is_err());
        assert!(check_url("https://").is_err());
        assert!(check_url("https://user:secret@host").is_err());
        assert!(check_url("https://host/a@b").is_ok());
    }

    /// Issue 15, item 11: marketplace tokens travel in headers, so a push endpoint is
    /// `https://` unless it is on this host (the tests' marketplace simulators).
    #[test]
    fn push_endpoints_are_https_unless_loopback() {
        for ok in [
            "https://api.ebay.com",
            "http://127.0.0.1:8081",
            "http://127.9.9.9/x",
            "http://localhost:8081/path",
            "http://[::1]:8081",
        ] {
            assert!(check_push_endpoint(ok).is_ok(), "{ok}");
        }
        for refused in [
            "http://api.ebay.com",
            "http://10.0.0.1:8081",
            "http://localhost.evil.com",
            "http://127.0.0.1.nip.io",
            "http://[::2]",
        ] {
            let err = check_push_endpoint(refused).unwrap_err();
            assert!(err.contains("https://"), "{refused}: {err}");
        }
        assert!(check_push_endpoint("https://user:pw@host").is_err());
    }

    #[test]
    fn env_var_names() {
        assert!(is_env_var_name("SHELFSYNC_AMAZON_CREDENTIALS"));
        assert!(is_env_var_name("_X1"));
        assert!(!is_env_var_name("1X"));
        assert!(!is_env_var_name("abc"));
        assert!(!is_env_var_name("sk_live_abc123"));
        assert!(!is_env_var_name(""));
    }
}
