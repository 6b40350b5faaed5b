//! Reading user files: UTF-8 text, JSON Lines and JSON arrays, with every value tagged by the
//! line it came from so errors can say `file:line: field: what is wrong`.

use std::fmt::Display;
use std::path::{Path, PathBuf};

use anyhow::{anyhow, bail, Context, Result};
use serde_json::value::RawValue;
use serde_json::{Map, Value};

/// A JSON object read from a file, with where it came from.
#[derive(Debug, Clone)]
pub struct Located {
    pub path: PathBuf,
    /// 1-based line where the object starts.
    pub line: usize,
    pub value: Value,
}

impl Located {
    /// An error message `path:line: field: message`.
    pub fn error(&self, field: &str, message: impl Display) -> anyhow::Error {
        anyhow!(
            "{}:{}: {}: {}",
            self.path.display(),
            self.line,
            field,
            message
        )
    }

    /// The value as a JSON object, or an error naming the line.
    pub fn object(&self) -> Result<&Map<String, Value>> {
        self.value.as_object().ok_or_else(|| {
            anyhow!(
                "{}:{}: expected a JSON object, found {}",
                self.path.display(),
                self.line,
                kind(&self.value)
            )
        })
    }

    /// A required string field.
    pub fn required_str(&self, field: &str) -> Result<String> {
        match self.object()?.get(field) {
            None => Err(self.error(field, "missing")),
            Some(Value::String(s)) => Ok(s.clone()),
            Some(other) => {
                Err(self.error(field, format!("expected a string, found {}", kind(other))))
            }
        }
    }

    /// An optional string field (absent or null is `None`).
    pub fn optional_str(&self, field: &str) -> Result<Option<String>> {
        match self.object()?.get(field) {
            None | Some(Value::Null) => Ok(None),
            Some(Value::String(s)) => Ok(Some(s.clone())),
            Some(other) => {
                Err(self.error(field, format!("expected a string, found {}", kind(other))))
            }
        }
    }

    /// An optional identifier: a string or an integer, returned as text.
    pub fn optional_id(&self, field: &str) -> Result<Option<String>> {
        match self.object()?.get(field) {
            None | Some(Value::Null) => Ok(None),
            Some(Value::String(s)) => Ok(Some(s.clone())),
            Some(Value::Number(n)) if n.is_i64() || n.is_u64() => Ok(Some(n.to_string())),
            Some(other) => Err(self.error(
                field,
                format!("expected a string or an integer, found {}", kind(other)),
            )),
        }
    }
}

/// A short name for a JSON value's type, for error messages.
pub fn kind(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

/// Reads a whole file as UTF-8, naming the file and the first bad byte's line otherwise.
pub fn read_utf8(path: &Path) -> Result<String> {
    let bytes = std::fs::read(path).with_context(|| format!("cannot read {}", path.display()))?;
    match String::from_utf8(bytes) {
        Ok(text) => Ok(text
            .strip_prefix('\u{feff}')
            .map(str::to_owned)
            .unwrap_or(text)),
        Err(err) => {
            let at = err.utf8_error().valid_up_to();
            let line = 1 + err.as_bytes()[..at].iter().filter(|&&b| b == b'\n').count();
            bail!(
                "{}:{}: not valid UTF-8 (bad byte at offset {})",
                path.display(),
                line,
                at
            )
        }
    }
}

/// Whether a text looks like a JSON array (first non-blank character `[`) rather than JSON Lines.
pub fn looks_like_json_array(text: &str) -> bool {
    text.trim_start().starts_with('[')
}

/// Parses JSON Lines: one value per non-blank line.
pub fn parse_jsonl(path: &Path, text: &str) -> Result<Vec<Located>> {
    let mut out = Vec::new();
    for (index, line) in text.lines().enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        let value: Value = serde_json::from_str(line).map_err(|e| {
            anyhow!(
                "{}:{}: malformed JSON: {}",
                path.display(),
                index + 1,
                strip_location(&e)
            )
        })?;
        out.push(Located {
            path: path.to_path_buf(),
            line: index + 1,
            value,
        });
    }
    Ok(out)
}

