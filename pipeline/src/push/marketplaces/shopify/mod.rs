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
/// The Shopify query resolving SKUs to inventory items with their `available` quantity, one
/// page (at most 250 nodes, Shopify's page limit) after the cursor `$after`.
pub const LOOKUP_QUERY: &str = "query shelfsyncInventoryItems($query: String!, $first: Int!, $after: String, $locationId: ID!) { inventoryItems(first: $first, after: $after, query: $query) { nodes { id sku inventoryLevel(locationId: $locationId) { quantities(names: [\"available\"]) { name quantity } } } pageInfo { hasNextPage endCursor } } }";
/// Most nodes one page of a connection returns (Shopify's `first` maximum).
pub const LOOKUP_PAGE: usize = 250;
/// Most lookup pages read for one delivery: a search that matches more than this many items
/// (62 500 with [`LOOKUP_PAGE`]) leaves the SKUs it did not reach to be looked up again.
pub const MAX_LOOKUP_PAGES: usize = 250;
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
/// quantity at `location_id`: the page after the cursor `after` (the first page for `None`).
/// Shopify's search matches more than the exact SKU (`sku:"A-1"` may match `A-10`), so a
/// batch of 250 SKUs can match more than one page: the lookup reads the next page while
/// `pageInfo.hasNextPage` and a SKU is still unresolved.
pub fn lookup_body(skus: &[&str], location_id: &str, after: Option<&str>) -> Value {
    let query = skus
        .iter()
        .map(|s| format!("sku:{}", quote(s)))
        .collect::<Vec<_>>()
        .join(" OR ");
    json!({
        "query": LOOKUP_QUERY,
        "variables": {
            "query": query,
            "first": (skus.len() * 2).clamp(1, LOOKUP_PAGE),
            "after": after,
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

/// One page of the lookup: SKU → item (exact SKU matches only), and the cursor of the next
/// page when there is one.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct LookupPage {
    /// The items of this page, by exact SKU.
    pub items: HashMap<String, ShopifyItem>,
    /// `pageInfo.endCursor` when `pageInfo.hasNextPage`.
    pub next: Option<String>,
}

/// Parses one page of the lookup answer.
///
/// # Errors
/// A description when the answer is not the expected shape or carries GraphQL errors.
pub fn parse_lookup(body: &Value) -> Result<LookupPage, String> {
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
    let info = body.pointer("/data/inventoryItems/pageInfo");
    let next = info
        .filter(|i| i.get("hasNextPage").and_then(Value::as_bool) == Some(true))
        .and_then(|i| i.get("endCursor")?.as_str())
        .map(str::to_string);
    Ok(LookupPage { items: out, next })
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
        self.lookup(channel, updates, need, url, Lookup::default())
    }
}

/// Reads one lookup answer of a delivery of `n` updates: the page, or the delivery's end when
/// the request failed, was throttled or the answer is not a lookup page.
fn read_lookup_page(n: usize, answer: Answer) -> Result<(Response, LookupPage), Delivery> {
    let response = answer.map_err(|e| Delivery::failed(n, &e))?;
    match response.json().as_ref().map(parse_lookup) {
        Some(Ok(page)) => Ok((response, page)),
        Some(Err(why)) if why.contains("THROTTLED") => {
            let mut d = Delivery::all(
                n,
                ItemResult::Retry {
                    class: "throttled",
                    reason: why,
                },
            );
            d.throttled = true;
            Err(d)
        }
        Some(Err(_)) | None => Err(Delivery::all(n, malformed("inventoryItems", &response))),
    }
}

/// What the lookup of one delivery has read so far.
#[derive(Debug, Default)]
struct Lookup {
    found: HashMap<String, ShopifyItem>,
    after: Option<String>,
    pages: usize,
}

impl Shopify {
    fn state(&self) -> MutexGuard<'_, RecentMap<String, ShopifyState>> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// 1. Reads the `need`ed SKUs' items page by page, then goes on with the mutation.
    fn lookup<'a>(
        &'a self,
        channel: &'a Channel<'a>,
        updates: &'a [&'a Update],
        need: Vec<&'a str>,
        url: String,
        mut so_far: Lookup,
    ) -> Step<'a, Delivery> {
        let request = Request::new("inventoryItems", Method::POST, url.clone())
            .json(&lookup_body(
                &need,
                &channel.config.location_id,
                so_far.after.as_deref(),
            ))
            .auth(TOKEN_HEADER, channel.secret.clone());
        Step::send(request, move |answer| {
            let n = updates.len();
            let (response, page) = match read_lookup_page(n, answer) {
                Ok(read) => read,
                Err(delivery) => return Step::Done(delivery),
            };
            so_far.found.extend(page.items);
            so_far.pages += 1;
            let unresolved = need.iter().any(|s| !so_far.found.contains_key(*s));
            match page.next {
                Some(after) if unresolved && so_far.pages < MAX_LOOKUP_PAGES => {
                    so_far.after = Some(after);
                    self.lookup(channel, updates, need, url, so_far)
                }
                next => {
                    let complete = next.is_none() || !unresolved;
                    let results = self.settle_lookup(
                        channel,
                        updates,
                        &need,
                        &so_far.found,
                        complete,
                        &response,
                    );
                    self.mutation(channel, updates, url, results)
                }
            }
        })
    }

    /// Records what the lookup found for the `need`ed SKUs; a result for the updates it
    /// settles: refused when the search was read to its end without the SKU (or the SKU is not
    /// stocked at the location), looked up again when the page limit stopped it first.
    fn settle_lookup(
        &self,
        channel: &Channel<'_>,
        updates: &[&Update],
        need: &[&str],
        found: &HashMap<String, ShopifyItem>,
        complete: bool,
        response: &Response,
    ) -> Vec<Option<ItemResult>> {
        let mut results = vec![None; updates.len()];
        let mut state = self.state();
        for (i, u) in updates.iter().enumerate() {
            if !need.contains(&u.sku.as_str()) {
                continue;
            }
            match found.get(&u.sku) {
                None if !complete => {
                    results[i] = Some(ItemResult::Retry {
                        class: "lookup",
                        reason: format!(
                            "SKU {:?} not among the first {MAX_LOOKUP_PAGES} pages of matches",
                            u.sku
                        ),
                    });
                }
                None => {
                    state.remove(&u.sku);
                    let why = format!("no Shopify inventory item has SKU {:?}", u.sku);
                    results[i] = Some(refused(response, why));
                }
                Some(ShopifyItem {
                    available: None, ..
                }) => {
                    state.remove(&u.sku);
                    let why = format!(
                        "SKU {:?} is not stocked at location {}",
                        u.sku, channel.config.location_id
                    );
                    results[i] = Some(refused(response, why));
                }
                Some(item) => {
                    let entry = state.entry_or_default(u.sku.clone());
                    entry.inventory_item_id = Some(item.id.clone());
                    entry.known = item.available.flatten();
                }
            }
        }
        results
    }

    /// 2. The mutation, for every update still standing.
    fn mutation<'a>(
        &'a self,
        channel: &'a Channel<'a>,
        updates: &'a [&'a Update],
        url: String,
        mut results: Vec<Option<ItemResult>>,
    ) -> Step<'a, Delivery> {
        let mut index = Vec::new();
        let mut sets = Vec::new();
        // What makes this mutation differ from an earlier one of the same versions: each
        // compare value and each SKU's conflicts so far. A retry after a stale compare must not
        // reuse the key of the refused mutation (Shopify would answer with its stored result,
        // the same refusal), even when the quantity read again equals the stale compare value;
        // a retry after a timeout (same compare, same conflicts) does reuse it.
        let mut attempt = Vec::new();
        {
            let state = self.state();
            for (i, u) in updates.iter().enumerate() {
                if results[i].is_some() {
                    continue;
                }
                let Some(s) = state.get(&u.sku) else { continue };
                let Some(inventory_item_id) = s.inventory_item_id.clone() else {
                    continue;
                };
                let change_from = if s.conflicts >= CAS_FORCE_AFTER {
                    None
                } else {
                    s.known
                };
                attempt.push(format!("{change_from:?}/{}", s.conflicts));
                index.push(i);
                sets.push(ShopifySet {
                    inventory_item_id,
                    quantity: u.quantity,
                    change_from,
                });
            }
        }
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
        let key = channel.idempotency_key(&in_call, &attempt);
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
mod tests;
