//! Avro schemas and codecs for every record shelfsync writes to a topic.
//!
//! The schemas are the `.avsc` files in `schemas/avro/` (namespace `com.shelfsync.v1`), embedded
//! at compile time: they are the public contract with the ERP and marketplace teams. Each file is
//! self-contained (nested named types are defined inline), so it can be registered with a schema
//! registry on its own. Each is parsed once, on first use, into a [`CompiledSchema`] that also
//! holds its parsing canonical form and CRC-64-AVRO (Rabin) fingerprint, computed exactly as the
//! Avro specification says ([`canonical`]), so that records written by the Java or Python Avro
//! libraries are read and records we write are read by them.
//!
//! Every top-level record type of [`crate::model`] implements [`AvroRecord`]; serde maps the Rust
//! fields and enum variants one-to-one onto the Avro fields and symbols.
//!
//! # Wire formats
//!
//! [`encode`] frames the Avro binary datum in one of two ways ([`Framing`]):
//! - **single-object encoding** (Avro spec): `0xC3 0x01`, the 8-byte little-endian Rabin
//!   fingerprint of the writer schema's canonical form, then the datum. Used when no schema
//!   registry is configured;
//! - **Confluent wire format**: magic byte `0x00`, the 4-byte big-endian registry schema id, then
//!   the datum.
//!
//! [`decode`] recognises the framing from the first byte. For single-object data it checks that
//! the fingerprint is the one of `T`'s schema. Confluent data it refuses: it cannot know which
//! schema the id names, and reading it with `T`'s own schema would apply anyone's bytes as ours. Looking the id up in a registry (and
//! caching the parsed writer schema as a [`CompiledSchema`]) is the pipeline's job; with the
//! writer schema in hand, [`decode_with_writer`] applies Avro schema resolution (added, removed or
//! reordered fields, enum defaults) to read data written with another version of the schema.
//!
//! # Editing the schemas
//!
//! Change a schema only in backward- and forward-compatible ways (add fields with defaults, never
//! rename or reorder symbols) and keep the Rust type in step: field order and names must match
//! serde's, symbol order must match variant declaration order. A named type that appears in
//! several files (e.g. `InventoryChange` inside `InventoryCommand`) must be edited in every copy;
//! the tests compare the copies and check all of the above.
//!
//! # Cost and safety
//!
//! Encoding serializes straight into the output buffer (`apache_avro`'s schema-aware serializer);
//! [`encode_into`] lets a caller reuse one buffer. Decoding reads the bytes directly into the Rust
//! type with a schema-directed serde deserializer (no intermediate `Value` tree). No schema is
//! parsed or fingerprinted after first use. Decoding never panics: any byte string gives either a
//! value or an [`AvroError`], every length prefix is checked against the bytes that are left before
//! anything is allocated, and nesting depth is capped.

pub mod canonical;
mod datum;
#[cfg(test)]
mod tests;

use std::sync::LazyLock;

use apache_avro::rabin::Rabin;
use apache_avro::Schema;
use serde::de::DeserializeOwned;
use serde::Serialize;

use crate::model::{
    ChannelAvailability, DeadLetter, InstanceAnnouncement, InventoryChange, InventoryCommand,
    LineResult, Order, OrderStatus, ProductChange, ValidatedOrder,
};

/// The Avro namespace of every shelfsync schema.
pub const NAMESPACE: &str = "com.shelfsync.v1";

/// The two bytes that start an Avro single-object encoded message.
pub const SINGLE_OBJECT_MARKER: [u8; 2] = [0xC3, 0x01];

/// The byte that starts a message in the Confluent wire format.
pub const CONFLUENT_MAGIC: u8 = 0x00;

/// Length of a single-object header: marker and fingerprint.
const SINGLE_OBJECT_HEADER_LEN: usize = 10;

/// Length of a Confluent header: magic byte and schema id.
const CONFLUENT_HEADER_LEN: usize = 5;

