//! Shopify order webhooks (`orders/create`, `orders/updated`, `orders/cancelled`).

use serde_json::{json, Map, Value};

use super::{customer, money, rfc3339};
use crate::generator::model::{Line, OrderState, Sku};

fn money_set(amount: &str) -> Value {
    json!({
        "shop_money": {"amount": amount, "currency_code": "USD"},
        "presentment_money": {"amount": amount, "currency_code": "USD"}
    })
}

/// A Shopify order webhook body (`orders/create`, `orders/updated`, `orders/cancelled`).
pub(super) fn shopify(order: &OrderState, catalog: &[Sku], now: i64) -> Value {
    let (first, last, (street, city, state, zip)) = customer(order);
    let email = format!(
        "{}.{}@example.com",
        first.to_lowercase(),
        last.to_lowercase()
    );
    let live = |l: &Line| if order.cancelled { 0 } else { l.remaining };
    let subtotal: i64 = order
        .lines
        .iter()
        .map(|l| catalog[l.sku].price_cents * live(l))
        .sum();
    let line_items: Vec<Value> = order
        .lines
        .iter()
        .map(|l| {
            let sku = &catalog[l.sku];
            let price = money(sku.price_cents);
            let mut item = Map::new();
            item.insert("id".into(), json!(l.id));
            item.insert(
                "admin_graphql_api_id".into(),
                json!(format!("gid://shopify/LineItem/{}", l.id)),
            );
            item.insert("name".into(), json!(sku.title));
            item.insert("title".into(), json!(sku.title));
            item.insert("sku".into(), json!(sku.name));
            item.insert("quantity".into(), json!(l.ordered));
            item.insert("current_quantity".into(), json!(live(l)));
            item.insert("fulfillable_quantity".into(), json!(live(l)));
            item.insert("fulfillment_service".into(), json!("manual"));
            item.insert("fulfillment_status".into(), Value::Null);
            item.insert("gift_card".into(), json!(false));
            item.insert("grams".into(), json!(sku.grams));
            item.insert("price".into(), json!(price));
            item.insert("price_set".into(), money_set(&price));
            item.insert("product_exists".into(), json!(true));
            item.insert("product_id".into(), json!(sku.product_id));
            item.insert("variant_id".into(), json!(sku.variant_id));
            item.insert("variant_title".into(), Value::Null);
            item.insert("vendor".into(), json!("Hudson Tea Co."));
            item.insert("requires_shipping".into(), json!(true));
            item.insert("taxable".into(), json!(true));
            item.insert("total_discount".into(), json!("0.00"));
            item.insert("properties".into(), json!([]));
            item.insert("tax_lines".into(), json!([]));
            item.insert("discount_allocations".into(), json!([]));
            Value::Object(item)
        })
        .collect();
    let address = json!({
        "first_name": first, "last_name": last, "name": format!("{first} {last}"),
        "address1": street, "address2": null, "city": city, "province_code": state,
        "zip": zip, "country": "United States", "country_code": "US", "company": null,
        "phone": null
    });
    let total = money(subtotal);
    let mut o = Map::new();
    o.insert("id".into(), json!(order.number));
    o.insert(
        "admin_graphql_api_id".into(),
        json!(format!("gid://shopify/Order/{}", order.number)),
    );
    o.insert(
        "name".into(),
        json!(format!("#{}", 1000 + order.number % 1_000_000)),
    );
    o.insert(
        "order_number".into(),
        json!(1000 + order.number % 1_000_000),
    );
    o.insert("email".into(), json!(email));
    o.insert("contact_email".into(), json!(email));
    o.insert("created_at".into(), json!(rfc3339(order.placed_at_ms)));
    o.insert("processed_at".into(), json!(rfc3339(order.placed_at_ms)));
    o.insert("updated_at".into(), json!(rfc3339(now)));
    o.insert(
        "cancelled_at".into(),
        if order.cancelled {
            json!(rfc3339(order.cancelled_at_ms))
        } else {
            Value::Null
        },
    );
    o.insert(
        "cancel_reason".into(),
        if order.cancelled {
            json!("customer")
        } else {
            Value::Null
        },
    );
    o.insert("closed_at".into(), Value::Null);
    o.insert("confirmed".into(), json!(true));
    o.insert("currency".into(), json!("USD"));
    o.insert("presentment_currency".into(), json!("USD"));
    o.insert("financial_status".into(), json!(order.status));
    o.insert("fulfillment_status".into(), Value::Null);
    o.insert("source_name".into(), json!("web"));
    o.insert("test".into(), json!(false));
    o.insert("tags".into(), json!(""));
    o.insert("taxes_included".into(), json!(false));
    o.insert(
        "payment_gateway_names".into(),
        json!(if order.status == "pending" {
            vec!["bank_deposit"]
        } else {
            vec!["shopify_payments"]
        }),
    );
    o.insert("subtotal_price".into(), json!(total));
    o.insert("current_subtotal_price".into(), json!(total));
    o.insert("total_price".into(), json!(total));
    o.insert("current_total_price".into(), json!(total));
    o.insert("total_price_set".into(), money_set(&total));
    o.insert("total_tax".into(), json!("0.00"));
    o.insert("total_discounts".into(), json!("0.00"));
    o.insert(
        "customer".into(),
        json!({
            "id": 7_412_086_000_000u64 + order.customer as u64,
            "email": email, "first_name": first, "last_name": last,
            "state": "enabled", "verified_email": true, "currency": "USD"
        }),
    );
    o.insert("billing_address".into(), address.clone());
    o.insert("shipping_address".into(), address);
    o.insert("line_items".into(), Value::Array(line_items));
    o.insert(
        "shipping_lines".into(),
        json!([{
            "code": "Standard", "title": "Standard", "price": "0.00", "source": "shopify"
        }]),
    );
    o.insert("fulfillments".into(), json!([]));
    o.insert("refunds".into(), json!([]));
    Value::Object(o)
}
