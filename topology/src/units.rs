//! Typed durations and sizes as they are written in the topology file.
//!
//! Durations are strings with a unit (`"100ms"`, `"30m"`, `"7d"`), parsed by `humantime`;
//! sizes are strings with a unit (`"256MiB"`, `"1 GiB"`, `"512MB"`) or a bare integer of bytes.

use std::fmt;
use std::str::FromStr;
use std::time::Duration;

use serde::de::{self, Visitor};
use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// Milliseconds in `duration`, saturating at `i64::MAX` (the operators count time in `i64` ms).
pub(crate) fn duration_ms(duration: Duration) -> i64 {
    i64::try_from(duration.as_millis()).unwrap_or(i64::MAX)
}

/// `serde(with = ...)` for a [`Duration`] written as a string with a unit.
pub(crate) mod duration {
    use super::*;

    /// Parses `"100ms"`, `"30m"`, `"7d"`, `"1h 30m"` into a [`Duration`].
    pub(crate) fn parse(text: &str) -> Result<Duration, String> {
        humantime::parse_duration(text.trim()).map_err(|e| {
            format!("invalid duration {text:?}: {e} (write a number and a unit, e.g. \"100ms\", \"30m\", \"7d\")")
        })
    }

    pub(crate) fn serialize<S: Serializer>(
        value: &Duration,
        serializer: S,
    ) -> Result<S::Ok, S::Error> {
        serializer.collect_str(&humantime::format_duration(*value))
    }

    pub(crate) fn deserialize<'de, D: Deserializer<'de>>(
        deserializer: D,
    ) -> Result<Duration, D::Error> {
        struct DurationVisitor;
        impl Visitor<'_> for DurationVisitor {
            type Value = Duration;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a duration string with a unit, such as \"100ms\", \"30m\" or \"7d\"")
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Duration, E> {
                parse(v).map_err(E::custom)
            }
        }
        deserializer.deserialize_str(DurationVisitor)
    }
}

/// `serde(with = ...)` for an `Option<Duration>` written as a string with a unit; absent is
/// `None` (use with `#[serde(default)]`).
pub(crate) mod optional_duration {
    use super::*;

    pub(crate) fn serialize<S: Serializer>(
        value: &Option<Duration>,
        serializer: S,
    ) -> Result<S::Ok, S::Error> {
        match value {
            Some(value) => duration::serialize(value, serializer),
            None => serializer.serialize_none(),
        }
    }

    pub(crate) fn deserialize<'de, D: Deserializer<'de>>(
        deserializer: D,
    ) -> Result<Option<Duration>, D::Error> {
        duration::deserialize(deserializer).map(Some)
    }
}

/// A size in bytes, written `"256MiB"`, `"1 GiB"`, `"512MB"`, `"64KiB"` or as an integer of bytes.
///
/// Binary units (`KiB`, `MiB`, `GiB`, `TiB`) are powers of 1024; decimal units (`KB`, `MB`, `GB`,
/// `TB`) powers of 1000; `B` is bytes. Units are case-insensitive. It is written back in the
/// largest binary unit that divides it exactly (`"256MiB"`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct ByteSize(pub u64);

impl ByteSize {
    /// One kibibyte (1024 bytes).
    pub const KIB: u64 = 1024;
    /// One mebibyte (1024² bytes).
    pub const MIB: u64 = 1024 * 1024;
    /// One gibibyte (1024³ bytes).
    pub const GIB: u64 = 1024 * 1024 * 1024;

    /// `n` mebibytes.
    pub const fn mib(n: u64) -> Self {
        Self(n * Self::MIB)
    }

    /// The size in bytes.
    pub const fn bytes(self) -> u64 {
        self.0
    }
}

const UNITS: [(&str, u64); 10] = [
    ("b", 1),
    ("kb", 1000),
    ("mb", 1000 * 1000),
    ("gb", 1000 * 1000 * 1000),
    ("tb", 1000 * 1000 * 1000 * 1000),
    ("kib", 1 << 10),
    ("mib", 1 << 20),
    ("gib", 1 << 30),
    ("tib", 1 << 40),
    ("", 1),
];

