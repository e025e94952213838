//! Where an admin command writes: tables and short sentences for people,
//! JSON (`--json`) for scripts. Output goes through [`Io`] so tests run the
//! commands in-process and read what a terminal would show.

use std::io::Write;
use std::sync::{Arc, Mutex};

use serde_json::Value;

use crate::admin_cli::error::{CliError, CliResult};

/// The command's standard output and error.
pub struct Io {
    pub out: Box<dyn Write + Send>,
    pub err: Box<dyn Write + Send>,
}

impl Io {
    /// The process's stdout and stderr.
    pub fn stdio() -> Io {
        Io {
            out: Box::new(std::io::stdout()),
            err: Box::new(std::io::stderr()),
        }
    }

    /// In-memory output (tests, embedding): the buffers fill as the command runs.
    pub fn capture() -> (Io, Captured) {
        let out = SharedBuf::default();
        let err = SharedBuf::default();
        (
            Io {
                out: Box::new(out.clone()),
                err: Box::new(err.clone()),
            },
            Captured { out, err },
        )
    }
}

/// A growable buffer several owners can read and write.
#[derive(Clone, Default)]
pub struct SharedBuf(Arc<Mutex<Vec<u8>>>);

impl SharedBuf {
    /// What was written so far, as text.
    pub fn text(&self) -> String {
        match self.0.lock() {
            Ok(b) => String::from_utf8_lossy(&b).into_owned(),
            Err(p) => String::from_utf8_lossy(&p.into_inner()).into_owned(),
        }
    }
}

impl Write for SharedBuf {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        match self.0.lock() {
            Ok(mut b) => b.extend_from_slice(buf),
            Err(p) => p.into_inner().extend_from_slice(buf),
        }
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// Captured stdout and stderr of an in-process run.
#[derive(Clone)]
pub struct Captured {
    pub out: SharedBuf,
    pub err: SharedBuf,
}

/// Writes one command's answer in the chosen form.
pub struct Printer<'a> {
    pub io: &'a mut Io,
    pub json: bool,
}

fn io_err(e: std::io::Error) -> CliError {
    CliError::Local(format!("cannot write output: {e}"))
}

impl Printer<'_> {
    /// A line for people (nothing in `--json` mode).
    pub fn say(&mut self, text: &str) -> CliResult<()> {
        if self.json {
            return Ok(());
        }
        writeln!(self.io.out, "{text}").map_err(io_err)?;
        self.io.out.flush().map_err(io_err)
    }

    /// A value for scripts (nothing in table mode).
    pub fn json(&mut self, v: &Value) -> CliResult<()> {
        if !self.json {
            return Ok(());
        }
        let text = serde_json::to_string_pretty(v)
            .map_err(|e| CliError::Local(format!("cannot encode JSON: {e}")))?;
        writeln!(self.io.out, "{text}").map_err(io_err)?;
        self.io.out.flush().map_err(io_err)
    }

    /// One JSON value per line (`audit --follow --json`).
    pub fn json_line(&mut self, v: &Value) -> CliResult<()> {
        writeln!(self.io.out, "{v}").map_err(io_err)?;
        self.io.out.flush().map_err(io_err)
    }

    /// A table, or `empty` when it has no rows (table mode only).
    pub fn table(&mut self, t: &Table, empty: &str) -> CliResult<()> {
        if self.json {
            return Ok(());
        }
        if t.rows.is_empty() {
            return self.say(empty);
        }
        write!(self.io.out, "{}", t.render()).map_err(io_err)?;
        self.io.out.flush().map_err(io_err)
    }

    /// A note on stderr for people (warnings, progress); silent with `--json`.
    pub fn note(&mut self, text: &str) -> CliResult<()> {
        if self.json {
            return Ok(());
        }
        writeln!(self.io.err, "{text}").map_err(io_err)
    }
}

/// Rows under headers, columns padded to their widest cell.
#[derive(Debug, Default)]
pub struct Table {
    pub headers: Vec<&'static str>,
    pub rows: Vec<Vec<String>>,
}

impl Table {
    /// An empty table with these columns.
    pub fn new(headers: &[&'static str]) -> Table {
        Table {
            headers: headers.to_vec(),
            rows: Vec::new(),
        }
    }

    /// Adds a row (missing cells are blank).
    pub fn row(&mut self, cells: Vec<String>) {
        self.rows.push(cells);
    }

    /// The table as text: a header line, then one line per row, two spaces
    /// between columns, no trailing spaces.
    pub fn render(&self) -> String {
        let cols = self.headers.len();
        let mut width: Vec<usize> = self.headers.iter().map(|h| h.chars().count()).collect();
        for r in &self.rows {
            for (i, c) in r.iter().enumerate().take(cols) {
                width[i] = width[i].max(clean(c).chars().count());
            }
        }
        let mut out = String::new();
        let mut line = |cells: Vec<String>| {
            let mut l = String::new();
            for (i, c) in cells.iter().enumerate().take(cols) {
                if i > 0 {
                    l.push_str("  ");
                }
                l.push_str(c);
                if i + 1 < cols {
                    l.push_str(&" ".repeat(width[i].saturating_sub(c.chars().count())));
                }
            }
            out.push_str(l.trim_end());
            out.push('\n');
        };
        line(self.headers.iter().map(|h| h.to_string()).collect());
        for r in &self.rows {
            line(
                (0..cols)
                    .map(|i| r.get(i).map(|c| clean(c)).unwrap_or_default())
                    .collect(),
            );
        }
        out
    }
}

/// A cell on one line: control characters (a newline in a name the server
/// echoed, an escape sequence) are shown as spaces, never sent to the terminal.
fn clean(s: &str) -> String {
    s.chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect()
}

/// A string field of a JSON object, or `""`.
pub fn s<'a>(v: &'a Value, field: &str) -> &'a str {
    v.get(field).and_then(Value::as_str).unwrap_or_default()
}

/// A field of a JSON object as a cell: strings bare, null as `-`.
pub fn cell(v: &Value) -> String {
    match v {
        Value::Null => "-".into(),
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
mod tests {
    use super::*;

    #[test]
    fn tables_align_and_never_carry_control_characters() {
        let mut t = Table::new(&["NAME", "TEAM", "AUTH"]);
        t.row(vec!["gh-train".into(), "vision".into(), "external".into()]);
        t.row(vec!["x\u{1b}[31m".into(), "nlp".into()]);
        assert_eq!(
            t.render(),
            "NAME      TEAM    AUTH\ngh-train  vision  external\nx [31m    nlp\n"
        );
    }
}
