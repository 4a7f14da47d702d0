//! The topology file end to end: the example, defaults, parse and validation errors, topics.

use std::path::PathBuf;
use std::time::Duration;

use shelfsync_operators::percent::Percent;

use shelfsync_topology::{
    defaults, AdapterKind, ByteSize, Guarantee, OversellPolicy, PushKind, Stage, Store, TopicId,
    TopicRole, Topology, TopologyError,
};

fn example_path() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("retail.example.toml")
}

fn example() -> Topology {
    match Topology::load(example_path()) {
        Ok(topology) => topology,
        Err(e) => panic!("the example must load: {e}"),
    }
}

/// A minimal valid file; tests append to it or replace parts of it.
const MINIMAL: &str = r#"
application_id = "app"

[kafka]
bootstrap_servers = "localhost:9092"

[[locations]]
id = "dc-east"
name = "East"

[[channels]]
name = "shopify"
adapter = "shopify"
"#;

fn invalid(text: &str) -> Vec<(String, String)> {
    match Topology::from_toml_str(text) {
        Err(TopologyError::Invalid { errors, .. }) => {
            errors.into_iter().map(|e| (e.path, e.message)).collect()
        }
        Err(other) => panic!("expected validation errors, got {other}"),
        Ok(_) => panic!("expected validation errors, got a valid topology"),
    }
}

fn parse_error(text: &str) -> String {
    match Topology::from_toml_str(text) {
        Err(e @ TopologyError::Parse { .. }) => e.to_string(),
        Err(other) => panic!("expected a parse error, got {other}"),
        Ok(_) => panic!("expected a parse error, got a valid topology"),
    }
}

#[test]
fn the_example_loads_and_validates() {
    let topology = example();
    assert_eq!(topology.application_id, "shelfsync");
    assert_eq!(topology.kafka.bootstrap_servers, "localhost:9092");
    assert_eq!(topology.kafka.schema_registry_url, None);
    assert_eq!(
        topology
            .kafka
            .properties
            .get("compression.type")
            .map(String::as_str),
        Some("lz4")
    );
    assert_eq!(topology.processing.guarantee, Guarantee::EffectivelyOnce);
    assert_eq!(
        topology.location_ids().collect::<Vec<_>>(),
        ["dc-east", "store-nyc"]
    );

    let names: Vec<&str> = topology.channels.iter().map(|c| c.name.as_str()).collect();
    assert_eq!(names, ["amazon", "walmart", "shopify", "ebay"]);
    let adapters: Vec<AdapterKind> = topology.channels.iter().map(|c| c.adapter).collect();
    assert_eq!(
        adapters,
        [
            AdapterKind::Amazon,
            AdapterKind::Walmart,
            AdapterKind::Shopify,
            AdapterKind::Ebay
        ]
    );
    for channel in &topology.channels {
        let push = channel.push.as_ref().expect("every example channel pushes");
        assert!(push
            .credentials_env
            .as_deref()
            .is_some_and(|v| v.starts_with("SHELFSYNC_")));
    }
    assert_eq!(
        topology
            .channel("ebay")
            .and_then(|c| c.push.as_ref())
            .map(|p| p.kind),
        Some(PushKind::Ebay)
    );
}

#[test]
fn the_example_converts_into_operator_settings() {
    let topology = example();
    let inventory = topology.inventory_config();
    assert_eq!(inventory.soft_hold_ttl_ms, 30 * 60 * 1000);
    assert_eq!(inventory.shipped_line_retention_ms, 7 * 24 * 3600 * 1000);
    let names: Vec<&str> = inventory.channels.iter().map(|c| c.name.as_str()).collect();
    assert_eq!(
        names,
        ["amazon", "walmart", "shopify", "ebay"],
        "channel order is the file's"
    );

    let amazon = &inventory.channels[0];
    assert_eq!(
        (amazon.share_pct, amazon.buffer, amazon.max_qty),
        (Percent::whole(40), 2, None)
    );
    assert_eq!(amazon.oversell_policy, OversellPolicy::Reject);
    assert_eq!(inventory.channels[1].min_publish, 2);
    assert_eq!(
        inventory.channels[2].oversell_policy,
        OversellPolicy::Backorder
    );
    assert_eq!(inventory.channels[2].eligible_locations, None);
    let ebay = &inventory.channels[3];
    assert_eq!(ebay.max_qty, Some(50));
    assert_eq!(ebay.eligible_locations, Some(vec!["dc-east".to_string()]));

    assert_eq!(topology.dedupe_config().window_ms, 7 * 24 * 3600 * 1000);
    // Kept as long as a hard hold may wait for stock (hard_hold_max_age 30d), above the 7d
    // retention: a backorder filled late is still a status change of its order.
    assert_eq!(
        topology.assemble_config().retention_ms,
        30 * 24 * 3600 * 1000
    );
}