/// Why an Avro message could not be encoded or decoded.
///
/// Decoding errors ([`AvroError::is_bad_input`]) are the input's fault: retrying cannot help, the
/// record belongs on the dead-letter queue, and [`AvroError::kind`] is a short label for the DLQ's
/// `error_kind` and for metrics. Encoding and schema errors are bugs in shelfsync.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum AvroError {
    /// The message has no bytes at all.
    #[error("empty message: an Avro message starts with a framing header")]
    Empty,
    /// The message starts with neither the single-object marker nor the Confluent magic byte.
    #[error(
        "unknown framing: message starts with {}, expected 0xc3 0x01 (single-object) or 0x00 (Confluent)",
        hex_prefix(.prefix)
    )]
    UnknownFraming {
        /// The first (up to two) bytes of the message.
        prefix: Vec<u8>,
    },
    /// The message is shorter than its framing header.
    #[error("truncated {framing} header: {len} bytes, the header alone takes {need}")]
    TruncatedHeader {
        /// `"single-object"` or `"Confluent"`.
        framing: &'static str,
        /// Bytes the header needs.
        need: usize,
        /// Bytes the message has.
        len: usize,
    },
    /// A single-object message was written with another schema than the one it is read with.
    #[error(
        "schema fingerprint mismatch: reading {record}, the message carries fingerprint {} but {record} has {} (Avro specification: CRC-64-AVRO of the Parsing Canonical Form; {} is accepted too, the form shelfsync wrote before)",
        hex(.found),
        hex(.expected),
        hex(.legacy)
    )]
    FingerprintMismatch {
        /// The record type being decoded.
        record: &'static str,
        /// The fingerprint of that record's schema (the specification's).
        expected: [u8; 8],
        /// The fingerprint shelfsync wrote before it followed the specification (apache-avro's
        /// canonical form keeps `{"type":"long"}` around logical types); still accepted.
        legacy: [u8; 8],
        /// The fingerprint in the message.
        found: [u8; 8],
    },
    /// The bytes after the header are not a valid datum of the schema (truncated, bad length,
    /// bad union or enum index, invalid UTF-8, …).
    #[error("invalid {record} datum: {reason}")]
    InvalidDatum {
        /// The record type being decoded.
        record: &'static str,
        /// What is wrong, with the byte offset in the datum.
        reason: String,
    },
    /// A Confluent-framed message names a registry schema id this process does not know (no
    /// registry is configured, or the id is not one of the writer schemas it resolved): reading
    /// it with our own schema could apply someone else's data as ours.
    #[error("unknown Confluent schema id {id}: no writer schema is known for it (shelfsync reads Confluent-framed records only with a schema registry)")]
    UnknownSchemaId {
        /// The schema id in the message.
        id: u32,
    },
    /// A complete datum was read but bytes were left over (usually: written with another schema).
    #[error("{count} unexpected trailing bytes after the {record} datum")]
    TrailingBytes {
        /// The record type being decoded.
        record: &'static str,
        /// How many bytes were left.
        count: usize,
    },
    /// Data written with a writer schema cannot be read as the record type (schema resolution
    /// failed, e.g. a field without default is missing).
    #[error("cannot read {record} from data written with schema {writer}: {reason}")]
    Incompatible {
        /// The record type being decoded.
        record: &'static str,
        /// The writer schema's full name.
        writer: String,
        /// Why resolution failed.
        reason: String,
    },
    /// A value could not be serialized with its schema (a bug: the `.avsc` and the Rust type
    /// disagree).
    #[error("cannot encode {record}: {reason}")]
    Encode {
        /// The record type being encoded.
        record: &'static str,
        /// The serializer's message.
        reason: String,
    },
    /// A schema text is not a valid Avro schema (or has no usable fingerprint).
    #[error("invalid Avro schema: {reason}")]
    Schema {
        /// The parser's message.
        reason: String,
    },
}

impl AvroError {
    /// True when the input bytes are at fault (dead-letter them; a retry cannot help); false for
    /// encoding and schema errors, which are bugs or configuration errors.
    pub fn is_bad_input(&self) -> bool {
        !matches!(self, AvroError::Encode { .. } | AvroError::Schema { .. })
    }

    /// A short, low-cardinality label for metrics and the dead-letter `error_kind`.
    pub fn kind(&self) -> &'static str {
        match self {
            AvroError::Empty => "empty",
            AvroError::UnknownFraming { .. } | AvroError::TruncatedHeader { .. } => "framing",
            AvroError::FingerprintMismatch { .. } => "schema_mismatch",
            AvroError::UnknownSchemaId { .. } => "unknown_schema_id",
            AvroError::InvalidDatum { .. } | AvroError::TrailingBytes { .. } => "decode",
            AvroError::Incompatible { .. } => "incompatible_schema",
            AvroError::Encode { .. } => "encode",
            AvroError::Schema { .. } => "schema",
        }
    }
}

fn hex(bytes: &[u8]) -> String {
    use std::fmt::Write;
    let mut s = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        let _ = write!(s, "{b:02x}");
    }
    s
}

