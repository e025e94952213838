//! Secrets and identifiers: API keys are prefixed, high-entropy, stored only
//! as SHA-256 and shown once; `Secret` never prints its value.

use aws_lc_rs::{digest, rand::SecureRandom};

const BASE62: &[u8] = b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";

/// The prefix every fedgate API key starts with, so scanners can find leaks.
pub const API_KEY_PREFIX: &str = "fgk_";
/// API keys are 40 characters, the length the W&B SDK expects of a key.
pub const API_KEY_LEN: usize = 40;

/// A secret value: `Debug` and `Display` print `[redacted]`.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    /// Wraps a value.
    pub fn new(s: String) -> Self {
        Secret(s)
    }
    /// The value, for the one place that must show or compare it.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("[redacted]")
    }
}

/// Fills `n` characters of base62 from the system CSPRNG (rejection sampling, no bias).
pub fn random_base62(n: usize) -> String {
    let rng = aws_lc_rs::rand::SystemRandom::new();
    let mut out = String::with_capacity(n);
    // 32 bytes cover an id (20 characters, 97% of bytes accepted) in one
    // draw nearly always; the loop draws again when they do not.
    let mut buf = [0u8; 32];
    while out.len() < n {
        // A failing system RNG leaves the buffer as it was; mixing in the
        // previous bytes would be wrong, so zeroed bytes are rejected below.
        if rng.fill(&mut buf).is_err() {
            continue;
        }
        for &b in buf.iter() {
            // 248 = 4 * 62: values above are rejected to keep the draw uniform.
            if b < 248 && out.len() < n {
                out.push(BASE62[(b % 62) as usize] as char);
            }
        }
    }
    out
}

/// A new API key: `fgk_` + 36 base62 characters (≈ 214 bits).
pub fn new_api_key() -> Secret {
    Secret(format!(
        "{API_KEY_PREFIX}{}",
        random_base62(API_KEY_LEN - API_KEY_PREFIX.len())
    ))
}

/// The part of a key that may be shown and logged to tell keys apart.
pub fn key_prefix(key: &str) -> String {
    key.chars().take(API_KEY_PREFIX.len() + 6).collect()
}

/// SHA-256 as lowercase hex: how keys are stored and tokens are audited.
pub fn sha256_hex(data: &[u8]) -> String {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let d = digest::digest(&digest::SHA256, data);
    let mut s = String::with_capacity(64);
    // On every API request and exchange: no `format!` per byte.
    for &b in d.as_ref() {
        s.push(char::from(HEX[usize::from(b >> 4)]));
        s.push(char::from(HEX[usize::from(b & 15)]));
    }
    s
}

/// A new identifier like `sa_4fQ…`: a type prefix and 20 base62 characters.
pub fn new_id(kind: &str) -> String {
    format!("{kind}_{}", random_base62(20))
}

/// A new identifier that sorts by creation time: a type prefix, `now_ms` as
/// 8 base62 characters (good until the year 8900), then 12 random ones
/// (71 bits). Rows keyed by such ids are appended to their unique index
/// instead of inserted at random places in it (the audit log's ids).
pub fn new_sortable_id(kind: &str, now_ms: i64) -> String {
    let mut id = String::with_capacity(kind.len() + 21);
    id.push_str(kind);
    id.push('_');
    let mut t = u64::try_from(now_ms).unwrap_or(0);
    let mut stamp = [b'0'; 8];
    for c in stamp.iter_mut().rev() {
        *c = BASE62[(t % 62) as usize];
        t /= 62;
    }
    id.extend(stamp.iter().map(|&b| char::from(b)));
    id.push_str(&random_base62(12));
    id
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_are_prefixed_and_distinct() {
        let a = new_api_key();
        let b = new_api_key();
        assert!(a.expose().starts_with("fgk_"));
        assert_eq!(a.expose().len(), API_KEY_LEN);
        assert_ne!(a, b);
        assert_eq!(format!("{a:?}"), "[redacted]");
    }

    #[test]
    fn sortable_ids_sort_by_time() {
        let a = new_sortable_id("ev", 1_700_000_000_000);
        let b = new_sortable_id("ev", 1_700_000_000_001);
        let c = new_sortable_id("ev", 1_800_000_000_000);
        assert!(a < b && b < c, "{a} {b} {c}");
        assert_eq!(a.len(), "ev_".len() + 20);
        assert!(a.starts_with("ev_"));
        assert_ne!(new_sortable_id("ev", 5), new_sortable_id("ev", 5));
    }

    #[test]
    fn sha256_known_answer() {
        assert_eq!(
            sha256_hex(b"abc"),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
    }
}
