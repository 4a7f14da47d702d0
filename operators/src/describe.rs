//! What a stored key is and what its value says, for `shelfsync state inspect`: the operators'
//! keys are a two-byte prefix (`s:` SKU record, `l:` line hold, `o:` order seen by dedupe, `a:`
//! assembly record, `x:` expiry index) and length-prefixed parts (see
//! [`crate::state::compose_key`]), plus the task's stream time (`m:stream_time`); keys starting
//! with `0x00` are the engine's.

use crate::state::compose_key;

/// What kind of entry a key is, by its prefix.
pub fn kind(key: &[u8]) -> &'static str {
    match key.get(..2) {
        Some(b"s:") => "SKU record",
        Some(b"l:") => "line hold",
        Some(b"o:") => "order (dedupe)",
        Some(b"a:") => "order assembly",
        Some(b"x:") => "expiry index",
        _ if key == crate::state::STREAM_TIME_KEY => "stream time",
        _ if key.first() == Some(&0) => "engine",
        _ => "other",
    }
}

/// The parts of an operator key, as text: `s:SKU-1`, `l:SKU-1|amazon:1|2`. A key that is not
/// made of length-prefixed parts is shown as it is (lossy UTF-8).
pub fn key_text(key: &[u8]) -> String {
    let (Some(prefix), Some(mut rest)) = (key.get(..2), key.get(2..)) else {
        return String::from_utf8_lossy(key).into_owned();
    };
    if key.first() == Some(&0) || !prefix.ends_with(b":") {
        return String::from_utf8_lossy(key).into_owned();
    }
    let mut parts = Vec::new();
    while !rest.is_empty() {
        let Some(len) = rest
            .get(..4)
            .and_then(|b| <[u8; 4]>::try_from(b).ok())
            .map(u32::from_be_bytes)
        else {
            return String::from_utf8_lossy(key).into_owned();
        };
        let Some(part) = rest.get(4..4 + len as usize) else {
            return String::from_utf8_lossy(key).into_owned();
        };
        parts.push(String::from_utf8_lossy(part).into_owned());
        rest = &rest[4 + len as usize..];
    }
    format!("{}{}", String::from_utf8_lossy(prefix), parts.join("|"))
}

/// The keys under which a SKU or an order key has entries of its own: its SKU record and its
/// order records (line holds are found by [`hold_prefix`]).
pub fn keys_of(wanted: &str) -> Vec<Vec<u8>> {
    [b"s:", b"o:", b"a:"]
        .iter()
        .map(|p| compose_key(*p, &[wanted]))
        .collect()
}

/// The prefix of a SKU's line holds.
pub fn hold_prefix(sku: &str) -> Vec<u8> {
    compose_key(b"l:", &[sku])
}

/// Whether the line hold under `key` is one of `order_key`'s.
pub fn hold_of_order(key: &[u8], order_key: &str) -> bool {
    key.starts_with(b"l:") && key_text(key).split('|').nth(1) == Some(order_key)
}

/// The value of an operator entry as text, decoded by its kind (the stream time as epoch ms;
/// `None` for the expiry index, whose values say nothing, and for the engine's entries).
///
/// # Errors
/// What stops the value from decoding (a corrupt or foreign entry).
pub fn value_text(key: &[u8], value: &[u8]) -> Result<Option<String>, String> {
    let text = match key.get(..2) {
        Some(b"s:") => {
            crate::reserve_inventory::decode_record(key, value).map(|r| format!("{r:#?}"))
        }
        Some(b"l:") => crate::reserve_inventory::decode_hold(key, value).map(|h| format!("{h:#?}")),
        Some(b"o:") => crate::dedupe_orders::describe_order(key, value),
        Some(b"a:") => crate::assemble_orders::describe_record(key, value),
        _ if key == crate::state::STREAM_TIME_KEY => {
            return Ok(<[u8; 8]>::try_from(value)
                .ok()
                .map(|b| i64::from_be_bytes(b).to_string()));
        }
        _ => return Ok(None),
    };
    text.map(Some).map_err(|e| e.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_read_back_as_their_parts() {
        let k = compose_key(b"l:", &["SKU-1", "amazon:1", "2"]);
        assert_eq!(key_text(&k), "l:SKU-1|amazon:1|2");
        assert_eq!(kind(&k), "line hold");
        assert!(hold_of_order(&k, "amazon:1"));
        assert!(!hold_of_order(&k, "amazon:2"));
        assert!(k.starts_with(&hold_prefix("SKU-1")));
        assert_eq!(key_text(b"\x00checkpoint"), "\u{0}checkpoint");
        assert_eq!(kind(b"\x00checkpoint"), "engine");
        assert_eq!(keys_of("SKU-1")[0], compose_key(b"s:", &["SKU-1"]));
    }
}
