use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use ed25519_dalek::{SigningKey, VerifyingKey};
use proptest::prelude::*;

use super::*;
use crate::merkle::leaf_hash;

// Known answers from other implementations.

/// The signed-note example of Go's `golang.org/x/mod/sumdb/note` documentation, as
/// `signed_note` 0.2.0 repeats it in its docs and tests: the private key, the verifier key,
/// the text and its signature.
const PETER_SKEY: &str = "PRIVATE+KEY+PeterNeumann+c74f20a3+AYEKFALVFGyNhPJEMzD1QIDr+Y7hfZx09iUvxdXHKDFz";
const PETER_VKEY: &str = "PeterNeumann+c74f20a3+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW";
const PETER_TEXT: &str = "If you think cryptography is the answer to your problem,\n\
                          then you don't know what your problem is.\n";
const PETER_SIG: &str =
    "— PeterNeumann x08go/ZJkuBS9UG/SffcvIAQxVBtiFupLLr8pAcElZInNIuGUgYN1FFYC2pZSNXgKvqfqdngotpRZb6KE6RyyBwJnAM=\n";
/// The same docs' second signer, whose key is generated from an all-zero seed.
const ENOCH_VKEY: &str = "EnochRoot+af0cfe78+ATtqJ7zOtqQtYqOo0CpvDXNlMhV3HeJDpjrASKGLWdop";
const ENOCH_SIG: &str =
    "— EnochRoot rwz+eBzmZa0SO3NbfRGzPCpDckykFXSdeX+MNtCOXm2/5n2tiOHp+vAF1aGrQ5ovTG01oOTGwnWLox33WWd1RvMc+QQ=\n";

/// The example of the C2SP signed-note spec (c2sp.org/signed-note, "Verifier keys").
const C2SP_VKEY: &str = "example.com/foo+530d903a+AekyeRrm56hApGFkyQR4ZCbV54Id2LKaANYcrnKv3U2k";
const C2SP_NOTE: &str = "This is an example message.\n\n— example.com/foo Uw2QOkn8srV1yJGh2VYRlL1Tnagv1YEq6TfXppzi2ONncAlTgK7Ztg1ERYNZXsYjOBH3mFXmRKuwHjG1Yu72IneyaQM=\n";

/// A real tree head of the Go checksum database, with its published verifier key, as
/// transparency-dev/formats `log/note_test.go` (`TestSumDBNoteParsing`) checks it.
const SUMDB_VKEY: &str = "sum.golang.org+033de0ae+Ac4zctda0e5eza+HJyk9SxEdh+s3Ux18htTTAD8OuAn8";
const SUMDB_NOTE: &str = "go.sum database tree\n6476701\nmb8QLQIs0Z0yP5Cstq6guj87oXWeC9gEM8oVikmm9Wk=\n\n— sum.golang.org Az3grsLX85Gz+s1SiTbgkuqxgItqFq7gsMUEyVnrsa9LM7Us9S+1xbFIGu95949rj4nPRYfvimWEPWL+o3GeoWwOoAw=\n";

fn peter() -> NoteSigner {
    let (name, key) =
        PETER_SKEY.strip_prefix("PRIVATE+KEY+").and_then(|rest| rest.split_once('+')).expect("PRIVATE+KEY form");
    let bytes = STANDARD.decode(key.split_once('+').expect("separator").1).expect("base64");
    assert_eq!(bytes[0], 0x01);
    NoteSigner::new(name, SigningKey::from_bytes(&bytes[1..].try_into().expect("32 bytes"))).expect("valid")
}

fn enoch() -> NoteSigner {
    NoteSigner::new("EnochRoot", SigningKey::from_bytes(&[0; 32])).expect("valid")
}

fn signer(seed: u8, name: &str) -> NoteSigner {
    NoteSigner::new(name, SigningKey::from_bytes(&[seed; 32])).expect("valid")
}

