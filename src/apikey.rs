//! The API key format: a fixed shape with a checksum, so that a secret
//! scanner finds a leaked key and validates it offline with no false
//! positives (the scheme GitHub's `ghp_` tokens use), and so that fedgate
//! refuses a mistyped or forged key before any store lookup.
//!
//! ```text
//! fgk_0123456789abcdefghijABCDEFGHI_3T8zL2
//! ^^^^                             ^ ^^^^^^
//! |    29 random base62 characters |  CRC-32 of the 33 characters before
//! prefix                  separator   the last "_", in base62, 6 digits
//! ```
//!
//! 40 characters in all: the length every W&B SDK version accepts (old ones
//! insist on exactly 40, newer ones on `[\w-]{40,}`). Keys made before the
//! checksum (`fgk_` + 36 base62, no second `_`) keep working; they cannot
//! be validated offline. docs/api-keys.md publishes the regular expression
//! and the checksum for scanning partners.

use crate::secrets::{Secret, random_base62};

/// The prefix of every fedgate API key.
pub const PREFIX: &str = "fgk_";
/// Random base62 characters after the prefix (29 × log2(62) ≈ 172 bits).
pub const RANDOM_LEN: usize = 29;
/// Base62 digits of the checksum (62^6 > 2^32, so a CRC-32 always fits).
pub const CHECKSUM_LEN: usize = 6;
/// Length of a key: prefix, random part, `_`, checksum.
pub const LEN: usize = PREFIX.len() + RANDOM_LEN + 1 + CHECKSUM_LEN;
/// Characters after the prefix of a key made before checksums existed.
pub const LEGACY_RANDOM_LEN: usize = 36;
/// What a scanner searches for (POSIX ERE / PCRE / RE2 / Rust `regex`
/// syntax); every match is then confirmed with [`checksum`].
pub const REGEX: &str = r"\bfgk_[0-9A-Za-z]{29}_[0-9A-Za-z]{6}\b";

const BASE62: &[u8; 62] = b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";

/// CRC-32 as in zlib, gzip and PNG (ISO-HDLC: reflected polynomial
/// 0x04C11DB7, initial value and final XOR 0xFFFFFFFF): every language's
/// standard library has it (`zlib.crc32`, `hash/crc32`, `java.util.zip.CRC32`).
const CRC32: crc::Crc<u32> = crc::Crc::<u32>::new(&crc::CRC_32_ISO_HDLC);

/// The checksum of `body` (`fgk_` + the random part): its CRC-32 as 6 base62
/// digits, most significant first, `0`-padded.
pub fn checksum(body: &str) -> String {
    let mut n = CRC32.checksum(body.as_bytes());
    let mut out = [b'0'; CHECKSUM_LEN];
    for c in out.iter_mut().rev() {
        *c = BASE62[(n % 62) as usize];
        n /= 62;
    }
    out.iter().map(|&b| char::from(b)).collect()
}

/// A new API key in the checksummed format.
pub fn generate() -> Secret {
    let body = format!("{PREFIX}{}", random_base62(RANDOM_LEN));
    let sum = checksum(&body);
    Secret::new(format!("{body}_{sum}"))
}

/// The kind of a well-formed key.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Format {
    /// `fgk_<29>_<6>` with a matching checksum: certainly issued by fedgate's format.
    Checksummed,
    /// `fgk_<36>`: a key made before checksums; only the store can tell.
    Legacy,
}

impl Format {
    /// A short name for output.
    pub fn as_str(self) -> &'static str {
        match self {
            Format::Checksummed => "checksummed",
            Format::Legacy => "legacy",
        }
    }
}

/// Why a presented string is not a usable key (decided offline).
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum Invalid {
    #[error("invalid API key: a fedgate key starts with \"fgk_\"")]
    Prefix,
    #[error(
        "invalid API key: a fedgate key is \"fgk_\", 29 letters and digits, \"_\" and a 6-character checksum (40 characters)"
    )]
    Shape,
    #[error(
        "invalid API key: its checksum does not match, so it was mistyped, truncated or altered (it was not looked up)"
    )]
    Checksum,
}

fn is_base62(s: &str) -> bool {
    s.bytes().all(|b| b.is_ascii_alphanumeric())
}

/// Classifies a presented key without any lookup: the format it has, or why
/// it cannot be a fedgate key. Constant work: only fixed-length strings are
/// hashed.
pub fn classify(key: &str) -> Result<Format, Invalid> {
    let Some(rest) = key.strip_prefix(PREFIX) else {
        return Err(Invalid::Prefix);
    };
    if rest.len() == LEGACY_RANDOM_LEN && is_base62(rest) {
        return Ok(Format::Legacy);
    }
    if key.len() != LEN || !key.is_ascii() {
        return Err(Invalid::Shape);
    }
    let (body, sum) = key.split_at(PREFIX.len() + RANDOM_LEN);
    let Some(sum) = sum.strip_prefix('_') else {
        return Err(Invalid::Shape);
    };
    if !is_base62(&body[PREFIX.len()..]) || !is_base62(sum) {
        return Err(Invalid::Shape);
    }
    if checksum(body) != sum {
        return Err(Invalid::Checksum);
    }
    Ok(Format::Checksummed)
}

