//! JSON access for the adapters: paths built on the stack (rendered only when an error needs
//! them) and the field readers and checks every adapter shares, each failing with an
//! [`AdapterError`] that names the path.

use serde_json::{Map, Value};

use super::{AdapterError, MAX_CHANNEL_BYTES, MAX_ID_BYTES, MAX_QUANTITY, MAX_SKU_BYTES};

// ---------------------------------------------------------------------------------------------
// JSON paths, built on the stack and rendered only when an error needs them.

/// A JSON path as a chain of segments borrowed from the caller's stack frames.
#[derive(Clone, Copy)]
pub(super) struct Path<'a> {
    parent: Option<&'a Path<'a>>,
    seg: Seg<'a>,
}

#[derive(Clone, Copy)]
pub(super) enum Seg<'a> {
    Root,
    Key(&'a str),
    Index(usize),
}

impl<'a> Path<'a> {
    /// The envelope root, rendered `$`.
    pub(super) const ROOT: Path<'static> = Path {
        parent: None,
        seg: Seg::Root,
    };

    /// The path of field `key` of this object.
    pub(super) fn key<'b>(&'b self, key: &'b str) -> Path<'b> {
        Path {
            parent: Some(self),
            seg: Seg::Key(key),
        }
    }

    /// The path of element `index` of this array.
    pub(super) fn index(&self, index: usize) -> Path<'_> {
        Path {
            parent: Some(self),
            seg: Seg::Index(index),
        }
    }

    /// `payload.line_items[2].quantity`; `$` for the root.
    pub(super) fn render(&self) -> String {
        let mut segs = Vec::new();
        let mut node = Some(self);
        while let Some(path) = node {
            segs.push(path.seg);
            node = path.parent;
        }
        let mut out = String::new();
        for seg in segs.iter().rev() {
            match seg {
                Seg::Root => {}
                Seg::Key(key) => {
                    if !out.is_empty() {
                        out.push('.');
                    }
                    out.push_str(key);
                }
                Seg::Index(index) => {
                    out.push('[');
                    out.push_str(&index.to_string());
                    out.push(']');
                }
            }
        }
        if out.is_empty() {
            out.push('$');
        }
        out
    }
}

// ---------------------------------------------------------------------------------------------
// Field access and validation helpers shared by the adapters.

pub(super) fn missing(path: &Path<'_>) -> AdapterError {
    AdapterError::MissingField {
        path: path.render(),
    }
}

pub(super) fn invalid(path: &Path<'_>, reason: impl Into<String>) -> AdapterError {
    AdapterError::InvalidField {
        path: path.render(),
        reason: reason.into(),
    }
}

pub(super) fn unsupported(path: &Path<'_>, reason: impl Into<String>) -> AdapterError {
    AdapterError::UnsupportedPayload {
        path: path.render(),
        reason: reason.into(),
    }
}

pub(super) fn inconsistent(path: &Path<'_>, reason: impl Into<String>) -> AdapterError {
    AdapterError::InconsistentPayload {
        path: path.render(),
        reason: reason.into(),
    }
}

pub(super) fn wrong_type(path: &Path<'_>, expected: &'static str, found: &Value) -> AdapterError {
    AdapterError::WrongType {
        path: path.render(),
        expected,
        found: type_name(found),
    }
}

pub(super) fn type_name(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "boolean",
        Value::Number(n) if n.is_f64() => "number",
        Value::Number(_) => "integer",
        Value::String(_) => "string",
        Value::Array(_) => "array",
        Value::Object(_) => "object",
    }
}

/// `s` cut to at most 128 bytes on a char boundary, for echoing untrusted names in errors.
pub(super) fn truncated(s: &str) -> String {
    let mut end = s.len().min(128);
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    s.get(..end).unwrap_or_default().to_owned()
}

/// Field `key` of `map`, or `None` when it is absent or `null`.
pub(super) fn get<'v>(map: &'v Map<String, Value>, key: &str) -> Option<&'v Value> {
    map.get(key).filter(|value| !value.is_null())
}

