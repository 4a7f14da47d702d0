//! Exact percentages (DESIGN §4: "Percentages are exact decimals with two places (12.5,
//! 0.25) and ceilings are computed exactly, never in floating point").

use serde::{Deserialize, Serialize};

/// A percentage with at most two decimal places, kept as hundredths of a percent: 12.5 % is
/// `Percent(1250)`, 0.25 % is `Percent(25)`.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default, Serialize, Deserialize,
)]
pub struct Percent(pub i64);

impl Percent {
    /// 100 %.
    pub const HUNDRED: Self = Self(10_000);

    /// A whole percentage (`40` → 40 %).
    pub fn whole(pct: i64) -> Self {
        Self(pct.saturating_mul(100))
    }

    /// Parses `"12.5"`, `"0.25"`, `"40"` or `"40.00"`: digits with at most two decimals,
    /// between 0 and 100.
    ///
    /// # Errors
    /// What is wrong, for the caller to name the field.
    pub fn parse(text: &str) -> Result<Self, String> {
        let bad = || {
            format!(
                "must be a decimal between 0 and 100 with at most two decimal places, got {text:?}"
            )
        };
        let (int, frac) = text.split_once('.').unwrap_or((text, ""));
        if int.is_empty()
            || int.len() > 3
            || frac.len() > 2
            || (text.contains('.') && frac.is_empty())
            || !int.bytes().chain(frac.bytes()).all(|b| b.is_ascii_digit())
        {
            return Err(bad());
        }
        let int: i64 = int.parse().map_err(|_| bad())?;
        let frac: i64 = format!("{frac:0<2}").parse().map_err(|_| bad())?;
        let pct = Self(int * 100 + frac);
        if pct > Self::HUNDRED {
            return Err(bad());
        }
        Ok(pct)
    }

    /// ⌊self × n⌋ for n ≥ 0 (a channel's share).
    pub fn of_floor(self, n: i64) -> i64 {
        let n = i128::from(n.max(0));
        i64::try_from(n * i128::from(self.0) / 10_000).unwrap_or(i64::MAX)
    }

    /// ⌈self × n⌉ for n ≥ 0 (safety stock).
    pub fn of_ceil(self, n: i64) -> i64 {
        let n = i128::from(n.max(0));
        i64::try_from((n * i128::from(self.0) + 9_999) / 10_000).unwrap_or(i64::MAX)
    }
}

impl std::fmt::Display for Percent {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let (int, frac) = (self.0 / 100, self.0 % 100);
        match frac {
            0 => write!(f, "{int}"),
            f2 if f2 % 10 == 0 => write!(f, "{int}.{}", f2 / 10),
            f2 => write!(f, "{int}.{f2:02}"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decimals_parse_exactly_and_print_back() {
        for (text, hundredths, shown) in [
            ("12.5", 1250, "12.5"),
            ("0.25", 25, "0.25"),
            ("40", 4000, "40"),
            ("40.00", 4000, "40"),
            ("100", 10_000, "100"),
            ("0", 0, "0"),
            ("33.33", 3333, "33.33"),
        ] {
            let p = Percent::parse(text).unwrap();
            assert_eq!(p, Percent(hundredths), "{text}");
            assert_eq!(p.to_string(), shown);
        }
        for bad in [
            "", ".5", "5.", "1.234", "-1", "100.01", "1e2", "12,5", " 5", "1000",
        ] {
            assert!(Percent::parse(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn ceilings_and_floors_are_exact_where_floats_are_not() {
        // 12.5 % of 45 = 5.625: safety stock 6, share 5.
        assert_eq!(Percent(1250).of_ceil(45), 6);
        assert_eq!(Percent(1250).of_floor(45), 5);
        // 0.1 × 30 in f64 is 3.0000000000000004, whose ceiling would be 4: exactly 3.
        assert_eq!(Percent(10).of_ceil(3000), 3);
        // 0.25 % of 400 is exactly 1; of 401 it rounds up to 2 and down to 1.
        assert_eq!(Percent(25).of_ceil(400), 1);
        assert_eq!(Percent(25).of_ceil(401), 2);
        assert_eq!(Percent(25).of_floor(401), 1);
        assert_eq!(Percent::HUNDRED.of_floor(i64::MAX), i64::MAX);
        assert_eq!(Percent::whole(40).of_floor(7), 2);
    }
}