fn hex_prefix(bytes: &[u8]) -> String {
    bytes
        .iter()
        .map(|b| format!("{b:#04x}"))
        .collect::<Vec<_>>()
        .join(" ")
}

/// How [`encode`] frames a datum on the wire.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Framing {
    /// Avro single-object encoding: `0xC3 0x01`, 8-byte little-endian Rabin fingerprint, datum.
    SingleObject,
    /// Confluent wire format: `0x00`, 4-byte big-endian schema registry id, datum.
    Confluent {
        /// The id the schema registry gave the writer schema.
        schema_id: u32,
    },
}

/// The framing header found at the start of a message by [`read_header`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Header {
    /// Single-object encoding, with the writer schema's fingerprint.
    SingleObject {
        /// CRC-64-AVRO (Rabin) fingerprint of the writer schema's canonical form, as on the wire
        /// (little-endian).
        fingerprint: [u8; 8],
    },
    /// Confluent wire format, with the writer schema's registry id.
    Confluent {
        /// The schema registry id of the writer schema.
        schema_id: u32,
    },
}

/// A parsed Avro schema with what the codecs need precomputed: its named types, parsing
/// canonical form and fingerprint.
///
/// Parse each schema once and keep it (the shelfsync schemas live in statics; a pipeline caches
/// the writer schemas it fetches from a registry).
#[derive(Debug)]
pub struct CompiledSchema {
    schema: Schema,
    names: datum::Names,
    full_name: String,
    canonical_form: String,
    fingerprint: [u8; 8],
    legacy_fingerprint: [u8; 8],
}

impl CompiledSchema {
    /// Parses a schema from its JSON text.
    ///
    /// # Errors
    /// [`AvroError::Schema`] when the text is not a valid Avro schema.
    pub fn parse(text: &str) -> Result<Self, AvroError> {
        let schema = Schema::parse_str(text).map_err(|e| AvroError::Schema {
            reason: e.to_string(),
        })?;
        Self::from_schema(schema)
    }

    /// Wraps an already parsed schema.
    ///
    /// # Errors
    /// [`AvroError::Schema`] when the schema has no canonical form (cannot happen with a schema
    /// `apache_avro` parsed).
    pub fn from_schema(schema: Schema) -> Result<Self, AvroError> {
        let json = serde_json::to_string(&schema).map_err(|e| AvroError::Schema {
            reason: e.to_string(),
        })?;
        let canonical_form = canonical::parsing_canonical_form(&json)
            .map_err(|reason| AvroError::Schema { reason })?;
        let fingerprint = canonical::rabin_fingerprint64(canonical_form.as_bytes()).to_le_bytes();
        let legacy_fingerprint: [u8; 8] = schema
            .fingerprint::<Rabin>()
            .bytes
            .as_slice()
            .try_into()
            .map_err(|_| AvroError::Schema {
                reason: "Rabin fingerprint is not 8 bytes".into(),
            })?;
        let full_name = schema.name().map(|n| n.fullname(None)).unwrap_or_default();
        let names = datum::collect_names(&schema);
        Ok(Self {
            schema,
            names,
            full_name,
            canonical_form,
            fingerprint,
            legacy_fingerprint,
        })
    }

    /// Parses a schema embedded in this crate; the tests prove every embedded schema parses.
    fn embedded(file: &str, text: &str) -> Self {
        match Self::parse(text) {
            Ok(compiled) => compiled,
            Err(e) => panic!("embedded Avro schema {file} is invalid: {e}"),
        }
    }

    /// The parsed schema.
    pub fn schema(&self) -> &Schema {
        &self.schema
    }

    /// The schema's full name (`com.shelfsync.v1.Order`); empty for an unnamed schema.
    pub fn full_name(&self) -> &str {
        &self.full_name
    }

    /// The schema's parsing canonical form (what the fingerprint is taken of).
    pub fn canonical_form(&self) -> &str {
        &self.canonical_form
    }

    /// The CRC-64-AVRO (Rabin) fingerprint of the canonical form, little-endian as in the
    /// single-object header.
    pub fn fingerprint(&self) -> [u8; 8] {
        self.fingerprint
    }

    /// The fingerprint shelfsync wrote before following the specification (apache-avro's
    /// canonical form); decoding still accepts it so that records already in topics are read.
    pub fn legacy_fingerprint(&self) -> [u8; 8] {
        self.legacy_fingerprint
    }

