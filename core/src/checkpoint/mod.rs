//! Signed tree heads of the central access log: C2SP checkpoints
//! (<https://c2sp.org/tlog-checkpoint>) in C2SP signed notes (<https://c2sp.org/signed-note>)
//! with Ed25519 keys.
//!
//! A checkpoint body is three lines and optional extension lines, each ending in a newline:
//!
//! ```text
//! <origin>
//! <tree size, decimal, no leading zeros>
//! <root hash, standard padded base64 of 32 bytes>
//! ```
//!
//! The signed note is the body, a blank line, and one line per signature:
//! `— <key name> <base64(key id || 64-byte Ed25519 signature)>`, where the key id is
//! `SHA-256(key name || 0x0A || 0x01 || public key)[:4]`. Verifiers are configured with the
//! text form of a key, `<name>+<hex key id>+<base64(0x01 || public key)>`
//! ([`NoteVerifier::from_vkey`]). The catalog signs with its origin as the key name, as the
//! checkpoint spec recommends.
//!
//! [`open_checkpoint`] checks, in order, and refuses with an error that names the check: the
//! note's size and characters, its shape (text, blank line, signature lines), each signature
//! line's syntax, that a signature by the verifier's key is present, that every signature by
//! that key verifies (`verify_strict`), and only then the body, which is parsed strictly.
//! Signatures by other keys (witnesses, a rotated key) are ignored, as the spec requires.
//! The caller compares [`Checkpoint::origin`] with the log it expects: the signature says who
//! signed, the origin which log the head belongs to.
//!
//! Extension lines are kept, in order, in [`Checkpoint::extensions`], so that a verified
//! checkpoint carries everything that was signed; the catalog writes none (the spec does
//! not recommend them).
//!
//! # Why our own code and not `signed_note`
//!
//! `signed_note` 0.2.0 (Cloudflare azul's port of Go's `sumdb/note`) is built on
//! ed25519-dalek 2 and rand_core 0.6, while the rest of Exchange uses ed25519-dalek 3, so
//! our keys would cross the API as raw bytes; it verifies with plain `verify`, not
//! `verify_strict`; and it reports most refusals as one `MalformedNote`. The format is small,
//! so it is written here on ed25519-dalek 3, following the spec and Go's behaviour (split at
//! the last blank line, at most 100 signatures and 1 MB, unknown signatures ignored, a bad
//! signature by the known key rejects the note). The tests pin it to known answers from
//! `signed_note`'s and Go's documentation, the C2SP spec and a real `sum.golang.org` tree head.

mod note;

#[cfg(test)]
mod tests;

use std::fmt::Write as _;

use crate::merkle::Hash;

pub use note::{KeyError, MAX_NOTE_SIZE, MAX_SIGNATURES, NoteError, NoteSigner, NoteVerifier, open_note, sign_note};

/// Checkpoint bodies longer than this, in bytes, are refused.
pub const MAX_BODY_SIZE: usize = 65_536;

/// A tree head: the log's origin, its size and its root hash, and any extension lines.
///
/// Every `Checkpoint` is well-formed: the constructors check what [`Checkpoint::parse_body`]
/// checks, so `parse_body(c.to_body()) == c`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Checkpoint {
    origin: String,
    size: u64,
    root: Hash,
    extensions: Vec<String>,
}

/// Why a checkpoint could not be built, parsed or opened.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CheckpointError {
    /// The signed note around the body was refused.
    #[error(transparent)]
    Note(#[from] NoteError),
    /// The body is longer than [`MAX_BODY_SIZE`].
    #[error("checkpoint body is {size} bytes, more than the limit of {max}")]
    TooLarge {
        /// The size in bytes.
        size: usize,
        /// The limit.
        max: usize,
    },
    /// The body does not end with a newline.
    #[error("checkpoint body does not end with a newline")]
    MissingFinalNewline,
    /// The body has fewer than the three lines origin, size and root.
    #[error("checkpoint body has {lines} line(s); it needs origin, tree size and root hash")]
    TooFewLines {
        /// The number of lines found.
        lines: usize,
    },
    /// A line holds an ASCII control character (or, in an argument, a newline).
    #[error("checkpoint line {line} contains a control character")]
    ControlCharacter {
        /// The line, counting from 1 (1 is the origin, 4 the first extension line).
        line: usize,
    },
    /// The origin line is empty.
    #[error("checkpoint origin is empty")]
    EmptyOrigin,
    /// The tree size line is not a decimal `u64` without leading zeros.
    #[error("checkpoint tree size {found:?} is not a decimal number without leading zeros")]
    InvalidSize {
        /// The line found (at most 40 characters of it).
        found: String,
    },
    /// The root hash line is not the standard padded base64 of 32 bytes.
    #[error("checkpoint root hash {found:?} is not the standard padded base64 of 32 bytes")]
    InvalidRoot {
        /// The line found (at most 40 characters of it).
        found: String,
    },
    /// An extension line is empty.
    #[error("checkpoint extension line {line} is empty")]
    EmptyExtensionLine {
        /// The line, counting from 1 (the first extension line is 4).
        line: usize,
    },
}

/// At most 40 characters of untrusted text, for an error message.
fn excerpt(text: &str) -> String {
    let mut chars = text.chars();
    let mut out: String = chars.by_ref().take(40).collect();
    if chars.next().is_some() {
        out.push('…');
    }
    out
}

