//! The simulated Shopify Admin GraphQL API: the `inventoryItems` lookup (paged) and the
//! idempotent `inventorySetQuantities` with compare-and-swap.

use super::*;

fn inventory_item_gid(sku: &str) -> String {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in sku.bytes() {
        h = (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3);
    }
    format!("gid://shopify/InventoryItem/{}", h % 1_000_000_000_000)
}

/// Parses `sku:"A" OR sku:"B \"x\""`.
pub(super) fn shopify_skus(query: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut rest = query;
    while let Some(start) = rest.find("sku:\"") {
        let mut sku = String::new();
        let mut chars = rest[start + 5..].char_indices();
        let mut end = rest.len() - start - 5;
        while let Some((i, c)) = chars.next() {
            match c {
                '\\' => {
                    if let Some((_, escaped)) = chars.next() {
                        sku.push(escaped);
                    }
                }
                '"' => {
                    end = i + 1;
                    break;
                }
                c => sku.push(c),
            }
        }
        out.push(sku);
        rest = &rest[start + 5 + end..];
    }
    out
}

pub(super) fn shopify(
    state: &mut SimState,
    channel: &str,
    what: &str,
    headers: &HeaderMap,
    body: &Bytes,
    config: &SimConfig,
) -> Response {
    let Ok(request) = serde_json::from_slice::<Value>(body) else {
        return shape_error(state, channel, what, "body is not JSON");
    };
    let query = request["query"].as_str().unwrap_or_default();
    let vars = &request["variables"];
    if query.contains("inventoryItems(") {
        let location = vars["locationId"].as_str().unwrap_or_default();
        if !location.starts_with("gid://shopify/Location/") {
            return shape_error(state, channel, what, "locationId");
        }
        // A connection: `first` (1 to 250) nodes after the cursor `after`.
        let first = vars["first"].as_u64().unwrap_or(0);
        if !(1..=250).contains(&first) {
            return shape_error(state, channel, what, "first must be 1 to 250");
        }
        let from = match vars["after"].as_str() {
            None => 0,
            Some(c) => match c
                .strip_prefix("cursor-")
                .and_then(|n| n.parse::<usize>().ok())
            {
                Some(n) => n,
                None => return shape_error(state, channel, what, "after"),
            },
        };
        let Some(ch) = state.channels.get_mut(channel) else {
            return reply(StatusCode::NOT_FOUND, json!({}));
        };
        let matches: Vec<String> = shopify_skus(vars["query"].as_str().unwrap_or_default())
            .into_iter()
            .filter(|sku| !sku.starts_with("BAD-"))
            .collect();
        let to = (from + first as usize).min(matches.len());
        let nodes: Vec<Value> = matches[from.min(to)..to]
            .iter()
            .map(|sku| {
                let available = ch.stored.get(sku).copied().unwrap_or(0);
                json!({"id": inventory_item_gid(sku), "sku": sku,
                       "inventoryLevel": {"quantities": [{"name": "available", "quantity": available}]}})
            })
            .collect();
        let more = to < matches.len();
        return reply(
            StatusCode::OK,
            json!({"data": {"inventoryItems": {"nodes": nodes,
                "pageInfo": {"hasNextPage": more, "endCursor": if more { json!(format!("cursor-{to}")) } else { Value::Null }}}}}),
        );
    }
    if !query.contains("inventorySetQuantities(input: $input) @idempotent(key: $idempotencyKey)") {
        return shape_error(
            state,
            channel,
            what,
            "not an idempotent inventorySetQuantities mutation",
        );
    }
    let input = &vars["input"];
    if input["name"] != "available"
        || input["reason"].as_str().is_none()
        || vars["idempotencyKey"].as_str().is_none()
    {
        return shape_error(state, channel, what, "input.name/reason or idempotencyKey");
    }
    let Some(quantities) = input["quantities"].as_array() else {
        return shape_error(state, channel, what, "input.quantities");
    };
    if quantities.is_empty() || quantities.len() > 250 {
        return shape_error(state, channel, what, "1 to 250 quantities");
    }
    let keys: Vec<(String, i64)> =
        update_keys(channel, header(headers, "x-shelfsync-update-keys")).unwrap_or_default();
    if keys.len() != quantities.len() {
        if let Some(ch) = state.channels.get_mut(channel) {
            ch.report.missing_keys.push(what.to_string());
        }
    }
    let Some(ch) = state.channels.get_mut(channel) else {
        return reply(StatusCode::NOT_FOUND, json!({}));
    };
    // Check every quantity; the mutation is atomic.
    let mut user_errors = Vec::new();
    let mut writes = Vec::new();
    for (i, q) in quantities.iter().enumerate() {
        let Some((sku, version)) = keys.get(i).cloned() else {
            continue;
        };
        if q["inventoryItemId"] != inventory_item_gid(&sku) || q["quantity"].as_i64().is_none() {
            user_errors.push(json!({"code": "INVALID_INVENTORY_ITEM", "field": ["input", "quantities", i.to_string(), "inventoryItemId"], "message": "The specified inventory item could not be found."}));
            continue;
        }
        let Some(change_from) = q.get("changeFromQuantity") else {
            // Required from 2026-04: a value, or an explicit null to opt out.
            user_errors.push(json!({"code": "INVALID_QUANTITY", "field": ["input", "quantities", i.to_string(), "changeFromQuantity"], "message": "changeFromQuantity is required"}));
            continue;
        };
        let stored = ch.stored.get(&sku).copied().unwrap_or(0);
        if let Some(expected) = change_from.as_i64() {
            if expected != stored {
                ch.report.cas_conflicts += 1;
                user_errors.push(json!({"code": "CHANGE_FROM_QUANTITY_STALE", "field": ["input", "quantities", i.to_string(), "changeFromQuantity"], "message": "The changeFromQuantity value does not match persisted value."}));
                continue;
            }
        }
        writes.push((sku, version, q["quantity"].as_i64().unwrap_or(0)));
    }
    if !user_errors.is_empty() {
        return reply(
            StatusCode::OK,
            json!({"data": {"inventorySetQuantities": {"inventoryAdjustmentGroup": null, "userErrors": user_errors}}}),
        );
    }
    let n = ch.report.requests;
    let mut changes = Vec::new();
    for (i, (sku, _, quantity)) in writes.iter().enumerate() {
        let before = ch.stored.get(sku).copied().unwrap_or(0);
        changes.push(
            json!({"name": "available", "delta": quantity - before, "quantityAfterChange": null}),
        );
        let drift = roll(config.seed, channel, n * 1000 + i as u64, 3) < config.drift_per_mille;
        ch.stored.insert(
            sku.clone(),
            if drift {
                (quantity - 1).max(0)
            } else {
                *quantity
            },
        );
    }
    for (sku, version, quantity) in writes {
        apply(state, channel, what, &sku, version, quantity);
    }
    reply(
        StatusCode::OK,
        json!({"data": {"inventorySetQuantities": {
            "inventoryAdjustmentGroup": {"reason": "Inventory correction", "referenceDocumentUri": input["referenceDocumentUri"], "changes": changes},
            "userErrors": []
        }}}),
    )
}
