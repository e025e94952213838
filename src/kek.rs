//! Envelope encryption of fedgate's signing keys at rest
//! (`--key-encryption-key-file`).
//!
//! The store (and so every backup of it) then holds each private signing key
//! sealed with AES-256-GCM (aws-lc-rs) under a key-encryption key (KEK) that
//! lives outside the database, in a file only fedgate can read. The `kid` is
//! the additional authenticated data, so a sealed key cannot be moved to
//! another row. Stored form: `enc:v1:<kek id>:<base64(nonce ‖ ciphertext ‖ tag)>`;
//! the KEK id (16 hex digits of a SHA-256 of the KEK) names which KEK sealed
//! it without revealing anything about it.
//!
//! The file holds one or more KEKs, one per line (base64 or hex of 32 bytes;
//! blank lines and `#` comments ignored). The first seals new keys; every one
//! opens: that is what lets a KEK be rotated without downtime (see
//! docs/operations.md and `fedgate keys rewrap`).

use std::path::Path;
use std::sync::Arc;

use aws_lc_rs::aead::{AES_256_GCM, Aad, LessSafeKey, NONCE_LEN, Nonce, UnboundKey};
use aws_lc_rs::rand::SecureRandom;
use base64::Engine;
use base64::engine::general_purpose::STANDARD;

use crate::store::SigningKeyRow;

const PREFIX: &str = "enc:v1:";

/// The key-encryption keys of one `--key-encryption-key-file`.
pub struct Kek {
    /// (id, key); the first seals.
    keys: Vec<(String, LessSafeKey)>,
}

impl std::fmt::Debug for Kek {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Kek")
            .field("ids", &self.keys.iter().map(|k| &k.0).collect::<Vec<_>>())
            .finish()
    }
}

impl Kek {
    /// Reads `path` when given.
    pub fn load_optional(path: Option<&Path>) -> anyhow::Result<Option<Arc<Kek>>> {
        path.map(|p| Kek::load(p).map(Arc::new)).transpose()
    }

    /// Reads the KEKs in `path`.
    pub fn load(path: &Path) -> anyhow::Result<Kek> {
        let shown = path.display();
        let text = std::fs::read_to_string(path)
            .map_err(|e| anyhow::anyhow!("--key-encryption-key-file {shown}: {e}"))?;
        #[cfg(unix)]
        if let Ok(meta) = std::fs::metadata(path) {
            use std::os::unix::fs::PermissionsExt;
            let mode = meta.permissions().mode() & 0o777;
            if mode & 0o077 != 0 {
                tracing::warn!(file = %shown, mode = format!("{mode:o}"), "the key-encryption key file is readable by others; run: chmod 600 {shown}");
            }
        }
        let mut keys = Vec::new();
        for (n, line) in text.lines().enumerate() {
            let line = line.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let bytes = decode_key(line).ok_or_else(|| {
                anyhow::anyhow!(
                    "--key-encryption-key-file {shown}, line {}: not 32 bytes in base64 or hex (make one with `openssl rand -base64 32`)",
                    n + 1
                )
            })?;
            keys.push(Kek::from_bytes(&bytes)?);
        }
        if keys.is_empty() {
            anyhow::bail!("--key-encryption-key-file {shown}: no key in the file");
        }
        Ok(Kek { keys })
    }

    fn from_bytes(bytes: &[u8]) -> anyhow::Result<(String, LessSafeKey)> {
        let mut tagged = b"fedgate key-encryption key id\0".to_vec();
        tagged.extend_from_slice(bytes);
        let id = crate::secrets::sha256_hex(&tagged)[..16].to_string();
        let key = UnboundKey::new(&AES_256_GCM, bytes)
            .map_err(|_| anyhow::anyhow!("key-encryption key: not an AES-256 key"))?;
        Ok((id, LessSafeKey::new(key)))
    }

