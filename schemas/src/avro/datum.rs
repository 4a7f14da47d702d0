//! A schema-directed serde deserializer over Avro binary data.
//!
//! `apache_avro` 0.21 decodes a datum into a generic [`apache_avro::types::Value`] tree and then
//! deserializes that tree, which allocates every string twice and trusts length prefixes up to its
//! global allocation limit (an array count from hostile bytes makes it reserve gigabytes). This
//! reader walks the schema and the bytes together instead and hands the values straight to serde:
//!
//! - every length and block count is checked against the bytes that are left before anything is
//!   allocated (an array block of `n` items whose items take at least `w` bytes each needs `n * w`
//!   bytes; items that can take zero bytes, such as `null`, share a small per-datum budget);
//! - nesting is capped at [`MAX_DEPTH`], so recursive schemas cannot overflow the stack;
//! - it never panics: every malformed input is an `Err`.
//!
//! Reading with `serde::de::IgnoredAny` makes it a validator for any writer schema, which
//! [`super::decode_with_writer`] runs before handing bytes to `apache_avro`'s own decoder.

use std::collections::HashMap;
use std::fmt;

use apache_avro::schema::{Namespace, RecordField, UnionSchema};
use apache_avro::Schema;
use serde::de::{self, DeserializeSeed, IntoDeserializer, MapAccess, SeqAccess, Visitor};

/// Named types of a schema (records, enums, fixed), by full name, for resolving `Schema::Ref`.
pub(super) type Names = HashMap<String, Schema>;

/// Maximum nesting of records, arrays, maps and unions inside one datum.
const MAX_DEPTH: u32 = 64;

/// How many zero-width items (e.g. `null`s, empty records) one datum may hold in all.
const ZERO_WIDTH_ITEM_BUDGET: usize = 1 << 16;

/// Why a datum could not be read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum DatumError {
    /// The bytes do not form a datum of the schema (or the target type refused a value).
    Invalid(String),
    /// A complete datum was read but this many bytes were left over.
    Trailing(usize),
}

/// The serde error type of the reader: a message that already names the byte offset.
#[derive(Debug)]
pub(super) struct DeError(String);

impl fmt::Display for DeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for DeError {}

impl de::Error for DeError {
    fn custom<T: fmt::Display>(msg: T) -> Self {
        DeError(msg.to_string())
    }
}

type Result<T> = std::result::Result<T, DeError>;

/// Collects the named types of `schema` by full name.
pub(super) fn collect_names(schema: &Schema) -> Names {
    fn walk(schema: &Schema, enclosing: &Namespace, names: &mut Names) {
        match schema {
            Schema::Record(record) => {
                let full = record.name.fully_qualified_name(enclosing);
                names
                    .entry(full.fullname(None))
                    .or_insert_with(|| schema.clone());
                for field in &record.fields {
                    walk(&field.schema, &full.namespace, names);
                }
            }
            Schema::Enum(e) => {
                let full = e.name.fully_qualified_name(enclosing);
                names
                    .entry(full.fullname(None))
                    .or_insert_with(|| schema.clone());
            }
            Schema::Fixed(f) => {
                let full = f.name.fully_qualified_name(enclosing);
                names
                    .entry(full.fullname(None))
                    .or_insert_with(|| schema.clone());
            }
            Schema::Array(a) => walk(&a.items, enclosing, names),
            Schema::Map(m) => walk(&m.types, enclosing, names),
            Schema::Union(u) => {
                for variant in u.variants() {
                    walk(variant, enclosing, names);
                }
            }
            Schema::Decimal(d) => walk(&d.inner, enclosing, names),
            _ => {}
        }
    }
    let mut names = Names::new();
    walk(schema, &None, &mut names);
    names
}

/// Reads one datum of `schema` from the whole of `datum` into `T`.
pub(super) fn read<'de, T: de::Deserialize<'de>>(
    schema: &Schema,
    names: &Names,
    datum: &'de [u8],
) -> std::result::Result<T, DatumError> {
    let mut reader = Reader {
        input: datum,
        total: datum.len(),
        names,
        depth: 0,
        zero_width_budget: ZERO_WIDTH_ITEM_BUDGET,
    };
    let value = T::deserialize(De {
        r: &mut reader,
        schema,
    })
    .map_err(|e| DatumError::Invalid(e.0))?;
    if reader.input.is_empty() {
        Ok(value)
    } else {
        Err(DatumError::Trailing(reader.input.len()))
    }
}

