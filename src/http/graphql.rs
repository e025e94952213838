//! `POST /graphql`: the two queries the W&B SDK sends right after login,
//! `Viewer` and `GetDefaultEntity` (DESIGN §4), and nothing else.
//!
//! The SDK's `Viewer` selects `viewer { id entity username email flags teams
//! { edges { node { name } } } }`; `GetDefaultEntity` selects `viewer {
//! entity }`. fedgate answers from the caller's principal and returns exactly
//! the fields the query selected (aliases honoured). A missing or bad
//! credential is `{"data":{"viewer":null}}` with 200, as W&B answers.
//!
//! The selection is validated against the small schema fedgate serves
//! ([`SCHEMA`]) before anything else happens, the caller's credential
//! included: an operation named `Viewer` that selects anything else is
//! refused, whatever its name. The work of one query is bounded up front
//! (GraphQL spec §5 validation, the usual "query cost" guard): the body is
//! at most [`MAX_BODY_BYTES`], every field, alias, fragment spread and
//! inline fragment costs one unit of [`MAX_COST`], a named fragment may be
//! spread once per operation (so expansion never multiplies) and a cycle
//! of spreads is refused. The answer is therefore linear in the body.

use std::collections::{HashMap, HashSet};

use axum::Json;
use axum::extract::{FromRequestParts, Request, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use serde_json::{Map, Value, json};

use crate::http::extract::credential;
use crate::model::{Principal, PrincipalKind};
use crate::service::RequestCtx;
use crate::state::AppState;

/// The operations fedgate answers.
const OPERATIONS: [&str; 2] = ["Viewer", "GetDefaultEntity"];

/// Largest `/graphql` body: the SDK's queries are a few hundred bytes.
pub const MAX_BODY_BYTES: usize = 16 * 1024;

/// Deepest selection nesting accepted: bounds the parser's recursion.
const MAX_DEPTH: usize = 16;

/// Work units one operation may cost: each field, alias, fragment spread and
/// inline fragment is one. The SDK's `Viewer` costs 10; the whole schema
/// selected once with a `__typename` everywhere is under 30.
pub const MAX_COST: usize = 64;

/// The schema fedgate serves: (type, field) → the field's type, `None` for
/// a scalar. Lists are transparent (an `edges` value is a list of objects).
const SCHEMA: &[(&str, &str, Option<&str>)] = &[
    ("Query", "viewer", Some("User")),
    ("User", "id", None),
    ("User", "entity", None),
    ("User", "username", None),
    ("User", "name", None),
    ("User", "email", None),
    ("User", "flags", None),
    ("User", "teams", Some("EntityConnection")),
    ("EntityConnection", "edges", Some("EntityEdge")),
    ("EntityEdge", "node", Some("Entity")),
    ("Entity", "name", None),
];

/// A field's type in [`SCHEMA`]: `Some(None)` a scalar, `Some(Some(t))` an
/// object of type `t`, `None` no such field. `__typename` exists everywhere.
fn field_type(ty: &str, field: &str) -> Option<Option<&'static str>> {
    if field == "__typename" {
        return Some(None);
    }
    SCHEMA
        .iter()
        .find(|(t, f, _)| *t == ty && *f == field)
        .map(|(_, _, of)| *of)
}

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
    responses(
        (status = 200, description = "success, or an operation fedgate does not answer (GraphQL error)", body = serde_json::Value),
        (status = 400, description = "bad input: syntax, a field outside the schema, over the work budget (the message says what)", body = serde_json::Value),
        (status = 413, description = "body over 16 KiB", body = serde_json::Value),
    ),
    security(("bearer" = []), ("basic" = []))
)]
pub async fn graphql(State(app): State<AppState>, req: Request) -> Response {
    let (mut parts, body) = req.into_parts();
    let bytes = match axum::body::to_bytes(body, MAX_BODY_BYTES).await {
        Ok(b) => b,
        Err(_) => {
            return gql_error(
                StatusCode::PAYLOAD_TOO_LARGE,
                format!("request body is too large: /graphql takes at most {MAX_BODY_BYTES} bytes"),
            );
        }
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
    // Validated and costed before the credential is even looked at.
    let plan = match plan(op, &doc.fragments) {
        Ok(p) => p,
        Err(e) => return gql_error(StatusCode::BAD_REQUEST, e),
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
    Json(json!({ "data": project(&root, &plan) })).into_response()
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
        "flags": null,
        "teams": {"__typename": "EntityConnection", "edges": edges},
    })
}

