//! A byte string held behind one thin pointer: the 8-byte handle that the
//! store's hash table keeps for each entry.
//!
//! Why not a `Box<[u8]>`: a boxed slice is a pointer and a length, 16
//! bytes, and the table holds one in every slot, used or not. At the
//! table's usual load (0.6) that was 27 bytes of table per key, a quarter
//! of what a small key cost (docs/BENCHMARKS.md, "Memory"). Here the length
//! is written at the start of the allocation itself, as a LEB128 varint
//! (one byte for strings under 128 bytes), so the handle is the pointer
//! alone: an 8-byte slot, and `Option<ThinBytes>` is 8 bytes too.
//!
//! Layout of the allocation: `[n: LEB128][n bytes]`. It is a `Box<[u8]>`
//! of exactly that length, turned into a raw pointer by [`ThinBytes::new`]
//! and back into the box by `drop`; the only unsafe code of the store's
//! entries is here, and each block says why it is sound.

use std::ptr::NonNull;

pub(crate) struct ThinBytes(NonNull<u8>);

// SAFETY: a `ThinBytes` owns its allocation alone, as the `Box<[u8]>` it
// was made from did: shared references only read it, and writing needs
// `&mut self`. So it may move to and be shared with other threads exactly
// as a `Box<[u8]>` may.
unsafe impl Send for ThinBytes {}
unsafe impl Sync for ThinBytes {}

impl ThinBytes {
    /// A string of `len` bytes, which `fill` appends to the vector it is
    /// given (which already holds the length prefix).
    ///
    /// # Panics
    /// If `fill` appends anything other than `len` bytes: the prefix must
    /// tell the truth, or reading and freeing would go out of bounds.
    pub fn new(len: usize, fill: impl FnOnce(&mut Vec<u8>)) -> ThinBytes {
        let total = varint_len(len) + len;
        let mut buf = Vec::with_capacity(total);
        push_varint(&mut buf, len);
        fill(&mut buf);
        assert_eq!(
            buf.len(),
            total,
            "ThinBytes::new: fill wrote the wrong length"
        );
        // The capacity is exactly the length, so this does not reallocate;
        // the box is never empty (the prefix is at least one byte), so its
        // pointer is a real allocation.
        let raw = Box::into_raw(buf.into_boxed_slice()).cast::<u8>();
        ThinBytes(NonNull::new(raw).expect("a box is never null"))
    }

    /// (length of the prefix, length of the string)
    fn header(&self) -> (usize, usize) {
        let mut len = 0usize;
        let mut i = 0;
        loop {
            // SAFETY: the allocation starts with the complete varint that
            // `new` wrote; each byte read here is one of its bytes (the
            // loop stops at the first byte without the continuation bit,
            // its last), so it lies inside the live allocation we own.
            let byte = unsafe { *self.0.as_ptr().add(i) };
            len |= ((byte & 0x7f) as usize) << (7 * i);
            i += 1;
            if byte & 0x80 == 0 {
                return (i, len);
            }
        }
    }

    /// Bytes taken by the allocation: the prefix and the string.
    pub fn allocation_len(&self) -> usize {
        let (prefix, len) = self.header();
        prefix + len
    }

    pub fn as_slice(&self) -> &[u8] {
        let (prefix, len) = self.header();
        // SAFETY: the allocation holds `prefix + len` initialized bytes
        // (`new` checked it), is owned by `self` and lives as long as it;
        // the borrow of `self` keeps anyone from writing meanwhile.
        unsafe { std::slice::from_raw_parts(self.0.as_ptr().add(prefix), len) }
    }

    pub fn as_mut_slice(&mut self) -> &mut [u8] {
        let (prefix, len) = self.header();
        // SAFETY: as in `as_slice`; `&mut self` makes this the only
        // reference to the bytes while it lives.
        unsafe { std::slice::from_raw_parts_mut(self.0.as_ptr().add(prefix), len) }
    }
}

impl Drop for ThinBytes {
    fn drop(&mut self) {
        let total = self.allocation_len();
        let raw = std::ptr::slice_from_raw_parts_mut(self.0.as_ptr(), total);
        // SAFETY: `raw` is the pointer and length of the `Box<[u8]>` that
        // `new` released with `Box::into_raw`; it is rebuilt once, here,
        // and nothing reads it afterwards.
        drop(unsafe { Box::from_raw(raw) });
    }
}

pub(crate) fn varint_len(mut n: usize) -> usize {
    let mut len = 1;
    while n >= 0x80 {
        n >>= 7;
        len += 1;
    }
    len
}

pub(crate) fn push_varint(out: &mut Vec<u8>, mut n: usize) {
    while n >= 0x80 {
        out.push((n as u8) | 0x80);
        n >>= 7;
    }
    out.push(n as u8);
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Lengths around every width of the prefix (1, 2 and 3 bytes).
    const LENGTHS: [usize; 9] = [0, 1, 127, 128, 129, 16_383, 16_384, 16_385, 300_000];

    #[test]
    fn holds_and_frees_strings_of_every_prefix_width() {
        for len in LENGTHS {
            let bytes: Vec<u8> = (0..len).map(|i| (i * 7 + len) as u8).collect();
            let mut thin = ThinBytes::new(len, |buf| buf.extend_from_slice(&bytes));
            assert_eq!(thin.as_slice(), &bytes[..], "length {len}");
            assert_eq!(thin.allocation_len(), varint_len(len) + len);
            if len > 0 {
                thin.as_mut_slice()[len - 1] ^= 0xff;
                assert_eq!(thin.as_slice()[len - 1], bytes[len - 1] ^ 0xff);
                assert_eq!(thin.as_slice()[..len - 1], bytes[..len - 1]);
            }
        }
    }

    #[test]
    fn the_handle_is_one_pointer() {
        assert_eq!(size_of::<ThinBytes>(), 8);
        assert_eq!(size_of::<Option<ThinBytes>>(), 8);
    }

    #[test]
    fn moves_between_threads() {
        let thin = ThinBytes::new(3, |buf| buf.extend_from_slice(b"abc"));
        let back = std::thread::spawn(move || thin).join().unwrap();
        assert_eq!(back.as_slice(), b"abc");
    }

    #[test]
    #[should_panic(expected = "wrong length")]
    fn a_fill_of_the_wrong_length_is_refused() {
        ThinBytes::new(3, |buf| buf.extend_from_slice(b"ab"));
    }

    #[test]
    fn varint_lengths_match_what_is_written() {
        for len in LENGTHS.into_iter().chain([usize::MAX]) {
            let mut out = Vec::new();
            push_varint(&mut out, len);
            assert_eq!(out.len(), varint_len(len), "{len}");
        }
    }
}
