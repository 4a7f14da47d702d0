//! The simulated Walmart Marketplace API: item updates, inventory feeds and their item
//! statuses in pages of at most 50.

use super::*;

#[allow(clippy::too_many_arguments)]
pub(super) fn walmart(
    state: &mut SimState,
    channel: &str,
    what: &str,
    method: &Method,
    rest: &str,
    query: Option<&str>,
    headers: &HeaderMap,
    body: &Bytes,
) -> Response {
    let query = query.unwrap_or_default();
    if *method == Method::PUT && rest == "/v3/inventory" {
        let Some(sku) = query.strip_prefix("sku=").map(percent_decode) else {
            return shape_error(state, channel, what, "sku query");
        };
        let Ok(v) = serde_json::from_slice::<Value>(body) else {
            return shape_error(state, channel, what, "body is not JSON");
        };
        if v["sku"] != sku.as_str()
            || v["quantity"]["unit"] != "EACH"
            || v["quantity"]["amount"].as_i64().is_none()
        {
            return shape_error(state, channel, what, "body");
        }
        let keys = keys_or_note(state, channel, what, headers);
        if sku.starts_with("BAD-") {
            refuse(state, channel, false);
            return reply(
                StatusCode::NOT_FOUND,
                json!({"errors": [{"code": "CONTENT_NOT_FOUND.GMP_INVENTORY_API", "description": "Item not found"}]}),
            );
        }
        let version = keys.get(&sku).copied().unwrap_or(0);
        apply(
            state,
            channel,
            what,
            &sku,
            version,
            v["quantity"]["amount"].as_i64().unwrap_or(0),
        );
        return reply(StatusCode::OK, v);
    }
    if *method == Method::POST && rest == "/v3/feeds" {
        if query != "feedType=inventory"
            || !header(headers, "content-type")
                .unwrap_or_default()
                .starts_with("multipart/form-data; boundary=")
        {
            return shape_error(state, channel, what, "feedType or multipart");
        }
        let text = String::from_utf8_lossy(body);
        let (Some(start), Some(end)) = (text.find("\r\n\r\n"), text.rfind("\r\n--")) else {
            return shape_error(state, channel, what, "multipart body");
        };
        let Ok(feed) = serde_json::from_str::<Value>(&text[start + 4..end]) else {
            return shape_error(state, channel, what, "feed file is not JSON");
        };
        let items = feed["Inventory"].as_array().cloned().unwrap_or_default();
        let keys: Vec<(String, i64)> =
            update_keys(channel, header(headers, "x-shelfsync-update-keys")).unwrap_or_default();
        if feed["InventoryHeader"]["version"] != "1.4" || keys.len() != items.len() {
            return shape_error(state, channel, what, "InventoryHeader or keys");
        }
        let mut statuses = Vec::new();
        for (item, (key_sku, version)) in items.iter().zip(keys) {
            let sku = item["sku"].as_str().unwrap_or_default().to_string();
            if sku != key_sku || item["quantity"]["unit"] != "EACH" {
                return shape_error(state, channel, what, "feed item");
            }
            if sku.starts_with("BAD-") {
                refuse(state, channel, true);
                statuses.push(json!({"sku": sku, "ingestionStatus": "DATA_ERROR", "ingestionErrors": {"ingestionError": [{"type": "DATA_ERROR", "code": "ERR_EXT_DATA_0801001", "description": "Item not found"}]}}));
                continue;
            }
            apply(
                state,
                channel,
                what,
                &sku,
                version,
                item["quantity"]["amount"].as_i64().unwrap_or(0),
            );
            statuses.push(json!({"sku": sku, "ingestionStatus": "SUCCESS", "ingestionErrors": {"ingestionError": null}}));
        }
        let feed_id = next_id(state, "wfeed");
        let failed = statuses
            .iter()
            .filter(|s| s["ingestionStatus"] != "SUCCESS")
            .count();
        if let Some(ch) = state.channels.get_mut(channel) {
            ch.feeds.insert(feed_id.clone(), json!({"feedId": feed_id, "feedStatus": "PROCESSED", "itemsReceived": statuses.len(),
                "itemsSucceeded": statuses.len() - failed, "itemsFailed": failed, "itemDetails": {"itemIngestionStatus": statuses}}));
        }
        return reply(StatusCode::OK, json!({"feedId": feed_id}));
    }
    if *method == Method::GET && rest.starts_with("/v3/feeds/") {
        let id = percent_decode(rest.trim_start_matches("/v3/feeds/"));
        let feed = state
            .channels
            .get(channel)
            .and_then(|c| c.feeds.get(&id).cloned());
        let Some(mut feed) = feed else {
            return reply(StatusCode::NOT_FOUND, json!({}));
        };
        // GET /v3/feeds/{feedId}: item details only with includeDetails=true, at most 50 a
        // page (`limit`, default 50) from `offset` (default 0).
        let param = |name: &str| {
            query
                .split('&')
                .find_map(|kv| kv.strip_prefix(name)?.strip_prefix('='))
        };
        if param("includeDetails") != Some("true") {
            if let Some(f) = feed.as_object_mut() {
                f.remove("itemDetails");
            }
            return reply(StatusCode::OK, feed);
        }
        let (Ok(limit), Ok(offset)) = (
            param("limit").unwrap_or("50").parse::<usize>(),
            param("offset").unwrap_or("0").parse::<usize>(),
        ) else {
            return shape_error(state, channel, what, "limit or offset");
        };
        if limit == 0 || limit > 50 {
            return shape_error(state, channel, what, "limit must be 1 to 50");
        }
        if offset > 0 {
            if let Some(ch) = state.channels.get_mut(channel) {
                ch.report.later_status_pages += 1;
            }
        }
        let items: Vec<Value> = feed["itemDetails"]["itemIngestionStatus"]
            .as_array()
            .map(|all| all.iter().skip(offset).take(limit).cloned().collect())
            .unwrap_or_default();
        feed["offset"] = json!(offset);
        feed["limit"] = json!(limit);
        feed["itemDetails"] = json!({ "itemIngestionStatus": items });
        return reply(StatusCode::OK, feed);
    }
    shape_error(state, channel, what, "unknown Walmart call")
}