#[test]
fn go_note_known_answers() {
    let peter = peter();
    assert_eq!(peter.key_id(), 0xc74f20a3);
    assert_eq!(peter.verifier().to_vkey(), PETER_VKEY);
    assert_eq!(NoteVerifier::from_vkey(PETER_VKEY).expect("valid vkey"), peter.verifier());
    let signed = sign_note(PETER_TEXT, &peter).expect("sign_note");
    assert_eq!(signed, format!("{PETER_TEXT}\n{PETER_SIG}"));

    let enoch = enoch();
    assert_eq!(enoch.verifier().to_vkey(), ENOCH_VKEY);
    assert_eq!(sign_note(PETER_TEXT, &enoch).expect("sign_note"), format!("{PETER_TEXT}\n{ENOCH_SIG}"));

    // The doubly signed note of the same docs opens with either key, and with a key that
    // did not sign it does not.
    let both = format!("{PETER_TEXT}\n{PETER_SIG}{ENOCH_SIG}");
    for vkey in [PETER_VKEY, ENOCH_VKEY] {
        let verifier = NoteVerifier::from_vkey(vkey).expect("valid vkey");
        assert_eq!(open_note(&both, &verifier), Ok(PETER_TEXT));
    }
    let stranger = signer(7, "PeterNeumann").verifier();
    assert_eq!(
        open_note(&both, &stranger),
        Err(NoteError::NoSignatureByKey {
            name: "PeterNeumann".into(),
            key_id: stranger.key_id(),
            signed_by: "PeterNeumann+c74f20a3, EnochRoot+af0cfe78".into(),
        })
    );
    // Go's docs: a signature with four characters inserted no longer verifies.
    let tampered = format!("{PETER_TEXT}\n{}ABCD{}", &PETER_SIG[..60], &PETER_SIG[60..]);
    assert_eq!(
        open_note(&tampered, &peter.verifier()),
        Err(NoteError::BadSignature { name: "PeterNeumann".into(), key_id: 0xc74f20a3 })
    );
}

#[test]
fn c2sp_spec_known_answer() {
    let verifier = NoteVerifier::from_vkey(C2SP_VKEY).expect("valid vkey");
    assert_eq!(verifier.name(), "example.com/foo");
    assert_eq!(verifier.key_id(), 0x530d903a);
    assert_eq!(verifier.to_vkey(), C2SP_VKEY);
    assert_eq!(open_note(C2SP_NOTE, &verifier), Ok("This is an example message.\n"));
}

#[test]
fn sumdb_checkpoint_known_answer() {
    let verifier = NoteVerifier::from_vkey(SUMDB_VKEY).expect("valid vkey");
    let checkpoint = open_checkpoint(SUMDB_NOTE, &verifier).expect("open_checkpoint");
    assert_eq!(checkpoint.origin(), "go.sum database tree");
    assert_eq!(checkpoint.size(), 6_476_701);
    assert_eq!(
        checkpoint.root(),
        Hash::from_base64("mb8QLQIs0Z0yP5Cstq6guj87oXWeC9gEM8oVikmm9Wk=").expect("base64 hash")
    );
    assert!(checkpoint.extensions().is_empty());
    // Any other size, and the note no longer opens.
    let forged = SUMDB_NOTE.replace("6476701", "6476702");
    assert!(matches!(open_checkpoint(&forged, &verifier), Err(CheckpointError::Note(NoteError::BadSignature { .. }))));
}

#[test]
fn checkpoint_body_known_answer() {
    // From tlog_tiles 0.2.0's checkpoint tests (after Go's tlog and sunlight).
    let body = "example.com/origin\n123\nTszzRgjTG6xce+z2AG31kAXYKBgQVtCSCE40HmuwBb0=\nabc\ndef\n";
    let checkpoint = Checkpoint::new("example.com/origin", 123, leaf_hash(b"hello world"))
        .expect("valid checkpoint")
        .with_extensions(["abc", "def"])
        .expect("valid extensions");
    assert_eq!(checkpoint.to_body(), body);
    assert_eq!(Checkpoint::parse_body(body), Ok(checkpoint));
}

// Bodies.

fn check_body(body: &str, want: Result<(u64, usize), CheckpointError>) {
    let got = Checkpoint::parse_body(body).map(|c| (c.size(), c.extensions().len()));
    let shown: String = body.chars().take(80).collect();
    assert_eq!(got, want, "body {shown:?}");
}

