//! `POST /graphql`: the two queries the W&B SDK sends right after login,
//! `Viewer` and `GetDefaultEntity` (DESIGN §4), and nothing else.
//!
//! The SDK's `Viewer` selects `viewer { id entity username email flags teams
//! { edges { node { name } } } }`; `GetDefaultEntity` selects `viewer {
//! entity }`. fedgate answers from the caller's principal and returns exactly
//! the fields the query selected (aliases honoured; fields fedgate does not
//! know, such as `flags`, are `null` rather than an error, so a newer SDK
//! selecting one more field still logs in). A missing or bad credential is
//! `{"data":{"viewer":null}}` with 200, as W&B answers. Any other operation
//! is a GraphQL error. An anonymous query whose only root field is `viewer`
//! is answered like `Viewer`.

use std::collections::HashMap;

use axum::Json;
use axum::extract::{FromRequestParts, Request, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use serde_json::{Map, Value, json};

use crate::http::MAX_BODY_BYTES;
use crate::http::extract::credential;
use crate::model::{Principal, PrincipalKind};
use crate::service::RequestCtx;
use crate::state::AppState;

/// The operations fedgate answers.
const OPERATIONS: [&str; 2] = ["Viewer", "GetDefaultEntity"];

/// Deepest selection nesting (and fragment expansion) accepted: bounds the
/// parser's recursion on hostile input.
const MAX_DEPTH: usize = 16;

/// A GraphQL-over-HTTP request body.
#[derive(Debug, Deserialize)]
struct GraphqlRequest {
    query: String,
    #[serde(rename = "operationName", default)]
    operation_name: Option<String>,
    // `variables` is accepted and ignored: neither operation takes any.
}

/// A GraphQL error answer: `{"errors": [{"message"}]}`.
fn gql_error(status: StatusCode, message: impl Into<String>) -> Response {
    (
        status,
        Json(json!({"errors": [{"message": message.into()}]})),
    )
        .into_response()
}

/// `POST /graphql`.
#[utoipa::path(
    post,
    path = "/graphql",
    tag = "platform",
    summary = "The W&B SDK's Viewer and GetDefaultEntity queries; `viewer: null` for a bad credential",
    request_body = serde_json::Value,
    responses((status = 200, description = "success", body = serde_json::Value), (status = 400, description = "bad input (the message says what)", body = crate::http::openapi::ErrorBody)),
    security(("bearer" = []), ("basic" = []))
)]
pub async fn graphql(State(app): State<AppState>, req: Request) -> Response {
    let (mut parts, body) = req.into_parts();
    let bytes = match axum::body::to_bytes(body, MAX_BODY_BYTES).await {
        Ok(b) => b,
        Err(_) => return gql_error(StatusCode::PAYLOAD_TOO_LARGE, "request body is too large"),
    };
    let request: GraphqlRequest = match serde_json::from_slice(&bytes) {
        Ok(r) => r,
        Err(e) => {
            return gql_error(
                StatusCode::BAD_REQUEST,
                format!(
                    "the body must be JSON {{\"query\", \"operationName\"?, \"variables\"?}}: {e}"
                ),
            );
        }
    };
    let doc = match parse(&request.query) {
        Ok(d) => d,
        Err(e) => return gql_error(StatusCode::BAD_REQUEST, format!("syntax error: {e}")),
    };
    let op = match doc.pick(request.operation_name.as_deref()) {
        Ok(op) => op,
        Err(e) => return gql_error(StatusCode::OK, e),
    };
    // A credential that is absent, malformed or refused is simply no viewer.
    let principal = match credential(&parts) {
        Ok(Some(cred)) => {
            let ctx = match RequestCtx::from_request_parts(&mut parts, &app).await {
                Ok(c) => c,
                Err(e) => return e.into_response(),
            };
            crate::service::auth::authenticate(&app, &ctx, &cred)
                .await
                .ok()
                .map(|a| a.principal)
        }
        Ok(None) | Err(_) => None,
    };
    let root = json!({
        "__typename": "Query",
        "viewer": principal.as_ref().map(viewer_value).unwrap_or(Value::Null),
    });
    match project(&root, &op.selection, &doc.fragments, 0) {
        Ok(data) => Json(json!({ "data": data })).into_response(),
        Err(e) => gql_error(StatusCode::BAD_REQUEST, e),
    }
}