/// Field `key` of the object at `path`; absent or `null` is [`AdapterError::MissingField`].
pub(super) fn required<'v>(
    map: &'v Map<String, Value>,
    key: &str,
    path: &Path<'_>,
) -> Result<&'v Value, AdapterError> {
    get(map, key).ok_or_else(|| missing(&path.key(key)))
}

pub(super) fn as_object<'v>(
    value: &'v Value,
    path: &Path<'_>,
) -> Result<&'v Map<String, Value>, AdapterError> {
    value
        .as_object()
        .ok_or_else(|| wrong_type(path, "object", value))
}

pub(super) fn as_array<'v>(value: &'v Value, path: &Path<'_>) -> Result<&'v [Value], AdapterError> {
    value
        .as_array()
        .map(Vec::as_slice)
        .ok_or_else(|| wrong_type(path, "array", value))
}

pub(super) fn as_str<'v>(value: &'v Value, path: &Path<'_>) -> Result<&'v str, AdapterError> {
    value
        .as_str()
        .ok_or_else(|| wrong_type(path, "string", value))
}

pub(super) fn as_bool(value: &Value, path: &Path<'_>) -> Result<bool, AdapterError> {
    value
        .as_bool()
        .ok_or_else(|| wrong_type(path, "boolean", value))
}

/// A JSON integer that fits `i64`. Fractions are [`AdapterError::WrongType`]; integers beyond
/// `i64` are [`AdapterError::InvalidField`].
pub(super) fn as_int(value: &Value, path: &Path<'_>) -> Result<i64, AdapterError> {
    match value {
        Value::Number(n) => {
            if let Some(i) = n.as_i64() {
                Ok(i)
            } else if n.is_u64() {
                Err(invalid(path, format!("{n} is out of range")))
            } else {
                Err(wrong_type(path, "integer", value))
            }
        }
        other => Err(wrong_type(path, "integer", other)),
    }
}

/// Checks the shared rules for ids and SKUs: not blank, at most `max` bytes, no control chars.
pub(super) fn check_text(
    s: &str,
    what: &str,
    max: usize,
    path: &Path<'_>,
) -> Result<(), AdapterError> {
    if s.trim().is_empty() {
        return Err(invalid(path, format!("{what} is empty")));
    }
    if s.len() > max {
        return Err(invalid(
            path,
            format!("{what} is {} bytes, more than the limit of {max}", s.len()),
        ));
    }
    if s.chars().any(char::is_control) {
        return Err(invalid(path, format!("{what} contains control characters")));
    }
    Ok(())
}

/// An id (order or line): a string, or a non-negative JSON integer written in decimal.
pub(super) fn id_value(value: &Value, what: &str, path: &Path<'_>) -> Result<String, AdapterError> {
    let id = match value {
        Value::String(s) => s.clone(),
        Value::Number(n) if n.is_u64() => n.to_string(),
        Value::Number(n) if n.is_i64() => {
            return Err(invalid(path, format!("{what} {n} is negative")))
        }
        other => return Err(wrong_type(path, "string or non-negative integer", other)),
    };
    check_text(&id, what, MAX_ID_BYTES, path)?;
    Ok(id)
}

/// A required id field `key` of the object at `path`.
pub(super) fn required_id(
    map: &Map<String, Value>,
    key: &str,
    what: &str,
    path: &Path<'_>,
) -> Result<String, AdapterError> {
    id_value(required(map, key, path)?, what, &path.key(key))
}

/// A required SKU field `key` of the object at `path`.
pub(super) fn required_sku(
    map: &Map<String, Value>,
    key: &str,
    path: &Path<'_>,
) -> Result<String, AdapterError> {
    let sku = as_str(required(map, key, path)?, &path.key(key))?;
    check_text(sku, "SKU", MAX_SKU_BYTES, &path.key(key))?;
    Ok(sku.to_owned())
}