/// Exit status of `fedgate key check` for a legacy key: well-formed, not
/// verifiable offline. Not 2, which is a command-line usage error (clap's
/// and the admin commands'), so scripts can tell the two apart.
pub const EXIT_LEGACY: u8 = 11;

/// What `fedgate key check` says about a key: an exit status (0 valid,
/// 1 invalid, [`EXIT_LEGACY`] legacy), a sentence and the same as JSON. Only the first
/// characters of the key are repeated.
pub fn report(key: &str) -> (u8, String, serde_json::Value) {
    let key = key.trim();
    let shown: String = key.chars().take(PREFIX.len() + 6).collect();
    let (status, valid, format, checksum, text) = match classify(key) {
        Ok(Format::Checksummed) => (
            0,
            true,
            Some(Format::Checksummed),
            "ok",
            format!("{shown}…: a valid fedgate API key (checksum matches)"),
        ),
        Ok(Format::Legacy) => (
            EXIT_LEGACY,
            true,
            Some(Format::Legacy),
            "absent",
            format!(
                "{shown}…: a legacy fedgate API key (made before checksums): well-formed, but only the server can tell whether it is real"
            ),
        ),
        Err(e) => (
            1,
            false,
            None,
            if e == Invalid::Checksum {
                "mismatch"
            } else {
                "absent"
            },
            format!("{shown}…: {e}"),
        ),
    };
    let json = serde_json::json!({
        "valid": valid,
        "format": format.map(Format::as_str),
        "checksum": checksum,
        "prefix": shown,
        "message": text,
    });
    (status, text, json)
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
mod tests {
    use super::*;

    #[test]
    fn new_keys_have_the_documented_shape_and_pass() {
        for _ in 0..200 {
            let k = generate();
            let k = k.expose();
            assert_eq!(k.len(), 40, "{k}");
            assert_eq!(classify(k), Ok(Format::Checksummed), "{k}");
            assert!(k.starts_with("fgk_"));
            assert_eq!(k.as_bytes()[33], b'_');
        }
    }

    #[test]
    fn checksum_known_answers() {
        // CRC-32 of "123456789" is the catalogue's check value 0xCBF43926
        // = 3421780262, which is "3jZRME" in base62 (Python's zlib agrees).
        assert_eq!(CRC32.checksum(b"123456789"), 0xCBF4_3926);
        assert_eq!(checksum("123456789"), "3jZRME");
        // A fixed key, checked independently with Python's zlib.crc32 (docs/api-keys.md).
        let body = "fgk_0123456789abcdefghijABCDEFGHI";
        assert_eq!(checksum(body), "3T8zL2");
        assert_eq!(
            classify("fgk_0123456789abcdefghijABCDEFGHI_3T8zL2"),
            Ok(Format::Checksummed)
        );
    }

    #[test]
    fn every_single_character_change_is_caught() {
        let k = generate();
        let k = k.expose().to_string();
        for i in 4..k.len() {
            if i == 33 {
                continue;
            }
            for c in ['0', 'a', 'Z', '9'] {
                let mut b = k.clone().into_bytes();
                if b[i] == c as u8 {
                    continue;
                }
                b[i] = c as u8;
                let bad = String::from_utf8(b).unwrap();
                assert_eq!(classify(&bad), Err(Invalid::Checksum), "{bad}");
            }
        }
        // Two neighbours swapped: also caught.
        let mut b = k.clone().into_bytes();
        let j = (5..32).find(|&j| b[j] != b[j + 1]).unwrap();
        b.swap(j, j + 1);
        assert_eq!(
            classify(&String::from_utf8(b).unwrap()),
            Err(Invalid::Checksum)
        );
    }

    #[test]
    fn legacy_keys_are_still_keys() {
        let legacy = format!("fgk_{}", random_base62(36));
        assert_eq!(classify(&legacy), Ok(Format::Legacy));
    }

    #[test]
    fn malformed_keys_are_refused_by_shape() {
        let good = generate();
        let good = good.expose();
        let cases = [
            ("", Invalid::Prefix),
            ("ghp_abc", Invalid::Prefix),
            ("FGK_0123456789abcdefghijABCDEFGHI_3T8zL2", Invalid::Prefix),
            ("fgk_", Invalid::Shape),
            ("fgk_wrong", Invalid::Shape),
            ("fgk_0123456789abcdefghijABCDEFGHI-3T8zL2", Invalid::Shape),
            ("fgk_0123456789abcdefghijABCDEFGH!_3T8zL2", Invalid::Shape),
            ("fgk_0123456789abcdefghijABCDEFGHI_3T8zL", Invalid::Shape),
            ("fgk_0123456789abcdefghijABCDEFGHI_3T8zL20", Invalid::Shape),
            ("fgk_0123456789abcdefghijABCDEFGHIé3T8zL", Invalid::Shape),
            ("fgk_0123456789abcdefghijklmnopqrstuvwxy!", Invalid::Shape),
        ];
        for (k, want) in cases {
            assert_eq!(classify(k), Err(want), "{k:?}");
        }
        assert_eq!(classify(&format!("{good} ")), Err(Invalid::Shape));
    }
}