#[test]
fn the_example_topic_list() {
    let topology = example();
    let topics: Vec<(String, i32, i16, bool, TopicRole)> = topology
        .topics()
        .into_iter()
        .map(|t| {
            (
                t.name.clone(),
                t.partitions,
                t.replication_factor,
                t.compacted,
                t.role(),
            )
        })
        .collect();
    let expected: Vec<(&str, i32, bool, TopicRole)> = vec![
        ("retail.channel.orders.raw", 6, false, TopicRole::Source),
        ("retail.erp.inventory", 6, false, TopicRole::Source),
        ("retail.erp.products", 6, false, TopicRole::Source),
        ("shelfsync-orders", 6, false, TopicRole::Internal),
        (
            "shelfsync-inventory-commands",
            12,
            false,
            TopicRole::Internal,
        ),
        ("shelfsync-line-results", 6, false, TopicRole::Internal),
        ("shelfsync-dedupe-changelog", 6, true, TopicRole::Changelog),
        // The inventory changelog follows its input's override, like Kafka Streams.
        (
            "shelfsync-inventory-changelog",
            12,
            true,
            TopicRole::Changelog,
        ),
        (
            "shelfsync-assemble-changelog",
            6,
            true,
            TopicRole::Changelog,
        ),
        ("shelfsync-instances", 1, true, TopicRole::Internal),
        ("retail.channel.availability", 6, false, TopicRole::Sink),
        ("retail.erp.orders.validated", 6, false, TopicRole::Sink),
        ("retail.channel.order-status", 6, false, TopicRole::Sink),
        ("retail.dlq", 1, false, TopicRole::Sink),
        ("shelfsync-dlq-redrives", 1, true, TopicRole::Internal),
    ];
    let expected: Vec<(String, i32, i16, bool, TopicRole)> = expected
        .into_iter()
        .map(|(n, p, c, r)| (n.to_string(), p, 1, c, r))
        .collect();
    assert_eq!(topics, expected);
    assert_eq!(topology.topics()[6].cleanup_policy(), "compact");
    assert_eq!(topology.topics()[0].cleanup_policy(), "delete");
}

#[test]
fn the_stage_graph_resolves_against_the_example() {
    let topology = example();
    let graph: Vec<(&str, String, Vec<String>, Option<&str>)> = Stage::ALL
        .into_iter()
        .map(|stage| {
            (
                stage.name(),
                topology.topic_name(stage.input()),
                stage
                    .outputs()
                    .iter()
                    .map(|t| topology.topic_name(*t))
                    .collect(),
                stage.store().map(Store::name),
            )
        })
        .collect();
    let s = |v: &[&str]| v.iter().map(|x| x.to_string()).collect::<Vec<_>>();
    assert_eq!(
        graph,
        vec![
            (
                "normalize",
                "retail.channel.orders.raw".into(),
                s(&["shelfsync-orders"]),
                None
            ),
            (
                "dedupe",
                "shelfsync-orders".into(),
                s(&["shelfsync-inventory-commands"]),
                Some("dedupe")
            ),
            (
                "erp-inventory",
                "retail.erp.inventory".into(),
                s(&["shelfsync-inventory-commands"]),
                None
            ),
            (
                "erp-products",
                "retail.erp.products".into(),
                s(&["shelfsync-inventory-commands"]),
                None
            ),
            (
                "inventory",
                "shelfsync-inventory-commands".into(),
                s(&["retail.channel.availability", "shelfsync-line-results"]),
                Some("inventory")
            ),
            (
                "assemble",
                "shelfsync-line-results".into(),
                s(&["retail.erp.orders.validated", "retail.channel.order-status"]),
                Some("assemble")
            ),
        ]
    );
    assert_eq!(
        topology.stage_for_topic("retail.erp.products"),
        Some(Stage::ErpProducts)
    );
    assert_eq!(
        topology.stage_for_topic("shelfsync-inventory-changelog"),
        None
    );
    assert_eq!(topology.input_topics().len(), 6);
}

