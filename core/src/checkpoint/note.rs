//! C2SP signed notes (<https://c2sp.org/signed-note>) with Ed25519 keys.

use std::fmt;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use ed25519_dalek::{Signature, Signer as _, SigningKey, VerifyingKey};
use sha2::{Digest as _, Sha256};

/// Notes longer than this, in bytes, are refused before any parsing (Go's `note` limit).
pub const MAX_NOTE_SIZE: usize = 1_000_000;

/// Notes with more signature lines than this are refused (Go's `note` limit; the spec asks
/// verifiers to accept at least 16).
pub const MAX_SIGNATURES: usize = 100;

/// The signature type identifier of Ed25519 in key ids and verifier keys.
const ALG_ED25519: u8 = 0x01;

/// What starts a signature line: an em dash (U+2014) and a space.
const SIGNATURE_PREFIX: &str = "\u{2014} ";

/// Why a note could not be signed or opened.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum NoteError {
    /// The note (or the note a text would make) is longer than [`MAX_NOTE_SIZE`].
    #[error("note is {size} bytes, more than the limit of {max}")]
    TooLarge {
        /// The size in bytes.
        size: usize,
        /// The limit.
        max: usize,
    },
    /// The note contains an ASCII control character other than newline.
    #[error("note line {line} contains a control character (only newline is allowed)")]
    ControlCharacter {
        /// The line, counting from 1.
        line: usize,
    },
    /// The text to sign does not end with a newline.
    #[error("note text must end with a newline")]
    TextNotNewlineTerminated,
    /// No blank line separates the text from the signature lines.
    #[error("note has no blank line separating the text from the signatures")]
    MissingSignatureBlock,
    /// There are no signature lines after the blank line, or they do not end with a newline.
    #[error("note has no newline-terminated signature lines after the blank line")]
    NoSignatureLines,
    /// There are more signature lines than [`MAX_SIGNATURES`].
    #[error("note has {count} signature lines, more than the limit of {max}")]
    TooManySignatures {
        /// The number of signature lines.
        count: usize,
        /// The limit.
        max: usize,
    },
    /// A signature line is not `— <key name> <base64>` with at least 5 signature bytes.
    #[error("signature line {line} is malformed: {reason}")]
    MalformedSignatureLine {
        /// The signature line, counting from 1.
        line: usize,
        /// What is wrong with it.
        reason: &'static str,
    },
    /// No signature line is by the verifier's key (same key name and key id).
    #[error("note has no signature by key {name}+{key_id:08x} (signed by: {signed_by})")]
    NoSignatureByKey {
        /// The verifier's key name.
        name: String,
        /// The verifier's key id.
        key_id: u32,
        /// The keys that did sign, as `name+keyid`, comma-separated (at most 8 listed).
        signed_by: String,
    },
    /// A signature by the verifier's key does not verify (Ed25519 `verify_strict`).
    #[error("signature by key {name}+{key_id:08x} does not verify")]
    BadSignature {
        /// The verifier's key name.
        name: String,
        /// The verifier's key id.
        key_id: u32,
    },
}

