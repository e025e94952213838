//! The W&B SDK's credentials file (DESIGN §5), read and written the way the
//! SDK does so that `fedgate login` and a Python job share one cache:
//!
//! ```json
//! {"credentials": {"https://fedgate.example.com": {
//!     "access_token": "eyJ…", "expires_at": "2026-11-02 14:05:09"}}}
//! ```
//!
//! Keyed by the base URL without a trailing slash, `expires_at` in UTC as
//! `%Y-%m-%d %H:%M:%S`. An entry is reused while more than
//! [`REFRESH_MARGIN_S`] remain, so a token never runs out in the middle of a
//! job step. Written with mode 0600 through a temporary file and a rename, so
//! a reader never sees half a file; entries of other base URLs and unknown
//! keys are preserved.

use std::io::Write as _;
use std::path::{Path, PathBuf};

use serde_json::{Map, Value, json};
use time::macros::format_description;
use time::{OffsetDateTime, PrimitiveDateTime};

use super::ClientError;

/// An entry with this many seconds or fewer left is refreshed, not reused.
pub const REFRESH_MARGIN_S: i64 = 300;

/// `%Y-%m-%d %H:%M:%S`, the SDK's `_expires_at_fmt`.
const EXPIRES_AT_FORMAT: &[time::format_description::FormatItem<'static>] =
    format_description!("[year]-[month]-[day] [hour]:[minute]:[second]");

/// An access token as cached for one base URL.
#[derive(Clone, PartialEq, Eq)]
pub struct CachedToken {
    pub access_token: String,
    pub expires_at: OffsetDateTime,
    /// The `--audience` / `--scope` it was exchanged with, if any (stored as
    /// `fedgate_request`, a key the SDK ignores).
    pub request: Option<String>,
}

impl std::fmt::Debug for CachedToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CachedToken")
            .field("access_token", &"[redacted]")
            .field("expires_at", &self.expires_at)
            .field("request", &self.request)
            .finish()
    }
}

/// What the file holds for a base URL.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Lookup {
    /// Usable: more than [`REFRESH_MARGIN_S`] left.
    Fresh(CachedToken),
    /// Present but expiring, expired or unreadable: exchange again.
    Stale,
    /// No entry for this base URL.
    Missing,
}

/// Parses an `expires_at` value (UTC).
pub fn parse_expires_at(s: &str) -> Result<OffsetDateTime, String> {
    PrimitiveDateTime::parse(s.trim(), EXPIRES_AT_FORMAT)
        .map(PrimitiveDateTime::assume_utc)
        .map_err(|e| format!("expires_at {s:?} is not \"YYYY-MM-DD HH:MM:SS\": {e}"))
}

/// Formats an instant as `expires_at` (UTC, whole seconds).
pub fn format_expires_at(t: OffsetDateTime) -> String {
    let t = t.to_offset(time::UtcOffset::UTC);
    PrimitiveDateTime::new(t.date(), t.time())
        .format(EXPIRES_AT_FORMAT)
        .unwrap_or_default()
}

/// The entry for `base_url` in a parsed file, judged at `now`; an entry
/// exchanged for another `--audience` / `--scope` than `request` is stale.
pub fn lookup(doc: &Value, base_url: &str, request: Option<&str>, now: OffsetDateTime) -> Lookup {
    let Some(entry) = doc.get("credentials").and_then(|c| c.get(base_url)) else {
        return Lookup::Missing;
    };
    let token = entry
        .get("access_token")
        .and_then(Value::as_str)
        .filter(|t| !t.is_empty());
    let expires_at = entry
        .get("expires_at")
        .and_then(Value::as_str)
        .and_then(|s| parse_expires_at(s).ok());
    let cached_request = entry.get("fedgate_request").and_then(Value::as_str);
    match (token, expires_at) {
        (Some(token), Some(expires_at))
            if (expires_at - now).whole_seconds() > REFRESH_MARGIN_S
                && cached_request == request =>
        {
            Lookup::Fresh(CachedToken {
                access_token: token.to_string(),
                expires_at,
                request: request.map(String::from),
            })
        }
        _ => Lookup::Stale,
    }
}