impl FromStr for ByteSize {
    type Err = String;

    /// Parses `"<integer>[ ]<unit>"`.
    ///
    /// # Errors
    /// A message naming the text and the accepted units when it is not a whole number with one of
    /// them, or when it overflows 64 bits.
    fn from_str(text: &str) -> Result<Self, String> {
        let fail = || {
            format!(
                "invalid size {text:?}: write a whole number and a unit: B, KiB, MiB, GiB, TiB (powers of 1024) \
                 or KB, MB, GB, TB (powers of 1000), e.g. \"256MiB\""
            )
        };
        let trimmed = text.trim();
        let digits_end = trimmed
            .find(|c: char| !c.is_ascii_digit())
            .unwrap_or(trimmed.len());
        let (number, unit) = trimmed.split_at(digits_end);
        if number.is_empty() {
            return Err(fail());
        }
        let unit = unit.trim().to_ascii_lowercase();
        let factor = UNITS
            .iter()
            .find(|(name, _)| *name == unit)
            .map(|(_, f)| *f)
            .ok_or_else(fail)?;
        let number: u64 = number.parse().map_err(|_| fail())?;
        number
            .checked_mul(factor)
            .map(ByteSize)
            .ok_or_else(|| format!("invalid size {text:?}: larger than 2^64 bytes"))
    }
}

impl fmt::Display for ByteSize {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (name, shift) in [("TiB", 40), ("GiB", 30), ("MiB", 20), ("KiB", 10)] {
            if self.0 != 0 && self.0.trailing_zeros() >= shift {
                return write!(f, "{}{name}", self.0 >> shift);
            }
        }
        write!(f, "{}B", self.0)
    }
}

impl Serialize for ByteSize {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for ByteSize {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct SizeVisitor;
        impl Visitor<'_> for SizeVisitor {
            type Value = ByteSize;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a size such as \"256MiB\" or an integer number of bytes")
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<ByteSize, E> {
                v.parse().map_err(E::custom)
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<ByteSize, E> {
                u64::try_from(v)
                    .map(ByteSize)
                    .map_err(|_| E::custom(format!("invalid size {v}: must not be negative")))
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<ByteSize, E> {
                Ok(ByteSize(v))
            }
        }
        deserializer.deserialize_any(SizeVisitor)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_parse_in_binary_and_decimal_units() {
        assert_eq!("256MiB".parse::<ByteSize>(), Ok(ByteSize::mib(256)));
        assert_eq!("256 mib".parse::<ByteSize>(), Ok(ByteSize::mib(256)));
        assert_eq!("1GiB".parse::<ByteSize>(), Ok(ByteSize(ByteSize::GIB)));
        assert_eq!("512MB".parse::<ByteSize>(), Ok(ByteSize(512_000_000)));
        assert_eq!("4096".parse::<ByteSize>(), Ok(ByteSize(4096)));
        assert_eq!("10B".parse::<ByteSize>(), Ok(ByteSize(10)));
        for bad in ["", "MiB", "1.5GiB", "12 M", "-1MiB", "99999999999TiB"] {
            assert!(bad.parse::<ByteSize>().is_err(), "{bad} should not parse");
        }
    }

    #[test]
    fn sizes_display_in_the_largest_exact_binary_unit() {
        assert_eq!(ByteSize::mib(256).to_string(), "256MiB");
        assert_eq!(ByteSize(1536).to_string(), "1536B");
        assert_eq!(ByteSize(3 * ByteSize::GIB).to_string(), "3GiB");
        assert_eq!(ByteSize(1000).to_string(), "1000B");
        assert_eq!(ByteSize(0).to_string(), "0B");
    }

    #[test]
    fn durations_parse_with_units() {
        assert_eq!(duration::parse("100ms"), Ok(Duration::from_millis(100)));
        assert_eq!(duration::parse("30m"), Ok(Duration::from_secs(1800)));
        assert_eq!(duration::parse("7d"), Ok(Duration::from_secs(7 * 86_400)));
        let err = duration::parse("7x").unwrap_err();
        assert!(err.contains("\"7x\""), "{err}");
        assert!(duration::parse("100").is_err());
    }
}