/// Checks that `datum` is exactly one well-formed datum of `schema`, allocating nothing.
pub(super) fn validate(
    schema: &Schema,
    names: &Names,
    datum: &[u8],
) -> std::result::Result<(), DatumError> {
    read::<de::IgnoredAny>(schema, names, datum).map(|_| ())
}

/// The cursor: what is left of the input plus the limits that keep hostile bytes cheap.
struct Reader<'s, 'de> {
    input: &'de [u8],
    total: usize,
    names: &'s Names,
    depth: u32,
    zero_width_budget: usize,
}

impl<'s, 'de> Reader<'s, 'de> {
    fn err(&self, msg: impl fmt::Display) -> DeError {
        DeError(format!("at byte {}: {msg}", self.total - self.input.len()))
    }

    fn take(&mut self, n: usize) -> Result<&'de [u8]> {
        if n > self.input.len() {
            return Err(self.err(format_args!(
                "truncated: need {n} bytes, {} left",
                self.input.len()
            )));
        }
        let (head, tail) = self.input.split_at(n);
        self.input = tail;
        Ok(head)
    }

    fn byte(&mut self) -> Result<u8> {
        match self.input.split_first() {
            Some((&b, tail)) => {
                self.input = tail;
                Ok(b)
            }
            None => Err(self.err("truncated: need 1 more byte")),
        }
    }

    /// A zig-zag variable-length `long`.
    fn long(&mut self) -> Result<i64> {
        let mut raw: u64 = 0;
        for i in 0..10 {
            let b = self.byte()?;
            if i == 9 && b > 1 {
                return Err(self.err("variable-length integer overflows 64 bits"));
            }
            raw |= u64::from(b & 0x7f) << (7 * i);
            if b & 0x80 == 0 {
                return Ok(((raw >> 1) as i64) ^ -((raw & 1) as i64));
            }
        }
        Err(self.err("variable-length integer longer than 10 bytes"))
    }

    /// A zig-zag variable-length `int`.
    fn int(&mut self) -> Result<i32> {
        let v = self.long()?;
        i32::try_from(v).map_err(|_| self.err(format_args!("int out of range: {v}")))
    }

    /// A length prefix that must fit in what is left.
    fn len(&mut self) -> Result<usize> {
        let len = self.long()?;
        match usize::try_from(len) {
            Ok(n) if n <= self.input.len() => Ok(n),
            Ok(n) => Err(self.err(format_args!(
                "truncated: length {n} exceeds the {} bytes left",
                self.input.len()
            ))),
            Err(_) => Err(self.err(format_args!("negative length {len}"))),
        }
    }

    fn bytes(&mut self) -> Result<&'de [u8]> {
        let n = self.len()?;
        self.take(n)
    }

    fn str(&mut self) -> Result<&'de str> {
        let bytes = self.bytes()?;
        std::str::from_utf8(bytes).map_err(|e| self.err(format_args!("string is not UTF-8: {e}")))
    }

    /// Follows a `Schema::Ref` to its definition.
    fn resolve<'a>(&self, schema: &'a Schema) -> Result<&'a Schema>
    where
        's: 'a,
    {
        match schema {
            Schema::Ref { name } => {
                let full = name.fullname(None);
                if let Some(found) = self.names.get(&full) {
                    return Ok(found);
                }
                // An unqualified reference: accept it when exactly one named type has that name.
                let mut matches = self
                    .names
                    .iter()
                    .filter(|(k, _)| k.rsplit('.').next() == Some(name.name.as_str()));
                match (matches.next(), matches.next()) {
                    (Some((_, found)), None) => Ok(found),
                    _ => Err(self.err(format_args!("schema refers to unknown type {full}"))),
                }
            }
            other => Ok(other),
        }
    }

    fn enter(&mut self) -> Result<()> {
        self.depth += 1;
        if self.depth > MAX_DEPTH {
            Err(self.err(format_args!("nesting deeper than {MAX_DEPTH}")))
        } else {
            Ok(())
        }
    }

    fn leave(&mut self) {
        self.depth = self.depth.saturating_sub(1);
    }

    /// The branch a union value takes.
    fn union_branch<'a>(&mut self, union: &'a UnionSchema) -> Result<&'a Schema> {
        let index = self.long()?;
        let variants = union.variants();
        usize::try_from(index)
            .ok()
            .and_then(|i| variants.get(i))
            .ok_or_else(|| {
                self.err(format_args!(
                    "union branch {index} out of range ({} branches)",
                    variants.len()
                ))
            })
    }

    /// The fewest bytes a value of `schema` can take.
    fn min_width(&self, schema: &Schema, depth: u32) -> usize {
        if depth > MAX_DEPTH {
            return 0;
        }
        match schema {
            Schema::Null => 0,
            Schema::Float => 4,
            Schema::Double => 8,
            Schema::Duration => 12,
            Schema::Fixed(f) => f.size,
            Schema::Decimal(d) => self.min_width(&d.inner, depth + 1),
            Schema::Record(r) => r.fields.iter().fold(0usize, |acc, f| {
                acc.saturating_add(self.min_width(&f.schema, depth + 1))
            }),
            Schema::Ref { .. } => match self.resolve(schema) {
                Ok(resolved) => self.min_width(resolved, depth + 1),
                Err(_) => 0,
            },
            // Every other type writes at least one byte (a value, a length, an index or an end).
            _ => 1,
        }
    }

    /// The item count of the next array or map block (0 ends the sequence), checked against the
    /// bytes that are left given that each item takes at least `item_width` bytes.
    fn block_count(&mut self, item_width: usize) -> Result<usize> {
        let raw = self.long()?;
        let count = if raw < 0 {
            // A negative count is followed by the block's size in bytes, which we do not need.
            let _size = self.long()?;
            raw.checked_neg()
                .ok_or_else(|| self.err("block count overflows"))?
        } else {
            raw
        };
        let count = usize::try_from(count).map_err(|_| self.err("block count overflows"))?;
        if item_width > 0 {
            if count.saturating_mul(item_width) > self.input.len() {
                return Err(self.err(format_args!(
                    "truncated: block of {count} items needs at least {} bytes, {} left",
                    count.saturating_mul(item_width),
                    self.input.len()
                )));
            }
        } else if count > self.zero_width_budget {
            return Err(self.err(format_args!(
                "more than {ZERO_WIDTH_ITEM_BUDGET} zero-width items in one datum"
            )));
        } else {
            self.zero_width_budget -= count;
        }
        Ok(count)
    }
}