/// A quantity in `min..=MAX_QUANTITY` (`min` is 0 or 1).
pub(super) fn check_quantity(
    quantity: i64,
    min: i64,
    path: &Path<'_>,
) -> Result<i64, AdapterError> {
    if quantity < min {
        let what = if quantity < 0 {
            format!("quantity {quantity} is negative")
        } else {
            "quantity is 0".to_owned()
        };
        return Err(invalid(
            path,
            format!("{what}; expected {min} to {MAX_QUANTITY}"),
        ));
    }
    if quantity > MAX_QUANTITY {
        return Err(invalid(
            path,
            format!("quantity {quantity} is more than the limit of {MAX_QUANTITY}"),
        ));
    }
    Ok(quantity)
}

/// A required integer quantity field `key` of the object at `path`, in `min..=MAX_QUANTITY`.
pub(super) fn required_quantity(
    map: &Map<String, Value>,
    key: &str,
    min: i64,
    path: &Path<'_>,
) -> Result<i64, AdapterError> {
    let at = path.key(key);
    check_quantity(as_int(required(map, key, path)?, &at)?, min, &at)
}

/// A point in time: an integer (epoch milliseconds) or an RFC 3339 string
/// (`2021-12-31T19:00:00-05:00`, `2019-05-07T15:42:57.058Z`), as epoch ms UTC.
pub(super) fn timestamp(value: &Value, path: &Path<'_>) -> Result<i64, AdapterError> {
    match value {
        Value::String(s) => chrono::DateTime::parse_from_rfc3339(s)
            .map(|t| t.timestamp_millis())
            .map_err(|e| {
                invalid(
                    path,
                    format!("{:?} is not an RFC 3339 timestamp ({e})", truncated(s)),
                )
            }),
        Value::Number(_) => as_int(value, path),
        other => Err(wrong_type(
            path,
            "RFC 3339 string or epoch-ms integer",
            other,
        )),
    }
}

/// An optional timestamp field; 0 when absent or `null`.
pub(super) fn optional_timestamp(
    map: &Map<String, Value>,
    key: &str,
    path: &Path<'_>,
) -> Result<i64, AdapterError> {
    get(map, key).map_or(Ok(0), |value| timestamp(value, &path.key(key)))
}

/// An optional string field; `None` when absent or `null`.
pub(super) fn optional_str<'v>(
    map: &'v Map<String, Value>,
    key: &str,
    path: &Path<'_>,
) -> Result<Option<&'v str>, AdapterError> {
    get(map, key)
        .map(|value| as_str(value, &path.key(key)))
        .transpose()
}

/// A configured channel name goes into order keys (`channel:id`) and availability keys
/// (`channel|sku`), so it may not contain either separator.
pub(super) fn check_channel(channel: &str, path: &Path<'_>) -> Result<(), AdapterError> {
    check_text(channel, "channel", MAX_CHANNEL_BYTES, path)?;
    if channel.contains([':', '|']) {
        return Err(invalid(
            path,
            "channel contains ':' or '|', which separate the parts of order and availability keys",
        ));
    }
    Ok(())
}

/// An optional SKU field `key` of the object at `path`: `None` when it is absent, `null`, empty
/// or blank (such a line carries no stock and is skipped); otherwise checked like
/// [`required_sku`] (no control characters, at most [`MAX_SKU_BYTES`]).
pub(super) fn optional_sku(
    map: &Map<String, Value>,
    key: &str,
    path: &Path<'_>,
) -> Result<Option<String>, AdapterError> {
    let Some(value) = get(map, key) else {
        return Ok(None);
    };
    let at = path.key(key);
    let sku = as_str(value, &at)?;
    if sku.trim().is_empty() {
        return Ok(None);
    }
    check_text(sku, "SKU", MAX_SKU_BYTES, &at)?;
    Ok(Some(sku.to_owned()))
}

/// An optional boolean field; `false` when absent or `null`.
pub(super) fn optional_bool(
    map: &Map<String, Value>,
    key: &str,
    path: &Path<'_>,
) -> Result<bool, AdapterError> {
    get(map, key).map_or(Ok(false), |value| as_bool(value, &path.key(key)))
}
