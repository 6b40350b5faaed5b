//! Template files: plain text with `{name}` placeholders, loaded from a directory at run time and
//! hashed for the run manifest.
//!
//! Format: the file is the prompt byte for byte, except that one final line break (the one editors
//! add) is removed, and `{name}` (a name of lowercase ASCII letters and `_`) is replaced by a value.
//! Any other brace, such as the `{` of a JSON or code demonstration, is literal text. A placeholder
//! the template does not know is a load error naming the file and line, so a typo cannot silently
//! reach the model.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use sha2::{Digest, Sha256};

#[derive(Debug, Clone, PartialEq, Eq)]
enum Piece {
    Text(String),
    Var(String),
}

/// One loaded template file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Template {
    file_name: &'static str,
    path: PathBuf,
    pieces: Vec<Piece>,
    sha256: String,
}

impl Template {
    /// Parses `text` (the contents of `path`), accepting only the placeholders in `known` and
    /// requiring those in `required`.
    fn parse(
        file_name: &'static str,
        path: &Path,
        bytes: &[u8],
        known: &[&str],
        required: &[&str],
    ) -> Result<Template> {
        let text = std::str::from_utf8(bytes)
            .with_context(|| format!("{}: not UTF-8 text", path.display()))?;
        let text = text
            .strip_suffix("\r\n")
            .or_else(|| text.strip_suffix('\n'))
            .unwrap_or(text);
        let mut pieces = Vec::new();
        let mut literal = String::new();
        let mut rest = text;
        while let Some(open) = rest.find('{') {
            literal.push_str(&rest[..open]);
            let after = &rest[open + 1..];
            let name_len = after
                .bytes()
                .take_while(|b| b.is_ascii_lowercase() || *b == b'_')
                .count();
            if name_len > 0 && after.as_bytes().get(name_len) == Some(&b'}') {
                let name = &after[..name_len];
                if !known.contains(&name) {
                    let line = text[..text.len() - rest.len() + open].matches('\n').count() + 1;
                    bail!(
                        "{}:{line}: unknown placeholder {{{name}}} (this template knows {})",
                        path.display(),
                        list(known)
                    );
                }
                if !literal.is_empty() {
                    pieces.push(Piece::Text(std::mem::take(&mut literal)));
                }
                pieces.push(Piece::Var(name.to_owned()));
                rest = &after[name_len + 1..];
            } else {
                literal.push('{');
                rest = after;
            }
        }
        literal.push_str(rest);
        if !literal.is_empty() {
            pieces.push(Piece::Text(literal));
        }
        for name in required {
            if !pieces
                .iter()
                .any(|p| matches!(p, Piece::Var(v) if v == name))
            {
                bail!("{}: missing placeholder {{{name}}}", path.display());
            }
        }
        Ok(Template {
            file_name,
            path: path.to_owned(),
            pieces,
            sha256: hex_sha256(bytes),
        })
    }

    /// The file name inside the templates directory.
    pub fn file_name(&self) -> &'static str {
        self.file_name
    }

    /// Where it was loaded from.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// SHA-256 of the file's bytes, lowercase hex.
    pub fn sha256(&self) -> &str {
        &self.sha256
    }

    /// Whether the template has no text at all (an empty optional file).
    pub fn is_empty(&self) -> bool {
        self.pieces.is_empty()
    }

    /// Replaces each placeholder by its value. Every placeholder the template uses must be given
    /// (load-time checks make that a programming error, reported as an error all the same).
    pub fn render(&self, values: &[(&str, &str)]) -> Result<String> {
        let mut out = String::new();
        for piece in &self.pieces {
            match piece {
                Piece::Text(t) => out.push_str(t),
                Piece::Var(name) => match values.iter().find(|(k, _)| k == name) {
                    Some((_, v)) => out.push_str(v),
                    None => bail!(
                        "{}: no value for placeholder {{{name}}}",
                        self.path.display()
                    ),
                },
            }
        }
        Ok(out)
    }

    /// Whether the last thing in the template is `{name}` (trailing whitespace aside).
    fn ends_with_var(&self, name: &str) -> bool {
        let mut rev = self.pieces.iter().rev();
        match rev.next() {
            Some(Piece::Var(v)) => v == name,
            Some(Piece::Text(t)) if t.trim().is_empty() => {
                matches!(rev.next(), Some(Piece::Var(v)) if v == name)
            }
            _ => false,
        }
    }
}