/// A deserializer for one value of `schema` at the reader's position.
struct De<'r, 's, 'de> {
    r: &'r mut Reader<'s, 'de>,
    schema: &'s Schema,
}

impl<'de> de::Deserializer<'de> for De<'_, '_, 'de> {
    type Error = DeError;

    fn deserialize_any<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value> {
        let schema = self.r.resolve(self.schema)?;
        match schema {
            Schema::Null => visitor.visit_unit(),
            Schema::Boolean => match self.r.byte()? {
                0 => visitor.visit_bool(false),
                1 => visitor.visit_bool(true),
                b => Err(self.r.err(format_args!("invalid boolean byte {b:#04x}"))),
            },
            Schema::Int | Schema::Date | Schema::TimeMillis => visitor.visit_i32(self.r.int()?),
            Schema::Long
            | Schema::TimeMicros
            | Schema::TimestampMillis
            | Schema::TimestampMicros
            | Schema::TimestampNanos
            | Schema::LocalTimestampMillis
            | Schema::LocalTimestampMicros
            | Schema::LocalTimestampNanos => visitor.visit_i64(self.r.long()?),
            Schema::Float => {
                let mut buf = [0u8; 4];
                buf.copy_from_slice(self.r.take(4)?);
                visitor.visit_f32(f32::from_le_bytes(buf))
            }
            Schema::Double => {
                let mut buf = [0u8; 8];
                buf.copy_from_slice(self.r.take(8)?);
                visitor.visit_f64(f64::from_le_bytes(buf))
            }
            Schema::Bytes | Schema::BigDecimal => visitor.visit_borrowed_bytes(self.r.bytes()?),
            Schema::Uuid => {
                let bytes = self.r.bytes()?;
                match std::str::from_utf8(bytes) {
                    Ok(s) if bytes.len() != 16 => visitor.visit_borrowed_str(s),
                    _ => visitor.visit_borrowed_bytes(bytes),
                }
            }
            Schema::Decimal(d) => match self.r.resolve(&d.inner)? {
                Schema::Fixed(f) => visitor.visit_borrowed_bytes(self.r.take(f.size)?),
                _ => visitor.visit_borrowed_bytes(self.r.bytes()?),
            },
            Schema::String => visitor.visit_borrowed_str(self.r.str()?),
            Schema::Fixed(f) => visitor.visit_borrowed_bytes(self.r.take(f.size)?),
            Schema::Duration => visitor.visit_borrowed_bytes(self.r.take(12)?),
            Schema::Enum(e) => {
                let index = self.r.int()?;
                match usize::try_from(index).ok().and_then(|i| e.symbols.get(i)) {
                    Some(symbol) => visitor.visit_str(symbol),
                    None => Err(self.r.err(format_args!(
                        "enum index {index} out of range ({} symbols)",
                        e.symbols.len()
                    ))),
                }
            }
            Schema::Array(a) => {
                self.r.enter()?;
                let access = ArrayAccess::new(self.r, &a.items)?;
                let value = visitor.visit_seq(access)?;
                self.r.leave();
                Ok(value)
            }
            Schema::Map(m) => {
                self.r.enter()?;
                let access = MapEntries::new(self.r, &m.types)?;
                let value = visitor.visit_map(access)?;
                self.r.leave();
                Ok(value)
            }
            Schema::Union(u) => {
                self.r.enter()?;
                let branch = self.r.union_branch(u)?;
                let value = De {
                    r: &mut *self.r,
                    schema: branch,
                }
                .deserialize_any(visitor)?;
                self.r.leave();
                Ok(value)
            }
            Schema::Record(record) => {
                self.r.enter()?;
                let value = visitor.visit_map(RecordFields {
                    r: &mut *self.r,
                    fields: &record.fields,
                    next: 0,
                })?;
                self.r.leave();
                Ok(value)
            }
            Schema::Ref { name } => Err(self
                .r
                .err(format_args!("unresolved reference {}", name.fullname(None)))),
        }
    }

    fn deserialize_option<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value> {
        let schema = self.r.resolve(self.schema)?;
        match schema {
            Schema::Null => visitor.visit_none(),
            Schema::Union(u) => {
                self.r.enter()?;
                let branch = self.r.union_branch(u)?;
                let value = match self.r.resolve(branch)? {
                    Schema::Null => visitor.visit_none(),
                    _ => visitor.visit_some(De {
                        r: &mut *self.r,
                        schema: branch,
                    }),
                }?;
                self.r.leave();
                Ok(value)
            }
            _ => visitor.visit_some(self),
        }
    }

    fn deserialize_enum<V: Visitor<'de>>(
        self,
        name: &'static str,
        variants: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value> {
        let schema = self.r.resolve(self.schema)?;
        match schema {
            Schema::Enum(e) => {
                let index = self.r.int()?;
                match usize::try_from(index).ok().and_then(|i| e.symbols.get(i)) {
                    Some(symbol) => visitor.visit_enum(symbol.as_str().into_deserializer()),
                    None => Err(self.r.err(format_args!(
                        "enum index {index} out of range ({} symbols)",
                        e.symbols.len()
                    ))),
                }
            }
            Schema::String => visitor.visit_enum(self.r.str()?.into_deserializer()),
            Schema::Union(u) => {
                self.r.enter()?;
                let branch = self.r.union_branch(u)?;
                let value = De {
                    r: &mut *self.r,
                    schema: branch,
                }
                .deserialize_enum(name, variants, visitor)?;
                self.r.leave();
                Ok(value)
            }
            _ => self.deserialize_any(visitor),
        }
    }

    fn deserialize_seq<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value> {
        let schema = self.r.resolve(self.schema)?;
        match schema {
            // A plain `Vec<u8>` (without `serde_bytes`) asks for a sequence.
            Schema::Bytes => {
                let bytes = self.r.bytes()?;
                visitor.visit_seq(de::value::SeqDeserializer::<_, DeError>::new(
                    bytes.iter().copied(),
                ))
            }
            Schema::Fixed(f) => {
                let bytes = self.r.take(f.size)?;
                visitor.visit_seq(de::value::SeqDeserializer::<_, DeError>::new(
                    bytes.iter().copied(),
                ))
            }
            Schema::Union(u) => {
                self.r.enter()?;
                let branch = self.r.union_branch(u)?;
                let value = De {
                    r: &mut *self.r,
                    schema: branch,
                }
                .deserialize_seq(visitor)?;
                self.r.leave();
                Ok(value)
            }
            _ => self.deserialize_any(visitor),
        }
    }

    fn deserialize_newtype_struct<V: Visitor<'de>>(
        self,
        _name: &'static str,
        visitor: V,
    ) -> Result<V::Value> {
        visitor.visit_newtype_struct(self)
    }

    fn is_human_readable(&self) -> bool {
        false
    }

    serde::forward_to_deserialize_any! {
        bool i8 i16 i32 i64 i128 u8 u16 u32 u64 u128 f32 f64 char str string bytes byte_buf unit
        unit_struct tuple tuple_struct map struct identifier ignored_any
    }
}

