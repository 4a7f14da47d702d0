//! eBay: the Inventory API's `bulk_update_price_quantity` (≤ 25 SKUs a call, quantities only),
//! which answers with a status per SKU.

use std::collections::HashMap;

use reqwest::Method;
use serde_json::{json, Value};

use super::{
    array_at, items, malformed, str_field, Answer, Batch, Channel, Delivery, ItemResult,
    Marketplace, Step,
};
use crate::push::api::Request;
use crate::push::config::Secret;
use crate::push::queue::Update;
use crate::push::revisions::RevisionLimit;

/// eBay's bulk price and quantity call.
pub const BULK_PATH: &str = "/sell/inventory/v1/bulk_update_price_quantity";

/// eBay's revision limit: "Each listing can be revised up to 250 times in one calendar day"
/// (`bulkUpdatePriceQuantity`, Sell Inventory v1.18.2 OpenAPI), counted in days of UTC−8 (see
/// `push::revisions` for why).
pub const REVISIONS: RevisionLimit = RevisionLimit {
    per_day: 250,
    day_offset_secs: -8 * 3600,
    source: "eBay Sell Inventory v1.18.2, bulkUpdatePriceQuantity: 250 revisions per listing per calendar day",
};

/// The `bulk_update_price_quantity` body (quantities only; prices are left alone).
pub fn bulk_body(items: &[(&str, i64)]) -> Value {
    let requests: Vec<Value> = items
        .iter()
        .map(|(sku, q)| json!({"sku": sku, "shipToLocationAvailability": {"quantity": q}}))
        .collect();
    json!({ "requests": requests })
}

/// Per-SKU `statusCode` and errors of a `bulk_update_price_quantity` answer.
pub fn parse_bulk(body: &Value) -> HashMap<String, (u16, String)> {
    let mut out = HashMap::new();
    for r in array_at(body, "/responses") {
        let code = r.get("statusCode").and_then(Value::as_u64);
        if let (Some(sku), Some(code)) = (str_field(r, "sku"), code) {
            let errors = r.get("errors").map(Value::to_string).unwrap_or_default();
            out.insert(
                sku.to_string(),
                (u16::try_from(code).unwrap_or(500), errors),
            );
        }
    }
    out
}

/// The eBay Inventory API.
#[derive(Debug)]
pub(crate) struct Ebay;

impl Marketplace for Ebay {
    fn calls<'a>(&'a self, channel: &'a Channel<'a>, updates: Batch<'a>) -> Step<'a, Delivery> {
        let request = Request::new(
            "bulkUpdatePriceQuantity",
            Method::POST,
            format!("{}{BULK_PATH}", channel.config.endpoint),
        )
        .json(&bulk_body(&items(updates)))
        .header("content-language", "en-US");
        let bearer = channel
            .secret
            .as_ref()
            .map(|s| Secret::new(format!("Bearer {}", s.expose())));
        let request = channel
            .keyed(request, updates)
            .auth("authorization", bearer);
        Step::send(request, |answer| Step::Done(read_bulk(updates, answer)))
    }

    fn revision_limit(&self) -> Option<RevisionLimit> {
        Some(REVISIONS)
    }
}

/// Reads a `bulk_update_price_quantity` answer into a result per update.
fn read_bulk(updates: &[&Update], answer: Answer) -> Delivery {
    let n = updates.len();
    let response = match answer {
        Ok(r) => r,
        Err(e) => return Delivery::failed(n, &e),
    };
    let Some(per_sku) = response.json().map(|v| parse_bulk(&v)) else {
        return Delivery::all(n, malformed("bulk_update_price_quantity", &response));
    };
    let mut throttled = false;
    let results = updates
        .iter()
        .map(|u| match per_sku.get(&u.sku) {
            Some((200..=299, _)) => ItemResult::Accepted,
            Some((429, errors)) => {
                throttled = true;
                ItemResult::Retry {
                    class: "throttled",
                    reason: errors.clone(),
                }
            }
            Some((code @ 500..=599, errors)) => ItemResult::Retry {
                class: "server_error",
                reason: format!("{code}: {errors}"),
            },
            Some((code, errors)) => ItemResult::Rejected {
                status: *code,
                reason: format!("eBay refused SKU {:?} with status {code}", u.sku),
                body: errors.clone(),
            },
            None => ItemResult::Retry {
                class: "bad_response",
                reason: format!("no response for SKU {:?}", u.sku),
            },
        })
        .collect();
    Delivery { results, throttled }
}

#[cfg(test)]
mod tests {
    use shelfsync_topology::PushKind;

    use super::*;
    use crate::push::marketplaces::testing::{channel, drive, ok, update};

    #[test]
    fn ebay_bulk_body_and_answer() {
        let body = bulk_body(&[("A", 3), ("B", 0)]);
        assert_eq!(
            body,
            json!({"requests": [
                {"sku": "A", "shipToLocationAvailability": {"quantity": 3}},
                {"sku": "B", "shipToLocationAvailability": {"quantity": 0}}
            ]})
        );
        let answer = json!({"responses": [
            {"statusCode": 200, "sku": "A", "offerId": "1", "errors": [], "warnings": []},
            {"statusCode": 400, "sku": "B", "errors": [{"errorId": 25002}]}
        ]});
        let per_sku = parse_bulk(&answer);
        assert_eq!(per_sku["A"].0, 200);
        assert_eq!(per_sku["B"].0, 400);
        assert!(per_sku["B"].1.contains("25002"));
    }

    #[test]
    fn each_sku_gets_its_status_and_a_429_throttles() {
        let channel = channel("ebay", PushKind::Ebay);
        let [a, b, c, d] = ["A", "B", "C", "D"].map(|s| update(s, 1, 1));
        let updates = [&a, &b, &c, &d];
        let answer = ok(&json!({"responses": [
            {"statusCode": 200, "sku": "A"},
            {"statusCode": 429, "sku": "B"},
            {"statusCode": 503, "sku": "C"}
        ]}));
        let (sent, delivery) = drive(Ebay.calls(&channel, &updates), [answer]);
        assert_eq!(
            sent[0].auth.as_ref().map(|(name, s)| (*name, s.expose())),
            Some(("authorization", "Bearer token"))
        );
        assert!(delivery.throttled);
        assert_eq!(delivery.results[0], ItemResult::Accepted);
        assert!(matches!(
            delivery.results[1],
            ItemResult::Retry {
                class: "throttled",
                ..
            }
        ));
        assert!(matches!(
            delivery.results[2],
            ItemResult::Retry {
                class: "server_error",
                ..
            }
        ));
        assert!(matches!(
            delivery.results[3],
            ItemResult::Retry {
                class: "bad_response",
                ..
            }
        ));
    }
}