    /// The id of the KEK that seals new keys.
    pub fn current_id(&self) -> &str {
        self.keys.first().map_or("", |k| k.0.as_str())
    }

    /// Seals the base64 PKCS#8 `private_key` of `kid`.
    pub fn seal(&self, kid: &str, private_key: &str) -> anyhow::Result<String> {
        let (id, key) = self
            .keys
            .first()
            .ok_or_else(|| anyhow::anyhow!("no key-encryption key"))?;
        let mut nonce = [0u8; NONCE_LEN];
        aws_lc_rs::rand::SystemRandom::new()
            .fill(&mut nonce)
            .map_err(|_| anyhow::anyhow!("no randomness for a nonce"))?;
        let mut in_out = private_key.as_bytes().to_vec();
        key.seal_in_place_append_tag(
            Nonce::assume_unique_for_key(nonce),
            Aad::from(kid.as_bytes()),
            &mut in_out,
        )
        .map_err(|_| anyhow::anyhow!("signing key {kid}: encryption failed"))?;
        let mut blob = nonce.to_vec();
        blob.extend_from_slice(&in_out);
        Ok(format!("{PREFIX}{id}:{}", STANDARD.encode(blob)))
    }

    /// Opens a sealed key of `kid`.
    fn open(&self, kid: &str, kek_id: &str, blob: &str) -> anyhow::Result<String> {
        let Some((_, key)) = self.keys.iter().find(|k| k.0 == kek_id) else {
            anyhow::bail!(
                "signing key {kid} is encrypted with key-encryption key {kek_id}, which is not in --key-encryption-key-file (it has {})",
                self.keys
                    .iter()
                    .map(|k| k.0.as_str())
                    .collect::<Vec<_>>()
                    .join(", ")
            );
        };
        let blob = STANDARD
            .decode(blob)
            .map_err(|_| anyhow::anyhow!("signing key {kid}: damaged ciphertext"))?;
        if blob.len() < NONCE_LEN {
            anyhow::bail!("signing key {kid}: damaged ciphertext");
        }
        let (nonce, sealed) = blob.split_at(NONCE_LEN);
        let nonce = Nonce::try_assume_unique_for_key(nonce)
            .map_err(|_| anyhow::anyhow!("signing key {kid}: damaged ciphertext"))?;
        let mut in_out = sealed.to_vec();
        let plain = key
            .open_in_place(nonce, Aad::from(kid.as_bytes()), &mut in_out)
            .map_err(|_| {
                anyhow::anyhow!(
                    "signing key {kid}: decryption with key-encryption key {kek_id} failed (tampered or moved row)"
                )
            })?;
        String::from_utf8(plain.to_vec())
            .map_err(|_| anyhow::anyhow!("signing key {kid}: damaged plaintext"))
    }
}

fn decode_key(s: &str) -> Option<Vec<u8>> {
    let bytes = if s.len() == 64 && s.bytes().all(|b| b.is_ascii_hexdigit()) {
        (0..32)
            .map(|i| u8::from_str_radix(&s[2 * i..2 * i + 2], 16).ok())
            .collect::<Option<Vec<u8>>>()?
    } else {
        STANDARD.decode(s).ok()?
    };
    (bytes.len() == 32).then_some(bytes)
}

/// The id of the KEK a stored key is sealed with; `None` when stored plain.
pub fn sealed_with(stored: &str) -> Option<&str> {
    stored.strip_prefix(PREFIX)?.split(':').next()
}

/// The row with its private key in plain form (base64 PKCS#8), opening it
/// with `kek` when it is sealed.
pub fn open_row(row: &SigningKeyRow, kek: Option<&Kek>) -> anyhow::Result<SigningKeyRow> {
    let Some(rest) = row.private_key.strip_prefix(PREFIX) else {
        return Ok(row.clone());
    };
    let (kek_id, blob) = rest
        .split_once(':')
        .ok_or_else(|| anyhow::anyhow!("signing key {}: damaged ciphertext", row.kid))?;
    let Some(kek) = kek else {
        anyhow::bail!(
            "signing key {} is encrypted (key-encryption key {kek_id}): start with --key-encryption-key-file",
            row.kid
        );
    };
    Ok(SigningKeyRow {
        private_key: kek.open(&row.kid, kek_id, blob)?,
        ..row.clone()
    })
}