/// One field of a validated operation, fragments already merged in.
#[derive(Clone, Debug, PartialEq, Eq)]
struct Planned {
    /// The key in the answer (alias or name).
    key: String,
    name: String,
    /// Empty for a scalar.
    selection: Vec<Planned>,
}

/// Validates `op` against [`SCHEMA`] and the work budget, and merges its
/// fragments into one tree of fields: the only thing execution walks.
fn plan(op: &Operation, fragments: &HashMap<String, Fragment>) -> Result<Vec<Planned>, String> {
    let mut p = Planner {
        fragments,
        cost: 0,
        spread: HashSet::new(),
        active: Vec::new(),
    };
    let mut out = Vec::new();
    p.walk("Query", &op.selection, &mut out)?;
    Ok(out)
}

struct Planner<'a> {
    fragments: &'a HashMap<String, Fragment>,
    cost: usize,
    /// Named fragments spread so far in this operation.
    spread: HashSet<&'a str>,
    /// The spreads being expanded (for the cycle message).
    active: Vec<&'a str>,
}

impl<'a> Planner<'a> {
    fn charge(&mut self, units: usize) -> Result<(), String> {
        self.cost += units;
        if self.cost > MAX_COST {
            return Err(format!(
                "query is too expensive: more than {MAX_COST} selections (each field, alias, fragment spread and inline fragment counts one)"
            ));
        }
        Ok(())
    }

    fn type_condition(ty: &str, on: Option<&str>) -> Result<(), String> {
        match on {
            Some(on) if on != ty => Err(format!(
                "a fragment on \"{}\" cannot be spread where \"{ty}\" is expected",
                short(on)
            )),
            _ => Ok(()),
        }
    }

    fn walk(
        &mut self,
        ty: &'static str,
        selection: &'a [Selection],
        out: &mut Vec<Planned>,
    ) -> Result<(), String> {
        for s in selection {
            match s {
                Selection::Field {
                    alias,
                    name,
                    selection,
                } => {
                    self.charge(1 + usize::from(alias.is_some()))?;
                    let of = field_type(ty, name).ok_or_else(|| {
                        format!(
                            "cannot query field \"{}\" on type \"{ty}\": fedgate serves only viewer {{ id entity username name email flags teams {{ edges {{ node {{ name }} }} }} }}",
                            short(name)
                        )
                    })?;
                    let mut sub = Vec::new();
                    match (of, selection.is_empty()) {
                        (None, true) => {}
                        (None, false) => {
                            return Err(format!(
                                "field \"{}\" is a scalar: it takes no selection",
                                short(name)
                            ));
                        }
                        (Some(t), true) => {
                            return Err(format!(
                                "field \"{}\" of type \"{t}\" needs a selection of subfields",
                                short(name)
                            ));
                        }
                        (Some(t), false) => self.walk(t, selection, &mut sub)?,
                    }
                    out.push(Planned {
                        key: alias.clone().unwrap_or_else(|| name.clone()),
                        name: name.clone(),
                        selection: sub,
                    });
                }
                Selection::Inline { on, selection } => {
                    self.charge(1)?;
                    Self::type_condition(ty, on.as_deref())?;
                    self.walk(ty, selection, out)?;
                }
                Selection::Spread(name) => {
                    self.charge(1)?;
                    let (name, fragment) = self
                        .fragments
                        .get_key_value(name.as_str())
                        .ok_or_else(|| format!("unknown fragment \"{}\"", short(name)))?;
                    if self.active.contains(&name.as_str()) {
                        return Err(format!(
                            "fragment \"{}\" spreads itself (through {}): cyclic fragments are refused",
                            short(name),
                            self.active
                                .iter()
                                .map(|n| short(n))
                                .collect::<Vec<_>>()
                                .join(" → ")
                        ));
                    }
                    if !self.spread.insert(name.as_str()) {
                        return Err(format!(
                            "fragment \"{}\" is spread more than once: each fragment may be used once per query",
                            short(name)
                        ));
                    }
                    Self::type_condition(ty, Some(&fragment.on))?;
                    self.active.push(name.as_str());
                    self.walk(ty, &fragment.selection, out)?;
                    self.active.pop();
                }
            }
        }
        Ok(())
    }
}

