//! The Avro specification's Parsing Canonical Form and its CRC-64-AVRO (Rabin) fingerprint,
//! written from the specification ("Parsing Canonical Form for Schemas", "Schema Fingerprints").
//!
//! Single-object encoding identifies the writer schema by this fingerprint, so it must be the
//! specification's, byte for byte: the Java and Python libraries write and expect exactly that.
//! The transformation, rule by rule:
//!
//! - **PRIMITIVES**: a primitive schema is written as its name (`"long"`), including one that
//!   carries a `logicalType` (the logical type is not part of the canonical form);
//! - **FULLNAMES**: names become full names, using the enclosing namespace; `namespace`
//!   attributes are then dropped;
//! - **STRIP**: only `name`, `type`, `fields`, `symbols`, `items`, `values` and `size` are kept;
//! - **ORDER**: in that order;
//! - **STRINGS**, **INTEGERS**, **WHITESPACE**: strings unescaped to UTF-8 (only what JSON
//!   requires stays escaped), integers without quotes or leading zeros, no whitespace.
//!
//! A named type is written in full where it is first defined and by its full name after that.

use std::collections::HashSet;
use std::fmt::Write;

use serde_json::Value;

/// The fingerprint of the empty string, and the CRC-64-AVRO polynomial (the specification's
/// `EMPTY`).
const EMPTY: u64 = 0xc15d_213a_a4d7_a795;

const PRIMITIVES: [&str; 8] = [
    "null", "boolean", "int", "long", "float", "double", "bytes", "string",
];

/// The 256-entry table of the specification's `fingerprint64`, computed at compile time.
const TABLE: [u64; 256] = {
    let mut table = [0u64; 256];
    let mut i = 0;
    while i < 256 {
        let mut fp = i as u64;
        let mut j = 0;
        while j < 8 {
            fp = (fp >> 1) ^ (EMPTY & (fp & 1).wrapping_neg());
            j += 1;
        }
        table[i] = fp;
        i += 1;
    }
    table
};

/// The specification's 64-bit Rabin fingerprint (CRC-64-AVRO) of `bytes`. Single-object
/// encoding writes it little-endian; Java's `SchemaNormalization.fingerprint64` returns it as a
/// signed `long`.
pub fn rabin_fingerprint64(bytes: &[u8]) -> u64 {
    let mut fp = EMPTY;
    for &b in bytes {
        fp = (fp >> 8) ^ TABLE[((fp ^ u64::from(b)) & 0xff) as usize];
    }
    fp
}

/// The Parsing Canonical Form of a schema given as JSON text.
///
/// # Errors
/// A message when the text is not JSON or a part of it is not a schema (an object without
/// `type`, a named type without `name`, a record without `fields`, …).
pub fn parsing_canonical_form(schema: &str) -> Result<String, String> {
    let json: Value = serde_json::from_str(schema).map_err(|e| format!("not JSON: {e}"))?;
    let mut out = String::new();
    let mut defined = HashSet::new();
    write_schema(&json, "", &mut defined, &mut out)?;
    Ok(out)
}

/// The full name of `name` in namespace `namespace` (a dotted name is already full).
fn full_name(name: &str, namespace: &str) -> String {
    if name.contains('.') || namespace.is_empty() {
        name.to_string()
    } else {
        format!("{namespace}.{name}")
    }
}

fn write_str(s: &str, out: &mut String) {
    // serde_json escapes only what JSON requires (`"`, `\`, control characters): STRINGS.
    out.push_str(&Value::String(s.to_string()).to_string());
}

fn write_schema(
    schema: &Value,
    namespace: &str,
    defined: &mut HashSet<String>,
    out: &mut String,
) -> Result<(), String> {
    match schema {
        Value::String(name) => {
            if PRIMITIVES.contains(&name.as_str()) {
                write_str(name, out);
            } else {
                write_str(&full_name(name, namespace), out);
            }
            Ok(())
        }
        Value::Array(branches) => {
            out.push('[');
            for (i, branch) in branches.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                write_schema(branch, namespace, defined, out)?;
            }
            out.push(']');
            Ok(())
        }
        Value::Object(map) => {
            let kind = match map.get("type") {
                Some(Value::String(kind)) => kind.as_str(),
                // `{"type": {...}}`: the inner schema is the schema.
                Some(inner @ (Value::Object(_) | Value::Array(_))) => {
                    return write_schema(inner, namespace, defined, out)
                }
                _ => return Err(format!("a schema object without a string `type`: {schema}")),
            };
            match kind {
                "record" | "error" | "enum" | "fixed" => {
                    write_named(map, kind, namespace, defined, out)
                }
                "array" => {
                    out.push_str("{\"type\":\"array\",\"items\":");
                    let items = map.get("items").ok_or("an array without `items`")?;
                    write_schema(items, namespace, defined, out)?;
                    out.push('}');
                    Ok(())
                }
                "map" => {
                    out.push_str("{\"type\":\"map\",\"values\":");
                    let values = map.get("values").ok_or("a map without `values`")?;
                    write_schema(values, namespace, defined, out)?;
                    out.push('}');
                    Ok(())
                }
                // A primitive, possibly with a logical type or other attributes: PRIMITIVES.
                primitive if PRIMITIVES.contains(&primitive) => {
                    write_str(primitive, out);
                    Ok(())
                }
                // A reference to a named type written as `{"type": "Name"}`.
                name => {
                    write_str(&full_name(name, namespace), out);
                    Ok(())
                }
            }
        }
        other => Err(format!("not a schema: {other}")),
    }
}

