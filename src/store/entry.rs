//! One stored entry: its key, value, deadline and last access, packed into
//! a single heap allocation behind an 8-byte handle.
//!
//! Why a packed byte buffer rather than a struct of `Box<str>`s: a million
//! small keys are dominated by per-allocation and per-field overhead. One
//! allocation per entry, held by an 8-byte slot in the hash table
//! ([`ThinBytes`]), is what keeps this server's memory per key well under
//! Redis's (docs/BENCHMARKS.md breaks a key's bytes down).
//!
//! Layout, after the allocation's length prefix: `[flags: u8]`
//! `[last access: u32 LE][key length: LEB128][deadline: u64 LE, if
//! FLAG_TTL][key bytes][value bytes]`. The value is the JSON text the
//! client sent; its length is what the key leaves of the allocation.

use std::num::NonZeroU64;

use super::thin_bytes::{ThinBytes, push_varint, varint_len};

const FLAG_TTL: u8 = 1;
const ACCESS_AT: usize = 1;
const KEY_LEN_AT: usize = 5;

/// Bytes accounted to every entry beyond its own allocation: its 8-byte
/// slot in the hash table and its control byte, at the table's typical
/// load (0.6: a table doubles when 7/8 full), with the table's own
/// allocation rounded up to the allocator's size class. 1,000,000 keys in
/// 1,600 shards take 16.4 MB of tables (docs/BENCHMARKS.md).
pub const ENTRY_OVERHEAD: usize = 16;
/// Extra bytes for an entry with a TTL: its key again in the expiry index,
/// plus that index's node share.
const TTL_INDEX_OVERHEAD: usize = 40;

pub(crate) struct Entry(ThinBytes);

impl Entry {
    pub fn new(key: &str, value: &str, expires_at: Option<NonZeroU64>, access: u32) -> Entry {
        let deadline_len = if expires_at.is_some() { 8 } else { 0 };
        let len = KEY_LEN_AT + varint_len(key.len()) + deadline_len + key.len() + value.len();
        Entry(ThinBytes::new(len, |buf| {
            buf.push(if expires_at.is_some() { FLAG_TTL } else { 0 });
            buf.extend_from_slice(&access.to_le_bytes());
            push_varint(buf, key.len());
            if let Some(at) = expires_at {
                buf.extend_from_slice(&at.get().to_le_bytes());
            }
            buf.extend_from_slice(key.as_bytes());
            buf.extend_from_slice(value.as_bytes());
        }))
    }

    /// Bytes of its allocation (before the allocator's rounding).
    pub fn allocation_len(&self) -> usize {
        self.0.allocation_len()
    }

    fn bytes(&self) -> &[u8] {
        self.0.as_slice()
    }

    /// (start of the key, key length)
    fn key_span(&self) -> (usize, usize) {
        let bytes = self.bytes();
        let (len, varint_len) = read_varint(&bytes[KEY_LEN_AT..]);
        let mut start = KEY_LEN_AT + varint_len;
        if bytes[0] & FLAG_TTL != 0 {
            start += 8;
        }
        (start, len)
    }

    pub fn key_bytes(&self) -> &[u8] {
        let (start, len) = self.key_span();
        &self.bytes()[start..start + len]
    }

    pub fn key(&self) -> &str {
        // SAFETY: the bytes were copied from a `&str` in `Entry::new`.
        unsafe { std::str::from_utf8_unchecked(self.key_bytes()) }
    }

    pub fn value(&self) -> &str {
        let (start, len) = self.key_span();
        // SAFETY: the bytes were copied from a `&str` in `Entry::new`.
        unsafe { std::str::from_utf8_unchecked(&self.bytes()[start + len..]) }
    }

    pub fn expires_at(&self) -> Option<NonZeroU64> {
        let bytes = self.bytes();
        if bytes[0] & FLAG_TTL == 0 {
            return None;
        }
        let (_, varint_len) = read_varint(&bytes[KEY_LEN_AT..]);
        let at = KEY_LEN_AT + varint_len;
        NonZeroU64::new(u64::from_le_bytes(bytes[at..at + 8].try_into().unwrap()))
    }