/// Builds the answer for `plan` from `value`: selected fields only, under
/// their keys. Linear in the plan times the data (a handful of teams).
fn project(value: &Value, plan: &[Planned]) -> Value {
    match value {
        Value::Array(items) => Value::Array(items.iter().map(|v| project(v, plan)).collect()),
        Value::Object(_) => {
            let mut out = Map::new();
            for f in plan {
                let field = value.get(&f.name).unwrap_or(&Value::Null);
                let v = if f.selection.is_empty() {
                    field.clone()
                } else {
                    project(field, &f.selection)
                };
                out.insert(f.key.clone(), v);
            }
            Value::Object(out)
        }
        other => other.clone(),
    }
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
    Inline {
        on: Option<String>,
        selection: Vec<Selection>,
    },
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

/// A named fragment: its type condition and selection.
#[derive(Clone, Debug)]
struct Fragment {
    on: String,
    selection: Vec<Selection>,
}

/// A parsed document: its operations and named fragments.
#[derive(Debug, Default)]
struct Document {
    operations: Vec<Operation>,
    fragments: HashMap<String, Fragment>,
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
        // An anonymous query is answered like `Viewer`: the schema check in
        // [`plan`] keeps it to what `Viewer` may select.
        match &op.name {
            Some(n) if !OPERATIONS.contains(&n.as_str()) => Err(format!(
                "operation \"{}\" is not supported: {supported}",
                short(n)
            )),
            _ => Ok(op),
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
                            let on = self.name()?;
                            self.skip_directives()?;
                            out.push(Selection::Inline {
                                on: Some(on),
                                selection: self.selection_set(depth + 1)?,
                            });
                        }
                        Some(Token::Name(_)) => {
                            let name = self.name()?;
                            self.skip_directives()?;
                            out.push(Selection::Spread(name));
                        }
                        _ => {
                            self.skip_directives()?;
                            out.push(Selection::Inline {
                                on: None,
                                selection: self.selection_set(depth + 1)?,
                            });
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

/// Parses, picks, validates and costs a query as the endpoint does, without
/// a caller: the entry point of the generated-input tests and benches.
pub fn validate_query(src: &str, operation_name: Option<&str>) -> Result<(), String> {
    let doc = parse(src)?;
    let op = doc.pick(operation_name)?;
    plan(op, &doc.fragments).map(|_| ())
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
                let on = p.name()?;
                p.skip_directives()?;
                let selection = p.selection_set(0)?;
                // GraphQL spec §5.5.1.1: fragment names are unique.
                if doc.fragments.contains_key(&name) {
                    return Err(format!("fragment \"{}\" is defined twice", short(&name)));
                }
                doc.fragments.insert(name, Fragment { on, selection });
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
        Ok(project(&sample(), &plan(op, &doc.fragments)?))
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
        assert!(
            e.contains("cannot query field \"models\" on type \"Query\""),
            "{e}"
        );
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
    }

    /// Issue 10: an anonymous 727-byte `query Viewer { ...F0 }` whose fifteen
    /// fragments each spread the next three times took 931 ms (3^15 expansions).
    fn fan_out(fragments: usize, width: usize) -> String {
        let mut q = String::from("query Viewer { ...F0 }");
        for i in 0..fragments {
            let next = if i + 1 < fragments {
                format!("...F{} ", i + 1).repeat(width)
            } else {
                "viewer { id }".into()
            };
            q.push_str(&format!(" fragment F{i} on Query {{ {next} }}"));
        }
        q
    }

    #[test]
    fn fragment_fan_out_is_refused_before_any_work() {
        let q = fan_out(15, 3);
        assert!(q.len() < 800, "{}", q.len());
        let e = run(&q, None).unwrap_err();
        // Expansion is depth first: the last fragment is the first repeated.
        assert!(
            e.contains("fragment \"F14\" is spread more than once"),
            "{e}"
        );
        // Every variant of repetition: same fragment in two places, twice in one set.
        for q in [
            "query Viewer { viewer { ...A ...A } } fragment A on User { id }",
            "query Viewer { viewer { ...A teams { edges { node { ...B } } } } } fragment A on User { id } fragment B on Entity { ...C } fragment C on Entity { name }",
            "query Viewer { a: viewer { ...A } b: viewer { ...A } } fragment A on User { id }",
        ] {
            let r = run(q, None);
            if q.contains("...B") {
                assert!(r.is_ok(), "distinct fragments are fine: {r:?}");
            } else {
                assert!(r.unwrap_err().contains("spread more than once"), "{q}");
            }
        }
    }

    #[test]
    fn cyclic_spreads_are_refused() {
        for q in [
            "query Viewer { viewer { ...F } } fragment F on User { ...F }",
            "query Viewer { viewer { ...F } } fragment F on User { id ...G } fragment G on User { ... on User { ...F } }",
        ] {
            let e = run(q, None).unwrap_err();
            assert!(e.contains("spreads itself") && e.contains("cyclic"), "{e}");
        }
    }

    #[test]
    fn every_selection_costs_and_the_budget_holds() {
        // Aliases are fields too: 60 aliased ids cost 120.
        let many: String = (0..60).map(|i| format!("a{i}: id ")).collect();
        let e = run(&format!("query Viewer {{ viewer {{ {many} }} }}"), None).unwrap_err();
        assert!(e.contains("too expensive"), "{e}");
        // Inline fragments count: 40 of them, each with one field.
        let inl = "... on User { __typename } ".repeat(40);
        let e = run(&format!("query Viewer {{ viewer {{ {inl} }} }}"), None).unwrap_err();
        assert!(e.contains("more than 64 selections"), "{e}");
        // The SDK's query is well within it; 30 plain fields are fine.
        let ok: String = "id ".repeat(30);
        run(&format!("query Viewer {{ viewer {{ {ok} }} }}"), None).unwrap();
    }

    #[test]
    fn a_viewer_operation_selects_only_what_is_served() {
        for (q, want) in [
            (
                "query Viewer { project(name: \"x\") { id } }",
                "cannot query field \"project\" on type \"Query\"",
            ),
            (
                "query Viewer { viewer { id } models { id } }",
                "cannot query field \"models\"",
            ),
            (
                "query Viewer { viewer { apiKeys { id } } }",
                "cannot query field \"apiKeys\" on type \"User\"",
            ),
            (
                "query GetDefaultEntity { viewer { teams { edges { node { members } } } } }",
                "on type \"Entity\"",
            ),
            ("query Viewer { viewer }", "needs a selection"),
            ("query Viewer { viewer { id { x } } }", "is a scalar"),
            (
                "query Viewer { viewer { ... on Project { id } } }",
                "cannot be spread",
            ),
            (
                "query Viewer { viewer { ...F } } fragment F on Query { __typename }",
                "cannot be spread",
            ),
            (
                "query Viewer { viewer { id } } fragment F on User { id } fragment F on User { name }",
                "defined twice",
            ),
        ] {
            let e = run(q, None).unwrap_err();
            assert!(e.contains(want), "{q}: {e}");
        }
    }
}

/// Generated inputs (issue 10): any document is answered or refused with
/// a message, never a panic, and an accepted one stays within the budget.
#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
mod generated {
    use proptest::prelude::*;

    use super::*;

    fn document() -> impl Strategy<Value = String> {
        prop_oneof![
            any::<String>(),
            prop::collection::vec(
                prop_oneof![
                    Just("query"),
                    Just("Viewer"),
                    Just("fragment"),
                    Just("F"),
                    Just("G"),
                    Just("on"),
                    Just("User"),
                    Just("Query"),
                    Just("viewer"),
                    Just("id"),
                    Just("teams"),
                    Just("edges"),
                    Just("node"),
                    Just("name"),
                    Just("a:"),
                    Just("{"),
                    Just("}"),
                    Just("("),
                    Just(")"),
                    Just("..."),
                    Just("...F"),
                    Just("...G"),
                    Just("@include(if: true)"),
                    Just("\""),
                    Just("\"\"\""),
                    Just("#"),
                    Just("\n"),
                ],
                0..200
            )
            .prop_map(|t| t.join(" ")),
        ]
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 1024, ..ProptestConfig::default() })]

        #[test]
        fn any_document_is_answered_or_refused(q in document(), op in proptest::option::of("[A-Za-z]{0,12}")) {
            if let Ok(doc) = parse(&q)
                && let Ok(op) = doc.pick(op.as_deref())
                && let Ok(plan) = plan(op, &doc.fragments)
            {
                fn size(p: &[Planned]) -> usize {
                    p.iter().map(|f| 1 + size(&f.selection)).sum()
                }
                prop_assert!(size(&plan) <= MAX_COST);
                let _ = project(&json!({"viewer": {"id": "x", "teams": {"edges": [{"node": {"name": "t"}}]}}}), &plan);
            }
        }
    }
}
