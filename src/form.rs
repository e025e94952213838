//! The `application/x-www-form-urlencoded` body parser of the token and
//! introspection endpoints: bounded work whatever the body (a capped
//! parameter count checked first, a hash set for repeats).

/// Most parameters one token or introspection request may carry. RFC 6749,
/// 7523, 8693 and 7662 define fewer than fifteen between them; the cap is
/// checked before anything is decoded, so a body of thousands of tiny
/// parameters costs one pass over its bytes.
pub const MAX_FORM_PARAMS: usize = 32;

/// A parsed form body: at most [`MAX_FORM_PARAMS`] parameters, none
/// repeated (RFC 6749 §3.2, applied to introspection too: two `token`s
/// would make the answer ambiguous).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Form(Vec<(String, String)>);

impl Form {
    /// The value of parameter `name`, if present.
    pub fn get(&self, name: &str) -> Option<&str> {
        self.0
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }

    /// The parameters, in body order.
    pub fn pairs(&self) -> &[(String, String)] {
        &self.0
    }
}

/// `application/x-www-form-urlencoded` parsing as the WHATWG URL standard
/// (and `serde_urlencoded`) does it: `&`-separated, empty parts skipped,
/// split at the first `=`, `+` is a space, `%XX` decoded, invalid UTF-8
/// replaced. A part without `+` or `%` (a JWT: base64url and dots) is
/// copied once instead of decoded byte by byte: the assertion is most of
/// the body of every exchange. Refuses more than [`MAX_FORM_PARAMS`]
/// parameters (counted first, before any decoding) and a repeated name
/// (a hash set: linear, whatever the names).
pub fn parse_form(body: &[u8]) -> Result<Form, String> {
    let parts = || body.split(|&b| b == b'&').filter(|part| !part.is_empty());
    if parts().nth(MAX_FORM_PARAMS).is_some() {
        return Err(format!(
            "too many parameters: at most {MAX_FORM_PARAMS} are accepted"
        ));
    }
    let mut seen = std::collections::HashSet::with_capacity(MAX_FORM_PARAMS);
    let mut out = Vec::with_capacity(MAX_FORM_PARAMS);
    for part in parts() {
        let (name, value) = match part.iter().position(|&b| b == b'=') {
            Some(i) => (&part[..i], &part[i + 1..]),
            None => (part, &[][..]),
        };
        let name = form_decode(name);
        if !seen.insert(name.clone()) {
            return Err(format!(
                "parameter \"{}\" is repeated (RFC 6749 §3.2)",
                crate::model::truncate(&name, 40)
            ));
        }
        out.push((name, form_decode(value)));
    }
    Ok(Form(out))
}

fn form_decode(s: &[u8]) -> String {
    if !s.contains(&b'%') && !s.contains(&b'+') {
        return utf8_lossy(s.to_vec());
    }
    let hex = |b: u8| char::from(b).to_digit(16);
    let mut out = Vec::with_capacity(s.len());
    let mut i = 0;
    while i < s.len() {
        match s[i] {
            b'+' => out.push(b' '),
            b'%' => match (
                s.get(i + 1).and_then(|&b| hex(b)),
                s.get(i + 2).and_then(|&b| hex(b)),
            ) {
                (Some(h), Some(l)) => {
                    // Two hex digits make one byte: the cast cannot truncate.
                    out.push((h * 16 + l) as u8);
                    i += 2;
                }
                _ => out.push(b'%'),
            },
            b => out.push(b),
        }
        i += 1;
    }
    utf8_lossy(out)
}

