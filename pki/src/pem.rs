//! Reading PEM text with errors that say what the input holds instead.

use rustls::pki_types::pem::{PemObject, SectionKind};
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs1KeyDer, PrivatePkcs8KeyDer, PrivateSec1KeyDer};

use crate::error::PkiError;

/// The known PEM sections of `text`, in order.
fn sections(origin: &str, text: &[u8]) -> Result<Vec<(SectionKind, Vec<u8>)>, PkiError> {
    let sections = <(SectionKind, Vec<u8>)>::pem_slice_iter(text)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| PkiError::NotPem { origin: origin.to_owned(), detail: e.to_string() })?;
    if sections.is_empty() && !contains(text, b"-----BEGIN ") {
        return Err(PkiError::NotPem {
            origin: origin.to_owned(),
            detail: "no `-----BEGIN ...-----` section found (is the file DER or empty?)".to_owned(),
        });
    }
    Ok(sections)
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle)
}

fn is_key(kind: SectionKind) -> bool {
    matches!(kind, SectionKind::PrivateKey | SectionKind::RsaPrivateKey | SectionKind::EcPrivateKey)
}

/// All certificates of `text`, in order; at least one.
pub(crate) fn certificates(origin: &str, text: &[u8]) -> Result<Vec<CertificateDer<'static>>, PkiError> {
    let sections = sections(origin, text)?;
    let certs: Vec<CertificateDer<'static>> = sections
        .iter()
        .filter(|(kind, _)| *kind == SectionKind::Certificate)
        .map(|(_, der)| CertificateDer::from(der.clone()))
        .collect();
    if certs.is_empty() {
        let hint = if sections.iter().any(|(kind, _)| is_key(*kind)) {
            "; it holds a private key: are the certificate and key paths swapped?"
        } else if sections.iter().any(|(kind, _)| *kind == SectionKind::Csr) {
            "; it holds a certificate signing request, not a certificate"
        } else {
            ""
        };
        return Err(PkiError::NoCertificate { origin: origin.to_owned(), hint });
    }
    Ok(certs)
}

/// The one private key of `text`.
pub(crate) fn private_key(origin: &str, text: &[u8]) -> Result<PrivateKeyDer<'static>, PkiError> {
    let sections = sections(origin, text)?;
    let mut keys: Vec<PrivateKeyDer<'static>> = sections
        .iter()
        .filter_map(|(kind, der)| match kind {
            SectionKind::PrivateKey => Some(PrivatePkcs8KeyDer::from(der.clone()).into()),
            SectionKind::RsaPrivateKey => Some(PrivatePkcs1KeyDer::from(der.clone()).into()),
            SectionKind::EcPrivateKey => Some(PrivateSec1KeyDer::from(der.clone()).into()),
            _ => None,
        })
        .collect();
    match keys.len() {
        1 => Ok(keys.remove(0)),
        0 => {
            let hint = if contains(text, b"ENCRYPTED PRIVATE KEY") {
                "; the key is encrypted, rustls needs it unencrypted (PKCS#8)"
            } else if sections.iter().any(|(kind, _)| *kind == SectionKind::Certificate) {
                "; it holds a certificate: are the certificate and key paths swapped?"
            } else {
                ""
            };
            Err(PkiError::NoPrivateKey { origin: origin.to_owned(), hint })
        }
        count => Err(PkiError::SeveralPrivateKeys { origin: origin.to_owned(), count }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const CERT: &str = "-----BEGIN CERTIFICATE-----\nMAMCAQE=\n-----END CERTIFICATE-----\n";
    const KEY: &str = "-----BEGIN PRIVATE KEY-----\nMAMCAQE=\n-----END PRIVATE KEY-----\n";

    #[test]
    fn errors_say_what_the_input_holds() {
        let e = certificates("a.crt", b"").expect_err("empty");
        assert_eq!(
            e.to_string(),
            "a.crt is not valid PEM: no `-----BEGIN ...-----` section found (is the file DER or empty?)"
        );
        let e = certificates("a.crt", KEY.as_bytes()).expect_err("key only");
        assert_eq!(
            e.to_string(),
            "a.crt holds no certificate (expected a `-----BEGIN CERTIFICATE-----` section); it holds a private key: are the certificate and key paths swapped?"
        );
        let e = private_key("a.key", CERT.as_bytes()).expect_err("cert only");
        assert_eq!(
            e.to_string(),
            "a.key holds no private key (expected a `-----BEGIN PRIVATE KEY-----` section); it holds a certificate: are the certificate and key paths swapped?"
        );
        let e = private_key("a.key", format!("{KEY}{KEY}").as_bytes()).expect_err("two keys");
        assert_eq!(e.to_string(), "a.key holds 2 private keys; it must hold exactly one");
        let encrypted = "-----BEGIN ENCRYPTED PRIVATE KEY-----\nMAMCAQE=\n-----END ENCRYPTED PRIVATE KEY-----\n";
        let e = private_key("a.key", encrypted.as_bytes()).expect_err("encrypted");
        assert!(e.to_string().ends_with("the key is encrypted, rustls needs it unencrypted (PKCS#8)"), "{e}");
        let e = certificates("a.crt", b"-----BEGIN CERTIFICATE-----\nMAMCAQE=\n").expect_err("truncated");
        assert!(e.to_string().starts_with("a.crt is not valid PEM: "), "{e}");
        assert_eq!(certificates("a.crt", format!("{CERT}{CERT}").as_bytes()).expect("two").len(), 2);
        assert!(private_key("a.key", format!("{CERT}{KEY}").as_bytes()).is_ok());
    }
}