/// Why a key name or a verifier key was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum KeyError {
    /// Key names must be non-empty, without spaces, plus signs or control characters.
    #[error("key name {name:?} is empty or contains a space, a plus sign or a control character")]
    InvalidName {
        /// The name refused.
        name: String,
    },
    /// A verifier key is `<name>+<key id>+<base64 key>`.
    #[error("verifier key is not <name>+<key id>+<base64 key>")]
    VkeyFormat,
    /// The key id of a verifier key is not 8 lowercase hex digits.
    #[error("verifier key id {found:?} is not 8 lowercase hex digits")]
    InvalidKeyId {
        /// The text found.
        found: String,
    },
    /// The key of a verifier key is not standard padded base64.
    #[error("verifier key material is not standard padded base64")]
    InvalidBase64,
    /// The signature type is not Ed25519 (0x01).
    #[error("unsupported signature type 0x{0:02x}; only 0x01 (Ed25519) is supported")]
    UnsupportedAlgorithm(u8),
    /// The Ed25519 public key is not 32 bytes.
    #[error("Ed25519 public key is {0} bytes, expected 32")]
    WrongKeyLength(usize),
    /// The bytes are not an Ed25519 public key (not a curve point).
    #[error("not a valid Ed25519 public key")]
    InvalidPublicKey,
    /// The public key is of small order, which would let signatures verify for any message.
    #[error("Ed25519 public key is weak (of small order)")]
    WeakPublicKey,
    /// The stated key id is not the one computed from the name and the key.
    #[error("verifier key id {stated:08x} does not match {computed:08x}, computed from its name and key")]
    KeyIdMismatch {
        /// The key id written in the verifier key.
        stated: u32,
        /// The key id of the name and key.
        computed: u32,
    },
}

/// Whether `name` may be a key name: non-empty, no Unicode space, no plus, no control
/// character.
fn is_valid_key_name(name: &str) -> bool {
    !name.is_empty() && !name.chars().any(|c| c.is_whitespace() || c == '+' || c.is_control())
}

fn check_key_name(name: &str) -> Result<(), KeyError> {
    if is_valid_key_name(name) { Ok(()) } else { Err(KeyError::InvalidName { name: name.to_owned() }) }
}

/// `SHA-256(name || 0x0A || 0x01 || public key)[:4]`, big-endian.
fn ed25519_key_id(name: &str, key: &VerifyingKey) -> u32 {
    let mut hasher = Sha256::new();
    hasher.update(name.as_bytes());
    hasher.update([b'\n', ALG_ED25519]);
    hasher.update(key.as_bytes());
    let digest = hasher.finalize();
    u32::from_be_bytes([digest[0], digest[1], digest[2], digest[3]])
}

/// Signs notes with a named Ed25519 key. Its `Debug` shows the name and key id, never the
/// private key.
#[derive(Clone)]
pub struct NoteSigner {
    name: String,
    key_id: u32,
    key: SigningKey,
}

impl NoteSigner {
    /// A signer for the key name `name` (for a checkpoint, the log's origin).
    pub fn new(name: impl Into<String>, key: SigningKey) -> Result<Self, KeyError> {
        let name = name.into();
        check_key_name(&name)?;
        let key_id = ed25519_key_id(&name, &key.verifying_key());
        Ok(Self { name, key_id, key })
    }

    /// The key name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The key id.
    pub fn key_id(&self) -> u32 {
        self.key_id
    }

    /// The verifier of this signer's signatures.
    pub fn verifier(&self) -> NoteVerifier {
        NoteVerifier { name: self.name.clone(), key_id: self.key_id, key: self.key.verifying_key() }
    }

    /// The signature line for `text`, with its final newline.
    fn signature_line(&self, text: &str) -> String {
        let signature = self.key.sign(text.as_bytes());
        let mut bytes = Vec::with_capacity(4 + Signature::BYTE_SIZE);
        bytes.extend_from_slice(&self.key_id.to_be_bytes());
        bytes.extend_from_slice(&signature.to_bytes());
        format!("{SIGNATURE_PREFIX}{} {}\n", self.name, STANDARD.encode(bytes))
    }
}

impl fmt::Debug for NoteSigner {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("NoteSigner")
            .field("name", &self.name)
            .field("key_id", &format_args!("{:08x}", self.key_id))
            .finish_non_exhaustive()
    }
}

/// Verifies the signatures of one named Ed25519 key. Its text form is the C2SP verifier key
/// `<name>+<hex key id>+<base64(0x01 || public key)>`.
#[derive(Clone, PartialEq, Eq)]
pub struct NoteVerifier {
    name: String,
    key_id: u32,
    key: VerifyingKey,
}

