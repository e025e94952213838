//! What can go wrong in an admin command, the exit code a script sees for
//! it, and the hint a person reads under the server's message.
//!
//! Exit codes (docs/cli.md):
//!
//! | code | meaning |
//! |---|---|
//! | 0 | success |
//! | 1 | anything not below (an unexpected answer, a local I/O error, a 5xx) |
//! | 2 | usage: a bad flag or argument, an invalid trust file |
//! | 3 | fedgate unreachable or temporarily unavailable (transport error, 429, 503): retry later |
//! | 4 | not authenticated: no API key, or the server refused it (401) |
//! | 5 | denied (403) |
//! | 6 | not found (404) |
//! | 7 | conflict: it already exists, is still in use, or the trust file cannot be applied as is (409) |
//! | 8 | the server refused the input (400, 413) |
//! | 9 | `explain`: the token would be refused |
//! | 10 | `plan --exit-code`: the plan has changes |
//! | 11 | `key check`: a legacy key without a checksum |

use serde_json::{Value, json};

use crate::client::ClientError;

/// Exit code: success.
pub const EXIT_OK: i32 = 0;
/// Exit code: an error not covered by a more specific code.
pub const EXIT_FAILURE: i32 = 1;
/// Exit code: bad command line or trust file.
pub const EXIT_USAGE: i32 = 2;
/// Exit code: fedgate could not be reached or is temporarily unavailable.
pub const EXIT_UNAVAILABLE: i32 = 3;
/// Exit code: no credential, or the credential was refused (401).
pub const EXIT_UNAUTHENTICATED: i32 = 4;
/// Exit code: denied (403).
pub const EXIT_FORBIDDEN: i32 = 5;
/// Exit code: not found (404).
pub const EXIT_NOT_FOUND: i32 = 6;
/// Exit code: conflict (409), or a plan that cannot be applied.
pub const EXIT_CONFLICT: i32 = 7;
/// Exit code: the server refused the input (400, 413).
pub const EXIT_BAD_INPUT: i32 = 8;
/// Exit code of `explain` when the exchange would be refused.
pub const EXIT_TOKEN_REFUSED: i32 = 9;
/// Exit code of `plan --exit-code` when there are changes to apply.
pub const EXIT_CHANGES: i32 = 10;

/// An admin command's failure.
#[derive(Debug, thiserror::Error)]
pub enum CliError {
    /// A bad flag, argument or setting (exit 2).
    #[error("{0}")]
    Usage(String),
    /// The trust file is invalid: the message names the file and line (exit 2).
    #[error("{0}")]
    TrustFile(String),
    /// A dependency of the action is down, e.g. an issuer's keys cannot be
    /// fetched (exit 3).
    #[error("{0}")]
    Unavailable(String),
    /// The named object does not exist (exit 6).
    #[error("{0}")]
    NotFound(String),
    /// The trust file cannot be applied to today's state (exit 7).
    #[error("{0}")]
    Plan(String),
    /// A call to fedgate failed.
    #[error("{0}")]
    Client(#[from] ClientError),
    /// Something local failed: reading a file, writing output (exit 1).
    #[error("{0}")]
    Local(String),
    /// An error with a hint more precise than its kind's, e.g. the id of
    /// the issuer a duplicate registration collided with.
    #[error("{error}")]
    Hinted { error: Box<CliError>, hint: String },
}

/// Result alias of the admin commands.
pub type CliResult<T> = Result<T, CliError>;

impl CliError {
    /// The HTTP status of a server answer, if this is one.
    pub fn status(&self) -> Option<u16> {
        match self {
            CliError::Client(ClientError::Api { status, .. }) => Some(*status),
            CliError::Hinted { error, .. } => error.status(),
            _ => None,
        }
    }

    /// The exit code scripts can branch on (module docs).
    pub fn exit_code(&self) -> i32 {
        match self {
            CliError::Usage(_) | CliError::TrustFile(_) => EXIT_USAGE,
            CliError::Plan(_) => EXIT_CONFLICT,
            CliError::NotFound(_) => EXIT_NOT_FOUND,
            CliError::Unavailable(_) => EXIT_UNAVAILABLE,
            CliError::Local(_) => EXIT_FAILURE,
            CliError::Hinted { error, .. } => error.exit_code(),
            CliError::Client(e) => match e {
                ClientError::Config(_) => EXIT_USAGE,
                ClientError::TokenFile(_) | ClientError::CredentialsFile(_) => EXIT_USAGE,
                ClientError::Transport { .. } | ClientError::GaveUp { .. } => EXIT_UNAVAILABLE,
                ClientError::Exchange { .. } | ClientError::BadResponse { .. } => EXIT_FAILURE,
                // A proxy's error page in front of fedgate: 502-504 are worth a retry.
                ClientError::NotFedgate { status, .. } => match status {
                    502..=504 => EXIT_UNAVAILABLE,
                    _ => EXIT_FAILURE,
                },
                ClientError::Api { status, .. } => match status {
                    400 | 413 | 422 => EXIT_BAD_INPUT,
                    401 => EXIT_UNAUTHENTICATED,
                    403 => EXIT_FORBIDDEN,
                    404 => EXIT_NOT_FOUND,
                    409 => EXIT_CONFLICT,
                    429 | 502 | 503 | 504 => EXIT_UNAVAILABLE,
                    _ => EXIT_FAILURE,
                },
            },
        }
    }

