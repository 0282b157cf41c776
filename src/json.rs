//! Small serde helpers shared by the request parser and the log reader.

use serde::{Deserialize, Deserializer};
use serde_json::value::RawValue;

/// Deserializes a field as raw JSON, giving `Some` even for an explicit
/// `null`, so that a missing field and a `null` one can be told apart
/// (use with `#[serde(default)]`).
pub fn present<'de, D: Deserializer<'de>>(d: D) -> Result<Option<&'de RawValue>, D::Error> {
    <&RawValue>::deserialize(d).map(Some)
}

/// A JSON number that is a whole number, as JSON Schema's `integer` reads
/// it: `3600`, but also `3600.0` or `3.6e3`. `None` for anything else
/// (a fraction, a negative, a string, a number past `u64`).
pub fn whole_number(text: &str) -> Option<u64> {
    if let Ok(n) = text.parse::<u64>() {
        return Some(n);
    }
    if !text.starts_with(|c: char| c.is_ascii_digit()) {
        return None;
    }
    let n: f64 = text.parse().ok()?;
    // 2^64 itself does not fit; every integral f64 below it does.
    (n.is_finite() && n.fract() == 0.0 && n < 18_446_744_073_709_551_616.0).then_some(n as u64)
}

/// A whole number that may be negative, as [`whole_number`] reads one:
/// `-5`, `5.0`, `-5e0`; `None` past `i64` or for anything else.
pub fn whole_signed(text: &str) -> Option<i64> {
    if let Ok(n) = text.parse::<i64>() {
        return Some(n);
    }
    match text.strip_prefix('-') {
        Some(magnitude) => {
            let n = whole_number(magnitude)?;
            // -2^63 is the one magnitude past i64::MAX that fits.
            (n <= 1 << 63).then(|| (n as i64).wrapping_neg())
        }
        None => whole_number(text).and_then(|n| i64::try_from(n).ok()),
    }
}

#[cfg(test)]
mod tests {
    use super::{whole_number, whole_signed};

    #[test]
    fn signed_whole_numbers_in_any_json_spelling() {
        assert_eq!(whole_signed("-5"), Some(-5));
        assert_eq!(whole_signed("22016.0"), Some(22016));
        assert_eq!(whole_signed("-2.5e1"), Some(-25));
        assert_eq!(whole_signed("-9223372036854775808"), Some(i64::MIN));
        for bad in [
            "1.5",
            "9223372036854775808",
            "\"1\"",
            "true",
            "null",
            "-1e30",
        ] {
            assert_eq!(whole_signed(bad), None, "{bad}");
        }
    }

    #[test]
    fn whole_numbers_in_any_json_spelling() {
        assert_eq!(whole_number("3600"), Some(3600));
        assert_eq!(whole_number("3600.0"), Some(3600));
        assert_eq!(whole_number("3.6e3"), Some(3600));
        for bad in ["1.5", "-1", "\"10\"", "true", "null", "1e30", "-0.0"] {
            assert_eq!(whole_number(bad), None, "{bad}");
        }
    }
}
