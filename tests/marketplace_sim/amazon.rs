//! The simulated Amazon SP-API: `patchListingsItem` and the `JSON_LISTINGS_FEED` flow, with
//! gzip-compressed processing reports.

use super::*;

fn fulfillment_quantity(patches: &Value) -> Option<i64> {
    let patch = patches.as_array()?.first()?;
    // `merge`: a `replace` with only the quantity would drop the seller's handling time and
    // restock date (the Listings Items spec allows both; shelfsync must merge).
    if patch["op"] != "merge" || patch["path"] != "/attributes/fulfillment_availability" {
        return None;
    }
    let value = patch["value"].as_array()?.first()?;
    if value["fulfillment_channel_code"] != "DEFAULT" {
        return None;
    }
    value["quantity"].as_i64()
}

#[allow(clippy::too_many_arguments)]
pub(super) fn amazon(
    state: &mut SimState,
    channel: &str,
    base: &str,
    what: &str,
    method: &Method,
    rest: &str,
    query: Option<&str>,
    headers: &HeaderMap,
    body: &Bytes,
) -> Response {
    let json_body = serde_json::from_slice::<Value>(body).unwrap_or(Value::Null);
    if *method == Method::PATCH && rest.starts_with("/listings/2021-08-01/items/") {
        let parts: Vec<&str> = rest
            .trim_start_matches("/listings/2021-08-01/items/")
            .split('/')
            .collect();
        let (Some(_seller), Some(sku)) = (parts.first(), parts.get(1)) else {
            return shape_error(state, channel, what, "path");
        };
        let sku = percent_decode(sku);
        if !query.unwrap_or_default().contains("marketplaceIds=")
            || json_body["productType"].as_str().is_none()
        {
            return shape_error(state, channel, what, "marketplaceIds or productType");
        }
        let Some(quantity) = fulfillment_quantity(&json_body["patches"]) else {
            return shape_error(state, channel, what, "patches");
        };
        let keys = keys_or_note(state, channel, what, headers);
        if sku.starts_with("BAD-") {
            refuse(state, channel, false);
            return reply(
                StatusCode::OK,
                json!({"sku": sku, "status": "INVALID", "submissionId": "0",
                "issues": [{"code": "4000001", "message": "The SKU does not exist.", "severity": "ERROR"}]}),
            );
        }
        let version = keys.get(&sku).copied().unwrap_or(0);
        apply(state, channel, what, &sku, version, quantity);
        let id = next_id(state, "sub");
        return reply(
            StatusCode::OK,
            json!({"sku": sku, "status": "ACCEPTED", "submissionId": id, "issues": []}),
        );
    }
    if *method == Method::POST && rest == "/feeds/2021-06-30/documents" {
        if json_body["contentType"].as_str().is_none() {
            return shape_error(state, channel, what, "contentType");
        }
        let id = next_id(state, "doc");
        return reply(
            StatusCode::CREATED,
            json!({"feedDocumentId": id, "url": format!("{base}/upload/{id}")}),
        );
    }
    if *method == Method::PUT && rest.starts_with("/upload/") {
        let id = rest.trim_start_matches("/upload/").to_string();
        let keys = header(headers, "x-shelfsync-update-keys")
            .unwrap_or_default()
            .to_string();
        if let Some(ch) = state.channels.get_mut(channel) {
            ch.documents.insert(id, (body.to_vec(), keys));
        }
        return reply(StatusCode::OK, json!({}));
    }
    if *method == Method::POST && rest == "/feeds/2021-06-30/feeds" {
        if json_body["feedType"] != "JSON_LISTINGS_FEED"
            || json_body["marketplaceIds"]
                .as_array()
                .is_none_or(Vec::is_empty)
        {
            return shape_error(state, channel, what, "feedType or marketplaceIds");
        }
        let doc_id = json_body["inputFeedDocumentId"]
            .as_str()
            .unwrap_or_default()
            .to_string();
        let Some((content, keys)) = state
            .channels
            .get_mut(channel)
            .and_then(|c| c.documents.remove(&doc_id))
        else {
            return shape_error(state, channel, what, "unknown inputFeedDocumentId");
        };
        let Ok(feed) = serde_json::from_slice::<Value>(&content) else {
            return shape_error(state, channel, what, "feed document is not JSON");
        };
        let keys: Vec<(String, i64)> = update_keys(channel, Some(&keys)).unwrap_or_default();
        let messages = feed["messages"].as_array().cloned().unwrap_or_default();
        if feed["header"]["sellerId"].as_str().is_none()
            || feed["header"]["version"] != "2.0"
            || keys.len() != messages.len()
        {
            return shape_error(state, channel, what, "feed header or keys");
        }
        let mut issues = Vec::new();
        for (m, (key_sku, version)) in messages.iter().zip(keys) {
            let sku = m["sku"].as_str().unwrap_or_default().to_string();
            let quantity = fulfillment_quantity(&m["patches"]);
            if m["operationType"] != "PATCH" || sku != key_sku || quantity.is_none() {
                return shape_error(state, channel, what, "feed message");
            }
            if sku.starts_with("BAD-") {
                refuse(state, channel, true);
                issues.push(json!({"messageId": m["messageId"], "code": "4000001", "severity": "ERROR", "message": "The SKU does not exist."}));
                continue;
            }
            apply(state, channel, what, &sku, version, quantity.unwrap_or(0));
        }
        let feed_id = next_id(state, "feed");
        if let Some(ch) = state.channels.get_mut(channel) {
            ch.feeds.insert(feed_id.clone(), json!({"header": {"sellerId": feed["header"]["sellerId"], "version": "2.0", "feedId": feed_id}, "issues": issues, "summary": {"errors": issues.len()}}));
        }
        return reply(StatusCode::ACCEPTED, json!({"feedId": feed_id}));
    }
    if *method == Method::GET && rest.starts_with("/feeds/2021-06-30/feeds/") {
        let id = rest.trim_start_matches("/feeds/2021-06-30/feeds/");
        return reply(
            StatusCode::OK,
            json!({"feedId": id, "feedType": "JSON_LISTINGS_FEED", "processingStatus": "DONE", "resultFeedDocumentId": format!("report-{id}")}),
        );
    }
    if *method == Method::GET && rest.starts_with("/feeds/2021-06-30/documents/report-") {
        let id = rest.trim_start_matches("/feeds/2021-06-30/documents/");
        // Reports come gzip-compressed, as SP-API may send them.
        return reply(
            StatusCode::OK,
            json!({"feedDocumentId": id, "url": format!("{base}/download/{id}"), "compressionAlgorithm": "GZIP"}),
        );
    }
    if *method == Method::GET && rest.starts_with("/download/report-") {
        let feed_id = rest.trim_start_matches("/download/report-");
        let report = state
            .channels
            .get(channel)
            .and_then(|c| c.feeds.get(feed_id).cloned());
        return match report {
            Some(r) => {
                if let Some(ch) = state.channels.get_mut(channel) {
                    ch.report.compressed_reports += 1;
                }
                let mut gz =
                    flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
                let gzipped = std::io::Write::write_all(&mut gz, r.to_string().as_bytes())
                    .and_then(|()| gz.finish())
                    .unwrap_or_default();
                (StatusCode::OK, gzipped).into_response()
            }
            None => reply(StatusCode::NOT_FOUND, json!({})),
        };
    }
    shape_error(state, channel, what, "unknown Amazon call")
}
