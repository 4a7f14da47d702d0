//! The order query (`GET /v1/orders/{order_key}`): what shelfsync knows of one order, for a
//! support agent. Answered by the instance that owns the order's assemble task (the partition
//! of its key), from that task's committed state, and routed like the availability query
//! (forwarded once to the owner, or a `421` pointer to it):
//!
//! - the latest revision emitted, whether it reached the ERP, each line's outcome (reserved,
//!   backordered, rejected, released; `filled` when a backorder fill changed it) and the
//!   status last emitted for it, with why in words;
//! - the revisions not yet whole (line results received of those expected);
//! - what dedupe keeps of it (latest revision, lines, cancelled, shipped), when its dedupe task
//!   is on the same instance (else `dedupe` is null: ask the instance that owns it);
//! - each line SKU's holds of this order (soft or hard, state, reserved, backordered, expiry),
//!   from the SKU's availability answer — that SKU's owner's state.

use std::collections::BTreeSet;

use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::{Deserialize, Serialize};
use shelfsync_operators::assemble_orders::{assembly_of, OrderAssembly};
use shelfsync_operators::dedupe_orders::{seen_order, OrderSeen};
use shelfsync_schemas::{LineOutcome, LineResult, OrderStatusCode};
use shelfsync_topology::Stage;

use super::query::{
    elsewhere, holds_of_order, not_found, read_failed, AvailabilityParams, CommittedView, HoldView,
    Subject, MAX_PEER_BODY, PATH_SEGMENT,
};
use super::{AppState, FORWARDED_BY};
use crate::error::Error;
use crate::kafka::partition_for_key;

/// A line of the latest emitted revision.
#[derive(Debug, Serialize, Deserialize)]
struct LineView {
    line_id: String,
    sku: String,
    quantity: i64,
    reserved: i64,
    backordered: i64,
    /// `RESERVED`, `BACKORDERED`, `REJECTED`, `RELEASED`.
    outcome: String,
    /// A backorder fill changed it since the revision was emitted.
    filled: bool,
}

/// A revision not yet whole.
#[derive(Debug, Serialize, Deserialize)]
struct PendingView {
    revision: i32,
    lines_received: usize,
    lines_in_revision: i32,
}

/// A line as dedupe keeps it.
#[derive(Debug, Serialize, Deserialize)]
struct SeenLine {
    line_id: String,
    sku: String,
    quantity: i64,
    shipped_quantity: i64,
    fulfilled_by: String,
}

/// What dedupe keeps of the order.
#[derive(Debug, Serialize, Deserialize)]
struct SeenView {
    revision: i32,
    cancelled: bool,
    first_seen_shipped: bool,
    lines: Vec<SeenLine>,
}

/// One SKU's holds of this order.
#[derive(Debug, Serialize, Deserialize)]
struct SkuHolds {
    sku: String,
    holds: Vec<HoldView>,
    /// Why the holds could not be read (the SKU's owner did not answer).
    #[serde(skip_serializing_if = "Option::is_none")]
    detail: Option<String>,
}

/// The order query's answer (also the only answer of a peer that is passed on, written anew).
#[derive(Debug, Serialize, Deserialize)]
struct OrderAnswer {
    order_key: String,
    partition: i32,
    task: String,
    owner: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    instance: Option<String>,
    found: bool,
    #[serde(default)]
    last_emitted_revision: i32,
    #[serde(default)]
    sent_to_erp: bool,
    /// The status last emitted for the latest emitted revision.
    #[serde(default)]
    status: Option<String>,
    /// Why it has that status, in words.
    #[serde(default)]
    why: Option<String>,
    #[serde(default)]
    lines: Vec<LineView>,
    #[serde(default)]
    pending: Vec<PendingView>,
    #[serde(default)]
    dedupe: Option<SeenView>,
    #[serde(default)]
    holds: Vec<SkuHolds>,
}

/// The order query's subject.
struct OrderKey<'a>(&'a str);

impl Subject for OrderKey<'_> {
    const FIELD: &'static str = "order_key";
    const WHAT: &'static str = "order";

    fn id(&self) -> &str {
        self.0
    }

    fn url(&self, base: &str) -> String {
        format!(
            "{base}/v1/orders/{}",
            percent_encoding::utf8_percent_encode(self.0, PATH_SEGMENT)
        )
    }

    fn topic(&self, state: &AppState) -> String {
        state
            .topology
            .topic_name(Stage::Assemble.input())
            .to_string()
    }

    fn check(
        &self,
        code: u16,
        bytes: &[u8],
        partition: i32,
        task: &str,
        instance: &str,
    ) -> Option<Response> {
        if bytes.len() > MAX_PEER_BODY {
            return None;
        }
        let a: OrderAnswer = serde_json::from_slice(bytes).ok()?;
        let ours = a.order_key == self.0
            && a.partition == partition
            && a.task == task
            && a.owner == "local"
            && a.instance.as_deref() == Some(instance)
            && a.found == (code == 200);
        ours.then(|| {
            let code = if a.found {
                StatusCode::OK
            } else {
                StatusCode::NOT_FOUND
            };
            (code, Json(a)).into_response()
        })
    }
}

/// Why a revision has its status, from its lines.
fn why(status: OrderStatusCode, lines: &[LineResult]) -> String {
    let open: Vec<String> = lines
        .iter()
        .filter(|l| !l.is_no_stock_marker() && l.outcome != LineOutcome::RESERVED)
        .map(|l| {
            format!(
                "line {} ({}) {:?}: {} of {} reserved, {} backordered",
                l.line_id, l.sku, l.outcome, l.reserved, l.quantity, l.backordered
            )
        })
        .collect();
    if open.is_empty() {
        format!("{status:?}: every line reserved")
    } else {
        format!("{status:?}: {}", open.join("; "))
    }
}

