//! Issue 16: the per-channel settings that decide how a channel's orders are read and held
//! (`own_fulfillment_services`, `skip_test_orders`, `soft_hold_ttl`, `hard_hold_max_age`), the
//! `ebay` adapter kind, and what the example file sets for each marketplace.

use std::path::PathBuf;
use std::time::Duration;

use shelfsync_topology::{defaults, AdapterKind, Topology, TopologyError};

const MINIMAL: &str = r#"
application_id = "app"

[kafka]
bootstrap_servers = "localhost:9092"

[inventory]
soft_hold_ttl = "45m"

[[locations]]
id = "dc-east"
name = "East"

[[channels]]
name = "shopify"
adapter = "shopify"
"#;

/// `MINIMAL` with `extra` lines added to its channel.
fn with_channel_lines(extra: &str) -> String {
    MINIMAL.replace(
        "adapter = \"shopify\"\n",
        &format!("adapter = \"shopify\"\n{extra}\n"),
    )
}

fn invalid(text: &str) -> Vec<(String, String)> {
    match Topology::from_toml_str(text) {
        Err(TopologyError::Invalid { errors, .. }) => {
            errors.into_iter().map(|e| (e.path, e.message)).collect()
        }
        Err(other) => panic!("expected validation errors, got {other}"),
        Ok(_) => panic!("expected validation errors, got a valid topology"),
    }
}

#[test]
fn defaults_when_a_channel_says_nothing() {
    let topology = Topology::from_toml_str(MINIMAL).expect("valid");
    let channel = &topology.channels[0];
    assert_eq!(channel.own_fulfillment_services, None);
    assert!(channel.skip_test_orders);
    assert_eq!(channel.soft_hold_ttl, None);
    assert_eq!(channel.hard_hold_max_age, Duration::from_secs(30 * 86_400));
    assert_eq!(channel.hard_hold_max_age, defaults::HARD_HOLD_MAX_AGE);
    // The channel falls back to [inventory] soft_hold_ttl.
    assert_eq!(topology.soft_hold_ttl_ms(channel), 45 * 60 * 1000);
    assert_eq!(channel.hard_hold_max_age_ms(), 30 * 86_400 * 1000);
    let config = channel.adapter_config();
    assert_eq!(config.kind, AdapterKind::Shopify);
    assert_eq!(
        config
            .own_fulfillment_services
            .into_iter()
            .collect::<Vec<_>>(),
        ["manual"]
    );
}

#[test]
fn channel_settings_are_read_and_written_back() {
    let text = with_channel_lines(
        "own_fulfillment_services = [\"manual\", \"east-warehouse\"]\nskip_test_orders = false\nsoft_hold_ttl = \"7d\"\nhard_hold_max_age = \"0s\"",
    );
    let topology = Topology::from_toml_str(&text).expect("valid");
    let channel = &topology.channels[0];
    assert!(!channel.skip_test_orders);
    assert_eq!(topology.soft_hold_ttl_ms(channel), 7 * 86_400 * 1000);
    assert_eq!(
        channel.hard_hold_max_age_ms(),
        0,
        "0s: hard holds never expire"
    );
    let config = channel.adapter_config();
    assert!(config.own_fulfillment_services.contains("east-warehouse"));
    assert!(config.own_fulfillment_services.contains("manual"));
    // What `shelfsync validate --print` writes parses back to the same topology.
    let written = topology.to_toml_string().expect("serializes");
    assert!(written.contains("soft_hold_ttl = \"7days\""), "{written}");
    let again = Topology::from_toml_str(&written).expect("written form is valid");
    assert_eq!(again, topology);
}

