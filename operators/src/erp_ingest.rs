//! `erp_ingest`: the stateless stage that validates ERP inventory and product changes and routes
//! them to the inventory stage as [`InventoryCommand`]s keyed by SKU.
//!
//! [`INGEST_INVENTORY`] and [`INGEST_PRODUCTS`] are the two as [`Operator`](crate::Operator)s
//! (no store): the pipeline runs them through the same decode → process → encode path as the
//! stateful ones.

use shelfsync_schemas::{
    AdjustmentReason, InventoryChange, InventoryChangeKind, InventoryCommand, ProductChange,
};

use crate::allocate_channels::{ProductInfo, SkuOverride};
use crate::percent::Percent;
use crate::{MapRecords, OperatorError};

/// Longest SKU or location id accepted, in bytes.
pub const MAX_ID_LEN: usize = 128;
/// Largest absolute quantity accepted on one ERP record.
pub const MAX_QUANTITY: i64 = 1_000_000_000;

fn check_id(field: &str, value: &str) -> Result<(), OperatorError> {
    if value.is_empty() {
        return Err(OperatorError::invalid(field, "must not be empty"));
    }
    if value.len() > MAX_ID_LEN {
        return Err(OperatorError::invalid(
            field,
            format!("must be at most {MAX_ID_LEN} bytes, got {}", value.len()),
        ));
    }
    Ok(())
}

/// Validates an ERP stock change and wraps it as a command.
///
/// # Errors
/// [`OperatorError::InvalidInput`] naming the field: empty or overlong SKU/location, a negative
/// snapshot, a quantity beyond ±1e9, a `SHIPMENT` without `order_key`/`line_id` or with a
/// positive delta, or a snapshot carrying a reason.
pub fn ingest_inventory(change: &InventoryChange) -> Result<InventoryCommand, OperatorError> {
    check_id("sku", &change.sku)?;
    check_id("location", &change.location)?;
    // `unsigned_abs`: `i64::MIN.abs()` overflows (a panic in debug builds, a negative number that
    // passed this check in release ones).
    if change.quantity.unsigned_abs() > MAX_QUANTITY.unsigned_abs() {
        return Err(OperatorError::invalid(
            "quantity",
            format!("must be within ±{MAX_QUANTITY}, got {}", change.quantity),
        ));
    }
    match change.kind {
        InventoryChangeKind::SNAPSHOT => {
            if change.quantity < 0 {
                return Err(OperatorError::invalid(
                    "quantity",
                    format!("a snapshot must be ≥ 0, got {}", change.quantity),
                ));
            }
            if change.reason.is_some() {
                return Err(OperatorError::invalid(
                    "reason",
                    "a snapshot has no reason; reasons belong to adjustments",
                ));
            }
        }
        InventoryChangeKind::ADJUSTMENT => {
            if change.reason == Some(AdjustmentReason::SHIPMENT) {
                if change.order_key.as_deref().is_none_or(str::is_empty) {
                    return Err(OperatorError::invalid(
                        "order_key",
                        "a SHIPMENT must name the shipped order",
                    ));
                }
                if change.line_id.as_deref().is_none_or(str::is_empty) {
                    return Err(OperatorError::invalid(
                        "line_id",
                        "a SHIPMENT must name the shipped line",
                    ));
                }
                if change.quantity > 0 {
                    return Err(OperatorError::invalid(
                        "quantity",
                        format!(
                            "a SHIPMENT lowers on-hand: must be ≤ 0, got {}",
                            change.quantity
                        ),
                    ));
                }
            }
        }
    }
    Ok(InventoryCommand::inventory(change.clone()))
}

/// Validates a product master change and wraps it as a command.
///
/// # Errors
/// [`OperatorError::InvalidInput`] naming the field: empty SKU, negative safety stock, a
/// percentage outside 0–100, an override for an empty or repeated channel.
pub fn ingest_product(change: &ProductChange) -> Result<InventoryCommand, OperatorError> {
    check_id("sku", &change.sku)?;
    if !(0..=MAX_QUANTITY).contains(&change.safety_stock_units) {
        return Err(OperatorError::invalid(
            "safety_stock_units",
            format!("must be ≥ 0, got {}", change.safety_stock_units),
        ));
    }
    if !(0..=100).contains(&change.safety_stock_pct) {
        return Err(OperatorError::invalid(
            "safety_stock_pct",
            format!("must be between 0 and 100, got {}", change.safety_stock_pct),
        ));
    }
    for (i, o) in change.channel_overrides.iter().enumerate() {
        check_id(&format!("channel_overrides[{i}].channel"), &o.channel)?;
        if change.channel_overrides[..i]
            .iter()
            .any(|p| p.channel == o.channel)
        {
            return Err(OperatorError::invalid(
                &format!("channel_overrides[{i}].channel"),
                format!("channel {:?} appears twice", o.channel),
            ));
        }
        if let Some(u) = o.safety_stock_units {
            if !(0..=MAX_QUANTITY).contains(&u) {
                return Err(OperatorError::invalid(
                    &format!("channel_overrides[{i}].safety_stock_units"),
                    format!("must be ≥ 0, got {u}"),
                ));
            }
        }
        if let Some(p) = o.safety_stock_pct {
            if !(0..=100).contains(&p) {
                return Err(OperatorError::invalid(
                    &format!("channel_overrides[{i}].safety_stock_pct"),
                    format!("must be between 0 and 100, got {p}"),
                ));
            }
        }
        for (field, value) in [
            ("buffer", o.buffer),
            ("max_qty", o.max_qty),
            ("min_publish", o.min_publish),
        ] {
            if let Some(v) = value {
                if !(0..=MAX_QUANTITY).contains(&v) {
                    return Err(OperatorError::invalid(
                        &format!("channel_overrides[{i}].{field}"),
                        format!("must be ≥ 0, got {v}"),
                    ));
                }
            }
        }
    }
    // The decimals parse (each error names its field).
    product_info(change)?;
    Ok(InventoryCommand::product(change.clone()))
}

