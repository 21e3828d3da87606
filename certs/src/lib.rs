//! Certificates a trial's server presents.
//!
//! Every kind is generated fresh (a new key per call), so no trial can inherit trust or a
//! browser's cached decision from another. Files are written with private keys mode 0600.

use std::fs;
use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use base64::Engine;
use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, ExtendedKeyUsagePurpose, IsCa,
    Issuer, KeyPair, KeyUsagePurpose, PublicKeyData, SanType,
};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

/// What the server presents. Names match DESIGN.md and the scenario files.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum CertKind {
    /// A self-signed leaf for localhost, 127.0.0.1 and ::1 (the original report's case).
    SelfSigned,
    /// A leaf issued by a private CA that no browser trusts by default.
    PrivateCa,
    /// A leaf from a private CA whose validity ended in the past.
    Expired,
    /// A leaf from a private CA for a host name that is not the one visited.
    WrongHost,
}

impl CertKind {
    /// All kinds, in a stable order.
    pub const ALL: [Self; 4] = [
        Self::SelfSigned,
        Self::PrivateCa,
        Self::Expired,
        Self::WrongHost,
    ];

    /// The name used in scenario files and on the command line.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::SelfSigned => "self-signed",
            Self::PrivateCa => "private-ca",
            Self::Expired => "expired",
            Self::WrongHost => "wrong-host",
        }
    }
}

impl std::fmt::Display for CertKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl std::str::FromStr for CertKind {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        Self::ALL
            .into_iter()
            .find(|k| k.as_str() == s)
            .ok_or_else(|| {
                let valid: Vec<_> = Self::ALL.iter().map(|k| k.as_str()).collect();
                format!("unknown cert kind `{s}`; valid: {}", valid.join(", "))
            })
    }
}