/// Everything fedgate can say about the caller, in the W&B schema's shape.
fn viewer_value(p: &Principal) -> Value {
    let (email, teams): (Option<&str>, Vec<&str>) = match &p.kind {
        PrincipalKind::User { email, teams, .. } => (
            Some(email.as_str()),
            teams.iter().map(|m| m.team.name.as_str()).collect(),
        ),
        PrincipalKind::ServiceAccount { scope, .. } => {
            (None, vec![scope.home_team().name.as_str()])
        }
    };
    let edges: Vec<Value> = teams
        .into_iter()
        .map(|name| {
            json!({"__typename": "EntityEdge", "node": {"__typename": "Entity", "name": name}})
        })
        .collect();
    json!({
        "__typename": "User",
        "id": p.id,
        "entity": p.default_team().map(|t| t.name.clone()),
        "username": p.name,
        "name": p.name,
        "email": email,
        "teams": {"__typename": "EntityConnection", "edges": edges},
    })
}

/// Builds the answer for `selection` from `value`: selected fields only,
/// under their aliases; unknown fields are `null`.
fn project(
    value: &Value,
    selection: &[Selection],
    fragments: &HashMap<String, Vec<Selection>>,
    depth: usize,
) -> Result<Value, String> {
    if depth > MAX_DEPTH {
        return Err("query is nested too deeply".into());
    }
    match value {
        Value::Null => Ok(Value::Null),
        Value::Array(items) => items
            .iter()
            .map(|v| project(v, selection, fragments, depth + 1))
            .collect::<Result<Vec<_>, _>>()
            .map(Value::Array),
        Value::Object(_) => {
            let mut out = Map::new();
            collect(value, selection, fragments, depth, &mut out)?;
            Ok(Value::Object(out))
        }
        other => Ok(other.clone()),
    }
}

fn collect(
    value: &Value,
    selection: &[Selection],
    fragments: &HashMap<String, Vec<Selection>>,
    depth: usize,
    out: &mut Map<String, Value>,
) -> Result<(), String> {
    if depth > MAX_DEPTH {
        return Err("query is nested too deeply".into());
    }
    for s in selection {
        match s {
            Selection::Field {
                alias,
                name,
                selection,
            } => {
                let field = value.get(name).unwrap_or(&Value::Null);
                let v = if selection.is_empty() {
                    field.clone()
                } else {
                    project(field, selection, fragments, depth + 1)?
                };
                out.insert(alias.clone().unwrap_or_else(|| name.clone()), v);
            }
            Selection::Inline(selection) => collect(value, selection, fragments, depth + 1, out)?,
            Selection::Spread(name) => {
                let selection = fragments
                    .get(name)
                    .ok_or_else(|| format!("unknown fragment \"{name}\""))?;
                collect(value, selection, fragments, depth + 1, out)?;
            }
        }
    }
    Ok(())
}

// ------------------------------------------------------------------ parsing

/// One selection of a selection set.
#[derive(Clone, Debug, PartialEq, Eq)]
enum Selection {
    Field {
        alias: Option<String>,
        name: String,
        selection: Vec<Selection>,
    },
    /// `... on T { … }` or `... { … }`: merged into the enclosing object.
    Inline(Vec<Selection>),
    /// `...Name`: a named fragment.
    Spread(String),
}

/// An operation definition.
#[derive(Clone, Debug)]
struct Operation {
    kind: String,
    name: Option<String>,
    selection: Vec<Selection>,
}

/// A parsed document: its operations and named fragments.
#[derive(Debug, Default)]
struct Document {
    operations: Vec<Operation>,
    fragments: HashMap<String, Vec<Selection>>,
}

