use super::*;

fn result(line: &str, qty: i64, reserved: i64, outcome: LineOutcome) -> LineResult {
    LineResult {
        order_key: "amazon:1".into(),
        channel: "amazon".into(),
        channel_order_id: "1".into(),
        revision: 1,
        lines_in_revision: 2,
        line_id: line.into(),
        sku: format!("SKU-{line}"),
        quantity: qty,
        reserved,
        backordered: qty - reserved,
        outcome,
        paid: true,
        cancelled: false,
        placed_at: 0,
        fulfilled_by: shelfsync_schemas::FulfilledBy::MERCHANT,
        unit_price: None,
        line_total: None,
        currency: None,
        filled: false,
        order: None,
    }
}

#[test]
fn why_names_the_lines_that_are_not_reserved() {
    let lines = [
        result("1", 2, 2, LineOutcome::RESERVED),
        result("2", 5, 3, LineOutcome::BACKORDERED),
    ];
    assert_eq!(
        why(OrderStatusCode::BACKORDERED, &lines),
        "BACKORDERED: line 2 (SKU-2) BACKORDERED: 3 of 5 reserved, 2 backordered"
    );
    assert_eq!(
        why(OrderStatusCode::ACCEPTED, &lines[..1]),
        "ACCEPTED: every line reserved"
    );
}

#[test]
fn a_peers_answer_passes_only_about_this_order_from_its_own_state() {
    let subject = OrderKey("amazon:1");
    let body = |key: &str, owner: &str, instance: &str, found: bool| {
        serde_json::to_vec(&serde_json::json!({
            "order_key": key, "partition": 3, "task": "assemble-3", "owner": owner,
            "instance": instance, "found": found,
        }))
        .unwrap()
    };
    let ok = body("amazon:1", "local", "peer-1", true);
    assert!(subject.check(200, &ok, 3, "assemble-3", "peer-1").is_some());
    // Another order, another instance, another partition or task, a pointer, or a 404
    // that says found: all refused.
    assert!(subject
        .check(
            200,
            &body("amazon:2", "local", "peer-1", true),
            3,
            "assemble-3",
            "peer-1"
        )
        .is_none());
    assert!(subject.check(200, &ok, 3, "assemble-3", "peer-2").is_none());
    assert!(subject.check(200, &ok, 2, "assemble-3", "peer-1").is_none());
    assert!(subject.check(200, &ok, 3, "assemble-2", "peer-1").is_none());
    assert!(subject
        .check(
            200,
            &body("amazon:1", "remote", "peer-1", true),
            3,
            "assemble-3",
            "peer-1"
        )
        .is_none());
    assert!(subject.check(404, &ok, 3, "assemble-3", "peer-1").is_none());
    let missing = body("amazon:1", "local", "peer-1", false);
    assert!(subject
        .check(404, &missing, 3, "assemble-3", "peer-1")
        .is_some());
    assert!(subject
        .check(200, b"<html>", 3, "assemble-3", "peer-1")
        .is_none());
    assert_eq!(
        subject.url("http://h:9464"),
        "http://h:9464/v1/orders/amazon%3A1"
    );
}