#[test]
fn defaults_are_applied() {
    let topology = Topology::from_toml_str(MINIMAL).expect("minimal file is valid");
    assert_eq!(topology.processing.guarantee, Guarantee::EffectivelyOnce);
    assert_eq!(
        topology.processing.epoch_interval,
        Duration::from_millis(100)
    );
    assert_eq!(topology.processing.epoch_max_records, 10_000);
    assert_eq!(
        topology.processing.rocksdb_memory_budget,
        ByteSize::mib(256)
    );
    assert_eq!(topology.topics.raw_orders, "retail.channel.orders.raw");
    assert_eq!(topology.topics.erp_inventory, "retail.erp.inventory");
    assert_eq!(topology.topics.erp_products, "retail.erp.products");
    assert_eq!(topology.topics.availability, "retail.channel.availability");
    assert_eq!(
        topology.topics.validated_orders,
        "retail.erp.orders.validated"
    );
    assert_eq!(topology.topics.order_status, "retail.channel.order-status");
    assert_eq!(topology.topics.dlq, "retail.dlq");
    assert_eq!(
        (
            topology.topics.partitions,
            topology.topics.replication_factor
        ),
        (6, 1)
    );
    assert_eq!(topology.dedupe.window, Duration::from_secs(7 * 86_400));
    assert_eq!(
        topology.inventory.soft_hold_ttl,
        Duration::from_secs(30 * 60)
    );
    assert_eq!(
        topology.inventory.shipped_line_retention,
        Duration::from_secs(7 * 86_400)
    );
    assert_eq!(topology.assemble.retention, Duration::from_secs(7 * 86_400));

    let channel = &topology.channels[0];
    assert_eq!(channel.share_pct, 100.into());
    assert_eq!(
        (channel.buffer, channel.max_qty, channel.min_publish),
        (0, None, 0)
    );
    assert_eq!(channel.eligible_locations, None);
    assert_eq!(channel.oversell_policy, OversellPolicy::Reject);
    assert!(channel.push.is_none());

    // Defaults agree with the operators' own defaults.
    let ops = shelfsync_operators::config::InventoryConfig::default();
    assert_eq!(
        topology.inventory_config().soft_hold_ttl_ms,
        ops.soft_hold_ttl_ms
    );
    assert_eq!(
        topology.inventory_config().shipped_line_retention_ms,
        ops.shipped_line_retention_ms
    );
    // The operator's default channel age is the topology's; the file's one channel says it.
    let dedupe = topology.dedupe_config();
    let ops_dedupe = shelfsync_operators::config::DedupeConfig::default();
    assert_eq!(dedupe.window_ms, ops_dedupe.window_ms);
    assert_eq!(
        dedupe.default_hard_hold_max_age_ms,
        ops_dedupe.default_hard_hold_max_age_ms
    );
    assert_eq!(
        dedupe.hard_hold_max_age_ms("shopify"),
        ops_dedupe.default_hard_hold_max_age_ms
    );
    // The default retention (7d) is raised to the default hard_hold_max_age (30d).
    assert_eq!(
        topology.assemble_config().retention_ms,
        shelfsync_operators::config::THIRTY_DAYS_MS
    );
    assert_eq!(
        topology.inventory_config().channels[0],
        shelfsync_operators::config::ChannelPolicy::full("shopify")
    );
    assert_eq!(defaults::PARTITIONS, 6);
}

#[test]
fn push_defaults_are_applied() {
    let text = format!("{MINIMAL}\n[channels.push]\nkind = \"webhook\"\nendpoint = \"https://hooks.example.com/stock\"\n");
    let topology = Topology::from_toml_str(&text).expect("webhook without credentials is valid");
    let push = topology.channels[0].push.as_ref().expect("push table");
    assert_eq!(push.rate_per_sec, defaults::PUSH_RATE_PER_SEC);
    assert_eq!(push.burst, defaults::PUSH_BURST);
    assert_eq!(push.batch_size, defaults::PUSH_BATCH_SIZE);
    assert_eq!(push.credentials_env, None);
}

