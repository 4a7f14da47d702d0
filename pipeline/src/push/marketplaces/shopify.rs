//! Shopify: the GraphQL Admin API's `inventorySetQuantities` (≤ 250 quantities a call, absolute
//! `available`, `@idempotent(key:)`), and the `inventoryItems` lookup that resolves SKUs to
//! inventory items with their current quantity.
//!
//! ## Compare-and-swap
//!
//! `changeFromQuantity` is the `available` quantity shelfsync last set, or read, for the SKU.
//! The first update of a SKU reads it (with the inventory item id) through `inventoryItems`.
//! When Shopify answers `CHANGE_FROM_QUANTITY_STALE` (something else changed the quantity, e.g.
//! an order), nothing of the mutation was applied: the conflicting SKUs are read again and the
//! update (or a newer one of the SKU, if one arrived meanwhile) is sent again with the fresh
//! compare value; the other SKUs of the mutation go again unchanged. After
//! [`CAS_FORCE_AFTER`] conflicts in a row for a SKU, one mutation sends `changeFromQuantity:
//! null` (no check): shelfsync is the source of truth for the channel's availability, so its
//! newest number wins over a value it cannot catch. Only the newest version shelfsync has for a
//! SKU is ever sent, so the fallback never puts an older shelfsync value over a newer one.

use std::collections::HashMap;
use std::sync::{Mutex, MutexGuard, PoisonError};

use reqwest::Method;
use serde_json::{json, Value};
use tracing::debug;

use super::{
    item_failure, malformed, refused, Answer, Batch, Channel, Delivery, ItemResult, Marketplace,
    Step,
};
use crate::push::api::{Request, Response};
use crate::push::queue::Update;
use crate::push::recent::RecentMap;

/// Conflicts in a row after which a Shopify update is sent without compare-and-swap.
pub const CAS_FORCE_AFTER: u32 = 3;
/// The Shopify mutation, exactly as Shopify's documented example with idempotency.
pub const SET_MUTATION: &str = "mutation inventorySetQuantities($input: InventorySetQuantitiesInput!, $idempotencyKey: String!) { inventorySetQuantities(input: $input) @idempotent(key: $idempotencyKey) { inventoryAdjustmentGroup { reason referenceDocumentUri changes { name delta quantityAfterChange } } userErrors { code field message } } }";
/// The Shopify query resolving SKUs to inventory items with their `available` quantity.
pub const LOOKUP_QUERY: &str = "query shelfsyncInventoryItems($query: String!, $first: Int!, $locationId: ID!) { inventoryItems(first: $first, query: $query) { nodes { id sku inventoryLevel(locationId: $locationId) { quantities(names: [\"available\"]) { name quantity } } } } }";
/// The credential header.
const TOKEN_HEADER: &str = "x-shopify-access-token";

/// One quantity of an `inventorySetQuantities` mutation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ShopifySet {
    /// `gid://shopify/InventoryItem/…`.
    pub inventory_item_id: String,
    /// The absolute `available` quantity.
    pub quantity: i64,
    /// The compare value; `None` sends `null` (no check).
    pub change_from: Option<i64>,
}

/// The GraphQL request body of `inventorySetQuantities` (name `available`, reason
/// `correction`).
pub fn set_body(
    location_id: &str,
    sets: &[ShopifySet],
    idempotency_key: &str,
    reference_document_uri: &str,
) -> Value {
    let quantities: Vec<Value> = sets
        .iter()
        .map(|s| {
            json!({
                "inventoryItemId": s.inventory_item_id,
                "locationId": location_id,
                "quantity": s.quantity,
                "changeFromQuantity": s.change_from,
            })
        })
        .collect();
    json!({
        "query": SET_MUTATION,
        "variables": {
            "input": {
                "name": "available",
                "reason": "correction",
                "referenceDocumentUri": reference_document_uri,
                "quantities": quantities,
            },
            "idempotencyKey": idempotency_key,
        }
    })
}

/// Quotes a value for Shopify's search syntax: `"…"` with `\` and `"` escaped.
fn quote(value: &str) -> String {
    let mut out = String::with_capacity(value.len() + 2);
    out.push('"');
    for c in value.chars() {
        if c == '"' || c == '\\' {
            out.push('\\');
        }
        out.push(c);
    }
    out.push('"');
    out
}