/// `doc` with the entry of `base_url` set to `token`; every other entry and
/// key is kept. A document that is not the expected shape is replaced.
pub fn with_entry(doc: Value, base_url: &str, token: &CachedToken) -> Value {
    let mut root = match doc {
        Value::Object(m) => m,
        _ => Map::new(),
    };
    let mut creds = match root.remove("credentials") {
        Some(Value::Object(m)) => m,
        _ => Map::new(),
    };
    let mut entry = json!({
        "access_token": token.access_token,
        "expires_at": format_expires_at(token.expires_at),
    });
    if let Some(r) = &token.request {
        entry["fedgate_request"] = json!(r);
    }
    creds.insert(base_url.to_string(), entry);
    root.insert("credentials".into(), Value::Object(creds));
    Value::Object(root)
}

/// Reads the file: `{}` when it does not exist, or (with a warning for the
/// user) when it is not JSON — it only ever holds short-lived tokens, so the
/// worst a reset costs is one exchange.
pub fn load(path: &Path) -> Result<(Value, Option<String>), ClientError> {
    match std::fs::read(path) {
        Ok(bytes) => match serde_json::from_slice::<Value>(&bytes) {
            Ok(v) => Ok((v, None)),
            Err(_) => Ok((
                json!({}),
                Some(format!(
                    "the credentials file {} is not JSON; it will be replaced (it only caches access tokens)",
                    path.display()
                )),
            )),
        },
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok((json!({}), None)),
        Err(e) => Err(ClientError::CredentialsFile(format!(
            "cannot read {}: {e}",
            path.display()
        ))),
    }
}

/// Writes the file with mode 0600, creating its folder (mode 0700) if missing.
/// The bytes go to a temporary file in the same folder that is then renamed
/// over the old one, so readers see the old or the new file, never a mix.
pub fn store(path: &Path, doc: &Value) -> Result<(), ClientError> {
    let err = |what: &str, p: &Path, e: std::io::Error| {
        ClientError::CredentialsFile(format!("cannot {what} {}: {e}", p.display()))
    };
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d.to_path_buf(),
        _ => PathBuf::from("."),
    };
    if !dir.exists() {
        let mut builder = std::fs::DirBuilder::new();
        builder.recursive(true);
        #[cfg(unix)]
        std::os::unix::fs::DirBuilderExt::mode(&mut builder, 0o700);
        builder
            .create(&dir)
            .map_err(|e| err("create the folder", &dir, e))?;
    }
    let file_name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "credentials.json".into());
    let tmp = dir.join(format!(
        ".{file_name}.{}.{}.tmp",
        std::process::id(),
        crate::secrets::random_base62(8)
    ));
    let mut text = serde_json::to_vec_pretty(doc)
        .map_err(|e| ClientError::CredentialsFile(format!("cannot encode credentials: {e}")))?;
    text.push(b'\n');
    let mut opts = std::fs::OpenOptions::new();
    opts.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut opts, 0o600);
    let result = opts
        .open(&tmp)
        .and_then(|mut f| {
            f.write_all(&text)?;
            f.sync_all()
        })
        .and_then(|()| std::fs::rename(&tmp, path));
    if let Err(e) = result {
        let _ = std::fs::remove_file(&tmp);
        return Err(err("write", path, e));
    }
    Ok(())
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
mod tests {
    use super::*;
    use time::macros::datetime;

    const BASE: &str = "https://fedgate.example.com";

    fn entry(expires_at: &str) -> Value {
        json!({"credentials": {BASE: {"access_token": "eyJ.a.b", "expires_at": expires_at}}})
    }

