//! Building ordered keys: big-endian integers and composite keys whose byte order is the order
//! of their parts.
//!
//! A composite key is a sequence of parts, each either a byte string (or UTF-8 string) or a
//! `u64`:
//!
//! - a byte-string part is written with every `0x00` escaped as `0x00 0xff`, then terminated by
//!   `0x00 0x01`. The terminator sorts below every continuation, so comparing two encoded keys
//!   byte by byte compares their parts one by one (`("a", "z") < ("a\0", "a") < ("ab", "a")`),
//!   and no part can run into the next one (`("ab", "c")` and `("a", "bc")` differ);
//! - a `u64` part is its 8 big-endian bytes (fixed width, so it needs no terminator).
//!
//! A key built from the leading parts only is a prefix of every key that has exactly those
//! leading parts, so [`ScanRange::prefix`](crate::ScanRange::prefix) on it lists them (the
//! holder `"A1"` does not match the holder `"A12"`).
//!
//! ```
//! use exchange_store::keys::{KeyBuilder, KeyReader};
//!
//! let key = KeyBuilder::new().str("91440300MA5").u64(7).build();
//! let mut reader = KeyReader::new(&key);
//! assert_eq!(reader.str()?, "91440300MA5");
//! assert_eq!(reader.u64()?, 7);
//! reader.finish()?;
//! # Ok::<(), exchange_store::keys::KeyError>(())
//! ```

/// The length of an encoded `u64`.
pub const U64_LEN: usize = 8;

const ESCAPE: u8 = 0x00;
const ESCAPED_ZERO: u8 = 0xff;
const TERMINATOR: u8 = 0x01;

/// Why bytes are not a well-formed key (a stored key that does not decode is corrupt).
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum KeyError {
    /// The key ends inside a part.
    #[error("key ends inside a part")]
    Truncated,
    /// A `0x00` inside a byte-string part is followed by neither `0xff` nor `0x01`.
    #[error("byte {0:#04x} after 0x00 in a key part")]
    BadEscape(u8),
    /// A string part is not UTF-8.
    #[error("key part is not UTF-8")]
    NotUtf8,
    /// Bytes remain after the last expected part.
    #[error("{0} unexpected bytes after the last key part")]
    Trailing(usize),
    /// A fixed-width value has the wrong length.
    #[error("expected {expected} bytes, found {found}")]
    Length {
        /// The length required.
        expected: usize,
        /// The length found.
        found: usize,
    },
}

/// Encodes `n` so that byte order is numeric order.
pub fn encode_u64(n: u64) -> [u8; U64_LEN] {
    n.to_be_bytes()
}

/// Decodes exactly 8 big-endian bytes.
pub fn decode_u64(bytes: &[u8]) -> Result<u64, KeyError> {
    <[u8; U64_LEN]>::try_from(bytes)
        .map(u64::from_be_bytes)
        .map_err(|_| KeyError::Length { expected: U64_LEN, found: bytes.len() })
}

/// The smallest key greater than every key that starts with `prefix`: the exclusive upper
/// bound of a prefix scan, or `None` when there is none (`prefix` empty or all `0xff`).
pub fn prefix_end(prefix: &[u8]) -> Option<Vec<u8>> {
    let last = prefix.iter().rposition(|&b| b != 0xff)?;
    let mut end = prefix[..=last].to_vec();
    end[last] += 1;
    Some(end)
}

/// Builds a composite key part by part (see the [module documentation](self)).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct KeyBuilder {
    buf: Vec<u8>,
}

impl KeyBuilder {
    /// An empty key.
    pub fn new() -> Self {
        Self::default()
    }

    /// Starts from raw bytes, written as they are (e.g. a fixed table prefix such as `b"h/"`).
    pub fn raw(bytes: &[u8]) -> Self {
        Self { buf: bytes.to_vec() }
    }

    /// Appends a byte-string part.
    pub fn bytes(mut self, part: &[u8]) -> Self {
        self.buf.reserve(part.len() + 2);
        for &b in part {
            self.buf.push(b);
            if b == ESCAPE {
                self.buf.push(ESCAPED_ZERO);
            }
        }
        self.buf.extend_from_slice(&[ESCAPE, TERMINATOR]);
        self
    }

    /// Appends a string part (its UTF-8 bytes).
    pub fn str(self, part: &str) -> Self {
        self.bytes(part.as_bytes())
    }

    /// Appends a `u64` part (8 bytes, big-endian).
    pub fn u64(mut self, n: u64) -> Self {
        self.buf.extend_from_slice(&encode_u64(n));
        self
    }

    /// The encoded key.
    pub fn build(self) -> Vec<u8> {
        self.buf
    }
}

/// Reads the parts of a composite key back, in the order they were built.
#[derive(Clone, Debug)]
pub struct KeyReader<'a> {
    rest: &'a [u8],
}

impl<'a> KeyReader<'a> {
    /// Starts reading at the beginning of `key`.
    pub fn new(key: &'a [u8]) -> Self {
        Self { rest: key }
    }

    /// Skips `prefix` (written with [`KeyBuilder::raw`]); `false`, reading nothing, if the
    /// key does not start with it.
    pub fn strip(&mut self, prefix: &[u8]) -> bool {
        match self.rest.strip_prefix(prefix) {
            Some(rest) => {
                self.rest = rest;
                true
            }
            None => false,
        }
    }

