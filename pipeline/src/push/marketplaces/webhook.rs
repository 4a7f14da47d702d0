//! A generic webhook: the channel's updates `POST`ed as JSON, signed when the channel has a
//! secret (`credentials_env`):
//!
//! ```text
//! X-Shelfsync-Timestamp: <unix seconds when the request was built>
//! X-Shelfsync-Signature: sha256=<hex HMAC-SHA256(secret, "<timestamp>.<body>")>
//! ```
//!
//! The timestamp is inside the signed bytes, so a receiver that recomputes the HMAC over
//! `timestamp + "." + body`, compares it in constant time, and refuses timestamps more than a
//! few minutes from its clock (5 minutes is usual) cannot be fed a captured request again
//! later. Within that window the body's `idempotency_key`s make a replay harmless. Every try
//! of a delivery is built (and stamped) anew.

use hmac::{Hmac, Mac};
use reqwest::Method;
use serde_json::{json, Value};
use sha2::Sha256;

use super::{update_key, Batch, Channel, Delivery, Marketplace, Step};
use crate::push::api::Request;
use crate::push::queue::Update;

/// Header carrying a webhook request's signature: `sha256=<hex HMAC-SHA256>` of
/// `<timestamp>.<body>`.
pub const SIGNATURE_HEADER: &str = "x-shelfsync-signature";
/// Header carrying the signed timestamp: unix seconds, decimal.
pub const TIMESTAMP_HEADER: &str = "x-shelfsync-timestamp";

/// The webhook body: the channel and its updates with their idempotency keys.
pub fn body(channel: &str, updates: &[&Update]) -> Vec<u8> {
    let list: Vec<Value> = updates
        .iter()
        .map(|u| {
            json!({
                "sku": u.sku,
                "quantity": u.quantity,
                "version": u.version,
                "event_id": u.event_id,
                "event_time": u.event_time,
                "idempotency_key": update_key(channel, &u.sku, u.version),
            })
        })
        .collect();
    json!({"channel": channel, "updates": list})
        .to_string()
        .into_bytes()
}

/// `sha256=<hex HMAC-SHA256(secret, "<timestamp>.<body>")>`: the value of
/// [`SIGNATURE_HEADER`] for a request stamped `timestamp` ([`TIMESTAMP_HEADER`]).
pub fn signature(secret: &[u8], timestamp: i64, body: &[u8]) -> String {
    let mut signed = format!("{timestamp}.").into_bytes();
    signed.extend_from_slice(body);
    format!("sha256={}", hmac_sha256_hex(secret, &signed))
}

fn hmac_sha256_hex(secret: &[u8], message: &[u8]) -> String {
    // HMAC takes keys of any length; the error type exists only for fixed-size MACs.
    let mut mac = match Hmac::<Sha256>::new_from_slice(secret) {
        Ok(mac) => mac,
        Err(_) => return String::new(),
    };
    mac.update(message);
    let digest = mac.finalize().into_bytes();
    let mut out = String::with_capacity(64);
    for byte in digest {
        out.push_str(&format!("{byte:02x}"));
    }
    out
}

/// A plain HTTPS webhook.
#[derive(Debug)]
pub(crate) struct Webhook;

impl Marketplace for Webhook {
    fn calls<'a>(&'a self, channel: &'a Channel<'a>, updates: Batch<'a>) -> Step<'a, Delivery> {
        let body = body(channel.name(), updates);
        let request = Request::new("webhook", Method::POST, channel.config.endpoint.clone())
            .header("content-type", "application/json");
        let mut request = channel.keyed(request, updates);
        if let Some(secret) = &channel.secret {
            let timestamp = crate::clock::now_ms() / 1000;
            request = request
                .header(TIMESTAMP_HEADER, timestamp.to_string())
                .header(
                    SIGNATURE_HEADER,
                    signature(secret.expose().as_bytes(), timestamp, &body),
                );
        }
        request.body = body;
        Step::send(request, |answer| {
            Step::Done(Delivery::if_sent(updates.len(), &answer))
        })
    }
}

#[cfg(test)]
mod tests {
    use shelfsync_topology::PushKind;

    use super::*;
    use crate::push::marketplaces::testing::{channel, drive, header, ok, update};

    #[test]
    fn webhook_body_and_signature() {
        let a = update("SKU,1", 4, 7);
        let b = update("B", 0, 2);
        let body = body("outlet", &[&a, &b]);
        let v: Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(v["channel"], "outlet");
        assert_eq!(v["updates"][0]["idempotency_key"], "outlet|SKU,1|7");
        assert_eq!(v["updates"][1]["quantity"], 0);
        // RFC 4231 test case 2.
        assert_eq!(
            hmac_sha256_hex(b"Jefe", b"what do ya want for nothing?"),
            "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
        );
        assert_eq!(
            signature(b"Jefe", 1_700_000_000, b"{}"),
            format!("sha256={}", hmac_sha256_hex(b"Jefe", b"1700000000.{}"))
        );
    }

    /// Issue 15, item 11: a signature over the body alone could be replayed for ever; the
    /// request now carries a fresh timestamp and the signature covers it.
    #[test]
    fn the_request_is_signed_over_its_timestamp_and_body() {
        let channel = channel("outlet", PushKind::Webhook);
        let a = update("A", 1, 1);
        let (sent, delivery) = drive(Webhook.calls(&channel, &[&a]), [ok(&json!({}))]);
        let timestamp: i64 = header(&sent[0], TIMESTAMP_HEADER)
            .expect("a timestamp header")
            .parse()
            .unwrap();
        let now = crate::clock::now_ms() / 1000;
        assert!((now - 5..=now).contains(&timestamp), "{timestamp} vs {now}");
        assert_eq!(
            header(&sent[0], SIGNATURE_HEADER),
            Some(signature(b"token", timestamp, &sent[0].body).as_str())
        );
        // The same body at another time carries another signature.
        assert_ne!(
            signature(b"token", timestamp - 600, &sent[0].body),
            signature(b"token", timestamp, &sent[0].body)
        );
        assert_eq!(delivery.results.len(), 1);
    }
}