    /// Whether a single-object message with `fingerprint` was written with this schema.
    pub fn accepts(&self, fingerprint: [u8; 8]) -> bool {
        fingerprint == self.fingerprint || fingerprint == self.legacy_fingerprint
    }

    fn mismatch(&self, record: &'static str, found: [u8; 8]) -> AvroError {
        AvroError::FingerprintMismatch {
            record,
            expected: self.fingerprint,
            legacy: self.legacy_fingerprint,
            found,
        }
    }

    /// The 10-byte single-object header: marker then fingerprint.
    pub fn single_object_header(&self) -> [u8; SINGLE_OBJECT_HEADER_LEN] {
        let mut header = [0u8; SINGLE_OBJECT_HEADER_LEN];
        header[..2].copy_from_slice(&SINGLE_OBJECT_MARKER);
        header[2..].copy_from_slice(&self.fingerprint);
        header
    }
}

/// A record type with an Avro schema: one of the top-level records shelfsync writes to a topic.
///
/// Implemented for [`Order`], [`InventoryChange`], [`ProductChange`], [`InventoryCommand`],
/// [`LineResult`], [`ChannelAvailability`], [`ValidatedOrder`], [`OrderStatus`],
/// [`DeadLetter`] and [`InstanceAnnouncement`]. The serde field order of an implementor must be the schema's field order (the
/// encoder writes fields in the order serde gives them), and its schema must define each named
/// type inline once (the encoder does not follow references).
///
/// # Panics
/// The shelfsync implementations of [`AvroRecord::compiled`] panic on first use if their embedded
/// `.avsc` does not parse; the module's tests parse every one, so a released build never does.
pub trait AvroRecord: Serialize + DeserializeOwned {
    /// The schema's full name, e.g. `com.shelfsync.v1.Order`.
    const NAME: &'static str;

    /// The compiled schema, parsed once on first use.
    fn compiled() -> &'static CompiledSchema;

    /// The parsed Avro schema.
    fn schema() -> &'static Schema {
        Self::compiled().schema()
    }
}

macro_rules! avro_records {
    ($($ty:ident),* $(,)?) => {
        mod text {
            $(
                #[allow(non_upper_case_globals)]
                pub(super) const $ty: &str = include_str!(concat!("../../avro/", stringify!($ty), ".avsc"));
            )*
        }

        $(
            impl AvroRecord for $ty {
                const NAME: &'static str = concat!("com.shelfsync.v1.", stringify!($ty));

                fn compiled() -> &'static CompiledSchema {
                    static COMPILED: LazyLock<CompiledSchema> = LazyLock::new(|| {
                        CompiledSchema::embedded(concat!(stringify!($ty), ".avsc"), text::$ty)
                    });
                    &COMPILED
                }
            }
        )*

        static ALL_SCHEMAS: &[(&str, &str)] = &[
            $((concat!("com.shelfsync.v1.", stringify!($ty)), text::$ty),)*
        ];
    };
}

avro_records!(
    InventoryChange,
    ProductChange,
    InventoryCommand,
    Order,
    LineResult,
    ChannelAvailability,
    ValidatedOrder,
    OrderStatus,
    DeadLetter,
    InstanceAnnouncement,
);

/// Earlier versions of shelfsync's schemas, `(full name, .avsc text)`, kept verbatim in
/// `schemas/avro/history/` (`<Record>.v<N>.avsc`): [`decode`] reads records written with them.
/// A schema that changes adds its previous text here, with new fields appended with defaults.
static HISTORY: &[(&str, &str)] = &[
    (
        "com.shelfsync.v1.ProductChange",
        include_str!("../../avro/history/ProductChange.v1.avsc"),
    ),
    (
        "com.shelfsync.v1.InventoryCommand",
        include_str!("../../avro/history/InventoryCommand.v1.avsc"),
    ),
    (
        "com.shelfsync.v1.LineResult",
        include_str!("../../avro/history/LineResult.v1.avsc"),
    ),
    (
        "com.shelfsync.v1.Order",
        include_str!("../../avro/history/Order.v1.avsc"),
    ),
    (
        "com.shelfsync.v1.ValidatedOrder",
        include_str!("../../avro/history/ValidatedOrder.v1.avsc"),
    ),
];

