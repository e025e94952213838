//! Secrets and identifiers: API keys are prefixed, high-entropy, stored only
//! as SHA-256 and shown once; `Secret` never prints its value.

use aws_lc_rs::{digest, rand::SecureRandom};

const BASE62: &[u8] = b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";

/// The prefix every fedgate API key starts with, so scanners can find leaks.
pub const API_KEY_PREFIX: &str = crate::apikey::PREFIX;
/// API keys are 40 characters, a length every W&B SDK version accepts
/// (the format is in `crate::apikey`).
pub const API_KEY_LEN: usize = crate::apikey::LEN;

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

/// Random bytes from the system CSPRNG (aws-lc), drawn 256 at a time into
/// a per-thread pool: one draw costs about as much as the ids of a whole
/// request, whatever its size, and every request takes two or three ids.
/// Bytes handed out are wiped from the pool and never handed out twice.
struct RandomPool {
    buf: [u8; 256],
    used: usize,
}

thread_local! {
    static POOL: std::cell::RefCell<RandomPool> =
        const { std::cell::RefCell::new(RandomPool { buf: [0; 256], used: 256 }) };
}

/// Fills `out` with CSPRNG bytes. A failing system RNG (not seen with
/// aws-lc) is retried: a pool it could not refill is never handed out.
fn random_bytes(out: &mut [u8]) {
    POOL.with(|pool| {
        let mut pool = pool.borrow_mut();
        let mut filled = 0;
        while filled < out.len() {
            if pool.used == pool.buf.len() {
                let rng = aws_lc_rs::rand::SystemRandom::new();
                if rng.fill(&mut pool.buf).is_err() {
                    continue;
                }
                pool.used = 0;
            }
            let n = (out.len() - filled).min(pool.buf.len() - pool.used);
            let from = pool.used;
            out[filled..filled + n].copy_from_slice(&pool.buf[from..from + n]);
            pool.buf[from..from + n].fill(0);
            pool.used += n;
            filled += n;
        }
    });
}

/// Fills `n` characters of base62 from the system CSPRNG (rejection sampling, no bias).
pub fn random_base62(n: usize) -> String {
    let mut out = String::with_capacity(n);
    // 16 bytes cover a short id (12 characters, 97% of bytes accepted) in
    // one draw nearly always; the loop draws again when they do not.
    let mut buf = [0u8; 16];
    while out.len() < n {
        let want = (n - out.len() + n / 8 + 2).min(buf.len());
        random_bytes(&mut buf[..want]);
        for &b in &buf[..want] {
            // 248 = 4 * 62: values above are rejected to keep the draw uniform.
            if b < 248 && out.len() < n {
                out.push(BASE62[(b % 62) as usize] as char);
            }
        }
    }
    out
}

/// A new API key: `fgk_`, 29 random base62 characters (≈ 172 bits), `_`
/// and a checksum (`crate::apikey`).
pub fn new_api_key() -> Secret {
    crate::apikey::generate()
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
#[allow(clippy::unwrap_used)]
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
    fn random_ids_are_distinct_and_uniform() {
        // Many ids through the per-thread pool (which refills every few
        // ids): none repeats, every length comes out exact, and each
        // base62 character turns up about equally often.
        let mut seen = std::collections::HashSet::new();
        let mut counts = [0u32; 62];
        for i in 0..20_000 {
            let n = [12, 20, 36][i % 3];
            let id = random_base62(n);
            assert_eq!(id.len(), n);
            for b in id.bytes() {
                counts[BASE62.iter().position(|&c| c == b).unwrap()] += 1;
            }
            assert!(seen.insert(id));
        }
        let total: u32 = counts.iter().sum();
        let expected = f64::from(total) / 62.0;
        for (i, &c) in counts.iter().enumerate() {
            let dev = (f64::from(c) - expected).abs() / expected;
            assert!(
                dev < 0.05,
                "{} drawn {c} times, expected {expected:.0}",
                BASE62[i] as char
            );
        }
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