#[test]
fn a_broken_file_reports_every_problem_with_its_path() {
    let text = r#"
application_id = "my app!"

[kafka]
bootstrap_servers = "localhost"
schema_registry_url = "registry:8081"

[kafka.properties]
"group.id" = "other"
"linger.ms" = "5"

[processing]
guarantee = "exactly_once_v2"
epoch_interval = "0ms"
epoch_max_records = 0
rocksdb_memory_budget = "1MiB"

[topics]
dlq = "retail.channel.orders.raw"
partitions = 0
replication_factor = 0

[topics.partition_overrides]
orders = -3
dedupe_changelog = 12

[dedupe]
window = "0s"

[[locations]]
id = "dc-east"
name = "East"

[[locations]]
id = "dc-east"
name = ""

[[channels]]
name = "amazon"
adapter = "amazon"
share_pct = 140
buffer = -1
max_qty = -5
min_publish = -2
eligible_locations = ["dc-east", "dc-west"]

[channels.push]
kind = "amazon"
endpoint = "https://user:pw@sellingpartnerapi-na.amazon.com"
rate_per_sec = 0.0
burst = 0
batch_size = 0
credentials_env = "amzn-secret-token-123"

[[channels]]
name = "amazon"
adapter = "generic"
eligible_locations = []

[[channels]]
name = "e|bay"
adapter = "generic"

[channels.push]
kind = "ebay"
"#;
    let errors = invalid(text);
    let rendered: Vec<String> = errors.iter().map(|(p, m)| format!("{p}: {m}")).collect();
    let expect = |path: &str, fragment: &str| {
        assert!(
            errors
                .iter()
                .any(|(p, m)| p == path && m.contains(fragment)),
            "no error at {path} containing {fragment:?}; got:\n{}",
            rendered.join("\n")
        );
    };
    expect("application_id", "only letters, digits");
    expect("kafka.bootstrap_servers", "host:port");
    expect("kafka.schema_registry_url", "http://");
    expect("kafka.properties.\"group.id\"", "application_id");
    expect("processing.guarantee", "not implemented");
    expect("processing.epoch_interval", "longer than 0");
    expect("processing.epoch_max_records", "at least 1, got 0");
    expect(
        "processing.rocksdb_memory_budget",
        "at least 8MiB, got 1MiB",
    );
    expect("topics.dlq", "already used by topics.raw_orders");
    expect("topics.partitions", "between 1 and");
    expect("topics.replication_factor", "between 1 and 32767, got 0");
    expect("topics.partition_overrides.orders", "got -3");
    expect(
        "topics.partition_overrides.dedupe_changelog",
        "stage input's partition count",
    );
    expect("dedupe.window", "longer than 0");
    expect("locations[1].id", "duplicate location id \"dc-east\"");
    expect("locations[1].name", "must not be empty");
    expect(
        "channels[0].share_pct",
        "must be between 0 and 100, got 140",
    );
    expect("channels[0].buffer", "at least 0, got -1");
    expect("channels[0].max_qty", "at least 0, got -5");
    expect("channels[0].min_publish", "at least 0, got -2");
    expect(
        "channels[0].eligible_locations[1]",
        "unknown location \"dc-west\"",
    );
    expect("channels[0].push.endpoint", "credentials");
    expect("channels[0].push.rate_per_sec", "above 0");
    expect("channels[0].push.burst", "at least 1");
    expect("channels[0].push.batch_size", "at least 1");
    expect(
        "channels[0].push.credentials_env",
        "environment variable name",
    );
    expect("channels[1].name", "duplicate channel name \"amazon\"");
    expect("channels[1].eligible_locations", "at least one location");
    expect("channels[2].name", "only letters, digits");
    expect("channels[2].push.endpoint", "must be set");
    expect("channels[2].push.credentials_env", "ebay API credentials");
    assert_eq!(
        errors.len(),
        31,
        "one error per problem, no more:\n{}",
        rendered.join("\n")
    );
    // The secret-looking value is not echoed back.
    assert!(!rendered
        .iter()
        .any(|line| line.contains("amzn-secret-token-123")));

    // The error's Display lists them all.
    let display = Topology::from_toml_str(text).unwrap_err().to_string();
    assert!(display.contains("31 problems"), "{display}");
    assert!(
        display.contains("channels[0].share_pct: must be between 0 and 100, got 140"),
        "{display}"
    );
}

