//! Money as the adapters read it: exact decimal strings and ISO 4217 codes, never floats.
//!
//! Decision (DESIGN §4, "validated orders carry what the ERP needs to book a sale"): amounts
//! travel as decimal strings in plain notation (`"29.99"`, `"0.34"`, `"1500"`), exactly as the
//! marketplace wrote them, trailing zeros kept. Integer minor units would need a per-currency
//! exponent table that the marketplaces themselves do not follow (Amazon's published examples
//! carry JPY amounts with two decimals), and a float would lose cents. A line total is divided
//! into a unit price only when the division is exact.

use serde_json::{Map, Value};

use super::{get, invalid, wrong_type, AdapterError, Path};

/// Longest amount accepted, in characters (sign, digits and point).
const MAX_AMOUNT_LEN: usize = 32;
/// Most decimal places a unit price derived from a line total may get.
const MAX_DERIVED_SCALE: usize = 9;

/// An amount with its currency.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Money {
    pub(super) amount: String,
    pub(super) currency: String,
}

/// A decimal amount: a JSON string or number in plain notation (`-`? digits, optionally a point
/// and digits), as the marketplace wrote it. A JSON number is read from its own text, so `0.34`
/// stays `"0.34"`.
pub(super) fn amount(value: &Value, path: &Path<'_>) -> Result<String, AdapterError> {
    let text = match value {
        Value::String(s) => s.clone(),
        Value::Number(n) => n.to_string(),
        other => return Err(wrong_type(path, "decimal string or number", other)),
    };
    if is_plain_decimal(&text) {
        Ok(text)
    } else {
        let shown: String = text.chars().take(40).collect();
        Err(invalid(
            path,
            format!("{shown:?} is not a decimal amount (digits, optionally a point and digits)"),
        ))
    }
}

/// An ISO 4217 currency code: three ASCII capital letters.
pub(super) fn currency(value: &Value, path: &Path<'_>) -> Result<String, AdapterError> {
    let Value::String(code) = value else {
        return Err(wrong_type(path, "string", value));
    };
    if code.len() == 3 && code.bytes().all(|b| b.is_ascii_uppercase()) {
        Ok(code.clone())
    } else {
        let shown: String = code.chars().take(16).collect();
        Err(invalid(
            path,
            format!("{shown:?} is not an ISO 4217 currency code (three capital letters)"),
        ))
    }
}

/// An optional money object `{<amount_key>: …, <currency_key>: …}` at field `key` of `map`;
/// `None` when the field is absent or null. Both parts are required once the object is there.
pub(super) fn optional_money(
    map: &Map<String, Value>,
    key: &str,
    amount_key: &str,
    currency_key: &str,
    path: &Path<'_>,
) -> Result<Option<Money>, AdapterError> {
    let Some(value) = get(map, key) else {
        return Ok(None);
    };
    let at = path.key(key);
    let object = super::as_object(value, &at)?;
    money_object(object, amount_key, currency_key, &at).map(Some)
}

/// A money object's two parts, both required.
pub(super) fn money_object(
    object: &Map<String, Value>,
    amount_key: &str,
    currency_key: &str,
    path: &Path<'_>,
) -> Result<Money, AdapterError> {
    let amount = amount(
        super::required(object, amount_key, path)?,
        &path.key(amount_key),
    )?;
    let currency = currency(
        super::required(object, currency_key, path)?,
        &path.key(currency_key),
    )?;
    Ok(Money { amount, currency })
}

/// An optional decimal amount at field `key` of `map`.
pub(super) fn optional_amount(
    map: &Map<String, Value>,
    key: &str,
    path: &Path<'_>,
) -> Result<Option<String>, AdapterError> {
    get(map, key)
        .map(|value| amount(value, &path.key(key)))
        .transpose()
}

/// An optional currency code at field `key` of `map`.
pub(super) fn optional_currency(
    map: &Map<String, Value>,
    key: &str,
    path: &Path<'_>,
) -> Result<Option<String>, AdapterError> {
    get(map, key)
        .map(|value| currency(value, &path.key(key)))
        .transpose()
}

fn is_plain_decimal(text: &str) -> bool {
    if text.is_empty() || text.len() > MAX_AMOUNT_LEN {
        return false;
    }
    let unsigned = text.strip_prefix('-').unwrap_or(text);
    let (whole, fraction) = match unsigned.split_once('.') {
        Some((whole, fraction)) => (whole, Some(fraction)),
        None => (unsigned, None),
    };
    let digits = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit());
    digits(whole) && fraction.is_none_or(digits)
}

