//! Validation of the channel settings that decide how a channel's orders are read and held
//! (issue 16): `own_fulfillment_services`, `soft_hold_ttl`, `hard_hold_max_age`.

use std::collections::BTreeSet;

use shelfsync_schemas::adapters::AdapterKind;

use super::Problems;
use crate::model::ChannelSpec;

/// Longest fulfilment service handle in `channels[].own_fulfillment_services`.
const MAX_SERVICE_HANDLE_LEN: usize = 255;

/// The settings that decide how a channel's orders are read and held: own fulfilment
/// services, soft-hold TTL and hard-hold maximum age.
pub(super) fn validate_order_intake(p: &mut Problems, i: usize, channel: &ChannelSpec) {
    let at = |field: &str| format!("channels[{i}].{field}");
    if let Some(services) = &channel.own_fulfillment_services {
        if channel.adapter != AdapterKind::Shopify {
            p.push(
                at("own_fulfillment_services"),
                format!(
                    "only shopify channels read line fulfilment services; the {} adapter reads who ships from the payload, so remove it",
                    channel.adapter
                ),
            );
        } else if services.is_empty() {
            p.push(
                at("own_fulfillment_services"),
                "must list at least one fulfilment service handle (omit it for [\"manual\"]); an empty list would make every line marketplace-fulfilled",
            );
        }
        let mut seen = BTreeSet::new();
        for (j, service) in services.iter().enumerate() {
            let path = format!("channels[{i}].own_fulfillment_services[{j}]");
            if service.is_empty() {
                p.push(
                    path,
                    "must not be empty; write a fulfilment service handle such as \"manual\"",
                );
            } else if service.chars().any(|c| c.is_whitespace() || c.is_control()) {
                p.push(
                    path,
                    format!("a fulfilment service handle has no spaces or control characters (e.g. \"manual\", \"my-warehouse\"), got {service:?}"),
                );
            } else if service.len() > MAX_SERVICE_HANDLE_LEN {
                p.push(
                    path,
                    format!(
                        "must be at most {MAX_SERVICE_HANDLE_LEN} characters, got {}",
                        service.len()
                    ),
                );
            } else if !seen.insert(service.as_str()) {
                p.push(
                    path,
                    format!("fulfilment service {service:?} is listed twice"),
                );
            }
        }
    }
    if let Some(ttl) = channel.soft_hold_ttl {
        p.duration(&at("soft_hold_ttl"), ttl, None);
    }
    if i64::try_from(channel.hard_hold_max_age.as_millis()).is_err() {
        p.push(
            at("hard_hold_max_age"),
            format!(
                "must fit in 2^63 milliseconds (\"0s\" keeps hard holds until shipment), got {}",
                humantime::format_duration(channel.hard_hold_max_age)
            ),
        );
    }
}