/// The fields of a record, in schema order, as a serde map keyed by field name.
struct RecordFields<'r, 's, 'de> {
    r: &'r mut Reader<'s, 'de>,
    fields: &'s [RecordField],
    next: usize,
}

impl<'de> MapAccess<'de> for RecordFields<'_, '_, 'de> {
    type Error = DeError;

    fn next_key_seed<K: DeserializeSeed<'de>>(&mut self, seed: K) -> Result<Option<K::Value>> {
        match self.fields.get(self.next) {
            Some(field) => seed
                .deserialize(field.name.as_str().into_deserializer())
                .map(Some),
            None => Ok(None),
        }
    }

    fn next_value_seed<V: DeserializeSeed<'de>>(&mut self, seed: V) -> Result<V::Value> {
        let field = self
            .fields
            .get(self.next)
            .ok_or_else(|| self.r.err("record value requested past the last field"))?;
        self.next += 1;
        seed.deserialize(De {
            r: &mut *self.r,
            schema: &field.schema,
        })
        .map_err(|e| DeError(format!("field `{}`: {e}", field.name)))
    }

    fn size_hint(&self) -> Option<usize> {
        Some(self.fields.len() - self.next.min(self.fields.len()))
    }
}

/// The items of an array, block by block.
struct ArrayAccess<'r, 's, 'de> {
    r: &'r mut Reader<'s, 'de>,
    items: &'s Schema,
    item_width: usize,
    left_in_block: usize,
    done: bool,
}