/// Errors from generating or writing certificates.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum CertError {
    /// rcgen refused the parameters (a bug in this crate, not the caller's input).
    #[error("failed to generate a certificate")]
    Generate(#[from] rcgen::Error),
    /// The output directory could not be written.
    #[error("failed to write {path}")]
    Write {
        /// The file that failed.
        path: PathBuf,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
}

/// A generated certificate set, in memory.
#[derive(Clone, Debug)]
pub struct CertBundle {
    /// The kind that was generated.
    pub kind: CertKind,
    /// The server's chain as PEM: leaf first, then the issuing CA if there is one.
    pub chain_pem: String,
    /// The leaf's private key as PKCS#8 PEM.
    pub key_pem: String,
    /// What a trust store must hold to accept the chain: the CA, or the self-signed leaf.
    pub trust_anchor_pem: String,
    /// Whether `trust_anchor_pem` is a CA (NSS trust `C,,`) or a leaf (`P,,`).
    pub trust_anchor_is_ca: bool,
    /// Base64 SHA-256 of the leaf's SubjectPublicKeyInfo, for Chromium's
    /// `--ignore-certificate-errors-spki-list`.
    pub leaf_spki_sha256: String,
}

/// Paths of a bundle written to disk.
#[derive(Clone, Debug)]
pub struct CertFiles {
    /// Leaf (and CA) certificates, PEM.
    pub chain: PathBuf,
    /// Private key, PEM, mode 0600.
    pub key: PathBuf,
    /// The trust anchor, PEM.
    pub trust_anchor: PathBuf,
}

const LEAF_NAMES: [&str; 3] = ["localhost", "127.0.0.1", "::1"];

fn leaf_params(names: &[&str]) -> Result<CertificateParams, rcgen::Error> {
    let mut params = CertificateParams::default();
    params.subject_alt_names = names
        .iter()
        .map(|n| match n.parse() {
            Ok(ip) => Ok(SanType::IpAddress(ip)),
            Err(_) => Ok(SanType::DnsName((*n).try_into()?)),
        })
        .collect::<Result<_, rcgen::Error>>()?;
    let mut dn = DistinguishedName::new();
    dn.push(DnType::CommonName, names[0]);
    dn.push(DnType::OrganizationName, "handshake-matrix");
    params.distinguished_name = dn;
    params.key_usages = vec![
        KeyUsagePurpose::DigitalSignature,
        KeyUsagePurpose::KeyEncipherment,
    ];
    params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
    // Browsers reject leaves valid for longer than 398 days, whatever the trust.
    let now = time::OffsetDateTime::now_utc();
    params.not_before = now - time::Duration::days(1);
    params.not_after = now + time::Duration::days(90);
    Ok(params)
}

fn spki_sha256(key: &KeyPair) -> String {
    base64::engine::general_purpose::STANDARD.encode(Sha256::digest(key.subject_public_key_info()))
}

impl CertBundle {
    /// Generates a fresh bundle of `kind`.
    pub fn generate(kind: CertKind) -> Result<Self, CertError> {
        let leaf_key = KeyPair::generate()?;
        let leaf_spki_sha256 = spki_sha256(&leaf_key);
        if kind == CertKind::SelfSigned {
            let mut params = leaf_params(&LEAF_NAMES)?;
            // A self-signed leaf that a user may import as a trust anchor (NSS `P,,`).
            params.is_ca = IsCa::ExplicitNoCa;
            let cert = params.self_signed(&leaf_key)?;
            return Ok(Self {
                kind,
                chain_pem: cert.pem(),
                key_pem: leaf_key.serialize_pem(),
                trust_anchor_pem: cert.pem(),
                trust_anchor_is_ca: false,
                leaf_spki_sha256,
            });
        }

        let ca_key = KeyPair::generate()?;
        let mut ca_params = CertificateParams::default();
        let mut dn = DistinguishedName::new();
        dn.push(DnType::CommonName, "handshake-matrix private CA");
        ca_params.distinguished_name = dn;
        ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        ca_params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
        let now = time::OffsetDateTime::now_utc();
        ca_params.not_before = now - time::Duration::days(800);
        ca_params.not_after = now + time::Duration::days(800);
        let ca_cert = ca_params.self_signed(&ca_key)?;
        let issuer = Issuer::new(ca_params, ca_key);

        let mut params = match kind {
            CertKind::WrongHost => leaf_params(&["wrong-host.invalid"])?,
            _ => leaf_params(&LEAF_NAMES)?,
        };
        if kind == CertKind::Expired {
            params.not_before = now - time::Duration::days(120);
            params.not_after = now - time::Duration::days(30);
        }
        let leaf = params.signed_by(&leaf_key, &issuer)?;
        Ok(Self {
            kind,
            chain_pem: format!("{}{}", leaf.pem(), ca_cert.pem()),
            key_pem: leaf_key.serialize_pem(),
            trust_anchor_pem: ca_cert.pem(),
            trust_anchor_is_ca: true,
            leaf_spki_sha256,
        })
    }

    /// Writes `chain.pem`, `key.pem` (0600) and `trust-anchor.pem` into `dir`, creating it.
    pub fn write_to(&self, dir: &Path) -> Result<CertFiles, CertError> {
        let write = |name: &str, contents: &str, mode: u32| -> Result<PathBuf, CertError> {
            let path = dir.join(name);
            let err = |source| CertError::Write {
                path: path.clone(),
                source,
            };
            fs::create_dir_all(dir).map_err(err)?;
            let mut file = fs::OpenOptions::new()
                .write(true)
                .create(true)
                .truncate(true)
                .mode(mode)
                .open(&path)
                .map_err(err)?;
            file.write_all(contents.as_bytes()).map_err(err)?;
            Ok(path)
        };
        Ok(CertFiles {
            chain: write("chain.pem", &self.chain_pem, 0o644)?,
            key: write("key.pem", &self.key_pem, 0o600)?,
            trust_anchor: write("trust-anchor.pem", &self.trust_anchor_pem, 0o644)?,
        })
    }
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::PermissionsExt;

    use super::*;

    #[test]
    fn every_kind_generates_and_writes_key_0600() {
        for kind in CertKind::ALL {
            let bundle = CertBundle::generate(kind).unwrap();
            assert!(bundle.chain_pem.starts_with("-----BEGIN CERTIFICATE-----"));
            assert_eq!(bundle.trust_anchor_is_ca, kind != CertKind::SelfSigned);
            assert_eq!(bundle.leaf_spki_sha256.len(), 44, "base64 of 32 bytes");
            let dir = tempfile::tempdir().unwrap();
            let files = bundle.write_to(dir.path()).unwrap();
            let mode = fs::metadata(&files.key).unwrap().permissions().mode() & 0o777;
            assert_eq!(mode, 0o600, "{kind}");
        }
    }

    #[test]
    fn names_round_trip_and_unknown_lists_valid() {
        for kind in CertKind::ALL {
            assert_eq!(kind.as_str().parse::<CertKind>().unwrap(), kind);
        }
        let err = "selfsigned".parse::<CertKind>().unwrap_err();
        assert!(
            err.contains("self-signed, private-ca, expired, wrong-host"),
            "{err}"
        );
    }
}