impl Document {
    /// The operation to run (GraphQL spec §6.1 GetOperation), if it is one
    /// fedgate answers.
    fn pick(&self, operation_name: Option<&str>) -> Result<&Operation, String> {
        let op = match operation_name.filter(|n| !n.is_empty()) {
            Some(n) => self
                .operations
                .iter()
                .find(|o| o.name.as_deref() == Some(n))
                .ok_or_else(|| format!("unknown operation named \"{}\"", short(n)))?,
            None => match self.operations.as_slice() {
                [op] => op,
                [] => return Err("the document has no operation".into()),
                _ => {
                    return Err("the document has several operations: set \"operationName\"".into());
                }
            },
        };
        let supported = format!(
            "fedgate answers only the queries {} (what the W&B SDK asks after login)",
            OPERATIONS.join(" and ")
        );
        if op.kind != "query" {
            return Err(format!(
                "{} operations are not supported: {supported}",
                op.kind
            ));
        }
        let viewer_only = op
            .selection
            .iter()
            .all(|s| matches!(s, Selection::Field { name, .. } if name == "viewer" || name == "__typename"));
        match &op.name {
            Some(n) if OPERATIONS.contains(&n.as_str()) => Ok(op),
            None if viewer_only => Ok(op),
            Some(n) => Err(format!(
                "operation \"{}\" is not supported: {supported}",
                short(n)
            )),
            None => Err(format!("this query is not supported: {supported}")),
        }
    }
}

fn short(s: &str) -> &str {
    crate::model::truncate(s, 64)
}

#[derive(Clone, Debug, PartialEq, Eq)]
enum Token {
    Name(String),
    Punct(char),
    Spread,
    /// A string or number literal (only ever skipped).
    Literal,
}

fn tokenize(src: &str) -> Result<Vec<Token>, String> {
    let mut out = Vec::new();
    let mut chars = src.char_indices().peekable();
    while let Some((i, c)) = chars.next() {
        match c {
            c if c.is_whitespace() || c == ',' || c == '\u{feff}' => {}
            '#' => {
                for (_, c) in chars.by_ref() {
                    if c == '\n' || c == '\r' {
                        break;
                    }
                }
            }
            '{' | '}' | '(' | ')' | '[' | ']' | ':' | '@' | '$' | '!' | '=' | '|' | '&' => {
                out.push(Token::Punct(c))
            }
            '.' => {
                if src[i..].starts_with("...") {
                    chars.next();
                    chars.next();
                    out.push(Token::Spread);
                } else {
                    return Err("unexpected \".\"".into());
                }
            }
            '"' => {
                if src[i..].starts_with("\"\"\"") {
                    chars.next();
                    chars.next();
                    let rest = &src[i + 3..];
                    let end = rest
                        .find("\"\"\"")
                        .ok_or_else(|| "unterminated block string".to_string())?;
                    let stop = i + 3 + end + 3;
                    while chars.peek().is_some_and(|(j, _)| *j < stop) {
                        chars.next();
                    }
                } else {
                    let mut closed = false;
                    while let Some((_, c)) = chars.next() {
                        match c {
                            '\\' => {
                                chars.next();
                            }
                            '"' => {
                                closed = true;
                                break;
                            }
                            '\n' | '\r' => break,
                            _ => {}
                        }
                    }
                    if !closed {
                        return Err("unterminated string".into());
                    }
                }
                out.push(Token::Literal);
            }
            c if c == '_' || c.is_ascii_alphabetic() => {
                let mut name = String::from(c);
                while let Some((_, c)) = chars.peek() {
                    if *c == '_' || c.is_ascii_alphanumeric() {
                        name.push(*c);
                        chars.next();
                    } else {
                        break;
                    }
                }
                out.push(Token::Name(name));
            }
            c if c == '-' || c.is_ascii_digit() => {
                while let Some((_, c)) = chars.peek() {
                    if c.is_ascii_alphanumeric() || matches!(c, '.' | '+' | '-') {
                        chars.next();
                    } else {
                        break;
                    }
                }
                out.push(Token::Literal);
            }
            other => return Err(format!("unexpected character {other:?}")),
        }
    }
    Ok(out)
}

struct Parser {
    tokens: Vec<Token>,
    pos: usize,
}

