//! A fast decoder for the log's common lines.
//!
//! Why: replay spent about a third of its time in serde_json decoding
//! records into `Record` (field-name matching through a visitor, strings
//! scanned for escapes and then again for UTF-8, numbers parsed twice).
//! Nearly every line of a log is a flat object of strings without
//! escapes, plain numbers and `null`s, which a direct scan decodes in a
//! fraction of that.
//!
//! The rule that keeps it safe: [`decode`] either gives exactly the record
//! serde_json would, or declines (`None`) and the line is decoded by
//! serde_json, errors included. So it declines whatever it is not sure of:
//! an escape or a control character in a string, a value that is an object
//! or an array, an unknown or repeated field, a negative number, a field of
//! the wrong type, anything after the closing brace but whitespace. A torn
//! line never ends with its object's brace, so it is declined too, and
//! serde_json reports it as before.

use std::borrow::Cow;

use super::Record;

/// The record on `line`, or `None` to have serde_json decode it.
pub(super) fn decode(line: &[u8]) -> Option<Record<'_>> {
    let mut scan = Scan { line, at: 0 };
    let mut record = Record {
        timestamp: None,
        action: Cow::Borrowed(""),
        key: None,
        value: None,
        namespace: None,
        ttl: None,
        expires_at: None,
        ops: None,
    };
    let mut seen = 0u8;
    scan.punct(b'{')?;
    loop {
        let (name, _) = scan.string_bytes()?;
        scan.punct(b':')?;
        let field = FIELDS.iter().position(|f| f.as_bytes() == name)?;
        if seen & (1 << field) != 0 {
            return None;
        }
        seen |= 1 << field;
        match field {
            0 => record.timestamp = scan.or_null(Scan::float)?,
            1 => record.action = Cow::Borrowed(scan.string()?),
            2 => record.key = scan.or_null(Scan::string)?.map(Cow::Borrowed),
            3 => record.value = Some(scan.scalar()?),
            4 => record.namespace = scan.or_null(Scan::string)?.map(Cow::Borrowed),
            5 => record.ttl = scan.or_null(Scan::float)?,
            _ => record.expires_at = scan.or_null(Scan::whole)?,
        }
        match scan.next_punct()? {
            b',' => continue,
            b'}' => break,
            _ => return None,
        }
    }
    scan.skip_whitespace();
    // `action` has no default: serde_json refuses a record without it.
    (scan.at == line.len() && seen & ACTION != 0).then_some(record)
}

/// The fields of a record this decoder knows; any other is declined.
const FIELDS: [&str; 7] = [
    "timestamp",
    "action",
    "key",
    "value",
    "namespace",
    "ttl",
    "expires_at",
];
const ACTION: u8 = 1 << 1;

/// `bytes` as text: checked as UTF-8 unless known to be ASCII.
fn text(bytes: &[u8], ascii: bool) -> Option<&str> {
    if ascii {
        // SAFETY: ASCII bytes are UTF-8.
        return Some(unsafe { std::str::from_utf8_unchecked(bytes) });
    }
    std::str::from_utf8(bytes).ok()
}

struct Scan<'a> {
    line: &'a [u8],
    at: usize,
}

impl<'a> Scan<'a> {
    fn skip_whitespace(&mut self) {
        while let Some(b' ' | b'\t' | b'\n' | b'\r') = self.line.get(self.at) {
            self.at += 1;
        }
    }

    /// The next byte after whitespace, consumed.
    fn next_punct(&mut self) -> Option<u8> {
        self.skip_whitespace();
        let byte = *self.line.get(self.at)?;
        self.at += 1;
        Some(byte)
    }

    fn punct(&mut self, expected: u8) -> Option<()> {
        (self.next_punct()? == expected).then_some(())
    }

    /// `null` (`Some(None)`), or what `value` reads.
    fn or_null<T>(&mut self, value: impl FnOnce(&mut Self) -> Option<T>) -> Option<Option<T>> {
        self.skip_whitespace();
        if self.line[self.at..].starts_with(b"null") {
            self.at += 4;
            return Some(None);
        }
        value(self).map(Some)
    }