/// The earlier version of record `name` whose fingerprint (either form) is `fingerprint`.
fn earlier_schema(name: &str, fingerprint: [u8; 8]) -> Option<&'static CompiledSchema> {
    static COMPILED: LazyLock<Vec<(&'static str, CompiledSchema)>> = LazyLock::new(|| {
        HISTORY
            .iter()
            .map(|(name, text)| (*name, CompiledSchema::embedded(name, text)))
            .collect()
    });
    COMPILED
        .iter()
        .find(|(n, c)| *n == name && c.accepts(fingerprint))
        .map(|(_, c)| c)
}

/// The earlier schema versions [`decode`] still reads, as `(full name, .avsc text)`.
pub fn earlier_schemas() -> &'static [(&'static str, &'static str)] {
    HISTORY
}

/// Every shelfsync schema as `(full name, .avsc text)`, e.g.
/// `("com.shelfsync.v1.Order", "{\"type\": \"record\", …}")`; the file is `schemas/avro/Order.avsc`.
pub fn all_schemas() -> &'static [(&'static str, &'static str)] {
    ALL_SCHEMAS
}

/// The CRC-64-AVRO (Rabin) fingerprint of `T`'s schema, little-endian as in the single-object
/// header.
pub fn fingerprint<T: AvroRecord>() -> [u8; 8] {
    T::compiled().fingerprint()
}

/// Encodes `value` as a framed Avro message.
///
/// # Errors
/// [`AvroError::Encode`] when the value does not fit its schema (a bug).
pub fn encode<T: AvroRecord>(value: &T, framing: Framing) -> Result<Vec<u8>, AvroError> {
    let mut out = Vec::with_capacity(128);
    encode_into(value, framing, &mut out)?;
    Ok(out)
}

/// Appends `value`, framed, to `out` (so a caller can reuse one buffer).
///
/// # Errors
/// [`AvroError::Encode`] when the value does not fit its schema (a bug); `out` is then left as it
/// was.
pub fn encode_into<T: AvroRecord>(
    value: &T,
    framing: Framing,
    out: &mut Vec<u8>,
) -> Result<(), AvroError> {
    let start = out.len();
    let compiled = T::compiled();
    match framing {
        Framing::SingleObject => out.extend_from_slice(&compiled.single_object_header()),
        Framing::Confluent { schema_id } => {
            out.push(CONFLUENT_MAGIC);
            out.extend_from_slice(&schema_id.to_be_bytes());
        }
    }
    encode_datum_into(value, out).inspect_err(|_| out.truncate(start))
}

/// Appends `value`'s bare Avro binary datum (no framing) to `out`, e.g. for a state store whose
/// schema is known from elsewhere.
///
/// # Errors
/// [`AvroError::Encode`] when the value does not fit its schema (a bug); `out` is then left as it
/// was.
pub fn encode_datum_into<T: AvroRecord>(value: &T, out: &mut Vec<u8>) -> Result<(), AvroError> {
    let start = out.len();
    match apache_avro::write_avro_datum_ref(T::schema(), value, out) {
        Ok(_) => Ok(()),
        Err(e) => {
            out.truncate(start);
            Err(AvroError::Encode {
                record: T::NAME,
                reason: e.to_string(),
            })
        }
    }
}

/// Splits a message into its framing header and the datum after it.
///
/// # Errors
/// [`AvroError::Empty`], [`AvroError::UnknownFraming`] or [`AvroError::TruncatedHeader`].
pub fn read_header(bytes: &[u8]) -> Result<(Header, &[u8]), AvroError> {
    match bytes {
        [] => Err(AvroError::Empty),
        [0xC3, 0x01, rest @ ..] => {
            if rest.len() < 8 {
                return Err(AvroError::TruncatedHeader {
                    framing: "single-object",
                    need: SINGLE_OBJECT_HEADER_LEN,
                    len: bytes.len(),
                });
            }
            let (fp, datum) = rest.split_at(8);
            let mut fingerprint = [0u8; 8];
            fingerprint.copy_from_slice(fp);
            Ok((Header::SingleObject { fingerprint }, datum))
        }
        [0xC3] => Err(AvroError::TruncatedHeader {
            framing: "single-object",
            need: SINGLE_OBJECT_HEADER_LEN,
            len: 1,
        }),
        [CONFLUENT_MAGIC, rest @ ..] => {
            if rest.len() < 4 {
                return Err(AvroError::TruncatedHeader {
                    framing: "Confluent",
                    need: CONFLUENT_HEADER_LEN,
                    len: bytes.len(),
                });
            }
            let (id, datum) = rest.split_at(4);
            let schema_id = u32::from_be_bytes([id[0], id[1], id[2], id[3]]);
            Ok((Header::Confluent { schema_id }, datum))
        }
        _ => Err(AvroError::UnknownFraming {
            prefix: bytes.iter().take(2).copied().collect(),
        }),
    }
}