fn check_line(line: &str, number: usize) -> Result<(), CheckpointError> {
    if line.chars().any(|c| c < ' ') {
        return Err(CheckpointError::ControlCharacter { line: number });
    }
    Ok(())
}

fn parse_size(line: &str) -> Result<u64, CheckpointError> {
    let invalid = || CheckpointError::InvalidSize { found: excerpt(line) };
    let canonical =
        !line.is_empty() && line.bytes().all(|b| b.is_ascii_digit()) && (line == "0" || !line.starts_with('0'));
    if !canonical {
        return Err(invalid());
    }
    line.parse().map_err(|_| invalid())
}

impl Checkpoint {
    /// A checkpoint without extension lines. The origin must be non-empty and hold no
    /// control character (newline included).
    pub fn new(origin: impl Into<String>, size: u64, root: Hash) -> Result<Self, CheckpointError> {
        let origin = origin.into();
        if origin.is_empty() {
            return Err(CheckpointError::EmptyOrigin);
        }
        check_line(&origin, 1)?;
        let checkpoint = Self { origin, size, root, extensions: Vec::new() };
        checkpoint.check_size()?;
        Ok(checkpoint)
    }

    /// The same checkpoint with these extension lines (replacing any), each non-empty and
    /// without control characters. The spec does not recommend them: log monitors cannot
    /// audit them.
    pub fn with_extensions<I, S>(mut self, lines: I) -> Result<Self, CheckpointError>
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.extensions = lines.into_iter().map(Into::into).collect();
        for (i, line) in self.extensions.iter().enumerate() {
            if line.is_empty() {
                return Err(CheckpointError::EmptyExtensionLine { line: i + 4 });
            }
            check_line(line, i + 4)?;
        }
        self.check_size()?;
        Ok(self)
    }

    fn check_size(&self) -> Result<(), CheckpointError> {
        let size = self.to_body().len();
        if size > MAX_BODY_SIZE {
            return Err(CheckpointError::TooLarge { size, max: MAX_BODY_SIZE });
        }
        Ok(())
    }

    /// The log's origin, a unique name of the log (by convention a schema-less URL).
    pub fn origin(&self) -> &str {
        &self.origin
    }

    /// The number of leaves in the tree.
    pub fn size(&self) -> u64 {
        self.size
    }

    /// The root hash of the tree of that size.
    pub fn root(&self) -> Hash {
        self.root
    }

    /// The extension lines, in order, without their newlines.
    pub fn extensions(&self) -> &[String] {
        &self.extensions
    }

    /// The note text: `<origin>\n<size>\n<base64 root>\n`, then each extension line and a
    /// newline.
    pub fn to_body(&self) -> String {
        let mut body = String::with_capacity(self.origin.len() + 70);
        // Writing to a String cannot fail.
        let _ = write!(body, "{}\n{}\n{}\n", self.origin, self.size, self.root.to_base64());
        for line in &self.extensions {
            body.push_str(line);
            body.push('\n');
        }
        body
    }

    /// Parses a checkpoint body strictly: at least three lines, each ending in a newline; a
    /// non-empty origin; a decimal size without leading zeros that fits a `u64`; a root that
    /// is the standard padded base64 of exactly 32 bytes; non-empty extension lines; no
    /// control characters; at most [`MAX_BODY_SIZE`] bytes.
    pub fn parse_body(body: &str) -> Result<Self, CheckpointError> {
        if body.len() > MAX_BODY_SIZE {
            return Err(CheckpointError::TooLarge { size: body.len(), max: MAX_BODY_SIZE });
        }
        let lines = body.strip_suffix('\n').ok_or(CheckpointError::MissingFinalNewline)?;
        let lines: Vec<&str> = lines.split('\n').collect();
        let [origin, size, root, extensions @ ..] = lines.as_slice() else {
            return Err(CheckpointError::TooFewLines { lines: lines.len() });
        };
        for (i, line) in lines.iter().enumerate() {
            check_line(line, i + 1)?;
        }
        if origin.is_empty() {
            return Err(CheckpointError::EmptyOrigin);
        }
        let size = parse_size(size)?;
        let root = Hash::from_base64(root).map_err(|_| CheckpointError::InvalidRoot { found: excerpt(root) })?;
        if let Some(i) = extensions.iter().position(|line| line.is_empty()) {
            return Err(CheckpointError::EmptyExtensionLine { line: i + 4 });
        }
        Ok(Self {
            origin: (*origin).to_owned(),
            size,
            root,
            extensions: extensions.iter().map(|&line| line.to_owned()).collect(),
        })
    }
}

/// Signs a checkpoint: returns the complete signed note, its body followed by a blank line
/// and the signer's signature line.
pub fn sign_checkpoint(checkpoint: &Checkpoint, signer: &NoteSigner) -> String {
    // A Checkpoint's body ends with a newline, holds no control character and is at most
    // MAX_BODY_SIZE bytes, so it is a valid note text.
    note::sign_valid_text(&checkpoint.to_body(), signer)
}

/// Opens a signed checkpoint: verifies the note with `verifier` ([`open_note`]), then parses
/// the signed body ([`Checkpoint::parse_body`]).
pub fn open_checkpoint(note: &str, verifier: &NoteVerifier) -> Result<Checkpoint, CheckpointError> {
    let body = open_note(note, verifier)?;
    Checkpoint::parse_body(body)
}