    /// A string without escapes or control characters, without its quotes.
    fn string(&mut self) -> Option<&'a str> {
        let (bytes, ascii) = self.string_bytes()?;
        text(bytes, ascii)
    }

    /// The bytes of a string without escapes or control characters,
    /// without its quotes, and whether they are all ASCII. One pass over
    /// the bytes: these strings are short, shorter than the set-up of a
    /// vectorised search.
    fn string_bytes(&mut self) -> Option<(&'a [u8], bool)> {
        self.punct(b'"')?;
        let start = self.at;
        let mut ascii = true;
        loop {
            match *self.line.get(self.at)? {
                b'"' => break,
                b'\\' | 0..0x20 => return None,
                byte => ascii &= byte < 0x80,
            }
            self.at += 1;
        }
        self.at += 1;
        Some((&self.line[start..self.at - 1], ascii))
    }

    /// A value that is a string, a number, `true`, `false` or `null`, as
    /// its raw JSON text.
    fn scalar(&mut self) -> Option<&'a str> {
        self.skip_whitespace();
        let start = self.at;
        match *self.line.get(start)? {
            b'"' => {
                let (_, ascii) = self.string_bytes()?;
                return text(&self.line[start..self.at], ascii);
            }
            b'0'..=b'9' => drop(self.number()?),
            _ => {
                let word = [&b"true"[..], b"false", b"null"]
                    .into_iter()
                    .find(|word| self.line[start..].starts_with(word))?;
                self.at += word.len();
            }
        }
        text(&self.line[start..self.at], true)
    }

    /// A non-negative JSON number's text, and whether it is a whole one
    /// (no fraction, no exponent).
    fn number(&mut self) -> Option<(&'a str, bool)> {
        self.skip_whitespace();
        let start = self.at;
        let digits = |scan: &mut Self| {
            let from = scan.at;
            while scan.line.get(scan.at).is_some_and(u8::is_ascii_digit) {
                scan.at += 1;
            }
            scan.at - from
        };
        let whole_digits = digits(self);
        // JSON allows no leading zero but the number 0 itself.
        if whole_digits == 0 || (whole_digits > 1 && self.line[start] == b'0') {
            return None;
        }
        let mut whole = true;
        if self.line.get(self.at) == Some(&b'.') {
            self.at += 1;
            whole = false;
            if digits(self) == 0 {
                return None;
            }
        }
        if let Some(b'e' | b'E') = self.line.get(self.at) {
            self.at += 1;
            whole = false;
            if let Some(b'+' | b'-') = self.line.get(self.at) {
                self.at += 1;
            }
            if digits(self) == 0 {
                return None;
            }
        }
        Some((text(&self.line[start..self.at], true)?, whole))
    }

    /// A number read as `f64`, as serde_json reads it: both round
    /// correctly (serde_json has `float_roundtrip` on), so they agree.
    /// Declined past `f64`'s range, which serde_json refuses.
    fn float(&mut self) -> Option<f64> {
        let (text, _) = self.number()?;
        text.parse::<f64>().ok().filter(|f| f.is_finite())
    }

    /// A whole number that fits `u64`; serde_json refuses the others.
    fn whole(&mut self) -> Option<u64> {
        match self.number()? {
            (text, true) => text.parse().ok(),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Whatever the fast decoder accepts, serde_json decodes the same.
    fn agrees(line: &[u8]) -> bool {
        let Some(fast) = decode(line) else {
            return false;
        };
        let slow: Record<'_> = serde_json::from_slice(line)
            .unwrap_or_else(|e| panic!("{}: accepted, but serde_json says {e}", show(line)));
        assert_eq!(format!("{fast:?}"), format!("{slow:?}"), "{}", show(line));
        true
    }

    fn show(line: &[u8]) -> String {
        String::from_utf8_lossy(line).into_owned()
    }

    #[test]
    fn decodes_the_common_lines_as_serde_json_does() {
        let accepted = [
            r#"{"timestamp":1732550000.123,"action":"SET","key":"user:123","value":"alice","namespace":"app1","ttl":3600,"expires_at":1732553600123}"#,
            r#"{"timestamp":1732550000.123,"action":"SET","key":"k","value":"v","namespace":null,"ttl":null}"#,
            r#"{"timestamp":1.5,"action":"SET","key":"k","value":12.5e-3,"namespace":"n"}"#,
            r#"{"timestamp":0,"action":"DEL","key":"k","value":null,"namespace":"n","ttl":null}"#,
            r#"{"timestamp": 1234567890.123, "action": "SET", "key": "user:123", "value": "alice", "namespace": "app1", "ttl": 3600}"#,
            r#"{"action":"SET","key":"ключ","value":true,"namespace":"n"}  "#,
            r#"{"action":"CLEAR","key":null,"value":null,"namespace":"n","ttl":null}"#,
        ];
        let declined = [
            r#"{"action":"SET","key":"k\n","value":"v"}"#,
            r#"{"action":"SET","key":"k","value":"v\"w"}"#,
            r#"{"action":"SET","key":"k","value":[1]}"#,
            r#"{"action":"SET","key":"k","value":-1}"#,
            r#"{"action":"SET","key":"k","value":"v","evicted":true}"#,
            r#"{"action":"SET","key":"k","key":"j","value":"v"}"#,
            r#"{"action":"TX","ops":[]}"#,
            r#"{"key":"k","value":"v"}"#,
            r#"{"action":"SET","key":"k","value":"v","expires_at":1.0}"#,
            r#"{"action":"SET","key":"k","value":"v","ttl":"1"}"#,
            r#"{"action":"SET","key":"k","value":01}"#,
            r#"{"action":"SET","key":"k","value":"v"}x"#,
            r#"{"action":"SET","key":"k","value":nul}"#,
            r#"{"action":null,"key":"k","value":"v"}"#,
            r#"{"action":"SET","key":"k","value":{"a":1}}"#,
            r#"{"action":"SET","key":"k","value":"v","ttl":1e400}"#,
            r#"{"action":"SET","key":"k","value":"v","expires_at":18446744073709551616}"#,
        ];
        for line in accepted {
            assert!(agrees(line.as_bytes()), "declined: {line}");
        }
        for line in declined {
            assert!(!agrees(line.as_bytes()), "accepted: {line}");
        }
    }

    #[test]
    fn declines_every_torn_line() {
        let line = br#"{"timestamp":1732550000.123,"action":"SET","key":"user:123","value":"alice","namespace":"app1","ttl":3600,"expires_at":1732553600123}"#;
        assert!(agrees(line));
        for cut in 0..line.len() {
            assert!(decode(&line[..cut]).is_none(), "cut at {cut}");
        }
    }

    #[test]
    fn invalid_utf8_is_left_to_serde_json() {
        let mut line = br#"{"action":"SET","key":"k?","value":"v"}"#.to_vec();
        let at = line.iter().position(|&b| b == b'?').unwrap();
        line[at] = 0xff;
        assert!(decode(&line).is_none());
        line = br#"{"action":"SET","key":"k","value":"v?"}"#.to_vec();
        let at = line.iter().position(|&b| b == b'?').unwrap();
        line[at] = 0xff;
        assert!(decode(&line).is_none());
    }
}