impl<'r, 's, 'de> ArrayAccess<'r, 's, 'de> {
    fn new(r: &'r mut Reader<'s, 'de>, items: &'s Schema) -> Result<Self> {
        let item_width = r.min_width(items, 0);
        let left_in_block = r.block_count(item_width)?;
        Ok(Self {
            r,
            items,
            item_width,
            left_in_block,
            done: left_in_block == 0,
        })
    }
}

impl<'de> SeqAccess<'de> for ArrayAccess<'_, '_, 'de> {
    type Error = DeError;

    fn next_element_seed<T: DeserializeSeed<'de>>(&mut self, seed: T) -> Result<Option<T::Value>> {
        if self.done {
            return Ok(None);
        }
        if self.left_in_block == 0 {
            self.left_in_block = self.r.block_count(self.item_width)?;
            if self.left_in_block == 0 {
                self.done = true;
                return Ok(None);
            }
        }
        self.left_in_block -= 1;
        seed.deserialize(De {
            r: &mut *self.r,
            schema: self.items,
        })
        .map(Some)
    }

    fn size_hint(&self) -> Option<usize> {
        Some(self.left_in_block)
    }
}

/// The entries of a map, block by block; keys are strings.
struct MapEntries<'r, 's, 'de> {
    r: &'r mut Reader<'s, 'de>,
    values: &'s Schema,
    entry_width: usize,
    left_in_block: usize,
    done: bool,
}

impl<'r, 's, 'de> MapEntries<'r, 's, 'de> {
    fn new(r: &'r mut Reader<'s, 'de>, values: &'s Schema) -> Result<Self> {
        let entry_width = 1usize.saturating_add(r.min_width(values, 0));
        let left_in_block = r.block_count(entry_width)?;
        Ok(Self {
            r,
            values,
            entry_width,
            left_in_block,
            done: left_in_block == 0,
        })
    }
}

impl<'de> MapAccess<'de> for MapEntries<'_, '_, 'de> {
    type Error = DeError;

    fn next_key_seed<K: DeserializeSeed<'de>>(&mut self, seed: K) -> Result<Option<K::Value>> {
        if self.done {
            return Ok(None);
        }
        if self.left_in_block == 0 {
            self.left_in_block = self.r.block_count(self.entry_width)?;
            if self.left_in_block == 0 {
                self.done = true;
                return Ok(None);
            }
        }
        self.left_in_block -= 1;
        let key = self.r.str()?;
        seed.deserialize(de::value::BorrowedStrDeserializer::<DeError>::new(key))
            .map(Some)
    }

    fn next_value_seed<V: DeserializeSeed<'de>>(&mut self, seed: V) -> Result<V::Value> {
        seed.deserialize(De {
            r: &mut *self.r,
            schema: self.values,
        })
    }

    fn size_hint(&self) -> Option<usize> {
        Some(self.left_in_block)
    }
}