#[test]
fn body_parsing() {
    const ROOT: &str = "TszzRgjTG6xce+z2AG31kAXYKBgQVtCSCE40HmuwBb0=";
    let body = |origin: &str, size: &str, root: &str, ext: &str| format!("{origin}\n{size}\n{root}\n{ext}");
    let invalid_size = |found: &str| Err(CheckpointError::InvalidSize { found: found.into() });
    let invalid_root = |found: &str| Err(CheckpointError::InvalidRoot { found: found.into() });

    check_body(&body("o", "123", ROOT, ""), Ok((123, 0)));
    check_body(&body("o", "0", ROOT, ""), Ok((0, 0)));
    check_body(&body("o", "18446744073709551615", ROOT, ""), Ok((u64::MAX, 0)));
    check_body(&body("go.sum database tree", "1", ROOT, "a\nb\n"), Ok((1, 2)));
    check_body(&body("o", "00", ROOT, ""), invalid_size("00"));
    check_body(&body("o", "0123", ROOT, ""), invalid_size("0123"));
    check_body(&body("o", "+1", ROOT, ""), invalid_size("+1"));
    check_body(&body("o", "-1", ROOT, ""), invalid_size("-1"));
    check_body(&body("o", " 1", ROOT, ""), invalid_size(" 1"));
    check_body(&body("o", "0xabcdef", ROOT, ""), invalid_size("0xabcdef"));
    check_body(&body("o", "", ROOT, ""), invalid_size(""));
    check_body(&body("o", "18446744073709551616", ROOT, ""), invalid_size("18446744073709551616"));
    check_body(&body("o", "1", &ROOT[..43], ""), invalid_root("TszzRgjTG6xce+z2AG31kAXYKBgQVtCSCE40Hmuw…"));
    check_body(
        &body("o", "1", "QUFBQUFBQUFBQUFBQUFBQUFBQUFBQUFBQUFBQUFBQUFBCg==", ""),
        invalid_root("QUFBQUFBQUFBQUFBQUFBQUFBQUFBQUFBQUFBQUFB…"),
    );
    check_body(&body("o", "1", "", ""), invalid_root(""));
    check_body(&body("", "1", ROOT, ""), Err(CheckpointError::EmptyOrigin));
    check_body(&body("o", "1", ROOT, "abc\n\n"), Err(CheckpointError::EmptyExtensionLine { line: 5 }));
    check_body(&body("o", "1", ROOT, "\n"), Err(CheckpointError::EmptyExtensionLine { line: 4 }));
    check_body(&body("o", "1", ROOT, "abc"), Err(CheckpointError::MissingFinalNewline));
    check_body(&format!("o\n1\n{ROOT}"), Err(CheckpointError::MissingFinalNewline));
    check_body("o\n1\n", Err(CheckpointError::TooFewLines { lines: 2 }));
    check_body("", Err(CheckpointError::MissingFinalNewline));
    check_body(&body("o\r", "1", ROOT, ""), Err(CheckpointError::ControlCharacter { line: 1 }));
    check_body(&body("o", "1", ROOT, "a\tb\n"), Err(CheckpointError::ControlCharacter { line: 4 }));
    let long = "x".repeat(MAX_BODY_SIZE);
    check_body(
        &body(&long, "1", ROOT, ""),
        Err(CheckpointError::TooLarge { size: MAX_BODY_SIZE + 48, max: MAX_BODY_SIZE }),
    );
}

#[test]
fn constructors_refuse_what_parsing_refuses() {
    let root = leaf_hash(b"root");
    assert_eq!(Checkpoint::new("", 1, root), Err(CheckpointError::EmptyOrigin));
    assert_eq!(Checkpoint::new("a\nb", 1, root), Err(CheckpointError::ControlCharacter { line: 1 }));
    let base = Checkpoint::new("example.org/log", 1, root).expect("valid");
    assert_eq!(base.clone().with_extensions(["ok", ""]), Err(CheckpointError::EmptyExtensionLine { line: 5 }));
    assert_eq!(base.clone().with_extensions(["two\nlines"]), Err(CheckpointError::ControlCharacter { line: 4 }));
    assert!(matches!(base.with_extensions([&*"x".repeat(MAX_BODY_SIZE)]), Err(CheckpointError::TooLarge { .. })));
}

// Signing and opening.

fn log_checkpoint() -> Checkpoint {
    Checkpoint::new("exchange.gov.example/log", 42, leaf_hash(b"root")).expect("valid")
}