#[test]
fn a_file_without_locations_channels_or_kafka_says_what_is_missing() {
    let errors = invalid("");
    let paths: Vec<&str> = errors.iter().map(|(p, _)| p.as_str()).collect();
    assert_eq!(
        paths,
        [
            "application_id",
            "kafka.bootstrap_servers",
            "locations",
            "channels"
        ]
    );
    assert!(errors[0].1.contains("SHELFSYNC_APPLICATION_ID"));
}

#[test]
fn an_unknown_field_is_named_with_its_line() {
    let text = MINIMAL.replace(
        "adapter = \"shopify\"",
        "adapter = \"shopify\"\nsharepct = 40",
    );
    let message = parse_error(&text);
    assert!(message.contains("unknown field `sharepct`"), "{message}");
    assert!(
        message.contains("share_pct"),
        "the message lists the known fields: {message}"
    );
    assert!(message.contains("line 14"), "{message}");

    let message = parse_error(&format!("{MINIMAL}\n[inventory]\nsoft_hold = \"30m\"\n"));
    assert!(message.contains("unknown field `soft_hold`"), "{message}");

    let message = parse_error(&MINIMAL.replace("[kafka]", "[kafka]\nbootstrap = \"x:1\""));
    assert!(message.contains("unknown field `bootstrap`"), "{message}");
}

#[test]
fn a_wrong_type_or_bad_value_is_named_with_its_line() {
    let message = parse_error(&format!("{MINIMAL}\n[dedupe]\nwindow = 7\n"));
    assert!(message.contains("duration"), "{message}");
    assert!(message.contains("line 16"), "{message}");

    let message = parse_error(&format!("{MINIMAL}\n[dedupe]\nwindow = \"7 fortnights\"\n"));
    assert!(message.contains("invalid duration"), "{message}");

    let message = parse_error(&MINIMAL.replace("adapter = \"shopify\"", "adapter = \"etsy\""));
    assert!(message.contains("unknown variant `etsy`"), "{message}");

    let message = parse_error(&MINIMAL.replace(
        "adapter = \"shopify\"",
        "adapter = \"shopify\"\noversell_policy = \"allow\"",
    ));
    assert!(message.contains("unknown variant `allow`"), "{message}");

    let message = parse_error(&format!(
        "{MINIMAL}\n[processing]\nrocksdb_memory_budget = \"lots\"\n"
    ));
    assert!(message.contains("invalid size"), "{message}");
}