/// The GraphQL request body resolving `skus` to inventory items with their `available`
/// quantity at `location_id`.
pub fn lookup_body(skus: &[&str], location_id: &str) -> Value {
    let query = skus
        .iter()
        .map(|s| format!("sku:{}", quote(s)))
        .collect::<Vec<_>>()
        .join(" OR ");
    json!({
        "query": LOOKUP_QUERY,
        "variables": {
            "query": query,
            "first": (skus.len() * 2).clamp(1, 250),
            "locationId": location_id,
        }
    })
}

/// An inventory item found by the lookup.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ShopifyItem {
    /// Its global id.
    pub id: String,
    /// Its `available` quantity at the location; `None` when it is not stocked there.
    pub available: Option<Option<i64>>,
}

/// Parses the lookup answer into SKU → item. Only exact SKU matches count.
///
/// # Errors
/// A description when the answer is not the expected shape or carries GraphQL errors.
pub fn parse_lookup(body: &Value) -> Result<HashMap<String, ShopifyItem>, String> {
    if let Some(errors) = body.get("errors").filter(|e| !e.is_null()) {
        return Err(format!("GraphQL errors: {errors}"));
    }
    let nodes = body
        .pointer("/data/inventoryItems/nodes")
        .and_then(Value::as_array)
        .ok_or("no data.inventoryItems.nodes")?;
    let mut out = HashMap::new();
    for node in nodes {
        let (Some(id), Some(sku)) = (
            node.get("id").and_then(Value::as_str),
            node.get("sku").and_then(Value::as_str),
        ) else {
            continue;
        };
        let available = node
            .get("inventoryLevel")
            .filter(|l| !l.is_null())
            .map(|level| {
                level
                    .get("quantities")
                    .and_then(Value::as_array)
                    .and_then(|qs| {
                        qs.iter()
                            .find(|q| q.get("name").and_then(Value::as_str) == Some("available"))
                    })
                    .and_then(|q| q.get("quantity"))
                    .and_then(Value::as_i64)
            });
        out.insert(
            sku.to_string(),
            ShopifyItem {
                id: id.to_string(),
                available,
            },
        );
    }
    Ok(out)
}

/// A `userErrors` entry of `inventorySetQuantities`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ShopifyUserError {
    /// Index into `quantities` the error is about, when its `field` path names one.
    pub index: Option<usize>,
    /// The error code (`CHANGE_FROM_QUANTITY_STALE`, …).
    pub code: String,
    /// The message.
    pub message: String,
}

/// The outcome of an `inventorySetQuantities` answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ShopifySetOutcome {
    /// Applied (no user errors).
    Applied,
    /// GraphQL `THROTTLED`.
    Throttled,
    /// Refused with user errors; the mutation is atomic, so nothing was applied.
    UserErrors(Vec<ShopifyUserError>),
    /// Top-level GraphQL errors or an unexpected shape.
    Failed(String),
}

/// Parses an `inventorySetQuantities` answer (`{"data": {...}}`).
pub fn parse_set(body: &Value) -> ShopifySetOutcome {
    if let Some(errors) = body.get("errors").and_then(Value::as_array) {
        let throttled = errors
            .iter()
            .any(|e| e.pointer("/extensions/code").and_then(Value::as_str) == Some("THROTTLED"));
        return if throttled {
            ShopifySetOutcome::Throttled
        } else {
            ShopifySetOutcome::Failed(format!("GraphQL errors: {}", Value::from(errors.clone())))
        };
    }
    let Some(payload) = body.pointer("/data/inventorySetQuantities") else {
        return ShopifySetOutcome::Failed("no data.inventorySetQuantities".to_string());
    };
    let errors: Vec<ShopifyUserError> = payload
        .get("userErrors")
        .and_then(Value::as_array)
        .map(|list| {
            list.iter()
                .map(|e| ShopifyUserError {
                    index: e.get("field").and_then(Value::as_array).and_then(|path| {
                        // ["input", "quantities", "3", "changeFromQuantity"]
                        let at = path.iter().position(|p| p.as_str() == Some("quantities"))?;
                        path.get(at + 1)?.as_str()?.parse().ok()
                    }),
                    code: e
                        .get("code")
                        .and_then(Value::as_str)
                        .unwrap_or("UNKNOWN")
                        .to_string(),
                    message: e
                        .get("message")
                        .and_then(Value::as_str)
                        .unwrap_or_default()
                        .to_string(),
                })
                .collect()
        })
        .unwrap_or_default();
    if errors.is_empty() {
        ShopifySetOutcome::Applied
    } else {
        ShopifySetOutcome::UserErrors(errors)
    }
}