#[test]
fn sign_and_open_round_trip() {
    let catalog = signer(1, "exchange.gov.example/log");
    let checkpoint = log_checkpoint();
    let note = sign_checkpoint(&checkpoint, &catalog);
    assert!(note.starts_with(&format!("{}\n— exchange.gov.example/log ", checkpoint.to_body())));
    assert_eq!(open_checkpoint(&note, &catalog.verifier()), Ok(checkpoint.clone()));
    let verifier = NoteVerifier::from_vkey(&catalog.verifier().to_vkey()).expect("valid vkey");
    assert_eq!(open_checkpoint(&note, &verifier), Ok(checkpoint.clone()));

    // Cosigned by a witness: either key opens it.
    let witness = signer(2, "witness.example");
    let witness_line = sign_note(&checkpoint.to_body(), &witness).expect("sign_note");
    let witness_line = witness_line.rsplit_once("\n\n").expect("separator").1;
    let cosigned = format!("{note}{witness_line}");
    assert_eq!(open_checkpoint(&cosigned, &catalog.verifier()), Ok(checkpoint.clone()));
    assert_eq!(open_checkpoint(&cosigned, &witness.verifier()), Ok(checkpoint.clone()));

    // With extension lines, which come back.
    let extended = checkpoint.with_extensions(["ext one", "ext two"]).expect("with_extensions");
    let note = sign_checkpoint(&extended, &catalog);
    assert_eq!(open_checkpoint(&note, &catalog.verifier()), Ok(extended));
}

fn check_open(note: &str, verifier: &NoteVerifier, want: Result<Checkpoint, CheckpointError>) {
    let shown: String = note.chars().take(300).collect();
    assert_eq!(open_checkpoint(note, verifier), want, "note {shown:?}");
}

#[test]
fn open_refusals() {
    let catalog = signer(1, "exchange.gov.example/log");
    let verifier = catalog.verifier();
    let checkpoint = log_checkpoint();
    let note = sign_checkpoint(&checkpoint, &catalog);
    let (body, sig_line) = note.split_once("\n\n").expect("separator");
    let bad = Err(CheckpointError::Note(NoteError::BadSignature {
        name: "exchange.gov.example/log".into(),
        key_id: verifier.key_id(),
    }));
    let malformed = |line, reason| Err(CheckpointError::Note(NoteError::MalformedSignatureLine { line, reason }));
    let no_signature = |v: &NoteVerifier| {
        Err(CheckpointError::Note(NoteError::NoSignatureByKey {
            name: v.name().into(),
            key_id: v.key_id(),
            signed_by: format!("exchange.gov.example/log+{:08x}", verifier.key_id()),
        }))
    };

    check_open(&note, &verifier, Ok(checkpoint.clone()));
    // Tampered bodies.
    check_open(&note.replacen("\n42\n", "\n43\n", 1), &verifier, bad.clone());
    check_open(
        &note.replacen(&checkpoint.root().to_base64(), &leaf_hash(b"other").to_base64(), 1),
        &verifier,
        bad.clone(),
    );
    check_open(&note.replacen("exchange.gov.example/log\n", "evil.example/log\n", 1), &verifier, bad.clone());
    check_open(&format!("{body}\nextension\n\n{sig_line}"), &verifier, bad.clone());
    // A flipped signature byte, a truncated signature, a second bad signature by the key.
    let encoded = sig_line.trim_end().rsplit_once(' ').expect("separator").1;
    let mut bytes = STANDARD.decode(encoded).expect("base64");
    bytes[10] ^= 1;
    check_open(&note.replace(encoded, &STANDARD.encode(&bytes)), &verifier, bad.clone());
    bytes[10] ^= 1;
    check_open(&note.replace(encoded, &STANDARD.encode(&bytes[..67])), &verifier, bad.clone());
    let mut doubled = note.clone();
    bytes[20] ^= 1;
    doubled.push_str(&sig_line.replace(encoded, &STANDARD.encode(&bytes)));
    check_open(&doubled, &verifier, bad.clone());
    // Wrong key, same name; right key, wrong name.
    let impostor = signer(9, "exchange.gov.example/log").verifier();
    check_open(&note, &impostor, no_signature(&impostor));
    let renamed = NoteVerifier::new("other.example/log", *verifier.verifying_key()).expect("valid");
    check_open(&note, &renamed, no_signature(&renamed));
    // Missing signatures and garbage.
    check_open(body, &verifier, Err(CheckpointError::Note(NoteError::MissingSignatureBlock)));
    check_open(&format!("{body}\n\n"), &verifier, Err(CheckpointError::Note(NoteError::NoSignatureLines)));
    check_open(&note[..note.len() - 1], &verifier, Err(CheckpointError::Note(NoteError::NoSignatureLines)));
    check_open("", &verifier, Err(CheckpointError::Note(NoteError::MissingSignatureBlock)));
    check_open("garbage", &verifier, Err(CheckpointError::Note(NoteError::MissingSignatureBlock)));
    check_open(
        &note.replace('—', "--"),
        &verifier,
        malformed(1, "it does not start with an em dash (U+2014) and a space"),
    );
    check_open(
        &format!("{note}— witness.example\n"),
        &verifier,
        malformed(2, "it has no space between the key name and the signature"),
    );
    check_open(
        &format!("{note}— witness.example not*base64\n"),
        &verifier,
        malformed(2, "the signature is not standard padded base64"),
    );
    check_open(
        &format!("{note}— witness.example AAAA\n"),
        &verifier,
        malformed(2, "the signature is shorter than a key id"),
    );
    check_open(
        &format!("{note}— witness.example AAAAAA==\n"),
        &verifier,
        malformed(2, "the signature has a key id but no signature bytes"),
    );
    check_open(
        &format!("{note}— a+b AAAAAAA=\n"),
        &verifier,
        malformed(2, "the key name is empty or contains a space or a plus sign"),
    );
    check_open(
        &note.replacen("\n42\n", "\n4\r2\n", 1),
        &verifier,
        Err(CheckpointError::Note(NoteError::ControlCharacter { line: 2 })),
    );
    check_open(
        &format!("{body}\n\n{}", sig_line.repeat(MAX_SIGNATURES + 1)),
        &verifier,
        Err(CheckpointError::Note(NoteError::TooManySignatures { count: MAX_SIGNATURES + 1, max: MAX_SIGNATURES })),
    );
    let huge = format!("{}\n{note}", "x".repeat(MAX_NOTE_SIZE));
    check_open(
        &huge,
        &verifier,
        Err(CheckpointError::Note(NoteError::TooLarge { size: huge.len(), max: MAX_NOTE_SIZE })),
    );
    // A well-signed note whose text is not a checkpoint.
    let not_a_checkpoint = sign_note("hello\n", &catalog).expect("sign_note");
    check_open(&not_a_checkpoint, &verifier, Err(CheckpointError::TooFewLines { lines: 1 }));
    let bad_size = sign_note("o\n042\nTszzRgjTG6xce+z2AG31kAXYKBgQVtCSCE40HmuwBb0=\n", &catalog).expect("sign_note");
    check_open(&bad_size, &verifier, Err(CheckpointError::InvalidSize { found: "042".into() }));
}