/// The row as it is to be stored: sealed when there is a KEK.
pub fn seal_row(row: SigningKeyRow, kek: Option<&Kek>) -> anyhow::Result<SigningKeyRow> {
    match kek {
        None => Ok(row),
        Some(k) => Ok(SigningKeyRow {
            private_key: k.seal(&row.kid, &row.private_key)?,
            ..row
        }),
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn kek_file(lines: &[&str]) -> (tempfile::TempDir, std::path::PathBuf) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("kek");
        std::fs::write(&path, lines.join("\n")).unwrap();
        (dir, path)
    }

    const A: &str = "MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY="; // base64
    const B: &str = "6162636465666768696a6b6c6d6e6f707172737475767778797a303132333435"; // hex

    fn row() -> SigningKeyRow {
        SigningKeyRow {
            kid: "fg_1".into(),
            alg: "ES256".into(),
            private_key: "UFJJVkFURQ==".into(),
            created_at: 1,
            retired_at: None,
        }
    }

    #[test]
    fn sealed_keys_open_only_with_their_kek_and_their_kid() {
        let (_d, a) = kek_file(&[A]);
        let a = Kek::load(&a).unwrap();
        let sealed = seal_row(row(), Some(&a)).unwrap();
        assert!(sealed.private_key.starts_with("enc:v1:"));
        assert!(!sealed.private_key.contains("UFJJVkFURQ"));
        assert_eq!(sealed_with(&sealed.private_key), Some(a.current_id()));
        assert_eq!(
            open_row(&sealed, Some(&a)).unwrap().private_key,
            "UFJJVkFURQ=="
        );
        // No KEK, another KEK, another row: refused, by name.
        let e = open_row(&sealed, None).unwrap_err().to_string();
        assert!(e.contains("--key-encryption-key-file"), "{e}");
        let (_d, b) = kek_file(&[B]);
        let b = Kek::load(&b).unwrap();
        let e = open_row(&sealed, Some(&b)).unwrap_err().to_string();
        assert!(e.contains(a.current_id()), "{e}");
        let moved = SigningKeyRow {
            kid: "fg_2".into(),
            ..sealed.clone()
        };
        assert!(open_row(&moved, Some(&a)).is_err());
        // Plain rows pass through.
        assert_eq!(
            open_row(&row(), Some(&a)).unwrap().private_key,
            "UFJJVkFURQ=="
        );
    }

    #[test]
    fn a_file_with_two_keys_seals_with_the_first_and_opens_with_both() {
        let (_d, a) = kek_file(&[A]);
        let old = Kek::load(&a).unwrap();
        let sealed_old = seal_row(row(), Some(&old)).unwrap();
        let (_d, both) = kek_file(&["# new first", B, "", A]);
        let both = Kek::load(&both).unwrap();
        assert_ne!(both.current_id(), old.current_id());
        assert_eq!(
            open_row(&sealed_old, Some(&both)).unwrap().private_key,
            "UFJJVkFURQ=="
        );
        let resealed = seal_row(row(), Some(&both)).unwrap();
        assert_eq!(sealed_with(&resealed.private_key), Some(both.current_id()));
    }

    #[test]
    fn bad_files_are_refused_with_the_line() {
        let (_d, p) = kek_file(&["short"]);
        let e = Kek::load(&p).unwrap_err().to_string();
        assert!(e.contains("line 1"), "{e}");
        let (_d, p) = kek_file(&["# nothing"]);
        assert!(Kek::load(&p).unwrap_err().to_string().contains("no key"));
    }
}