    pub fn is_expired(&self, now_ms: u64) -> bool {
        self.expires_at().is_some_and(|at| at.get() <= now_ms)
    }

    pub fn last_access(&self) -> u32 {
        u32::from_le_bytes(self.bytes()[ACCESS_AT..ACCESS_AT + 4].try_into().unwrap())
    }

    pub fn touch(&mut self, access: u32) {
        self.0.as_mut_slice()[ACCESS_AT..ACCESS_AT + 4].copy_from_slice(&access.to_le_bytes());
    }

    /// Bytes this entry is accounted for: its allocation as the allocator
    /// rounds it, its share of the table, and its share of the expiry index
    /// if it has a deadline.
    pub fn size(&self) -> usize {
        let ttl = if self.bytes()[0] & FLAG_TTL != 0 {
            TTL_INDEX_OVERHEAD + self.key_bytes().len()
        } else {
            0
        };
        allocated(self.allocation_len()) + ENTRY_OVERHEAD + ttl
    }
}

/// The block mimalloc hands out for an allocation of `n` bytes: steps of 8
/// bytes up to 64, then four size classes per doubling (80, 96, 112, 128,
/// 160, ...) up to 512 KiB; above that, whole 4 KiB pages. Mirrors
/// `mi_bin` in mimalloc's `page-queue.c`.
pub(crate) fn allocated(n: usize) -> usize {
    const WORD: usize = 8;
    const LARGEST_CLASS: usize = 512 * 1024;
    if n > LARGEST_CLASS {
        return n.next_multiple_of(4096);
    }
    let words = n.div_ceil(WORD).max(1);
    if words <= 8 {
        return words * WORD;
    }
    // The class is set by the top three bits of `words - 1`.
    let top_bit = (words - 1).ilog2();
    let step = 1usize << (top_bit - 2);
    ((words - 1) / step + 1) * step * WORD
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
                for value in ["", "{\"a\":1}", &"z".repeat(70_000)] {
                    let mut e = Entry::new(key, value, at, 7);
                    assert_eq!(e.key(), key);
                    assert_eq!(e.value(), value);
                    assert_eq!(e.expires_at(), at);
                    assert_eq!(e.last_access(), 7);
                    e.touch(u32::MAX);
                    assert_eq!(e.last_access(), u32::MAX);
                    assert_eq!((e.key(), e.value(), e.expires_at()), (key, value, at));
                }
            }
        }
    }

    #[test]
    fn a_small_entry_is_one_small_allocation_behind_one_pointer() {
        let e = Entry::new("key:00000001", &format!("\"{}\"", "v".repeat(32)), None, 0);
        // Length prefix, flags, access clock, key length, key, value.
        assert_eq!(e.0.allocation_len(), 1 + 1 + 4 + 1 + 12 + 34);
        assert_eq!(e.size(), 56 + ENTRY_OVERHEAD);
        assert_eq!(size_of::<Entry>(), 8);
    }

    #[test]
    fn a_deadline_and_its_index_are_paid_only_by_keys_with_a_ttl() {
        let plain = Entry::new("key", "1", None, 0);
        let timed = Entry::new("key", "1", NonZeroU64::new(5), 0);
        assert_eq!(timed.0.allocation_len(), plain.0.allocation_len() + 8);
        assert_eq!(
            timed.size(),
            allocated(timed.0.allocation_len()) + ENTRY_OVERHEAD + TTL_INDEX_OVERHEAD + 3
        );
    }

    #[test]
    fn allocations_round_up_to_mimallocs_size_classes() {
        let classes = [
            (1, 8),
            (8, 8),
            (9, 16),
            (52, 56),
            (53, 56),
            (56, 56),
            (57, 64),
            (64, 64),
            (65, 80),
            (80, 80),
            (81, 96),
            (113, 128),
            (129, 160),
            (161, 192),
            (257, 320),
            (9232, 10240),
            (17424, 20480),
            (512 * 1024, 512 * 1024),
            (512 * 1024 + 1, 516 * 1024),
        ];
        for (n, class) in classes {
            assert_eq!(allocated(n), class, "{n} bytes");
        }
    }
}