/// `String::from_utf8_lossy` with the fast validation first: the lossy
/// scan is several times slower on the valid text it nearly always gets.
fn utf8_lossy(bytes: Vec<u8>) -> String {
    String::from_utf8(bytes).unwrap_or_else(|e| String::from_utf8_lossy(e.as_bytes()).into_owned())
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
mod tests {
    use super::{MAX_FORM_PARAMS, parse_form};

    #[test]
    fn form_parsing_matches_serde_urlencoded() {
        for body in [
            "",
            "&&",
            "a=1&b=2",
            "grant_type=urn%3Aietf%3Aparams%3Aoauth%3Agrant-type%3Ajwt-bearer&assertion=eyJh.eyJi.c2ln",
            "a+b=c+d&e",
            "x=%41%4a%4A%zz%4&y=%",
            "k=%C3%A9t%C3%A9&bad=%FF%FE",
            "=v&k=",
            "a=b=c",
        ] {
            let ours = parse_form(body.as_bytes()).unwrap();
            let theirs: Vec<(String, String)> =
                serde_urlencoded::from_bytes(body.as_bytes()).unwrap();
            assert_eq!(ours.pairs(), theirs, "{body:?}");
        }
        let raw = b"a=\xff\xfe&b=ok";
        let theirs: Vec<(String, String)> = serde_urlencoded::from_bytes(raw).unwrap();
        assert_eq!(parse_form(raw).unwrap().pairs(), theirs);
    }

    /// `n` distinct parameters of at most 3 characters: 32,000 fit in 128 KiB.
    fn flood(n: usize) -> String {
        const DIGITS: &[u8] = b"0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ";
        (0..n)
            .map(|mut i| {
                let mut name = String::new();
                loop {
                    name.push(char::from(DIGITS[i % 62]));
                    i /= 62;
                    if i == 0 {
                        break;
                    }
                }
                name
            })
            .collect::<Vec<_>>()
            .join("&")
    }

    /// Issue 10: 32,000 distinct parameters in 128 KiB took 1.4 s (a
    /// quadratic repeat scan). Now the count is refused before decoding.
    #[test]
    fn parameter_count_is_capped_before_decoding() {
        let body = flood(32_000);
        assert!(body.len() <= 128 * 1024, "{}", body.len());
        let e = parse_form(body.as_bytes()).unwrap_err();
        assert_eq!(e, "too many parameters: at most 32 are accepted");
        let at_cap: String = (0..MAX_FORM_PARAMS).map(|i| format!("p{i}=v&")).collect();
        assert_eq!(parse_form(at_cap.as_bytes()).unwrap().pairs().len(), 32);
        let over = format!("{at_cap}x=1");
        assert!(parse_form(over.as_bytes()).is_err());
        // Empty parts are not parameters.
        let sparse = format!("{}{}", "&".repeat(10_000), "a=1");
        assert_eq!(parse_form(sparse.as_bytes()).unwrap().get("a"), Some("1"));
    }

    #[test]
    fn repeated_names_are_refused_after_decoding() {
        for body in [
            "a=1&a=2",
            "grant_type=x&grant%5Ftype=y",
            "a+b=1&a%20b=2",
            "k&k=",
        ] {
            let e = parse_form(body.as_bytes()).unwrap_err();
            assert!(e.contains("is repeated (RFC 6749 §3.2)"), "{body}: {e}");
        }
    }
}

/// Generated inputs (issue 10): whatever the body, the parser answers
/// without panicking, within its bounds, and as `serde_urlencoded` would.
#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
mod generated {
    use proptest::prelude::*;

    use super::{MAX_FORM_PARAMS, parse_form};

    fn form_bytes() -> impl Strategy<Value = Vec<u8>> {
        prop_oneof![
            prop::collection::vec(any::<u8>(), 0..2048),
            // Form-shaped: names, values, and the separators that matter.
            prop::collection::vec(
                prop_oneof![
                    Just(b'&'),
                    Just(b'='),
                    Just(b'%'),
                    Just(b'+'),
                    Just(b'a'),
                    Just(b'b'),
                    Just(b'F'),
                    Just(b'3'),
                    Just(0xff),
                    Just(0xc3),
                ],
                0..512
            ),
        ]
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

        #[test]
        fn any_body_is_parsed_or_refused(body in form_bytes()) {
            match parse_form(&body) {
                Ok(form) => {
                    prop_assert!(form.pairs().len() <= MAX_FORM_PARAMS);
                    let names: std::collections::HashSet<&str> =
                        form.pairs().iter().map(|(k, _)| k.as_str()).collect();
                    prop_assert_eq!(names.len(), form.pairs().len());
                    let theirs: Vec<(String, String)> =
                        serde_urlencoded::from_bytes(&body).unwrap();
                    prop_assert_eq!(form.pairs(), theirs.as_slice());
                }
                Err(e) => prop_assert!(
                    e.starts_with("too many parameters") || e.contains("is repeated"),
                    "{}", e
                ),
            }
        }
    }
}