    /// What a person can do about it.
    pub fn hint(&self) -> Option<String> {
        let text = match self {
            CliError::Usage(_) => "run the command with --help to see its flags",
            CliError::TrustFile(_) => {
                "fix the trust file at the line shown (docs/cli.md describes the format)"
            }
            CliError::Plan(_) => {
                "change the trust file, or change the object by hand first (fedgate sa edit/delete)"
            }
            CliError::NotFound(_) => {
                "list what exists with `fedgate sa list`, `fedgate issuer list` or `fedgate team list`"
            }
            CliError::Unavailable(_) => {
                "the cached keys (if any) keep serving; check that the issuer's discovery document and JWKS are reachable from fedgate, then retry"
            }
            CliError::Local(_) => return None,
            CliError::Hinted { hint, .. } => hint,
            CliError::Client(e) => match e {
                ClientError::Transport { .. } | ClientError::GaveUp { .. } => {
                    "is fedgate running at that address? Set FEDGATE_URL (or --url) to its base URL"
                }
                ClientError::BadResponse { .. } | ClientError::NotFedgate { .. } => {
                    "is FEDGATE_URL the base URL of a fedgate server (not a proxy's error page)?"
                }
                ClientError::Config(_)
                | ClientError::TokenFile(_)
                | ClientError::CredentialsFile(_)
                | ClientError::Exchange { .. } => return None,
                ClientError::Api {
                    status, message, ..
                } => match status {
                    400 | 422 => "fix the value the message names and run the command again",
                    413 => "the request is too large (bodies are limited to 128 KiB)",
                    401 => {
                        "check FEDGATE_API_KEY (or --api-key): the key may be mistyped, revoked, or belong to a disabled account"
                    }
                    403 => {
                        "this needs an org admin's key (or the team admin's, for a team's accounts); the rule named above refused it"
                    }
                    404 if message == "no such endpoint" => {
                        "this fedgate server does not have that endpoint: it may be older than this CLI"
                    }
                    404 => {
                        "check the name or id (list them with `fedgate sa list`, `fedgate issuer list`, `fedgate team list`); another organization's objects are reported as not found"
                    }
                    409 => {
                        "it already exists or is still in use: look at it with `show`, change it with `edit`, or remove what uses it first"
                    }
                    429 | 503 => "fedgate is busy or a dependency is down: retry shortly",
                    _ => return None,
                },
            },
        };
        Some(text.to_string())
    }

    /// The error as scripts read it with `--json` (on stderr).
    pub fn to_json(&self) -> Value {
        if let CliError::Hinted { error, hint } = self {
            let mut v = error.to_json();
            v["error"]["hint"] = json!(hint);
            return v;
        }
        let mut err = json!({
            "message": self.to_string(),
            "exit_code": self.exit_code(),
        });
        if let CliError::Client(ClientError::Api {
            status,
            code,
            message,
            ..
        }) = self
        {
            err["status"] = json!(status);
            err["code"] = json!(code);
            err["message"] = json!(message);
        }
        if let Some(h) = self.hint() {
            err["hint"] = json!(h);
        }
        json!({ "error": err })
    }

    /// The error as a person reads it.
    pub fn to_text(&self) -> String {
        let mut out = self.head();
        if let Some(h) = self.hint() {
            out.push_str("\nhint: ");
            out.push_str(&h);
        }
        out
    }

    /// The first line(s) of [`CliError::to_text`]: what went wrong.
    fn head(&self) -> String {
        match self {
            CliError::Hinted { error, .. } => error.head(),
            CliError::Client(ClientError::Api {
                method,
                url,
                status,
                code,
                message,
            }) => format!("error: {message}\n  ({method} {url} answered {status} {code})"),
            // The client's own text names WANDB_BASE_URL; the hint names FEDGATE_URL.
            CliError::Client(ClientError::NotFedgate {
                url, status, what, ..
            }) => format!("error: {url} answered {status} with {what}, not fedgate's JSON"),
            other => format!("error: {other}"),
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
mod tests {
    use super::*;

    fn api(status: u16, message: &str) -> CliError {
        CliError::Client(ClientError::Api {
            method: "GET".into(),
            url: "http://x/api".into(),
            status,
            code: "c".into(),
            message: message.into(),
        })
    }

    #[test]
    fn every_status_class_has_its_own_exit_code() {
        let codes: Vec<i32> = [400, 401, 403, 404, 409, 413, 429, 500, 503]
            .iter()
            .map(|s| api(*s, "m").exit_code())
            .collect();
        assert_eq!(codes, vec![8, 4, 5, 6, 7, 8, 3, 1, 3]);
        assert_eq!(CliError::Usage("x".into()).exit_code(), 2);
        assert_eq!(CliError::TrustFile("x".into()).exit_code(), 2);
        assert_eq!(CliError::Plan("x".into()).exit_code(), 7);
        let transport = CliError::Client(ClientError::Transport {
            url: "u".into(),
            reason: "refused".into(),
        });
        assert_eq!(transport.exit_code(), 3);
        assert!(transport.hint().unwrap().contains("FEDGATE_URL"));
    }

    #[test]
    fn the_server_message_comes_first_then_a_hint() {
        let e = api(403, "user \"bob\" is not an org admin");
        let text = e.to_text();
        assert!(
            text.starts_with("error: user \"bob\" is not an org admin"),
            "{text}"
        );
        assert!(text.contains("403"), "{text}");
        assert!(text.contains("\nhint: "), "{text}");
        let j = e.to_json();
        assert_eq!(j["error"]["status"], 403);
        assert_eq!(j["error"]["exit_code"], 5);
        assert_eq!(j["error"]["message"], "user \"bob\" is not an org admin");
        assert!(
            api(404, "no such endpoint")
                .hint()
                .unwrap()
                .contains("older")
        );
    }
}