/// What the Shopify marketplace remembers per SKU.
#[derive(Debug, Clone, Default)]
struct ShopifyState {
    inventory_item_id: Option<String>,
    /// The `available` quantity last set or read; `None`: read it before the next mutation.
    known: Option<i64>,
    /// Compare-and-swap conflicts in a row.
    conflicts: u32,
}

/// Shopify's GraphQL Admin API, with what it remembers per SKU: the inventory item id and the
/// compare value (see the module page).
///
/// What it remembers is bounded ([`SHOPIFY_STATE_CAPACITY`] SKUs, the most recently used): a
/// forgotten SKU costs one `inventoryItems` lookup before its next mutation.
#[derive(Debug)]
pub(crate) struct Shopify {
    state: Mutex<RecentMap<String, ShopifyState>>,
}

/// Most SKUs whose inventory item id and compare value a Shopify channel remembers.
pub const SHOPIFY_STATE_CAPACITY: usize = 200_000;

impl Default for Shopify {
    fn default() -> Self {
        Self {
            state: Mutex::new(RecentMap::new(SHOPIFY_STATE_CAPACITY)),
        }
    }
}

/// Every result, an update left without one going again through the lookup.
fn settle(results: Vec<Option<ItemResult>>, throttled: bool) -> Delivery {
    Delivery {
        results: results
            .into_iter()
            .map(|r| r.unwrap_or(ItemResult::Again { class: "lookup" }))
            .collect(),
        throttled,
    }
}

impl Marketplace for Shopify {
    fn calls<'a>(&'a self, channel: &'a Channel<'a>, updates: Batch<'a>) -> Step<'a, Delivery> {
        let url = format!(
            "{}/admin/api/{}/graphql.json",
            channel.config.endpoint, channel.config.api_version
        );
        // 1. Inventory item ids and compare values we do not know yet.
        let need: Vec<&str> = {
            let state = self.state();
            updates
                .iter()
                .filter(|u| {
                    state.get(&u.sku).is_none_or(|s| {
                        s.inventory_item_id.is_none()
                            || (s.known.is_none() && s.conflicts < CAS_FORCE_AFTER)
                    })
                })
                .map(|u| u.sku.as_str())
                .collect()
        };
        if need.is_empty() {
            return self.mutation(channel, updates, url, vec![None; updates.len()]);
        }
        let request = Request::new("inventoryItems", Method::POST, url.clone())
            .json(&lookup_body(&need, &channel.config.location_id))
            .auth(TOKEN_HEADER, channel.secret.clone());
        Step::send(request, move |answer| {
            match self.read_lookup(channel, updates, &need, answer) {
                Ok(results) => self.mutation(channel, updates, url, results),
                Err(delivery) => Step::Done(delivery),
            }
        })
    }
}

impl Shopify {
    fn state(&self) -> MutexGuard<'_, RecentMap<String, ShopifyState>> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Reads the lookup of the `need`ed SKUs: a result for the updates it settles (unknown or
    /// unstocked SKUs), or the delivery's end when the lookup failed.
    fn read_lookup(
        &self,
        channel: &Channel<'_>,
        updates: &[&Update],
        need: &[&str],
        answer: Answer,
    ) -> Result<Vec<Option<ItemResult>>, Delivery> {
        let n = updates.len();
        let response = answer.map_err(|e| Delivery::failed(n, &e))?;
        let found = match response.json().as_ref().map(parse_lookup) {
            Some(Ok(found)) => found,
            Some(Err(why)) if why.contains("THROTTLED") => {
                let mut d = Delivery::all(
                    n,
                    ItemResult::Retry {
                        class: "throttled",
                        reason: why,
                    },
                );
                d.throttled = true;
                return Err(d);
            }
            Some(Err(_)) | None => {
                return Err(Delivery::all(n, malformed("inventoryItems", &response)));
            }
        };
        let mut results = vec![None; n];
        let mut state = self.state();
        for (i, u) in updates.iter().enumerate() {
            if !need.contains(&u.sku.as_str()) {
                continue;
            }
            match found.get(&u.sku) {
                None => {
                    state.remove(&u.sku);
                    let why = format!("no Shopify inventory item has SKU {:?}", u.sku);
                    results[i] = Some(refused(&response, why));
                }
                Some(ShopifyItem {
                    available: None, ..
                }) => {
                    state.remove(&u.sku);
                    let why = format!(
                        "SKU {:?} is not stocked at location {}",
                        u.sku, channel.config.location_id
                    );
                    results[i] = Some(refused(&response, why));
                }
                Some(item) => {
                    let entry = state.entry_or_default(u.sku.clone());
                    entry.inventory_item_id = Some(item.id.clone());
                    entry.known = item.available.flatten();
                }
            }
        }
        Ok(results)
    }

