//! The shared delivery loop: one batch of a channel delivered as its marketplace plans it. The
//! marketplace's pure code ([`super::marketplaces`]) says which requests to send and reads the
//! answers; this loop reads the credentials, sends each request through the channel's
//! [`Calls`] (token bucket, pauses, classification) and hands the outcome back, and passes a
//! backlog for a marketplace with a bulk feed to the shared feed flow ([`super::feed`]).

use super::api::Calls;
use super::config::ChannelConfig;
use super::feed;
use super::marketplaces::{Channel, Delivery, ItemResult, Marketplace, Step};
use super::queue::Update;

/// Delivers `updates` of the channel `config` to `marketplace` and says what became of each.
/// Never fails: a failure is a result per update (retried or dead-lettered by the sink).
pub(crate) async fn deliver(
    calls: &Calls<'_>,
    marketplace: &dyn Marketplace,
    config: &ChannelConfig,
    updates: &[&Update],
) -> Delivery {
    let secret = match config.secret() {
        Ok(secret) => secret,
        Err(e) => {
            calls.finish();
            return Delivery::all(
                updates.len(),
                ItemResult::Retry {
                    class: "credentials",
                    reason: e.to_string(),
                },
            );
        }
    };
    let channel = Channel { config, secret };
    let delivery = match marketplace.feed() {
        Some(bulk) if updates.len() > 1 => feed::deliver(calls, bulk, &channel, updates).await,
        _ => run(calls, marketplace.calls(&channel, updates)).await,
    };
    calls.finish();
    delivery
}

/// Sends the requests of `step` one after the other, each answer read by the step it belongs
/// to, until the exchange is over.
pub(crate) async fn run<T>(calls: &Calls<'_>, mut step: Step<'_, T>) -> T {
    loop {
        match step {
            Step::Send(request, then) => step = then(calls.send(request).await),
            Step::Done(out) => return out,
        }
    }
}
