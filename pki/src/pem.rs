//! PEM in and out: strict decoding of exactly the item we expect, and canonical encoding.

use rustls_pki_types::pem::{self, PemObject};
use rustls_pki_types::{CertificateDer, CertificateSigningRequestDer, PrivateKeyDer};

use crate::PkiError;

/// Upper bound on PEM text we accept from a peer or a file; real items here are under 2 KiB.
pub(crate) const MAX_PEM_LEN: usize = 64 * 1024;

fn check_len(what: &'static str, text: &str) -> Result<(), PkiError> {
    if text.len() > MAX_PEM_LEN {
        return Err(PkiError::Pem {
            what,
            source: pem::Error::SectionTooLarge,
        });
    }
    Ok(())
}

/// All certificates in `text`, in order; at least one.
pub(crate) fn certs(text: &str) -> Result<Vec<CertificateDer<'static>>, PkiError> {
    const WHAT: &str = "certificate";
    check_len(WHAT, text)?;
    let certs = CertificateDer::pem_slice_iter(text.as_bytes())
        .collect::<Result<Vec<_>, _>>()
        .map_err(|source| PkiError::Pem { what: WHAT, source })?;
    if certs.is_empty() {
        return Err(PkiError::Pem {
            what: WHAT,
            source: pem::Error::NoItemsFound,
        });
    }
    Ok(certs)
}

/// Exactly one certificate.
pub(crate) fn single_cert(text: &str) -> Result<CertificateDer<'static>, PkiError> {
    let mut certs = certs(text)?;
    match certs.len() {
        1 => Ok(certs.remove(0)),
        n => Err(PkiError::InvalidCertificate(format!(
            "expected one certificate, found {n}"
        ))),
    }
}

pub(crate) fn private_key(text: &str) -> Result<PrivateKeyDer<'static>, PkiError> {
    const WHAT: &str = "private key";
    check_len(WHAT, text)?;
    PrivateKeyDer::from_pem_slice(text.as_bytes())
        .map_err(|source| PkiError::Pem { what: WHAT, source })
}

pub(crate) fn csr(text: &str) -> Result<CertificateSigningRequestDer<'static>, PkiError> {
    const WHAT: &str = "certificate signing request";
    check_len(WHAT, text)?;
    CertificateSigningRequestDer::from_pem_slice(text.as_bytes())
        .map_err(|source| PkiError::Pem { what: WHAT, source })
}

/// `-----BEGIN {label}-----`, base64 in 64-character lines, `-----END {label}-----`, LF line endings.
pub(crate) fn encode(label: &str, der: &[u8]) -> String {
    const B64: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut b64 = Vec::with_capacity(der.len().div_ceil(3) * 4);
    for chunk in der.chunks(3) {
        let n = chunk
            .iter()
            .enumerate()
            .fold(0u32, |n, (i, &b)| n | u32::from(b) << (16 - 8 * i));
        for i in 0..4 {
            if i <= chunk.len() {
                b64.push(B64[(n >> (18 - 6 * i) & 0x3f) as usize]);
            } else {
                b64.push(b'=');
            }
        }
    }
    let mut out = format!("-----BEGIN {label}-----\n");
    for line in b64.chunks(64) {
        out.extend(line.iter().map(|&c| char::from(c)));
        out.push('\n');
    }
    out.push_str(&format!("-----END {label}-----\n"));
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn encode_round_trips_through_the_decoder() {
        for len in [0usize, 1, 2, 3, 47, 48, 49, 300] {
            let der: Vec<u8> = (0..len).map(|i| (i * 7 + 3) as u8).collect();
            let text = encode("CERTIFICATE", &der);
            if len == 0 {
                continue; // an empty section is legal PEM but not a certificate anyone sends
            }
            let back = CertificateDer::from_pem_slice(text.as_bytes()).expect("decodes");
            assert_eq!(back.as_ref(), &der[..]);
            assert!(text.lines().all(|l| l.len() <= 64));
        }
        assert_eq!(
            encode("X", b"Man"),
            "-----BEGIN X-----\nTWFu\n-----END X-----\n"
        );
        assert_eq!(
            encode("X", b"Ma"),
            "-----BEGIN X-----\nTWE=\n-----END X-----\n"
        );
        assert_eq!(
            encode("X", b"M"),
            "-----BEGIN X-----\nTQ==\n-----END X-----\n"
        );
    }

    #[test]
    fn rejects_oversized_and_empty() {
        let big = "A".repeat(MAX_PEM_LEN + 1);
        assert!(matches!(certs(&big), Err(PkiError::Pem { .. })));
        assert!(matches!(certs(""), Err(PkiError::Pem { .. })));
        assert!(matches!(private_key("nope"), Err(PkiError::Pem { .. })));
    }
}