    /// 2. The mutation, for every update still standing.
    fn mutation<'a>(
        &'a self,
        channel: &'a Channel<'a>,
        updates: &'a [&'a Update],
        url: String,
        mut results: Vec<Option<ItemResult>>,
    ) -> Step<'a, Delivery> {
        let (index, sets): (Vec<usize>, Vec<ShopifySet>) = {
            let state = self.state();
            updates
                .iter()
                .enumerate()
                .filter(|(i, _)| results[*i].is_none())
                .filter_map(|(i, u)| {
                    let s = state.get(&u.sku)?;
                    let change_from = if s.conflicts >= CAS_FORCE_AFTER {
                        None
                    } else {
                        s.known
                    };
                    Some((
                        i,
                        ShopifySet {
                            inventory_item_id: s.inventory_item_id.clone()?,
                            quantity: u.quantity,
                            change_from,
                        },
                    ))
                })
                .unzip()
        };
        for (i, r) in results.iter_mut().enumerate() {
            if r.is_none() && !index.contains(&i) {
                // Lost its state meanwhile (another delivery's refusal): look it up again.
                *r = Some(ItemResult::Again { class: "lookup" });
            }
        }
        if sets.is_empty() {
            return Step::Done(settle(results, false));
        }
        let in_call: Vec<&Update> = index.iter().map(|&i| updates[i]).collect();
        let compare: Vec<String> = sets
            .iter()
            .map(|s| format!("{:?}", s.change_from))
            .collect();
        let key = channel.idempotency_key(&in_call, &compare);
        let body = set_body(
            &channel.config.location_id,
            &sets,
            &key,
            &format!("gid://shelfsync/AvailabilityUpdate/{key}"),
        );
        let request = Request::new("inventorySetQuantities", Method::POST, url).json(&body);
        let request = channel
            .keyed_as(request, &in_call, key)
            .auth(TOKEN_HEADER, channel.secret.clone());
        Step::send(request, move |answer| {
            Step::Done(self.read_set(channel, updates, &index, results, answer))
        })
    }

    /// Reads the mutation's answer for the updates at `index` (their quantities in order).
    fn read_set(
        &self,
        channel: &Channel<'_>,
        updates: &[&Update],
        index: &[usize],
        mut results: Vec<Option<ItemResult>>,
        answer: Answer,
    ) -> Delivery {
        let response = match answer {
            Ok(response) => response,
            Err(e) => {
                for &i in index {
                    results[i] = Some(item_failure(&e));
                }
                return settle(results, false);
            }
        };
        let outcome = response.json().map_or_else(
            || ShopifySetOutcome::Failed("not JSON".into()),
            |v| parse_set(&v),
        );
        let mut throttled = false;
        let mut all = |result: ItemResult| {
            for &i in index {
                results[i] = Some(result.clone());
            }
        };
        match outcome {
            ShopifySetOutcome::Applied => {
                let mut state = self.state();
                for &i in index {
                    let u = updates[i];
                    if let Some(s) = state.get_mut(&u.sku) {
                        s.known = Some(u.quantity);
                        s.conflicts = 0;
                    }
                }
                all(ItemResult::Accepted);
            }
            ShopifySetOutcome::Throttled => {
                throttled = true;
                all(ItemResult::Retry {
                    class: "throttled",
                    reason: "Shopify GraphQL THROTTLED".to_string(),
                });
            }
            ShopifySetOutcome::Failed(why) => all(ItemResult::Retry {
                class: "bad_response",
                reason: why,
            }),
            ShopifySetOutcome::UserErrors(errors) => {
                self.read_user_errors(channel, updates, index, &mut results, &response, &errors);
            }
        }
        settle(results, throttled)
    }

    /// Sorts the `userErrors` of a refused (atomic, so wholly unapplied) mutation into results.
    fn read_user_errors(
        &self,
        channel: &Channel<'_>,
        updates: &[&Update],
        index: &[usize],
        results: &mut [Option<ItemResult>],
        response: &Response,
        errors: &[ShopifyUserError],
    ) {
        let mut state = self.state();
        for e in errors {
            let Some(&i) = e.index.and_then(|k| index.get(k)) else {
                continue;
            };
            let u = updates[i];
            let result = match e.code.as_str() {
                "CHANGE_FROM_QUANTITY_STALE" | "COMPARE_QUANTITY_STALE" => {
                    let s = state.entry_or_default(u.sku.clone());
                    s.known = None;
                    s.conflicts += 1;
                    debug!(channel = %channel.name(), sku = %u.sku, conflicts = s.conflicts, "compare-and-swap conflict; reading the quantity again");
                    ItemResult::Again {
                        class: "cas_conflict",
                    }
                }
                "IDEMPOTENCY_CONCURRENT_REQUEST" => ItemResult::Retry {
                    class: "server_error",
                    reason: e.message.clone(),
                },
                code => {
                    state.remove(&u.sku);
                    refused(response, format!("{code}: {}", e.message))
                }
            };
            results[i] = Some(result);
        }
        let general: Vec<&ShopifyUserError> = errors.iter().filter(|e| e.index.is_none()).collect();
        for &i in index {
            if results[i].is_none() {
                // Atomic: not applied because of another quantity, or an error about the whole
                // call.
                results[i] = Some(match general.first() {
                    None => ItemResult::Again {
                        class: "batch_conflict",
                    },
                    Some(g) => ItemResult::Retry {
                        class: "server_error",
                        reason: format!("{}: {}", g.code, g.message),
                    },
                });
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use shelfsync_topology::PushKind;

    use super::*;
    use crate::push::marketplaces::testing::{channel, drive, fixture, ok, update};

    #[test]
    fn shopify_mutation_matches_shopifys_example() {
        let want = fixture(include_str!(
            "../fixtures/shopify-inventorySetQuantities-request.json"
        ));
        let got = set_body(
            "gid://shopify/Location/124656943",
            &[ShopifySet {
                inventory_item_id: "gid://shopify/InventoryItem/30322695".into(),
                quantity: 42,
                change_from: Some(1),
            }],
            "550e8400-e29b-41d4-a716-446655440000",
            "logistics://some.warehouse/take/2026-02-23T13:14:15Z",
        );
        assert_eq!(got, want);
        // Opting out of the check sends an explicit null (required from API 2026-04 on).
        let forced = set_body(
            "gid://shopify/Location/1",
            &[ShopifySet {
                inventory_item_id: "gid://shopify/InventoryItem/2".into(),
                quantity: 0,
                change_from: None,
            }],
            "k",
            "u",
        );
        let q = &forced["variables"]["input"]["quantities"][0];
        assert!(
            q.get("changeFromQuantity").is_some_and(Value::is_null),
            "{q}"
        );
    }

    #[test]
    fn shopify_answers_are_read() {
        let data = fixture(include_str!(
            "../fixtures/shopify-inventorySetQuantities-response.json"
        ));
        assert_eq!(
            parse_set(&json!({ "data": data })),
            ShopifySetOutcome::Applied
        );
        let stale = json!({"data": {"inventorySetQuantities": {"inventoryAdjustmentGroup": null, "userErrors": [
            {"code": "CHANGE_FROM_QUANTITY_STALE", "field": ["input", "quantities", "1", "changeFromQuantity"], "message": "The changeFromQuantity value does not match persisted value."}
        ]}}});
        assert_eq!(
            parse_set(&stale),
            ShopifySetOutcome::UserErrors(vec![ShopifyUserError {
                index: Some(1),
                code: "CHANGE_FROM_QUANTITY_STALE".into(),
                message: "The changeFromQuantity value does not match persisted value.".into(),
            }])
        );
        let throttled =
            json!({"errors": [{"message": "Throttled", "extensions": {"code": "THROTTLED"}}]});
        assert_eq!(parse_set(&throttled), ShopifySetOutcome::Throttled);
        assert!(matches!(
            parse_set(&json!({})),
            ShopifySetOutcome::Failed(_)
        ));
    }

    #[test]
    fn shopify_lookup_quotes_skus_and_matches_exactly() {
        let body = lookup_body(&["A-1", "B \"2\""], "gid://shopify/Location/9");
        assert_eq!(body["variables"]["query"], r#"sku:"A-1" OR sku:"B \"2\"""#);
        assert_eq!(body["variables"]["first"], 4);
        let answer = json!({"data": {"inventoryItems": {"nodes": [
            {"id": "gid://shopify/InventoryItem/1", "sku": "A-1", "inventoryLevel": {"quantities": [{"name": "available", "quantity": 7}]}},
            {"id": "gid://shopify/InventoryItem/2", "sku": "A-10", "inventoryLevel": null},
            {"id": "gid://shopify/InventoryItem/3", "sku": "B \"2\"", "inventoryLevel": null}
        ]}}});
        let found = parse_lookup(&answer).unwrap();
        assert_eq!(found["A-1"].available, Some(Some(7)));
        assert_eq!(found["B \"2\""].available, None);
        assert!(!found.contains_key("B"));
    }

    fn lookup_answer(sku: &str, available: i64) -> Answer {
        ok(&json!({"data": {"inventoryItems": {"nodes": [
            {"id": "gid://shopify/InventoryItem/1", "sku": sku, "inventoryLevel": {"quantities": [{"name": "available", "quantity": available}]}}
        ]}}}))
    }

    fn stale_answer() -> Answer {
        ok(&json!({"data": {"inventorySetQuantities": {"userErrors": [
            {"code": "CHANGE_FROM_QUANTITY_STALE", "field": ["input", "quantities", "0", "changeFromQuantity"], "message": "stale"}
        ]}}}))
    }

    fn change_from(request: &Request) -> Value {
        let body: Value = serde_json::from_slice(&request.body).unwrap();
        body["variables"]["input"]["quantities"][0]["changeFromQuantity"].clone()
    }

    #[test]
    fn a_conflict_reads_the_quantity_again_and_the_third_in_a_row_forces() {
        let (shopify, channel) = (Shopify::default(), channel("shop", PushKind::Shopify));
        let a = update("A-1", 5, 1);
        let deliver = |answers: Vec<Answer>| drive(shopify.calls(&channel, &[&a]), answers);
        // First update of the SKU: lookup, then the mutation with the quantity read.
        let (sent, delivery) = deliver(vec![lookup_answer("A-1", 7), stale_answer()]);
        assert_eq!(sent[0].what, "inventoryItems");
        assert_eq!(change_from(&sent[1]), json!(7));
        assert_eq!(
            delivery.results,
            [ItemResult::Again {
                class: "cas_conflict"
            }]
        );
        // Conflicts 2 and 3 read the quantity again each time.
        for available in [8, 9] {
            let (sent, _) = deliver(vec![lookup_answer("A-1", available), stale_answer()]);
            assert_eq!(change_from(&sent[1]), json!(available));
        }
        // After CAS_FORCE_AFTER conflicts: no lookup, `changeFromQuantity: null`.
        let (sent, delivery) = deliver(vec![ok(
            &json!({"data": {"inventorySetQuantities": {"userErrors": []}}}),
        )]);
        assert_eq!(sent.len(), 1);
        assert!(change_from(&sent[0]).is_null());
        assert_eq!(delivery.results, [ItemResult::Accepted]);
        // Applied: the quantity set is the next compare value.
        let (sent, _) = deliver(vec![stale_answer()]);
        assert_eq!(change_from(&sent[0]), json!(5));
    }

    #[test]
    fn an_unknown_sku_is_refused_and_throttling_is_reported() {
        let (shopify, channel) = (Shopify::default(), channel("shop", PushKind::Shopify));
        let a = update("NOPE", 1, 1);
        let deliver = |answer: Answer| drive(shopify.calls(&channel, &[&a]), [answer]);
        let (sent, delivery) = deliver(lookup_answer("OTHER", 1));
        assert_eq!(sent.len(), 1);
        assert!(
            matches!(&delivery.results[0], ItemResult::Rejected { reason, .. } if reason.contains("NOPE"))
        );
        let throttled = ok(&json!({"errors": [{"extensions": {"code": "THROTTLED"}}]}));
        let (_, delivery) = deliver(throttled);
        assert!(delivery.throttled);
    }
}