impl NoteVerifier {
    /// A verifier for the key name `name` and public key `key`. Weak (small-order) keys are
    /// refused.
    pub fn new(name: impl Into<String>, key: VerifyingKey) -> Result<Self, KeyError> {
        let name = name.into();
        check_key_name(&name)?;
        if key.is_weak() {
            return Err(KeyError::WeakPublicKey);
        }
        let key_id = ed25519_key_id(&name, &key);
        Ok(Self { name, key_id, key })
    }

    /// Parses a verifier key, `<name>+<8 lowercase hex digits>+<base64(0x01 || key)>`, and
    /// checks that the key id is the one of the name and key.
    pub fn from_vkey(vkey: &str) -> Result<Self, KeyError> {
        // The name has no plus and the id is hex, so the first two pluses split; the
        // base64 key may contain more.
        let mut parts = vkey.splitn(3, '+');
        let (Some(name), Some(id), Some(key)) = (parts.next(), parts.next(), parts.next()) else {
            return Err(KeyError::VkeyFormat);
        };
        check_key_name(name)?;
        let stated = parse_key_id(id).ok_or_else(|| KeyError::InvalidKeyId { found: id.chars().take(16).collect() })?;
        let bytes = STANDARD.decode(key).map_err(|_| KeyError::InvalidBase64)?;
        let Some((&alg, public)) = bytes.split_first() else {
            return Err(KeyError::WrongKeyLength(0));
        };
        if alg != ALG_ED25519 {
            return Err(KeyError::UnsupportedAlgorithm(alg));
        }
        let public: &[u8; 32] = public.try_into().map_err(|_| KeyError::WrongKeyLength(public.len()))?;
        let key = VerifyingKey::from_bytes(public).map_err(|_| KeyError::InvalidPublicKey)?;
        let verifier = Self::new(name, key)?;
        if verifier.key_id != stated {
            return Err(KeyError::KeyIdMismatch { stated, computed: verifier.key_id });
        }
        Ok(verifier)
    }

    /// The verifier key text, `<name>+<key id>+<base64(0x01 || key)>`.
    pub fn to_vkey(&self) -> String {
        let mut bytes = Vec::with_capacity(33);
        bytes.push(ALG_ED25519);
        bytes.extend_from_slice(self.key.as_bytes());
        format!("{}+{:08x}+{}", self.name, self.key_id, STANDARD.encode(bytes))
    }

    /// The key name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The key id: `SHA-256(name || 0x0A || 0x01 || public key)[:4]`, big-endian.
    pub fn key_id(&self) -> u32 {
        self.key_id
    }

    /// The Ed25519 public key.
    pub fn verifying_key(&self) -> &VerifyingKey {
        &self.key
    }
}

impl fmt::Debug for NoteVerifier {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "NoteVerifier({})", self.to_vkey())
    }
}

fn parse_key_id(id: &str) -> Option<u32> {
    if id.len() != 8 || !id.bytes().all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b)) {
        return None;
    }
    u32::from_str_radix(id, 16).ok()
}

/// The first line (counting from 1) of `text` with an ASCII control character other than
/// newline.
fn control_character_line(text: &str) -> Option<usize> {
    text.split('\n').position(|line| line.chars().any(|c| c < ' ')).map(|i| i + 1)
}

/// Signs `text` (which must end with a newline and hold no control character but newline)
/// and returns the signed note: the text, a blank line and one signature line.
pub fn sign_note(text: &str, signer: &NoteSigner) -> Result<String, NoteError> {
    if !text.ends_with('\n') {
        return Err(NoteError::TextNotNewlineTerminated);
    }
    if let Some(line) = control_character_line(text) {
        return Err(NoteError::ControlCharacter { line });
    }
    let note = sign_valid_text(text, signer);
    if note.len() > MAX_NOTE_SIZE {
        return Err(NoteError::TooLarge { size: note.len(), max: MAX_NOTE_SIZE });
    }
    Ok(note)
}