/// Parses a JSON array, keeping the line where each element starts.
pub fn parse_json_array(path: &Path, text: &str) -> Result<Vec<Located>> {
    let raw: Vec<&RawValue> = serde_json::from_str(text).map_err(|e| {
        anyhow!(
            "{}:{}: malformed JSON array: {}",
            path.display(),
            e.line(),
            strip_location(&e)
        )
    })?;
    let base = text.as_ptr() as usize;
    let mut out = Vec::with_capacity(raw.len());
    for element in raw {
        // Borrowed raw values point into `text`, so their offset gives the line.
        let offset = (element.get().as_ptr() as usize)
            .saturating_sub(base)
            .min(text.len());
        let line = 1 + text.as_bytes()[..offset]
            .iter()
            .filter(|&&b| b == b'\n')
            .count();
        let value: Value = serde_json::from_str(element.get()).map_err(|e| {
            anyhow!(
                "{}:{}: malformed JSON: {}",
                path.display(),
                line,
                strip_location(&e)
            )
        })?;
        out.push(Located {
            path: path.to_path_buf(),
            line,
            value,
        });
    }
    Ok(out)
}

/// Parses a file that is either a JSON array or JSON Lines.
pub fn parse_json_records(path: &Path, text: &str) -> Result<Vec<Located>> {
    if looks_like_json_array(text) {
        parse_json_array(path, text)
    } else {
        parse_jsonl(path, text)
    }
}

/// serde_json appends " at line L column C"; we print our own location instead.
fn strip_location(err: &serde_json::Error) -> String {
    let text = err.to_string();
    match text.rfind(" at line ") {
        Some(at) => text[..at].to_string(),
        None => text,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p() -> PathBuf {
        PathBuf::from("in.jsonl")
    }

    #[test]
    fn jsonl_skips_blank_lines_and_counts_lines() {
        let recs = parse_jsonl(&p(), "{\"a\":1}\n\n  \n{\"a\":2}\n").unwrap();
        assert_eq!(recs.iter().map(|r| r.line).collect::<Vec<_>>(), vec![1, 4]);
    }

    #[test]
    fn jsonl_malformed_line_is_named() {
        let err = parse_jsonl(&p(), "{\"a\":1}\n{\"a\":\n")
            .unwrap_err()
            .to_string();
        assert!(err.starts_with("in.jsonl:2: malformed JSON: "), "{err}");
    }

    #[test]
    fn json_array_elements_know_their_lines() {
        let text = "[\n  {\"instruction\": \"x\"},\n\n  {\"instruction\": \"y\"}\n]";
        let recs = parse_json_array(&p(), text).unwrap();
        assert_eq!(recs.iter().map(|r| r.line).collect::<Vec<_>>(), vec![2, 4]);
    }

    #[test]
    fn field_errors_name_file_line_and_field() {
        let recs = parse_jsonl(&p(), "{\"instruction\": 3}\n").unwrap();
        let err = recs[0].required_str("instruction").unwrap_err().to_string();
        assert_eq!(
            err,
            "in.jsonl:1: instruction: expected a string, found a number"
        );
        let err = recs[0].required_str("output").unwrap_err().to_string();
        assert_eq!(err, "in.jsonl:1: output: missing");
        let recs = parse_jsonl(&p(), "[1]\n").unwrap();
        let err = recs[0].required_str("x").unwrap_err().to_string();
        assert_eq!(err, "in.jsonl:1: expected a JSON object, found an array");
    }

    #[test]
    fn non_utf8_is_reported_with_line() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("bad.jsonl");
        std::fs::write(&path, b"{\"a\":\"ok\"}\n{\"a\":\"\xff\"}\n").unwrap();
        let err = read_utf8(&path).unwrap_err().to_string();
        assert!(
            err.ends_with("bad.jsonl:2: not valid UTF-8 (bad byte at offset 17)"),
            "{err}"
        );
    }
}