fn list(names: &[&str]) -> String {
    if names.is_empty() {
        "none".to_owned()
    } else {
        names
            .iter()
            .map(|n| format!("{{{n}}}"))
            .collect::<Vec<_>>()
            .join(", ")
    }
}

fn hex_sha256(bytes: &[u8]) -> String {
    Sha256::digest(bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// Every template of a run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TemplateSet {
    /// Header and numbered in-context list; `{tasks}` becomes `1. ...` to `8. ...` and `9.`.
    pub instruction_generation: Template,
    /// Few-shot Yes/No demonstrations ending in `Task: {instruction}` / `Is it classification?`.
    pub is_classification: Template,
    /// Input-first instance demonstrations ending in `Task: {instruction}` and a line break.
    pub instances_input_first: Template,
    /// Output-first (class label first) demonstrations ending in `Task: {instruction}` and a line break.
    pub instances_output_first: Template,
    /// Chat style: the system message (an empty file sends none).
    pub chat_system: Template,
    /// Chat style: the user message around an instruction-generation `{request}`.
    pub chat_instruction_generation: Template,
    /// Chat style: the user message around a classification `{request}`.
    pub chat_is_classification: Template,
    /// Chat style: the user message around an instance-generation `{request}` (both methods).
    pub chat_instances: Template,
}

/// (file name, known placeholders, required placeholders) of every template, in manifest order.
const FILES: [(&str, &[&str], &[&str]); 8] = [
    ("instruction_generation.txt", &["tasks"], &["tasks"]),
    ("is_classification.txt", &["instruction"], &["instruction"]),
    (
        "instances_input_first.txt",
        &["instruction"],
        &["instruction"],
    ),
    (
        "instances_output_first.txt",
        &["instruction"],
        &["instruction"],
    ),
    ("chat_system.txt", &[], &[]),
    (
        "chat_instruction_generation.txt",
        &["request", "next", "last"],
        &["request"],
    ),
    ("chat_is_classification.txt", &["request"], &["request"]),
    ("chat_instances.txt", &["request"], &["request"]),
];

impl TemplateSet {
    /// Loads every template from `dir`. Errors name the file (and the line of a bad placeholder).
    pub fn load(dir: &Path) -> Result<TemplateSet> {
        let mut loaded = Vec::with_capacity(FILES.len());
        for (name, known, required) in FILES {
            let path = dir.join(name);
            let bytes = std::fs::read(&path)
                .with_context(|| format!("{}: cannot read template", path.display()))?;
            loaded.push(Template::parse(name, &path, &bytes, known, required)?);
        }
        let mut it = loaded.into_iter();
        let mut next = || it.next().context("internal: template count");
        let set = TemplateSet {
            instruction_generation: next()?,
            is_classification: next()?,
            instances_input_first: next()?,
            instances_output_first: next()?,
            chat_system: next()?,
            chat_instruction_generation: next()?,
            chat_is_classification: next()?,
            chat_instances: next()?,
        };
        // The model continues the number that `{tasks}` ends with, so nothing may follow it.
        if !set.instruction_generation.ends_with_var("tasks") {
            bail!(
                "{}: {{tasks}} must come last (the prompt ends with the number the model continues)",
                set.instruction_generation.path.display()
            );
        }
        Ok(set)
    }

    /// All templates, in a fixed order.
    pub fn all(&self) -> [&Template; 8] {
        [
            &self.instruction_generation,
            &self.is_classification,
            &self.instances_input_first,
            &self.instances_output_first,
            &self.chat_system,
            &self.chat_instruction_generation,
            &self.chat_is_classification,
            &self.chat_instances,
        ]
    }

    /// File name -> SHA-256 (hex) of every template, for the run manifest.
    pub fn hashes(&self) -> BTreeMap<String, String> {
        self.all()
            .iter()
            .map(|t| (t.file_name.to_owned(), t.sha256.clone()))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str, known: &[&str], required: &[&str]) -> Result<Template> {
        Template::parse(
            "t.txt",
            Path::new("dir/t.txt"),
            text.as_bytes(),
            known,
            required,
        )
    }

    #[test]
    fn renders_placeholders_and_keeps_other_braces() {
        let t = parse(
            "Task: {instruction}\nJSON: {\"a\": {b}} {x y} {}\n",
            &["instruction", "b"],
            &[],
        )
        .unwrap();
        assert_eq!(
            t.render(&[("instruction", "Add {b} here."), ("b", "1")])
                .unwrap(),
            "Task: Add {b} here.\nJSON: {\"a\": 1} {x y} {}"
        );
    }

    #[test]
    fn only_one_final_line_break_is_removed() {
        assert_eq!(
            parse("a\n\n", &[], &[]).unwrap().render(&[]).unwrap(),
            "a\n"
        );
        assert_eq!(parse("a\r\n", &[], &[]).unwrap().render(&[]).unwrap(), "a");
        assert_eq!(parse("a", &[], &[]).unwrap().render(&[]).unwrap(), "a");
        assert!(parse("\n", &[], &[]).unwrap().is_empty());
    }

    #[test]
    fn unknown_placeholder_names_file_and_line() {
        let err = parse("one\ntwo {instrucion}\n", &["instruction"], &[])
            .unwrap_err()
            .to_string();
        assert_eq!(
            err,
            "dir/t.txt:2: unknown placeholder {instrucion} (this template knows {instruction})"
        );
    }

    #[test]
    fn missing_required_placeholder_names_file() {
        let err = parse("Task:\n", &["instruction"], &["instruction"])
            .unwrap_err()
            .to_string();
        assert_eq!(err, "dir/t.txt: missing placeholder {instruction}");
    }

    #[test]
    fn hash_is_sha256_of_the_file_bytes() {
        let t = parse("abc", &[], &[]).unwrap();
        assert_eq!(
            t.sha256(),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
    }

    fn write_set(dir: &Path) {
        let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("../seeds/templates");
        for (name, _, _) in FILES {
            std::fs::copy(src.join(name), dir.join(name)).unwrap();
        }
    }

    #[test]
    fn load_errors_name_the_file() {
        let dir = tempfile::tempdir().unwrap();
        write_set(dir.path());
        std::fs::remove_file(dir.path().join("chat_instances.txt")).unwrap();
        let err = format!("{:#}", TemplateSet::load(dir.path()).unwrap_err());
        assert!(
            err.starts_with(&format!(
                "{}: cannot read template",
                dir.path().join("chat_instances.txt").display()
            )),
            "{err}"
        );

        write_set(dir.path());
        std::fs::write(
            dir.path().join("instruction_generation.txt"),
            "List:\n{tasks}\nMore.\n",
        )
        .unwrap();
        let err = TemplateSet::load(dir.path()).unwrap_err().to_string();
        assert!(
            err.contains("instruction_generation.txt: {tasks} must come last"),
            "{err}"
        );

        std::fs::write(dir.path().join("instruction_generation.txt"), [0xff, 0xfe]).unwrap();
        let err = TemplateSet::load(dir.path()).unwrap_err().to_string();
        assert!(
            err.contains("instruction_generation.txt: not UTF-8 text"),
            "{err}"
        );

        write_set(dir.path());
        std::fs::write(dir.path().join("chat_is_classification.txt"), "Answer.\n").unwrap();
        let err = TemplateSet::load(dir.path()).unwrap_err().to_string();
        assert!(
            err.contains("chat_is_classification.txt: missing placeholder {request}"),
            "{err}"
        );
    }

    #[test]
    fn project_templates_load_and_hash() {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../seeds/templates");
        let set = TemplateSet::load(&dir).unwrap();
        let hashes = set.hashes();
        assert_eq!(hashes.len(), 8);
        assert!(hashes.values().all(|h| h.len() == 64));
        let bytes = std::fs::read(dir.join("is_classification.txt")).unwrap();
        assert_eq!(hashes["is_classification.txt"], hex_sha256(&bytes));
    }
}