#[test]
fn bad_values_name_their_field() {
    let errors = invalid(&with_channel_lines(
        "own_fulfillment_services = [\"manual\", \"my warehouse\", \"\", \"manual\"]",
    ));
    let paths: Vec<&str> = errors.iter().map(|(p, _)| p.as_str()).collect();
    assert_eq!(
        paths,
        [
            "channels[0].own_fulfillment_services[1]",
            "channels[0].own_fulfillment_services[2]",
            "channels[0].own_fulfillment_services[3]",
        ]
    );
    assert!(errors[0].1.contains("no spaces"), "{:?}", errors[0]);
    assert!(errors[2].1.contains("listed twice"), "{:?}", errors[2]);

    let errors = invalid(&with_channel_lines("own_fulfillment_services = []"));
    assert_eq!(errors.len(), 1);
    assert_eq!(errors[0].0, "channels[0].own_fulfillment_services");
    assert!(errors[0].1.contains("at least one"), "{:?}", errors[0]);

    let text = MINIMAL.replace(
        "adapter = \"shopify\"",
        "adapter = \"amazon\"\nown_fulfillment_services = [\"manual\"]",
    );
    let errors = invalid(&text);
    assert_eq!(errors.len(), 1);
    assert_eq!(errors[0].0, "channels[0].own_fulfillment_services");
    assert!(errors[0].1.contains("only shopify"), "{:?}", errors[0]);

    let errors = invalid(&with_channel_lines("soft_hold_ttl = \"0s\""));
    assert_eq!(errors.len(), 1);
    assert_eq!(errors[0].0, "channels[0].soft_hold_ttl");
    assert!(errors[0].1.contains("longer than 0"), "{:?}", errors[0]);

    // Unparseable durations and wrong types are parse errors that name the key.
    for (extra, key) in [
        ("hard_hold_max_age = \"30 fortnights\"", "hard_hold_max_age"),
        ("soft_hold_ttl = 30", "soft_hold_ttl"),
        ("skip_test_orders = \"yes\"", "skip_test_orders"),
    ] {
        match Topology::from_toml_str(&with_channel_lines(extra)) {
            Err(e @ TopologyError::Parse { .. }) => {
                let message = e.to_string();
                assert!(message.contains(key), "{extra}: {message}");
            }
            other => panic!("{extra}: expected a parse error, got {other:?}"),
        }
    }
}

#[test]
fn ebay_is_an_adapter_kind() {
    let text = MINIMAL.replace("adapter = \"shopify\"", "adapter = \"ebay\"");
    let topology = Topology::from_toml_str(&text).expect("valid");
    assert_eq!(topology.channels[0].adapter, AdapterKind::Ebay);
    assert_eq!(
        topology.channels[0].adapter_config().kind,
        AdapterKind::Ebay
    );
}

#[test]
fn the_example_sets_each_marketplaces_pending_order_window() {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("retail.example.toml");
    let topology = Topology::load(&path).expect("the example loads");
    let day = 86_400_000;
    let ttl = |name: &str| {
        let channel = topology.channel(name).expect("channel in the example");
        topology.soft_hold_ttl_ms(channel)
    };
    // Amazon keeps Pending orders up to 21 days, Shopify pending payments expire after about a
    // week, eBay buyers have 4 days to pay; Walmart orders are always paid (default TTL).
    assert_eq!(ttl("amazon"), 21 * day);
    assert_eq!(ttl("shopify"), 7 * day);
    assert_eq!(ttl("ebay"), 4 * day);
    assert_eq!(ttl("walmart"), 30 * 60 * 1000);
    for channel in &topology.channels {
        assert_eq!(channel.hard_hold_max_age_ms(), 30 * day, "{}", channel.name);
        assert!(channel.skip_test_orders, "{}", channel.name);
    }
    let shopify = topology.channel("shopify").expect("shopify");
    assert_eq!(
        shopify.own_fulfillment_services.as_deref(),
        Some(&["manual".to_string()][..])
    );
    // Every soft_hold_ttl in the example comes with the reason and its source.
    let text = std::fs::read_to_string(&path).expect("read the example");
    assert_eq!(text.matches("\nsoft_hold_ttl = ").count(), 5);
    for source in [
        "sellercentral.amazon.com/gp/help/external/G40571",
        "help.shopify.com/en/manual/orders/manage-orders/alt_payments_pending",
        "ebay.com.au/help/policies/payment-policies/unpaid-item-policy",
        "developer.walmart.com/us-marketplace/docs/order-management-api-overview",
    ] {
        assert!(text.contains(source), "the example cites {source}");
    }
}

/// Issue 16: percentages are exact decimals with two places, written as a number or a string;
/// anything else names the field.
#[test]
fn a_channels_share_may_be_an_exact_decimal_and_a_bad_one_names_the_field() {
    use shelfsync_operators::percent::Percent;
    let with = |value: &str| {
        format!(
            "application_id = \"t\"\n[kafka]\nbootstrap_servers = \"localhost:9092\"\n[[locations]]\nid = \"dc\"\nname = \"DC\"\n[[channels]]\nname = \"amazon\"\nadapter = \"amazon\"\nshare_pct = {value}\n"
        )
    };
    for (value, hundredths) in [("12.5", 1250), ("\"0.25\"", 25), ("40", 4000)] {
        let topology = shelfsync_topology::Topology::from_toml_str(&with(value)).unwrap();
        assert_eq!(
            topology.inventory_config().channels[0].share_pct,
            Percent(hundredths),
            "{value}"
        );
    }
    for bad in ["12.345", "\"abc\"", "100.5", "-1"] {
        let err = shelfsync_topology::Topology::from_toml_str(&with(bad))
            .unwrap_err()
            .to_string();
        assert!(err.contains("channels[0].share_pct"), "{bad}: {err}");
    }
}