#[test]
fn env_fills_in_what_the_file_leaves_out() {
    let dir = std::env::temp_dir().join(format!("shelfsync-topology-test-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    let path = dir.join("retail.toml");
    let text = MINIMAL
        .replace("application_id = \"app\"", "")
        .replace("bootstrap_servers = \"localhost:9092\"", "");
    std::fs::write(&path, text).expect("write");

    let err = Topology::load(&path).unwrap_err();
    assert_eq!(err.validation_errors().len(), 2, "{err}");
    assert!(
        err.to_string().starts_with(&path.display().to_string()),
        "{err}"
    );

    let vars = [
        (
            "SHELFSYNC_APPLICATION_ID".to_string(),
            "prod-shelfsync".to_string(),
        ),
        (
            "SHELFSYNC_BOOTSTRAP_SERVERS".to_string(),
            "kafka-0:9092,kafka-1:9092".to_string(),
        ),
        (
            "SHELFSYNC_KAFKA_SASL_USERNAME".to_string(),
            "svc".to_string(),
        ),
    ];
    let topology = Topology::load_with_env(&path, vars.into_iter()).expect("valid with env");
    assert_eq!(
        topology.topic_name(TopicId::Orders),
        "prod-shelfsync-orders"
    );
    assert_eq!(
        topology
            .kafka
            .properties
            .get("sasl.username")
            .map(String::as_str),
        Some("svc")
    );

    // A reserved property is refused even when it comes from the environment.
    let vars = [
        ("SHELFSYNC_APPLICATION_ID".to_string(), "x".to_string()),
        (
            "SHELFSYNC_BOOTSTRAP_SERVERS".to_string(),
            "k:9092".to_string(),
        ),
        (
            "SHELFSYNC_KAFKA_ENABLE_IDEMPOTENCE".to_string(),
            "false".to_string(),
        ),
    ];
    let err = Topology::load_with_env(&path, vars.into_iter()).unwrap_err();
    assert_eq!(
        err.validation_errors()[0].path,
        "kafka.properties.\"enable.idempotence\""
    );
    std::fs::remove_dir_all(&dir).ok();
}

#[test]
fn a_missing_file_names_its_path() {
    let err = Topology::load("/nonexistent/retail.toml").unwrap_err();
    assert!(matches!(err, TopologyError::Io { .. }));
    assert!(
        err.to_string().contains("/nonexistent/retail.toml"),
        "{err}"
    );
}

#[test]
fn internal_topic_names_are_checked_for_collisions() {
    // A user topic named like an internal one is reported at the user's field.
    let text = MINIMAL.replace(
        "[kafka]",
        "[topics]\nvalidated_orders = \"app-orders\"\n\n[kafka]",
    );
    let errors = invalid(&text);
    assert_eq!(errors.len(), 1, "{errors:?}");
    assert_eq!(errors[0].0, "topics.validated_orders");
    assert!(
        errors[0].1.contains("internal topic `orders`"),
        "{}",
        errors[0].1
    );

    let text = MINIMAL.replace(
        "[kafka]",
        "[topics]\nraw_orders = \"retail_dlq\"\n\n[kafka]",
    );
    let errors = invalid(&text);
    assert_eq!(errors[0].0, "topics.dlq");
    assert!(errors[0].1.contains("'.' and '_'"), "{}", errors[0].1);
}

#[test]
fn limits_on_names() {
    let long = "a".repeat(201);
    let errors = invalid(&MINIMAL.replace(
        "application_id = \"app\"",
        &format!("application_id = \"{long}\""),
    ));
    assert_eq!(
        errors[0],
        (
            "application_id".to_string(),
            "must be at most 200 characters, got 201".to_string()
        )
    );
    let ok = "a".repeat(200);
    let topology = Topology::from_toml_str(&MINIMAL.replace(
        "application_id = \"app\"",
        &format!("application_id = \"{ok}\""),
    ))
    .expect("200 characters is allowed");
    assert!(topology.topics().iter().all(|t| t.name.len() <= 249));
}

#[test]
fn exactly_once_v2_parses_but_is_refused() {
    let topology = Topology::parse_toml_str(&format!(
        "{MINIMAL}\n[processing]\nguarantee = \"exactly_once_v2\"\n"
    ))
    .expect("parses");
    assert_eq!(topology.processing.guarantee, Guarantee::ExactlyOnceV2);
    let errors = topology.validate().unwrap_err();
    assert_eq!(errors.len(), 1);
    assert_eq!(errors[0].path, "processing.guarantee");
}

#[test]
fn the_example_round_trips_through_toml() {
    let topology = example();
    let text = topology.to_toml_string().expect("serializes");
    let again = Topology::from_toml_str(&text).unwrap_or_else(|e| panic!("{e}\n{text}"));
    assert_eq!(again, topology);
    assert!(text.contains("window = \"7days\""), "{text}");
    assert!(
        text.contains("rocksdb_memory_budget = \"256MiB\""),
        "{text}"
    );
}

/// Issue 18, item 6: before Shopify Admin API 2026-01 `inventorySetQuantities` has no
/// `@idempotent`, so every mutation would fail; such a version is refused up front.
#[test]
fn shopify_api_versions_before_2026_01_are_refused() {
    let with = |version: &str| {
        format!(
            "{MINIMAL}\n[channels.push]\nkind = \"shopify\"\nendpoint = \"https://x.myshopify.com\"\n\
             credentials_env = \"SHOP_TOKEN\"\nlocation_id = \"gid://shopify/Location/1\"\n\
             api_version = \"{version}\"\n"
        )
    };
    for ok in [defaults::PUSH_SHOPIFY_MIN_API_VERSION, "2026-04", "2027-01"] {
        assert!(Topology::from_toml_str(&with(ok)).is_ok(), "{ok}");
    }
    for refused in ["2025-10", "2024-01", "unstable", "2026-1", "2026/01"] {
        let errors = invalid(&with(refused));
        assert_eq!(errors.len(), 1, "{refused}: {errors:?}");
        let (path, message) = &errors[0];
        assert_eq!(path, "channels[0].push.api_version");
        assert!(
            message.contains("2026-01 or newer") && message.contains(refused),
            "{message}"
        );
    }
}