impl Parser {
    fn peek(&self) -> Option<&Token> {
        self.tokens.get(self.pos)
    }
    fn next(&mut self) -> Option<Token> {
        let t = self.tokens.get(self.pos).cloned();
        self.pos += 1;
        t
    }
    fn at(&self, c: char) -> bool {
        self.peek() == Some(&Token::Punct(c))
    }
    fn expect(&mut self, c: char) -> Result<(), String> {
        match self.next() {
            Some(Token::Punct(p)) if p == c => Ok(()),
            _ => Err(format!("expected \"{c}\"")),
        }
    }
    fn name(&mut self) -> Result<String, String> {
        match self.next() {
            Some(Token::Name(n)) => Ok(n),
            _ => Err("expected a name".into()),
        }
    }

    /// Skips a balanced `( … )` (arguments, variable definitions).
    fn skip_parens(&mut self) -> Result<(), String> {
        if !self.at('(') {
            return Ok(());
        }
        let mut depth = 0usize;
        loop {
            match self.next() {
                Some(Token::Punct('(')) => depth += 1,
                Some(Token::Punct(')')) => {
                    depth -= 1;
                    if depth == 0 {
                        return Ok(());
                    }
                }
                Some(_) => {}
                None => return Err("unbalanced \"(\"".into()),
            }
        }
    }

    fn skip_directives(&mut self) -> Result<(), String> {
        while self.at('@') {
            self.next();
            self.name()?;
            self.skip_parens()?;
        }
        Ok(())
    }

    fn selection_set(&mut self, depth: usize) -> Result<Vec<Selection>, String> {
        if depth > MAX_DEPTH {
            return Err("query is nested too deeply".into());
        }
        self.expect('{')?;
        let mut out = Vec::new();
        while !self.at('}') {
            match self.peek() {
                None => return Err("unbalanced \"{\"".into()),
                Some(Token::Spread) => {
                    self.next();
                    match self.peek() {
                        Some(Token::Name(n)) if n == "on" => {
                            self.next();
                            self.name()?;
                            self.skip_directives()?;
                            out.push(Selection::Inline(self.selection_set(depth + 1)?));
                        }
                        Some(Token::Name(_)) => {
                            let name = self.name()?;
                            self.skip_directives()?;
                            out.push(Selection::Spread(name));
                        }
                        _ => {
                            self.skip_directives()?;
                            out.push(Selection::Inline(self.selection_set(depth + 1)?));
                        }
                    }
                }
                Some(_) => {
                    let first = self.name()?;
                    let (alias, name) = if self.at(':') {
                        self.next();
                        (Some(first), self.name()?)
                    } else {
                        (None, first)
                    };
                    self.skip_parens()?;
                    self.skip_directives()?;
                    let selection = if self.at('{') {
                        self.selection_set(depth + 1)?
                    } else {
                        Vec::new()
                    };
                    out.push(Selection::Field {
                        alias,
                        name,
                        selection,
                    });
                }
            }
        }
        self.expect('}')?;
        Ok(out)
    }
}