#[test]
fn sign_note_refusals() {
    let catalog = signer(1, "log");
    assert_eq!(sign_note("no newline", &catalog), Err(NoteError::TextNotNewlineTerminated));
    assert_eq!(sign_note("", &catalog), Err(NoteError::TextNotNewlineTerminated));
    assert_eq!(sign_note("ok\nbell\x07\n", &catalog), Err(NoteError::ControlCharacter { line: 2 }));
    assert!(matches!(
        sign_note(&format!("{}\n", "x".repeat(MAX_NOTE_SIZE)), &catalog),
        Err(NoteError::TooLarge { .. })
    ));
    // Texts may contain blank lines: the last blank line separates the signatures.
    let text = "para one\n\npara two\n";
    let note = sign_note(text, &catalog).expect("sign_note");
    assert_eq!(open_note(&note, &catalog.verifier()), Ok(text));
}

#[test]
fn key_refusals() {
    let key = SigningKey::from_bytes(&[1; 32]);
    for name in ["", "has space", "has+plus", "tab\there", "new\nline", "nbsp\u{a0}"] {
        let want = Err(KeyError::InvalidName { name: name.into() });
        assert_eq!(NoteSigner::new(name, key.clone()).map(|s| s.name().to_owned()), want.clone());
        assert_eq!(NoteVerifier::new(name, key.verifying_key()).map(|v| v.name().to_owned()), want);
    }
    // The identity point is a weak key: any signature "verifies" under it without strict checks.
    let mut identity = [0u8; 32];
    identity[0] = 1;
    let weak = VerifyingKey::from_bytes(&identity).expect("valid key");
    assert_eq!(NoteVerifier::new("log", weak), Err(KeyError::WeakPublicKey));

    let with_key = |bytes: &[u8]| format!("PeterNeumann+c74f20a3+{}", STANDARD.encode(bytes));
    let public = NoteVerifier::from_vkey(PETER_VKEY).expect("valid vkey").verifying_key().to_bytes();
    let mut ecdsa = vec![0x02];
    ecdsa.extend_from_slice(&public);
    let mut short = vec![0x01];
    short.extend_from_slice(&public[..31]);
    let mut weak_vkey = vec![0x01];
    weak_vkey.extend_from_slice(&identity);
    let table: Vec<(String, KeyError)> = vec![
        ("PeterNeumann".into(), KeyError::VkeyFormat),
        ("PeterNeumann+c74f20a3".into(), KeyError::VkeyFormat),
        (PETER_VKEY.replace("c74f20a3", "C74F20A3"), KeyError::InvalidKeyId { found: "C74F20A3".into() }),
        (PETER_VKEY.replace("c74f20a3", "c74f20a"), KeyError::InvalidKeyId { found: "c74f20a".into() }),
        (
            PETER_VKEY.replace("c74f20a3", "c74f20a4"),
            KeyError::KeyIdMismatch { stated: 0xc74f20a4, computed: 0xc74f20a3 },
        ),
        (
            PETER_VKEY.replace("PeterNeumann", "PeterNeuman"),
            KeyError::KeyIdMismatch {
                stated: 0xc74f20a3,
                computed: NoteVerifier::new(
                    "PeterNeuman",
                    NoteVerifier::from_vkey(PETER_VKEY).expect("valid vkey").verifying_key().to_owned(),
                )
                .expect("valid verifier")
                .key_id(),
            },
        ),
        (PETER_VKEY.replace("PeterNeumann", "Peter Neumann"), KeyError::InvalidName { name: "Peter Neumann".into() }),
        (format!("{PETER_VKEY}!"), KeyError::InvalidBase64),
        (with_key(&[]), KeyError::WrongKeyLength(0)),
        (with_key(&ecdsa), KeyError::UnsupportedAlgorithm(2)),
        (with_key(&short), KeyError::WrongKeyLength(31)),
        (with_key(&weak_vkey), KeyError::WeakPublicKey),
    ];
    for (vkey, want) in table {
        assert_eq!(NoteVerifier::from_vkey(&vkey), Err(want), "vkey {vkey:?}");
    }
}