/// A percentage field: the exact decimal when given, else the whole one.
fn percent(
    field: &str,
    decimal: Option<&String>,
    whole: Option<i64>,
) -> Result<Option<Percent>, OperatorError> {
    match (decimal, whole) {
        (Some(text), _) => Percent::parse(text)
            .map(Some)
            .map_err(|reason| OperatorError::invalid(field, reason)),
        (None, w) => Ok(w.map(Percent::whole)),
    }
}

/// The product master as the inventory stage keeps it, percentages exact.
///
/// # Errors
/// [`OperatorError::InvalidInput`] naming a percentage that is not a decimal between 0 and
/// 100 with at most two places.
pub fn product_info(change: &ProductChange) -> Result<ProductInfo, OperatorError> {
    let overrides = change
        .channel_overrides
        .iter()
        .enumerate()
        .map(|(i, o)| {
            Ok(SkuOverride {
                channel: o.channel.clone(),
                enabled: o.enabled,
                safety_stock_units: o.safety_stock_units,
                safety_stock_pct: percent(
                    &format!("channel_overrides[{i}].safety_stock_percent"),
                    o.safety_stock_percent.as_ref(),
                    o.safety_stock_pct,
                )?,
                share_pct: percent(
                    &format!("channel_overrides[{i}].share_pct"),
                    o.share_pct.as_ref(),
                    None,
                )?,
                buffer: o.buffer,
                max_qty: o.max_qty,
                min_publish: o.min_publish,
            })
        })
        .collect::<Result<Vec<_>, OperatorError>>()?;
    Ok(ProductInfo {
        active: change.active,
        safety_stock_units: change.safety_stock_units,
        safety_stock_pct: percent(
            "safety_stock_percent",
            change.safety_stock_percent.as_ref(),
            Some(change.safety_stock_pct),
        )?
        .unwrap_or_default(),
        overrides,
        erp_sequence: change.erp_sequence,
    })
}

/// [`ingest_inventory`] as a stateless [`Operator`](crate::Operator): one command per valid change.
pub const INGEST_INVENTORY: MapRecords<InventoryChange, InventoryCommand> =
    MapRecords::new(ingest_inventory);

/// [`ingest_product`] as a stateless [`Operator`](crate::Operator): one command per valid product record.
pub const INGEST_PRODUCTS: MapRecords<ProductChange, InventoryCommand> =
    MapRecords::new(ingest_product);

#[cfg(test)]
mod tests {
    use super::*;

    fn adj(qty: i64, reason: Option<AdjustmentReason>) -> InventoryChange {
        InventoryChange {
            sku: "SKU1".into(),
            location: "dc-east".into(),
            kind: InventoryChangeKind::ADJUSTMENT,
            quantity: qty,
            erp_sequence: 1,
            reason,
            order_key: None,
            line_id: None,
            event_time: 0,
        }
    }

    #[test]
    fn shipment_needs_order_and_line_and_a_negative_delta() {
        assert!(ingest_inventory(&adj(-1, Some(AdjustmentReason::SHIPMENT))).is_err());
        let mut ok = adj(-1, Some(AdjustmentReason::SHIPMENT));
        ok.order_key = Some("shopify:1".into());
        ok.line_id = Some("a".into());
        assert!(ingest_inventory(&ok).is_ok());
        ok.quantity = 2;
        assert!(ingest_inventory(&ok).is_err());
    }

    #[test]
    fn extreme_quantities_are_rejected_not_overflowed() {
        for qty in [
            i64::MIN,
            i64::MIN + 1,
            -MAX_QUANTITY - 1,
            MAX_QUANTITY + 1,
            i64::MAX,
        ] {
            let err = ingest_inventory(&adj(qty, None)).unwrap_err();
            assert!(err.to_string().contains("quantity"), "{qty}: {err}");
        }
        assert!(ingest_inventory(&adj(-MAX_QUANTITY, None)).is_ok());
        assert!(ingest_inventory(&adj(MAX_QUANTITY, None)).is_ok());
    }

    #[test]
    fn negative_snapshot_names_the_field() {
        let mut s = adj(-5, None);
        s.kind = InventoryChangeKind::SNAPSHOT;
        let err = ingest_inventory(&s).unwrap_err();
        assert!(err.to_string().contains("quantity"), "{err}");
    }

    #[test]
    fn product_pct_outside_0_100_is_rejected() {
        let p = ProductChange {
            sku: "SKU1".into(),
            active: true,
            safety_stock_units: 0,
            safety_stock_pct: 140,
            channel_overrides: vec![],
            erp_sequence: 1,
            event_time: 0,
            safety_stock_percent: None,
        };
        let err = ingest_product(&p).unwrap_err();
        assert_eq!(
            err,
            OperatorError::invalid("safety_stock_pct", "must be between 0 and 100, got 140")
        );
    }
}