fn answer(
    order_key: &str,
    partition: i32,
    task: &str,
    instance: Option<String>,
    assembly: OrderAssembly,
    seen: Option<OrderSeen>,
) -> OrderAnswer {
    let (lines, status) = match assembly.emitted {
        Some((results, status)) => (results, Some(status)),
        None => (Vec::new(), None),
    };
    OrderAnswer {
        order_key: order_key.to_string(),
        partition,
        task: task.to_string(),
        owner: "local".into(),
        instance,
        found: true,
        last_emitted_revision: assembly.last_emitted,
        sent_to_erp: assembly.sent_to_erp,
        status: status.map(|s| format!("{s:?}")),
        why: status.map(|s| why(s, &lines)),
        lines: lines
            .iter()
            .filter(|l| !l.is_no_stock_marker())
            .map(|l| LineView {
                line_id: l.line_id.clone(),
                sku: l.sku.clone(),
                quantity: l.quantity,
                reserved: l.reserved,
                backordered: l.backordered,
                outcome: format!("{:?}", l.outcome),
                filled: l.filled,
            })
            .collect(),
        pending: assembly
            .pending
            .into_iter()
            .map(
                |(revision, lines_received, lines_in_revision)| PendingView {
                    revision,
                    lines_received,
                    lines_in_revision,
                },
            )
            .collect(),
        dedupe: seen.map(|s| SeenView {
            revision: s.revision,
            cancelled: s.cancelled,
            first_seen_shipped: s.first_seen_shipped,
            lines: s
                .lines
                .into_iter()
                .map(|l| SeenLine {
                    line_id: l.line_id,
                    sku: l.sku,
                    quantity: l.quantity,
                    shipped_quantity: l.shipped_quantity,
                    fulfilled_by: format!("{:?}", l.fulfilled_by),
                })
                .collect(),
        }),
        holds: Vec::new(),
    }
}

fn json(code: StatusCode, body: serde_json::Value) -> Response {
    (code, Json(body)).into_response()
}

/// `GET /v1/orders/{order_key}`.
pub(super) async fn order(
    State(state): State<AppState>,
    Path(order_key): Path<String>,
    Query(params): Query<AvailabilityParams>,
    headers: HeaderMap,
) -> Response {
    let partition = partition_for_key(
        order_key.as_bytes(),
        state.topology.partitions(Stage::Assemble.input()),
    );
    let task = crate::engine::task_name(Stage::Assemble, partition);
    let forward = params.proxy() && !headers.contains_key(FORWARDED_BY);
    if !state.status.owns(&task) {
        return elsewhere(&state, &OrderKey(&order_key), partition, &task, forward).await;
    }
    let Some(db) = state.status.db.get().cloned() else {
        return json(
            StatusCode::SERVICE_UNAVAILABLE,
            serde_json::json!({"order_key": order_key, "partition": partition, "task": task, "detail": "state store not open yet"}),
        );
    };
    let dedupe_task = crate::engine::task_name(
        Stage::Dedupe,
        partition_for_key(
            order_key.as_bytes(),
            state.topology.partitions(Stage::Dedupe.input()),
        ),
    );
    let dedupe_here = state.status.owns(&dedupe_task);
    let (key, task_b) = (order_key.clone(), task.clone());
    let read = tokio::task::spawn_blocking(move || {
        let view = CommittedView::new(&db, &task_b);
        let assembly = assembly_of(&view, &key).map_err(|e| Error::Bug(e.to_string()));
        if let Some(e) = view.into_error() {
            return Err(e);
        }
        let seen = if dedupe_here {
            let view = CommittedView::new(&db, &dedupe_task);
            let seen = seen_order(&view, &key).map_err(|e| Error::Bug(e.to_string()));
            if let Some(e) = view.into_error() {
                return Err(e);
            }
            seen?
        } else {
            None
        };
        Ok((assembly?, seen))
    })
    .await;
    // The task may have been revoked while we read: the answer then belongs to its new owner.
    if !state.status.owns(&task) {
        return elsewhere(&state, &OrderKey(&order_key), partition, &task, forward).await;
    }
    let instance = state.routing.get().map(|r| r.me.instance_id.clone());
    match read {
        Ok(Ok((Some(assembly), seen))) => {
            let mut body = answer(&order_key, partition, &task, instance, assembly, seen);
            let skus: BTreeSet<String> = body
                .lines
                .iter()
                .map(|l| l.sku.clone())
                .chain(
                    body.dedupe
                        .iter()
                        .flat_map(|d| d.lines.iter().map(|l| l.sku.clone())),
                )
                .collect();
            for sku in skus {
                let (holds, detail) = match holds_of_order(&state, &sku, &order_key).await {
                    Ok(h) => (h, None),
                    Err(why) => (Vec::new(), Some(why)),
                };
                body.holds.push(SkuHolds { sku, holds, detail });
            }
            (StatusCode::OK, Json(body)).into_response()
        }
        Ok(Ok((None, _))) => not_found(&OrderKey(&order_key), partition, &task, instance),
        Ok(Err(e)) => read_failed(&OrderKey(&order_key), partition, &task, Ok(e)),
        Err(e) => read_failed(&OrderKey(&order_key), partition, &task, Err(e)),
    }
}

#[cfg(test)]
mod tests;
