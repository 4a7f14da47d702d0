//! A generic webhook: the channel's updates `POST`ed as JSON, signed with
//! `X-Shelfsync-Signature: sha256=<hex HMAC-SHA256 of the body>` when the channel has a secret.

use hmac::{Hmac, Mac};
use reqwest::Method;
use serde_json::{json, Value};
use sha2::Sha256;

use super::{update_key, Batch, Channel, Delivery, Marketplace, Step};
use crate::push::api::Request;
use crate::push::queue::Update;

/// Header carrying a webhook body's signature: `sha256=<hex HMAC-SHA256>`.
pub const SIGNATURE_HEADER: &str = "x-shelfsync-signature";

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

/// `sha256=<hex HMAC-SHA256(secret, body)>`.
pub fn signature(secret: &[u8], body: &[u8]) -> String {
    // HMAC takes keys of any length; the error type exists only for fixed-size MACs.
    let mut mac = match Hmac::<Sha256>::new_from_slice(secret) {
        Ok(mac) => mac,
        Err(_) => return String::new(),
    };
    mac.update(body);
    let digest = mac.finalize().into_bytes();
    let mut out = String::with_capacity(7 + 64);
    out.push_str("sha256=");
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
            request = request.header(
                SIGNATURE_HEADER,
                signature(secret.expose().as_bytes(), &body),
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
            signature(b"Jefe", b"what do ya want for nothing?"),
            "sha256=5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
        );
    }

    #[test]
    fn the_request_is_signed_over_its_body() {
        let channel = channel("outlet", PushKind::Webhook);
        let a = update("A", 1, 1);
        let (sent, delivery) = drive(Webhook.calls(&channel, &[&a]), [ok(&json!({}))]);
        assert_eq!(
            header(&sent[0], SIGNATURE_HEADER),
            Some(signature(b"token", &sent[0].body).as_str())
        );
        assert_eq!(delivery.results.len(), 1);
    }
}
