//! An order as its channel would send it now: one file per payload shape.

mod amazon;
mod ebay;
mod generic;
mod shopify;
mod walmart;

use std::time::{Duration, SystemTime};

use serde_json::Value;
use shelfsync_topology::AdapterKind;

use super::model::{OrderState, Sku};

const FIRST_NAMES: &[&str] = &[
    "Maria", "James", "Aiko", "Liam", "Priya", "Noah", "Sofia", "Mateo", "Chen", "Olivia", "Amara",
    "Lucas",
];
const LAST_NAMES: &[&str] = &[
    "Garcia", "Smith", "Tanaka", "Murphy", "Patel", "Kim", "Rossi", "Silva", "Wang", "Johnson",
    "Okafor", "Weber",
];
const CITIES: &[(&str, &str, &str, &str)] = &[
    ("415 Hudson St", "New York", "NY", "10014"),
    ("1100 Congress Ave", "Austin", "TX", "78701"),
    ("400 Pine St", "Seattle", "WA", "98101"),
    ("233 S Wacker Dr", "Chicago", "IL", "60606"),
    ("1701 Wynkoop St", "Denver", "CO", "80202"),
    ("1 Beacon St", "Boston", "MA", "02108"),
];

/// How many different customers the names give.
pub(crate) const CUSTOMERS: usize = FIRST_NAMES.len() * LAST_NAMES.len();

pub(super) fn money(cents: i64) -> String {
    format!("{}.{:02}", cents / 100, cents % 100)
}

pub(super) fn rfc3339(ms: i64) -> String {
    let t = SystemTime::UNIX_EPOCH + Duration::from_millis(u64::try_from(ms).unwrap_or(0));
    humantime::format_rfc3339_seconds(t).to_string()
}

/// The order as the channel would send it now.
pub(crate) fn render(order: &OrderState, adapter: AdapterKind, catalog: &[Sku], now: i64) -> Value {
    match adapter {
        AdapterKind::Shopify => shopify::shopify(order, catalog, now),
        AdapterKind::Amazon => amazon::amazon(order, catalog, now),
        AdapterKind::Walmart => walmart::walmart(order, catalog),
        AdapterKind::Generic => generic::generic(order, catalog),
        AdapterKind::Ebay => ebay::ebay(order, catalog),
    }
}

pub(super) fn customer(
    order: &OrderState,
) -> (&'static str, &'static str, (&str, &str, &str, &str)) {
    let first = FIRST_NAMES[order.customer % FIRST_NAMES.len()];
    let last = LAST_NAMES[(order.customer / FIRST_NAMES.len()) % LAST_NAMES.len()];
    let city = CITIES[order.customer % CITIES.len()];
    (first, last, city)
}