#[test]
fn signer_debug_hides_the_private_key() {
    let peter = peter();
    let debug = format!("{peter:?}");
    assert_eq!(debug, r#"NoteSigner { name: "PeterNeumann", key_id: c74f20a3, .. }"#);
    assert_eq!(format!("{:?}", peter.verifier()), format!("NoteVerifier({PETER_VKEY})"));
}

proptest! {
    #[test]
    fn body_round_trips(
        origin in "[^\\x00-\\x1f]{1,40}",
        size in any::<u64>(),
        root in any::<[u8; 32]>(),
        extensions in proptest::collection::vec("[^\\x00-\\x1f]{1,20}", 0..3),
    ) {
        let checkpoint = Checkpoint::new(origin, size, Hash::from(root))?
            .with_extensions(extensions)?;
        prop_assert_eq!(Checkpoint::parse_body(&checkpoint.to_body()), Ok(checkpoint));
    }

    #[test]
    fn signed_round_trip_and_no_forgery_by_one_char(
        seed in any::<[u8; 32]>(),
        size in any::<u64>(),
        root in any::<[u8; 32]>(),
        at in any::<usize>(),
        replacement in proptest::char::range(' ', '~'),
    ) {
        let signer = NoteSigner::new("log.example", SigningKey::from_bytes(&seed))?;
        let checkpoint = Checkpoint::new("log.example", size, Hash::from(root))?;
        let note = sign_checkpoint(&checkpoint, &signer);
        prop_assert_eq!(open_checkpoint(&note, &signer.verifier()), Ok(checkpoint.clone()));
        // Replace one character: the result is refused, or opens to the same checkpoint
        // (when the replacement was the same character).
        let chars: Vec<char> = note.chars().collect();
        let at = at % chars.len();
        let mutated: String = chars
            .iter()
            .enumerate()
            .map(|(i, &c)| if i == at { replacement } else { c })
            .collect();
        match open_checkpoint(&mutated, &signer.verifier()) {
            Ok(opened) => {
                prop_assert_eq!(chars[at], replacement);
                prop_assert_eq!(opened, checkpoint);
            }
            Err(_) => prop_assert_ne!(chars[at], replacement),
        }
    }
}