/// [`sign_note`] for a text already known to be valid and small.
pub(super) fn sign_valid_text(text: &str, signer: &NoteSigner) -> String {
    let line = signer.signature_line(text);
    let mut note = String::with_capacity(text.len() + 1 + line.len());
    note.push_str(text);
    note.push('\n');
    note.push_str(&line);
    note
}

/// One parsed signature line.
struct SignatureLine<'a> {
    name: &'a str,
    key_id: u32,
    signature: Vec<u8>,
}

fn parse_signature_line(line: &str) -> Result<SignatureLine<'_>, &'static str> {
    let rest = line.strip_prefix(SIGNATURE_PREFIX).ok_or("it does not start with an em dash (U+2014) and a space")?;
    let (name, encoded) = rest.split_once(' ').ok_or("it has no space between the key name and the signature")?;
    if !is_valid_key_name(name) {
        return Err("the key name is empty or contains a space or a plus sign");
    }
    let bytes = STANDARD.decode(encoded).map_err(|_| "the signature is not standard padded base64")?;
    let [a, b, c, d, signature @ ..] = bytes.as_slice() else {
        return Err("the signature is shorter than a key id");
    };
    if signature.is_empty() {
        return Err("the signature has a key id but no signature bytes");
    }
    Ok(SignatureLine { name, key_id: u32::from_be_bytes([*a, *b, *c, *d]), signature: signature.to_vec() })
}

/// Opens a signed note: checks its syntax, then that it carries a signature by `verifier`'s
/// key and that every signature by that key verifies (Ed25519 `verify_strict`), and returns
/// the signed text (with its final newline).
///
/// Signatures by other keys, even with the same name or the same key id (not both), are
/// ignored, as the spec requires, but they must be well-formed.
pub fn open_note<'a>(note: &'a str, verifier: &NoteVerifier) -> Result<&'a str, NoteError> {
    if note.len() > MAX_NOTE_SIZE {
        return Err(NoteError::TooLarge { size: note.len(), max: MAX_NOTE_SIZE });
    }
    if let Some(line) = control_character_line(note) {
        return Err(NoteError::ControlCharacter { line });
    }
    let split = note.rfind("\n\n").ok_or(NoteError::MissingSignatureBlock)?;
    let (text, block) = (&note[..=split], &note[split + 2..]);
    let lines = block.strip_suffix('\n').filter(|lines| !lines.is_empty()).ok_or(NoteError::NoSignatureLines)?;
    let count = lines.split('\n').count();
    if count > MAX_SIGNATURES {
        return Err(NoteError::TooManySignatures { count, max: MAX_SIGNATURES });
    }
    let mut signatures = Vec::with_capacity(count);
    for (i, line) in lines.split('\n').enumerate() {
        let parsed =
            parse_signature_line(line).map_err(|reason| NoteError::MalformedSignatureLine { line: i + 1, reason })?;
        signatures.push(parsed);
    }

    let mut verified = false;
    for signature in &signatures {
        if signature.name != verifier.name || signature.key_id != verifier.key_id {
            continue;
        }
        let bad = || NoteError::BadSignature { name: verifier.name.clone(), key_id: verifier.key_id };
        let bytes: &[u8; Signature::BYTE_SIZE] = signature.signature.as_slice().try_into().map_err(|_| bad())?;
        verifier.key.verify_strict(text.as_bytes(), &Signature::from_bytes(bytes)).map_err(|_| bad())?;
        verified = true;
    }
    if !verified {
        return Err(NoteError::NoSignatureByKey {
            name: verifier.name.clone(),
            key_id: verifier.key_id,
            signed_by: signatures
                .iter()
                .take(8)
                .map(|s| format!("{}+{:08x}", s.name, s.key_id))
                .collect::<Vec<_>>()
                .join(", "),
        });
    }
    Ok(text)
}