/// Decodes a framed message (either framing, detected from the first byte) as `T`.
///
/// Single-object messages must carry the fingerprint of `T`'s schema. Confluent messages are
/// refused ([`AvroError::UnknownSchemaId`]): their schema id names a writer schema only a registry
/// knows, and reading them with `T`'s own schema whatever the id would apply anyone's data as
/// ours. A caller with a registry looks the id up and uses [`decode_with_writer`].
///
/// # Errors
/// A framing error, [`AvroError::FingerprintMismatch`], or [`AvroError::InvalidDatum`] /
/// [`AvroError::TrailingBytes`] when the datum does not match `T`'s schema. Never panics.
pub fn decode<T: AvroRecord>(bytes: &[u8]) -> Result<T, AvroError> {
    let compiled = T::compiled();
    let (header, datum) = read_header(bytes)?;
    match header {
        Header::SingleObject { fingerprint } if !compiled.accepts(fingerprint) => {
            // A producer (the ERP, an instance not yet upgraded) may still write an earlier
            // version of the schema: resolved into the current one, new fields at their
            // defaults.
            if let Some(earlier) = earlier_schema(T::NAME, fingerprint) {
                return decode_with_writer(bytes, earlier);
            }
            return Err(compiled.mismatch(T::NAME, fingerprint));
        }
        Header::SingleObject { .. } => {}
        Header::Confluent { schema_id } => {
            return Err(AvroError::UnknownSchemaId { id: schema_id })
        }
    }
    decode_datum(datum)
}

/// Decodes a bare Avro binary datum (no framing) written with `T`'s schema.
///
/// # Errors
/// [`AvroError::InvalidDatum`] or [`AvroError::TrailingBytes`]. Never panics.
pub fn decode_datum<T: AvroRecord>(datum: &[u8]) -> Result<T, AvroError> {
    let compiled = T::compiled();
    datum::read(&compiled.schema, &compiled.names, datum).map_err(|e| datum_error(T::NAME, e))
}

/// Decodes a framed message written with `writer`, resolving it into `T`'s schema (Avro schema
/// resolution: fields matched by name, defaults for fields the writer lacks, writer-only fields
/// skipped, enum defaults for unknown symbols).
///
/// Use it when the writer schema can differ from `T`'s: the pipeline looks a Confluent schema id
/// (or a single-object fingerprint) up in its registry cache and passes the result here. When the
/// writer is `T`'s own schema this is as fast as [`decode`].
///
/// # Errors
/// A framing error; [`AvroError::FingerprintMismatch`] when a single-object message's fingerprint
/// is not `writer`'s; [`AvroError::InvalidDatum`] / [`AvroError::TrailingBytes`] when the datum
/// does not match `writer`; [`AvroError::Incompatible`] when it cannot be resolved into `T`.
/// Never panics.
pub fn decode_with_writer<T: AvroRecord>(
    bytes: &[u8],
    writer: &CompiledSchema,
) -> Result<T, AvroError> {
    let (header, datum) = read_header(bytes)?;
    if let Header::SingleObject { fingerprint } = header {
        if !writer.accepts(fingerprint) {
            return Err(writer.mismatch(T::NAME, fingerprint));
        }
    }
    let reader = T::compiled();
    if writer.fingerprint == reader.fingerprint {
        return decode_datum(datum);
    }
    // Check the bytes against the writer schema first, so `apache_avro`'s decoder only ever sees
    // well-formed data with lengths that fit the input.
    datum::validate(&writer.schema, &writer.names, datum).map_err(|e| datum_error(T::NAME, e))?;
    let incompatible = |reason: String| AvroError::Incompatible {
        record: T::NAME,
        writer: writer.full_name.clone(),
        reason,
    };
    let mut input = datum;
    let value = apache_avro::from_avro_datum(&writer.schema, &mut input, Some(&reader.schema))
        .map_err(|e| incompatible(e.to_string()))?;
    apache_avro::from_value::<T>(&value).map_err(|e| incompatible(e.to_string()))
}

fn datum_error(record: &'static str, e: datum::DatumError) -> AvroError {
    match e {
        datum::DatumError::Invalid(reason) => AvroError::InvalidDatum { record, reason },
        datum::DatumError::Trailing(count) => AvroError::TrailingBytes { record, count },
    }
}