/// `total / quantity` as an exact decimal string, or `None` when the quotient does not
/// terminate within [`MAX_DERIVED_SCALE`] decimal places (or the numbers are out of range).
///
/// The result keeps at least the total's decimal places: `"17.90" / 2 = "8.95"`,
/// `"17.95" / 2 = "8.975"`, `"10.00" / 3 = None`.
pub(super) fn divide_exact(total: &str, quantity: i64) -> Option<String> {
    if quantity <= 0 || !is_plain_decimal(total) {
        return None;
    }
    let negative = total.starts_with('-');
    let unsigned = total.trim_start_matches('-');
    let (whole, fraction) = unsigned.split_once('.').unwrap_or((unsigned, ""));
    let mut scale = fraction.len();
    let mut mantissa: i128 = format!("{whole}{fraction}").parse().ok()?;
    let quantity = i128::from(quantity);
    while mantissa % quantity != 0 {
        if scale >= MAX_DERIVED_SCALE {
            return None;
        }
        mantissa = mantissa.checked_mul(10)?;
        scale += 1;
    }
    let unit = mantissa / quantity;
    let digits = unit.to_string();
    let digits = if digits.len() <= scale {
        format!("{}{digits}", "0".repeat(scale + 1 - digits.len()))
    } else {
        digits
    };
    let (int_part, frac_part) = digits.split_at(digits.len() - scale);
    let sign = if negative && unit != 0 { "-" } else { "" };
    Some(if scale == 0 {
        format!("{sign}{int_part}")
    } else {
        format!("{sign}{int_part}.{frac_part}")
    })
}

/// `unit × quantity` as an exact decimal string (the unit's decimal places kept), or `None` when
/// it does not fit.
pub(super) fn multiply_exact(unit: &str, quantity: i64) -> Option<String> {
    if quantity < 0 || !is_plain_decimal(unit) {
        return None;
    }
    let negative = unit.starts_with('-');
    let unsigned = unit.trim_start_matches('-');
    let (whole, fraction) = unsigned.split_once('.').unwrap_or((unsigned, ""));
    let mantissa: i128 = format!("{whole}{fraction}").parse().ok()?;
    let product = mantissa.checked_mul(i128::from(quantity))?;
    let scale = fraction.len();
    let digits = product.to_string();
    let digits = if digits.len() <= scale {
        format!("{}{digits}", "0".repeat(scale + 1 - digits.len()))
    } else {
        digits
    };
    let (int_part, frac_part) = digits.split_at(digits.len() - scale);
    let sign = if negative && product != 0 { "-" } else { "" };
    let text = if scale == 0 {
        format!("{sign}{int_part}")
    } else {
        format!("{sign}{int_part}.{frac_part}")
    };
    (text.len() <= MAX_AMOUNT_LEN).then_some(text)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn amounts_are_kept_as_written() {
        let p = Path::ROOT;
        assert_eq!(
            amount(&Value::from("89.99"), &p).ok().as_deref(),
            Some("89.99")
        );
        assert_eq!(
            amount(&Value::from("10.00"), &p).ok().as_deref(),
            Some("10.00")
        );
        assert_eq!(
            amount(&serde_json::json!(0.34), &p).ok().as_deref(),
            Some("0.34")
        );
        assert_eq!(amount(&serde_json::json!(5), &p).ok().as_deref(), Some("5"));
        assert_eq!(
            amount(&Value::from("-1.5"), &p).ok().as_deref(),
            Some("-1.5")
        );
        for bad in ["", "1,000.00", "1e3", "+1", ".5", "5.", "NaN", "1 000"] {
            assert!(amount(&Value::from(bad), &p).is_err(), "{bad}");
        }
        assert!(amount(&serde_json::json!(1e300), &p).is_err());
        assert!(amount(&Value::Bool(true), &p).is_err());
    }

    #[test]
    fn currencies() {
        let p = Path::ROOT;
        assert_eq!(
            currency(&Value::from("USD"), &p).ok().as_deref(),
            Some("USD")
        );
        for bad in ["usd", "US", "EURO", "€"] {
            assert!(currency(&Value::from(bad), &p).is_err(), "{bad}");
        }
    }

    #[test]
    fn exact_division_and_multiplication() {
        assert_eq!(divide_exact("17.90", 2).as_deref(), Some("8.95"));
        assert_eq!(divide_exact("17.95", 2).as_deref(), Some("8.975"));
        assert_eq!(divide_exact("89.97", 3).as_deref(), Some("29.99"));
        assert_eq!(divide_exact("25.99", 1).as_deref(), Some("25.99"));
        assert_eq!(divide_exact("5", 4).as_deref(), Some("1.25"));
        assert_eq!(divide_exact("0.03", 4).as_deref(), Some("0.0075"));
        assert_eq!(divide_exact("-3.00", 2).as_deref(), Some("-1.50"));
        assert_eq!(divide_exact("10.00", 3), None);
        assert_eq!(divide_exact("10.00", 0), None);
        assert_eq!(multiply_exact("29.99", 3).as_deref(), Some("89.97"));
        assert_eq!(multiply_exact("0.05", 1).as_deref(), Some("0.05"));
        assert_eq!(multiply_exact("8", 0).as_deref(), Some("0"));
    }
}