    #[test]
    fn expires_at_round_trips_in_the_sdk_format() {
        let t = datetime!(2026-11-02 14:05:09 UTC);
        assert_eq!(format_expires_at(t), "2026-11-02 14:05:09");
        assert_eq!(parse_expires_at("2026-11-02 14:05:09"), Ok(t));
        // Sub-seconds are dropped, offsets are converted to UTC.
        let t2 = datetime!(2026-11-02 16:05:09.75 +02:00);
        assert_eq!(format_expires_at(t2), "2026-11-02 14:05:09");
        for bad in ["2026-11-02T14:05:09", "2026-11-02", "", "tomorrow"] {
            assert!(parse_expires_at(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn fresh_only_while_more_than_five_minutes_remain() {
        let now = datetime!(2026-11-02 12:00:00 UTC);
        match lookup(&entry("2026-11-02 12:05:01"), BASE, None, now) {
            Lookup::Fresh(t) => assert_eq!(t.access_token, "eyJ.a.b"),
            other => panic!("{other:?}"),
        }
        assert_eq!(
            lookup(&entry("2026-11-02 12:05:00"), BASE, None, now),
            Lookup::Stale
        );
        assert_eq!(
            lookup(&entry("2026-11-02 11:00:00"), BASE, None, now),
            Lookup::Stale
        );
        assert_eq!(lookup(&entry("garbage"), BASE, None, now), Lookup::Stale);
        assert_eq!(
            lookup(
                &json!({"credentials": {BASE: {"expires_at": "2030-01-01 00:00:00"}}}),
                BASE,
                None,
                now
            ),
            Lookup::Stale
        );
        assert_eq!(
            lookup(&entry("2030-01-01 00:00:00"), "http://other", None, now),
            Lookup::Missing
        );
        assert_eq!(lookup(&json!({}), BASE, None, now), Lookup::Missing);
        assert_eq!(lookup(&json!([1, 2]), BASE, None, now), Lookup::Missing);
    }

    #[test]
    fn writing_keeps_other_base_urls_and_keys() {
        let doc = json!({
            "credentials": {"http://other:8080": {"access_token": "x", "expires_at": "2030-01-01 00:00:00"}},
            "note": "kept"
        });
        let token = CachedToken {
            access_token: "eyJ.new".into(),
            expires_at: datetime!(2026-11-02 13:00:00 UTC),
            request: None,
        };
        let out = with_entry(doc, BASE, &token);
        assert_eq!(out["note"], "kept");
        assert_eq!(out["credentials"]["http://other:8080"]["access_token"], "x");
        assert_eq!(
            out["credentials"][BASE],
            json!({"access_token": "eyJ.new", "expires_at": "2026-11-02 13:00:00"})
        );
        // A file of the wrong shape is replaced.
        let out = with_entry(json!("nonsense"), BASE, &token);
        assert_eq!(out["credentials"][BASE]["access_token"], "eyJ.new");
    }

    #[test]
    fn store_creates_the_folder_and_writes_mode_0600() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("a/b/credentials.json");
        assert_eq!(load(&path).unwrap().0, json!({}));
        store(&path, &entry("2030-01-01 00:00:00")).unwrap();
        assert_eq!(load(&path).unwrap().0, entry("2030-01-01 00:00:00"));
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
            assert_eq!(mode, 0o600);
            let dir_mode = std::fs::metadata(path.parent().unwrap())
                .unwrap()
                .permissions()
                .mode()
                & 0o777;
            assert_eq!(dir_mode, 0o700);
            // An existing, too-open file is replaced by a 0600 one.
            std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
            store(&path, &entry("2031-01-01 00:00:00")).unwrap();
            let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
            assert_eq!(mode, 0o600);
        }
        // No temporary files are left behind.
        let names: Vec<_> = std::fs::read_dir(path.parent().unwrap())
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(names, ["credentials.json"]);
    }

    #[test]
    fn a_corrupt_file_reads_as_empty() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("credentials.json");
        std::fs::write(&path, "{not json").unwrap();
        assert_eq!(load(&path).unwrap().0, json!({}));
    }

    #[test]
    fn tokens_are_redacted_in_debug() {
        let t = CachedToken {
            access_token: "eyJ.secret".into(),
            expires_at: datetime!(2026-11-02 13:00:00 UTC),
            request: None,
        };
        assert!(!format!("{t:?}").contains("secret"));
    }
}
