//! The bulk-feed flow, written once for every marketplace that describes a [`Feed`] (Amazon
//! `JSON_LISTINGS_FEED`, Walmart inventory feed): submit → poll → report.
//!
//! 1. Submit: the marketplace's submission requests, ending with the feed's id.
//! 2. Poll: ask for the feed's status at growing intervals ([`FEED_POLL_FIRST`] doubling up to
//!    [`FEED_POLL_MAX`]) until its state is final. A failed status request is asked again: once
//!    a feed is submitted, its fate must be known before its updates may go out again. After
//!    [`FEED_MAX_WAIT`] the updates are tried again (`feed_timeout`).
//! 3. Report: a feed that ended in a state other than the applied one sends its updates again
//!    (`feed_failed`); an applied one gives a result per update, read from its final status or
//!    from a processing report (read up to [`REPORT_TRIES`] times; unreadable, the updates go
//!    again as `feed_report` rather than a refused update counting as accepted).
//!
//! The feed's updates stay in flight the whole time, so no newer update of the same SKU goes
//! out before the feed is final.

use std::time::{Duration, Instant};

use serde_json::Value;
use tracing::warn;

use super::api::Calls;
use super::delivery::run;
use super::marketplaces::{Channel, Delivery, Feed, FeedEnd, ItemResult, ReportError, Submitted};
use super::queue::Update;

/// First wait before asking for a feed's status; doubles up to [`FEED_POLL_MAX`].
pub(crate) const FEED_POLL_FIRST: Duration = Duration::from_millis(250);
/// Longest wait between two feed status requests.
pub(crate) const FEED_POLL_MAX: Duration = Duration::from_secs(15);
/// How long a feed may stay unfinished before its updates are tried again.
pub(crate) const FEED_MAX_WAIT: Duration = Duration::from_secs(3600);
/// Tries at reading a processing report (waits of [`FEED_POLL_FIRST`], doubling, between).
pub(crate) const REPORT_TRIES: u32 = 5;

/// Delivers `updates` as one feed and says what became of each.
pub(crate) async fn deliver(
    calls: &Calls<'_>,
    feed: &dyn Feed,
    channel: &Channel<'_>,
    updates: &[&Update],
) -> Delivery {
    let n = updates.len();
    let retry =
        |class: &'static str, reason: String| Delivery::all(n, ItemResult::Retry { class, reason });
    // 1. Submit.
    let feed_id = match run(calls, feed.submit(channel, updates)).await {
        Ok(id) => id,
        Err(result) => return Delivery::all(n, result),
    };
    // 2. Poll until final.
    let submitted = Submitted {
        channel,
        id: &feed_id,
        updates,
    };
    let status = match wait(calls, feed, &submitted).await {
        Ok(status) => status,
        Err(why) => return retry("feed_timeout", why),
    };
    let state = feed.states().of(&status);
    if state != Some(feed.states().applied) {
        let why = format!("feed {feed_id} ended {}", state.unwrap_or("?"));
        return retry("feed_failed", why);
    }
    // 3. What became of each update.
    let report_id = match feed.read_status(&submitted, &status) {
        FeedEnd::Results(results) => return Delivery::of(results),
        FeedEnd::Report(id) => id,
    };
    match read_report(calls, feed, &submitted, &report_id).await {
        Ok(report) => Delivery::of(feed.read_report(&submitted, &report)),
        Err(why) => {
            // The feed was applied, but which messages failed is unknown: send them again (the
            // same versions, so nothing older lands on anything newer) rather than count a
            // refused update as accepted.
            warn!(channel = %channel.name(), feed = %feed_id, error = %why, "cannot read the feed's processing report; its updates go again");
            retry("feed_report", why)
        }
    }
}

/// Asks for the feed's status at growing intervals until its state is final.
async fn wait(
    calls: &Calls<'_>,
    feed: &dyn Feed,
    submitted: &Submitted<'_>,
) -> Result<Value, String> {
    let feed_id = submitted.id;
    let started = Instant::now();
    let mut wait = FEED_POLL_FIRST;
    loop {
        tokio::time::sleep(wait).await;
        match calls.send(feed.status_request(submitted)).await {
            Ok(response) => {
                let status = response.json().unwrap_or(Value::Null);
                if feed.states().is_final(&status) {
                    return Ok(status);
                }
            }
            Err(e) => {
                warn!(channel = %submitted.channel.name(), feed = feed_id, error = %e, "feed status request failed; asking again");
            }
        }
        if started.elapsed() > FEED_MAX_WAIT {
            return Err(format!(
                "feed {feed_id} not processed after {} s",
                FEED_MAX_WAIT.as_secs()
            ));
        }
        wait = (wait * 2).min(FEED_POLL_MAX);
    }
}

/// Reads processing report `report_id`, asking again a few times when a request fails.
async fn read_report(
    calls: &Calls<'_>,
    feed: &dyn Feed,
    submitted: &Submitted<'_>,
    report_id: &str,
) -> Result<Value, String> {
    let mut last = String::new();
    for attempt in 1..=REPORT_TRIES {
        if attempt > 1 {
            tokio::time::sleep(FEED_POLL_FIRST * 2u32.pow(attempt - 2)).await;
        }
        match run(calls, feed.report(submitted, report_id)).await {
            Ok(report) => return Ok(report),
            Err(ReportError::Again(why)) => last = why,
            Err(ReportError::Final(why)) => return Err(why),
        }
    }
    Err(last)
}