fn write_named(
    map: &serde_json::Map<String, Value>,
    kind: &str,
    namespace: &str,
    defined: &mut HashSet<String>,
    out: &mut String,
) -> Result<(), String> {
    let name = map
        .get("name")
        .and_then(Value::as_str)
        .ok_or_else(|| format!("a {kind} without a `name`"))?;
    let own_namespace = map
        .get("namespace")
        .and_then(Value::as_str)
        .unwrap_or(namespace);
    let full = full_name(name, own_namespace);
    if !defined.insert(full.clone()) {
        write_str(&full, out);
        return Ok(());
    }
    // Nested definitions take the namespace of the full name.
    let inner_namespace = full.rsplit_once('.').map_or("", |(ns, _)| ns);
    out.push_str("{\"name\":");
    write_str(&full, out);
    let _ = write!(out, ",\"type\":\"{kind}\"");
    match kind {
        "enum" => {
            out.push_str(",\"symbols\":[");
            let symbols = map
                .get("symbols")
                .and_then(Value::as_array)
                .ok_or("an enum without `symbols`")?;
            for (i, s) in symbols.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                write_str(
                    s.as_str().ok_or("an enum symbol that is not a string")?,
                    out,
                );
            }
            out.push(']');
        }
        "fixed" => {
            let size = match map.get("size") {
                Some(Value::Number(n)) => n.as_u64(),
                // INTEGERS: a quoted size (`"015"`) is written as the number.
                Some(Value::String(s)) => s.trim().parse::<u64>().ok(),
                _ => None,
            }
            .ok_or("a fixed without an integer `size`")?;
            let _ = write!(out, ",\"size\":{size}");
        }
        _ => {
            out.push_str(",\"fields\":[");
            let fields = map
                .get("fields")
                .and_then(Value::as_array)
                .ok_or("a record without `fields`")?;
            for (i, field) in fields.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                let field_name = field
                    .get("name")
                    .and_then(Value::as_str)
                    .ok_or("a record field without a `name`")?;
                out.push_str("{\"name\":");
                write_str(field_name, out);
                out.push_str(",\"type\":");
                let ty = field.get("type").ok_or("a record field without a `type`")?;
                write_schema(ty, inner_namespace, defined, out)?;
                out.push('}');
            }
            out.push(']');
        }
    }
    out.push('}');
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `share/test/data/schema-tests.txt` of the Apache Avro repository: input, canonical form
    /// and Java's `fingerprint64` (a signed long) where the file gives one.
    const SPEC_VECTORS: &[(&str, &str, Option<i64>)] = &[
        (r#""null""#, r#""null""#, Some(7195948357588979594)),
        (r#"{"type":"null"}"#, r#""null""#, None),
        (r#""boolean""#, r#""boolean""#, Some(-6970731678124411036)),
        (r#"{"type":"boolean"}"#, r#""boolean""#, None),
        (r#""int""#, r#""int""#, Some(8247732601305521295)),
        (r#"{"type":"int"}"#, r#""int""#, None),
        (r#""long""#, r#""long""#, Some(-3434872931120570953)),
        (r#"{"type":"long"}"#, r#""long""#, None),
        (r#""float""#, r#""float""#, Some(5583340709985441680)),
        (r#"{"type":"float"}"#, r#""float""#, None),
        (r#""double""#, r#""double""#, Some(-8181574048448539266)),
        (r#"{"type":"double"}"#, r#""double""#, None),
        (r#""bytes""#, r#""bytes""#, Some(5746618253357095269)),
        (r#"{"type":"bytes"}"#, r#""bytes""#, None),
        (r#""string""#, r#""string""#, Some(-8142146995180207161)),
        (r#"{"type":"string"}"#, r#""string""#, None),
        ("[  ]", "[]", Some(-1241056759729112623)),
        (r#"[ "int"  ]"#, r#"["int"]"#, Some(-5232228896498058493)),
        (
            r#"[ "int" , {"type":"boolean"} ]"#,
            r#"["int","boolean"]"#,
            Some(5392556393470105090),
        ),
        (
            r#"{"fields":[], "type":"record", "name":"foo"}"#,
            r#"{"name":"foo","type":"record","fields":[]}"#,
            Some(-4824392279771201922),
        ),
        (
            r#"{"fields":[], "type":"record", "name":"foo", "namespace":"x.y"}"#,
            r#"{"name":"x.y.foo","type":"record","fields":[]}"#,
            Some(5916914534497305771),
        ),
        (
            r#"{"fields":[], "type":"record", "name":"a.b.foo", "namespace":"x.y"}"#,
            r#"{"name":"a.b.foo","type":"record","fields":[]}"#,
            Some(-4616218487480524110),
        ),
        (
            r#"{"fields":[], "type":"record", "name":"foo", "doc":"Useful info"}"#,
            r#"{"name":"foo","type":"record","fields":[]}"#,
            Some(-4824392279771201922),
        ),
        (
            r#"{"fields":[], "type":"record", "name":"foo", "aliases":["foo","bar"]}"#,
            r#"{"name":"foo","type":"record","fields":[]}"#,
            Some(-4824392279771201922),
        ),
        (
            r#"{"fields":[{"type":{"type":"boolean"}, "name":"f1"}], "type":"record", "name":"foo"}"#,
            r#"{"name":"foo","type":"record","fields":[{"name":"f1","type":"boolean"}]}"#,
            Some(7843277075252814651),
        ),
        (
            r#"{ "fields":[{"type":"boolean", "aliases":[], "name":"f1", "default":"true"},
                {"order":"descending","name":"f2","doc":"Hello","type":"int"}],
                "type":"record", "name":"foo"}"#,
            r#"{"name":"foo","type":"record","fields":[{"name":"f1","type":"boolean"},{"name":"f2","type":"int"}]}"#,
            Some(-4860222112080293046),
        ),
        (
            r#"{"type":"enum", "name":"foo", "symbols":["A1"]}"#,
            r#"{"name":"foo","type":"enum","symbols":["A1"]}"#,
            Some(-6342190197741309591),
        ),
        (
            r#"{"namespace":"x.y.z", "type":"enum", "name":"foo", "doc":"foo bar", "symbols":["A1", "A2"]}"#,
            r#"{"name":"x.y.z.foo","type":"enum","symbols":["A1","A2"]}"#,
            Some(-4448647247586288245),
        ),
        (
            r#"{"name":"foo","type":"fixed","size":15}"#,
            r#"{"name":"foo","type":"fixed","size":15}"#,
            Some(1756455273707447556),
        ),
        (
            r#"{"namespace":"x.y.z", "type":"fixed", "name":"foo", "doc":"foo bar", "size":32}"#,
            r#"{"name":"x.y.z.foo","type":"fixed","size":32}"#,
            Some(-3064184465700546786),
        ),
        (
            r#"{ "items":{"type":"null"}, "type":"array"}"#,
            r#"{"type":"array","items":"null"}"#,
            Some(-589620603366471059),
        ),
        (
            r#"{ "values":"string", "type":"map"}"#,
            r#"{"type":"map","values":"string"}"#,
            Some(-8732877298790414990),
        ),
        (
            r#"{"name":"PigValue","type":"record",
                "fields":[{"name":"value", "type":["null", "int", "long", "PigValue"]}]}"#,
            r#"{"name":"PigValue","type":"record","fields":[{"name":"value","type":["null","int","long","PigValue"]}]}"#,
            Some(-1759257747318642341),
        ),
    ];

    #[test]
    fn the_specifications_test_vectors() {
        for (input, canonical, fingerprint) in SPEC_VECTORS {
            let pcf = parsing_canonical_form(input).unwrap();
            assert_eq!(&pcf, canonical, "canonical form of {input}");
            if let Some(fp) = fingerprint {
                assert_eq!(
                    rabin_fingerprint64(pcf.as_bytes()) as i64,
                    *fp,
                    "fingerprint of {canonical}"
                );
            }
        }
    }

    #[test]
    fn logical_types_and_namespaces_of_nested_types() {
        let schema = r#"{"type":"record","name":"Change","namespace":"com.x",
            "fields":[
              {"name":"at","type":{"type":"long","logicalType":"timestamp-millis"}},
              {"name":"kind","type":{"type":"enum","name":"Kind","symbols":["A"]}},
              {"name":"again","type":["null","Kind"]},
              {"name":"other","type":{"type":"fixed","name":"y.Id","size":"016"}}]}"#;
        assert_eq!(
            parsing_canonical_form(schema).unwrap(),
            r#"{"name":"com.x.Change","type":"record","fields":[{"name":"at","type":"long"},{"name":"kind","type":{"name":"com.x.Kind","type":"enum","symbols":["A"]}},{"name":"again","type":["null","com.x.Kind"]},{"name":"other","type":{"name":"y.Id","type":"fixed","size":16}}]}"#
        );
    }

    #[test]
    fn the_empty_string_fingerprint_is_the_polynomial() {
        assert_eq!(rabin_fingerprint64(b""), EMPTY);
    }

    #[test]
    fn not_a_schema_is_an_error() {
        assert!(parsing_canonical_form("{").is_err());
        assert!(parsing_canonical_form(r#"{"name":"x"}"#).is_err());
        assert!(parsing_canonical_form(r#"{"type":"record","name":"r"}"#).is_err());
        assert!(parsing_canonical_form("42").is_err());
    }
}
