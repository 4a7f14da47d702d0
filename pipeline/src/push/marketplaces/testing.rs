//! Test helpers of the marketplace files: updates, a channel, the published examples and a
//! driver that answers a [`Step`] chain with canned answers.

use std::time::Duration;

use serde_json::Value;
use shelfsync_topology::PushKind;

use super::{Answer, Channel, Step};
use crate::push::api::{Request, Response};
use crate::push::config::{ChannelConfig, Secret};
use crate::push::queue::Update;

/// An update of `sku`.
pub(crate) fn update(sku: &str, quantity: i64, version: i64) -> Update {
    Update {
        sku: sku.into(),
        quantity,
        version,
        event_id: "e".into(),
        event_time: 1,
        trace: Vec::new(),
    }
}

/// A published example (copies in `push/fixtures/`, see SOURCES.md there), parsed.
pub(crate) fn fixture(text: &str) -> Value {
    serde_json::from_str(text).unwrap()
}

/// A channel `name` of `kind` at `https://mk.test`, with the secret `token` (its settings live
/// as long as the test process).
pub(crate) fn channel(name: &str, kind: PushKind) -> Channel<'static> {
    let config = Box::leak(Box::new(config(name, kind)));
    Channel {
        config,
        secret: Some(Secret::new("token")),
    }
}

/// The settings of a channel `name` of `kind` at `https://mk.test`, without credentials.
pub(crate) fn config(name: &str, kind: PushKind) -> ChannelConfig {
    ChannelConfig {
        name: name.into(),
        kind,
        endpoint: "https://mk.test".into(),
        rate_per_sec: 1.0,
        burst: 1,
        batch_size: 50,
        timeout: Duration::from_secs(1),
        max_retries: 1,
        max_in_flight: 1,
        credentials: None,
        api_version: "2026-07".into(),
        location_id: "gid://shopify/Location/1".into(),
        seller_id: "A1SELLER".into(),
        marketplace_ids: vec!["ATVPDKIKX0DER".into()],
        product_type: "PRODUCT".into(),
        operation_limits: crate::push::config::published_rates(kind),
    }
}

/// A 200 answer with `body`.
pub(crate) fn ok(body: &Value) -> Answer {
    Ok(Response {
        status: 200,
        body: body.to_string().into_bytes(),
    })
}

/// Runs `step`, answering its requests in order with `answers`; returns the requests sent and
/// the outcome.
///
/// # Panics
/// When the chain asks for more requests than there are answers.
pub(crate) fn drive<T>(
    mut step: Step<'_, T>,
    answers: impl IntoIterator<Item = Answer>,
) -> (Vec<Request>, T) {
    let mut answers = answers.into_iter();
    let mut sent = Vec::new();
    loop {
        match step {
            Step::Done(out) => return (sent, out),
            Step::Send(request, then) => {
                let answer = answers
                    .next()
                    .unwrap_or_else(|| panic!("no answer for {}", request.what));
                sent.push(request);
                step = then(answer);
            }
        }
    }
}

/// The value of header `name` of `request`.
pub(crate) fn header<'r>(request: &'r Request, name: &str) -> Option<&'r str> {
    request
        .headers
        .iter()
        .find(|(n, _)| *n == name)
        .map(|(_, v)| v.as_str())
}