/// Parses the executable parts of a GraphQL document that fedgate needs.
fn parse(src: &str) -> Result<Document, String> {
    let mut p = Parser {
        tokens: tokenize(src)?,
        pos: 0,
    };
    let mut doc = Document::default();
    while let Some(t) = p.peek().cloned() {
        match t {
            Token::Punct('{') => doc.operations.push(Operation {
                kind: "query".into(),
                name: None,
                selection: p.selection_set(0)?,
            }),
            Token::Name(kw) if matches!(kw.as_str(), "query" | "mutation" | "subscription") => {
                p.next();
                let name = match p.peek() {
                    Some(Token::Name(_)) => Some(p.name()?),
                    _ => None,
                };
                p.skip_parens()?;
                p.skip_directives()?;
                doc.operations.push(Operation {
                    kind: kw,
                    name,
                    selection: p.selection_set(0)?,
                });
            }
            Token::Name(kw) if kw == "fragment" => {
                p.next();
                let name = p.name()?;
                match p.next() {
                    Some(Token::Name(on)) if on == "on" => {}
                    _ => return Err("expected \"on\" after the fragment name".into()),
                }
                p.name()?;
                p.skip_directives()?;
                let selection = p.selection_set(0)?;
                doc.fragments.insert(name, selection);
            }
            _ => return Err("expected an operation or a fragment definition".into()),
        }
    }
    Ok(doc)
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
mod tests {
    use super::*;

    /// The W&B SDK's `Viewer` query (wandb/sdk/internal/internal_api.py).
    const SDK_VIEWER: &str = r#"
        query Viewer{
            viewer {
                id
                entity
                username
                email
                flags
                teams {
                    edges {
                        node {
                            name
                        }
                    }
                }
            }
        }
    "#;

    fn sample() -> Value {
        json!({
            "__typename": "Query",
            "viewer": {
                "__typename": "User",
                "id": "sa_1", "entity": "vision", "username": "ci", "name": "ci", "email": null,
                "teams": {"edges": [{"node": {"name": "vision"}}]}
            }
        })
    }

    fn run(query: &str, op: Option<&str>) -> Result<Value, String> {
        let doc = parse(query)?;
        let op = doc.pick(op)?;
        project(&sample(), &op.selection, &doc.fragments, 0)
    }

    #[test]
    fn sdk_viewer_query_gets_exactly_its_fields() {
        let v = run(SDK_VIEWER, None).unwrap();
        assert_eq!(
            v,
            json!({"viewer": {"id": "sa_1", "entity": "vision", "username": "ci", "email": null,
                "flags": null, "teams": {"edges": [{"node": {"name": "vision"}}]}}})
        );
        let v = run(SDK_VIEWER, Some("Viewer")).unwrap();
        assert_eq!(v["viewer"]["entity"], "vision");
    }

    #[test]
    fn get_default_entity_aliases_and_fragments() {
        let v = run(
            "query GetDefaultEntity { viewer { entity } }",
            Some("GetDefaultEntity"),
        )
        .unwrap();
        assert_eq!(v, json!({"viewer": {"entity": "vision"}}));
        let v = run(
            "query Viewer { me: viewer { ...F ... on User { who: username } } } fragment F on User { id }",
            None,
        )
        .unwrap();
        assert_eq!(v, json!({"me": {"id": "sa_1", "who": "ci"}}));
        // Anonymous query of `viewer` only.
        let v = run("{ viewer { id } }", None).unwrap();
        assert_eq!(v, json!({"viewer": {"id": "sa_1"}}));
        // Comments, strings, arguments and directives are skipped.
        let v = run(
            "# hi\nquery Viewer($x: Boolean = true) { viewer @include(if: $x) { teams(first: 10, q: \"a ) }\") { edges { node { name } } } } }",
            None,
        )
        .unwrap();
        assert_eq!(v["viewer"]["teams"]["edges"][0]["node"]["name"], "vision");
    }

    #[test]
    fn other_operations_are_errors() {
        let e = run("mutation Viewer { viewer { id } }", None).unwrap_err();
        assert!(e.contains("mutation operations are not supported"), "{e}");
        let e = run("query Project { project(name: \"x\") { id } }", None).unwrap_err();
        assert!(e.contains("\"Project\" is not supported"), "{e}");
        let e = run("query A { viewer { id } } query B { viewer { id } }", None).unwrap_err();
        assert!(e.contains("operationName"), "{e}");
        let e = run("query Viewer { viewer { id } }", Some("Other")).unwrap_err();
        assert!(e.contains("unknown operation"), "{e}");
        let e = run("{ models { id } }", None).unwrap_err();
        assert!(e.contains("not supported"), "{e}");
    }

    #[test]
    fn malformed_documents_are_refused_not_panicked() {
        for q in [
            "",
            "query Viewer { viewer { id }",
            "query Viewer { viewer { id } } }",
            "query Viewer { viewer(x: \"unterminated) { id } }",
            "query Viewer { viewer { ...Missing } }",
            "query Viewer { viewer { . } }",
            "\"\"\"",
            &format!(
                "query Viewer {}{}",
                "{ viewer ".repeat(100),
                "}".repeat(100)
            ),
        ] {
            assert!(run(q, None).is_err(), "{q:?}");
        }
        // A fragment that spreads itself is bounded by the depth limit.
        let e = run(
            "query Viewer { viewer { ...F } } fragment F on User { ...F }",
            None,
        )
        .unwrap_err();
        assert!(e.contains("too deeply"), "{e}");
    }
}
