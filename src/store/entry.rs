//! One stored entry: its key, value, deadline and last access, packed into
//! a single heap allocation.
//!
//! Why a packed byte buffer rather than a struct of `Box<str>`s: a million
//! small keys are dominated by per-allocation and per-field overhead. One
//! allocation per entry, and a 16-byte slot in the hash table, is what keeps
//! this server's memory per key well under Redis's (docs/BENCHMARKS.md).
//!
//! Layout: `[flags: u8][last access: u32 LE][key length: LEB128]`
//! `[deadline: u64 LE, if FLAG_TTL][key bytes][value bytes]`. The value is
//! the JSON text the client sent.

use std::num::NonZeroU64;

const FLAG_TTL: u8 = 1;
const ACCESS_AT: usize = 1;
const KEY_LEN_AT: usize = 5;

/// Bytes accounted to every entry beyond its own allocation: its slot in
/// the hash table (16) and control byte, at the table's typical load, and
/// the allocator's rounding. An estimate, fixed so that accounting is
/// exact and repeatable; docs/BENCHMARKS.md compares it with measured RSS.
pub const ENTRY_OVERHEAD: usize = 32;
/// Extra bytes for an entry with a TTL: its key again in the expiry index,
/// plus that index's node share.
const TTL_INDEX_OVERHEAD: usize = 40;

pub(crate) struct Entry(Box<[u8]>);

impl Entry {
    pub fn new(key: &str, value: &str, expires_at: Option<NonZeroU64>, access: u32) -> Entry {
        let mut buf = Vec::with_capacity(KEY_LEN_AT + 3 + 8 + key.len() + value.len());
        buf.push(if expires_at.is_some() { FLAG_TTL } else { 0 });
        buf.extend_from_slice(&access.to_le_bytes());
        push_varint(&mut buf, key.len());
        if let Some(at) = expires_at {
            buf.extend_from_slice(&at.get().to_le_bytes());
        }
        buf.extend_from_slice(key.as_bytes());
        buf.extend_from_slice(value.as_bytes());
        Entry(buf.into_boxed_slice())
    }

    /// (start of the key, key length)
    fn key_span(&self) -> (usize, usize) {
        let (len, varint_len) = read_varint(&self.0[KEY_LEN_AT..]);
        let mut start = KEY_LEN_AT + varint_len;
        if self.0[0] & FLAG_TTL != 0 {
            start += 8;
        }
        (start, len)
    }

    pub fn key_bytes(&self) -> &[u8] {
        let (start, len) = self.key_span();
        &self.0[start..start + len]
    }

    pub fn key(&self) -> &str {
        // SAFETY: the bytes were copied from a `&str` in `Entry::new`.
        unsafe { std::str::from_utf8_unchecked(self.key_bytes()) }
    }

    pub fn value(&self) -> &str {
        let (start, len) = self.key_span();
        // SAFETY: the bytes were copied from a `&str` in `Entry::new`.
        unsafe { std::str::from_utf8_unchecked(&self.0[start + len..]) }
    }

    pub fn expires_at(&self) -> Option<NonZeroU64> {
        if self.0[0] & FLAG_TTL == 0 {
            return None;
        }
        let (_, varint_len) = read_varint(&self.0[KEY_LEN_AT..]);
        let at = KEY_LEN_AT + varint_len;
        NonZeroU64::new(u64::from_le_bytes(self.0[at..at + 8].try_into().unwrap()))
    }

    pub fn is_expired(&self, now_ms: u64) -> bool {
        self.expires_at().is_some_and(|at| at.get() <= now_ms)
    }

    pub fn last_access(&self) -> u32 {
        u32::from_le_bytes(self.0[ACCESS_AT..ACCESS_AT + 4].try_into().unwrap())
    }

    pub fn touch(&mut self, access: u32) {
        self.0[ACCESS_AT..ACCESS_AT + 4].copy_from_slice(&access.to_le_bytes());
    }

    /// Bytes this entry is accounted for.
    pub fn size(&self) -> usize {
        let ttl = if self.0[0] & FLAG_TTL != 0 {
            TTL_INDEX_OVERHEAD + self.key_bytes().len()
        } else {
            0
        };
        self.0.len() + ENTRY_OVERHEAD + ttl
    }
}

impl std::fmt::Debug for Entry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Entry")
            .field("key", &self.key())
            .field("value", &self.value())
            .field("expires_at", &self.expires_at())
            .finish()
    }
}

fn push_varint(out: &mut Vec<u8>, mut n: usize) {
    while n >= 0x80 {
        out.push((n as u8) | 0x80);
        n >>= 7;
    }
    out.push(n as u8);
}

/// (value, bytes read)
fn read_varint(bytes: &[u8]) -> (usize, usize) {
    let mut n = 0usize;
    for (i, &b) in bytes.iter().enumerate() {
        n |= ((b & 0x7f) as usize) << (7 * i);
        if b & 0x80 == 0 {
            return (n, i + 1);
        }
    }
    unreachable!("entries always hold a whole varint")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn packs_and_unpacks_every_field() {
        for key in ["k", "ключ/日本", &"x".repeat(300), &"y".repeat(20_000)] {
            for at in [None, NonZeroU64::new(1_795_627_241_678)] {
                let mut e = Entry::new(key, "{\"a\":1}", at, 7);
                assert_eq!(e.key(), key);
                assert_eq!(e.value(), "{\"a\":1}");
                assert_eq!(e.expires_at(), at);
                assert_eq!(e.last_access(), 7);
                e.touch(u32::MAX);
                assert_eq!(e.last_access(), u32::MAX);
                assert_eq!(e.key(), key);
            }
        }
    }

    #[test]
    fn a_small_entry_is_one_small_allocation() {
        let e = Entry::new("key:00000001", &format!("\"{}\"", "v".repeat(32)), None, 0);
        assert_eq!(e.0.len(), 1 + 4 + 1 + 12 + 34);
        assert_eq!(e.size(), 52 + ENTRY_OVERHEAD);
        assert_eq!(std::mem::size_of::<Entry>(), 16);
    }
}