    /// Reads a byte-string part.
    pub fn bytes(&mut self) -> Result<Vec<u8>, KeyError> {
        let mut part = Vec::new();
        let mut i = 0;
        loop {
            let &b = self.rest.get(i).ok_or(KeyError::Truncated)?;
            if b != ESCAPE {
                part.push(b);
                i += 1;
                continue;
            }
            match self.rest.get(i + 1) {
                Some(&ESCAPED_ZERO) => {
                    part.push(ESCAPE);
                    i += 2;
                }
                Some(&TERMINATOR) => {
                    self.rest = &self.rest[i + 2..];
                    return Ok(part);
                }
                Some(&other) => return Err(KeyError::BadEscape(other)),
                None => return Err(KeyError::Truncated),
            }
        }
    }

    /// Reads a string part.
    pub fn str(&mut self) -> Result<String, KeyError> {
        String::from_utf8(self.bytes()?).map_err(|_| KeyError::NotUtf8)
    }

    /// Reads a `u64` part.
    pub fn u64(&mut self) -> Result<u64, KeyError> {
        let (head, rest) = self.rest.split_at_checked(U64_LEN).ok_or(KeyError::Truncated)?;
        self.rest = rest;
        decode_u64(head)
    }

    /// The bytes not read yet.
    pub fn rest(&self) -> &'a [u8] {
        self.rest
    }

    /// Checks that every byte was read.
    pub fn finish(self) -> Result<(), KeyError> {
        match self.rest.len() {
            0 => Ok(()),
            n => Err(KeyError::Trailing(n)),
        }
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    fn key(parts: &[&[u8]]) -> Vec<u8> {
        parts.iter().fold(KeyBuilder::new(), |b, p| b.bytes(p)).build()
    }

    #[test]
    fn u64_round_trip_and_order() {
        for n in [0, 1, 255, 256, u64::MAX - 1, u64::MAX] {
            assert_eq!(decode_u64(&encode_u64(n)), Ok(n));
        }
        assert!(encode_u64(255) < encode_u64(256));
        assert_eq!(decode_u64(&[1, 2, 3]), Err(KeyError::Length { expected: 8, found: 3 }));
    }

    #[test]
    fn prefix_end_cases() {
        assert_eq!(prefix_end(b"ab"), Some(b"ac".to_vec()));
        assert_eq!(prefix_end(&[1, 0xff, 0xff]), Some(vec![2]));
        assert_eq!(prefix_end(&[0xff, 0xff]), None);
        assert_eq!(prefix_end(b""), None);
    }

    #[test]
    fn parts_do_not_run_into_each_other() {
        assert_ne!(key(&[b"ab", b"c"]), key(&[b"a", b"bc"]));
        assert_ne!(key(&[b"a\0", b""]), key(&[b"a", b"\0"]));
        // A holder's prefix does not match a longer holder id.
        let prefix = KeyBuilder::new().str("A1").build();
        assert!(!KeyBuilder::new().str("A12").u64(1).build().starts_with(&prefix));
        assert!(KeyBuilder::new().str("A1").u64(1).build().starts_with(&prefix));
    }

    #[test]
    fn malformed_keys_are_errors() {
        assert_eq!(KeyReader::new(b"abc").bytes(), Err(KeyError::Truncated));
        assert_eq!(KeyReader::new(b"a\0").bytes(), Err(KeyError::Truncated));
        assert_eq!(KeyReader::new(b"a\0\x02").bytes(), Err(KeyError::BadEscape(2)));
        assert_eq!(KeyReader::new(b"\xff\0\x01").str(), Err(KeyError::NotUtf8));
        assert_eq!(KeyReader::new(&[0; 7]).u64(), Err(KeyError::Truncated));
        let mut reader = KeyReader::new(b"a\0\x01zz");
        assert_eq!(reader.bytes(), Ok(b"a".to_vec()));
        assert_eq!(reader.finish(), Err(KeyError::Trailing(2)));
    }

    #[test]
    fn raw_prefix_round_trip() {
        let key = KeyBuilder::raw(b"h/").str("x").u64(9).build();
        let mut reader = KeyReader::new(&key);
        assert!(!reader.strip(b"l/"));
        assert!(reader.strip(b"h/"));
        assert_eq!(reader.str(), Ok("x".to_owned()));
        assert_eq!(reader.u64(), Ok(9));
        assert_eq!(reader.finish(), Ok(()));
    }

    fn part() -> impl Strategy<Value = Vec<u8>> {
        // Few distinct bytes, so that zeros, 0xff and shared prefixes are common.
        prop::collection::vec(prop::sample::select(vec![0u8, 1, 2, 0xfe, 0xff]), 0..6)
    }

    proptest! {
        #[test]
        fn byte_parts_round_trip_and_keep_order(a in prop::collection::vec(part(), 1..4), b in prop::collection::vec(part(), 1..4)) {
            let (ka, kb) = (key(&a.iter().map(Vec::as_slice).collect::<Vec<_>>()), key(&b.iter().map(Vec::as_slice).collect::<Vec<_>>()));
            prop_assert_eq!(ka.cmp(&kb), a.cmp(&b));
            let mut reader = KeyReader::new(&ka);
            for expected in &a {
                prop_assert_eq!(&reader.bytes().map_err(|e| TestCaseError::fail(e.to_string()))?, expected);
            }
            prop_assert!(reader.finish().is_ok());
        }

        #[test]
        fn mixed_parts_keep_order(a in (part(), any::<u64>(), part()), b in (part(), any::<u64>(), part())) {
            let encode = |(s, n, t): &(Vec<u8>, u64, Vec<u8>)| KeyBuilder::new().bytes(s).u64(*n).bytes(t).build();
            prop_assert_eq!(encode(&a).cmp(&encode(&b)), a.cmp(&b));
        }
    }
}
