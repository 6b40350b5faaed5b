//! The seed pool: self-instruct JSONL (`{"id","name","instruction","instances":[{"input","output"}],
//! "is_classification"}`) or Alpaca JSON (`[{"instruction","input","output"}]`), validated line by
//! line so a bad file is reported as `file:line: field: what is wrong`.

use std::collections::HashMap;
use std::path::Path;

use anyhow::{bail, Result};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::input::{
    kind, looks_like_json_array, parse_json_array, parse_jsonl, read_utf8, Located,
};

/// One input/output example of a task.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Instance {
    pub input: String,
    pub output: String,
}

/// A seed task.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SeedTask {
    pub id: String,
    pub name: String,
    pub instruction: String,
    pub instances: Vec<Instance>,
    /// `None` when the source format does not say (Alpaca JSON).
    pub is_classification: Option<bool>,
}

/// Which format a seed file was in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SeedFormat {
    SelfInstructJsonl,
    AlpacaJson,
}

/// Loads and validates a seed file, choosing the format from its first character.
pub fn load_seeds(path: &Path) -> Result<(Vec<SeedTask>, SeedFormat)> {
    let text = read_utf8(path)?;
    let (tasks, format) = if looks_like_json_array(&text) {
        let records = parse_json_array(path, &text)?;
        (
            records
                .iter()
                .map(alpaca_task)
                .collect::<Result<Vec<_>>>()?,
            SeedFormat::AlpacaJson,
        )
    } else {
        let records = parse_jsonl(path, &text)?;
        let tasks = records
            .iter()
            .map(self_instruct_task)
            .collect::<Result<Vec<_>>>()?;
        check_unique_ids(&records, &tasks)?;
        (tasks, SeedFormat::SelfInstructJsonl)
    };
    if tasks.is_empty() {
        bail!("{}: no seed tasks in the file", path.display());
    }
    Ok((tasks, format))
}

fn self_instruct_task(rec: &Located) -> Result<SeedTask> {
    let obj = rec.object()?;
    let id = rec
        .optional_id("id")?
        .ok_or_else(|| rec.error("id", "missing"))?;
    let name = rec.required_str("name")?;
    let instruction = non_empty(rec, "instruction", rec.required_str("instruction")?)?;
    let is_classification = match obj.get("is_classification") {
        None => return Err(rec.error("is_classification", "missing")),
        Some(Value::Bool(b)) => *b,
        Some(other) => {
            return Err(rec.error(
                "is_classification",
                format!("expected a boolean, found {}", kind(other)),
            ))
        }
    };
    let items = match obj.get("instances") {
        None => return Err(rec.error("instances", "missing")),
        Some(Value::Array(items)) => items,
        Some(other) => {
            return Err(rec.error(
                "instances",
                format!("expected an array, found {}", kind(other)),
            ))
        }
    };
    if items.is_empty() {
        return Err(rec.error(
            "instances",
            "empty: a seed task needs at least one instance",
        ));
    }
    let mut instances = Vec::with_capacity(items.len());
    for (i, item) in items.iter().enumerate() {
        let field = |name: &str| format!("instances[{i}].{name}");
        let Some(item) = item.as_object() else {
            return Err(rec.error(
                &format!("instances[{i}]"),
                format!("expected an object, found {}", kind(item)),
            ));
        };
        let get = |name: &str| -> Result<String> {
            match item.get(name) {
                None => Err(rec.error(&field(name), "missing")),
                Some(Value::String(s)) => Ok(s.clone()),
                Some(other) => Err(rec.error(
                    &field(name),
                    format!("expected a string, found {}", kind(other)),
                )),
            }
        };
        let input = get("input")?;
        let output = get("output")?;
        if output.trim().is_empty() {
            return Err(rec.error(&field("output"), "empty"));
        }
        instances.push(Instance { input, output });
    }
    Ok(SeedTask {
        id,
        name,
        instruction,
        instances,
        is_classification: Some(is_classification),
    })
}

fn alpaca_task(rec: &Located) -> Result<SeedTask> {
    let instruction = non_empty(rec, "instruction", rec.required_str("instruction")?)?;
    let input = rec.optional_str("input")?.unwrap_or_default();
    let output = rec.required_str("output")?;
    if output.trim().is_empty() {
        return Err(rec.error("output", "empty"));
    }
    let id = format!("alpaca_{}", rec.line);
    Ok(SeedTask {
        name: id.clone(),
        id,
        instruction,
        instances: vec![Instance { input, output }],
        is_classification: None,
    })
}

fn non_empty(rec: &Located, field: &str, value: String) -> Result<String> {
    if value.trim().is_empty() {
        Err(rec.error(field, "empty"))
    } else {
        Ok(value)
    }
}

fn check_unique_ids(records: &[Located], tasks: &[SeedTask]) -> Result<()> {
    let mut first_line: HashMap<&str, usize> = HashMap::new();
    for (rec, task) in records.iter().zip(tasks) {
        if let Some(line) = first_line.insert(&task.id, rec.line) {
            return Err(rec.error(
                "id",
                format!("duplicate id {:?} (first used on line {line})", task.id),
            ));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn load(text: &str, name: &str) -> Result<(Vec<SeedTask>, SeedFormat)> {
        let dir = tempfile::tempdir()?;
        let path = dir.path().join(name);
        std::fs::write(&path, text)?;
        load_seeds(&path).map_err(|e| {
            anyhow::anyhow!(e.to_string().replace(&dir.path().display().to_string(), ""))
        })
    }

    const GOOD: &str = r#"{"id": "seed_task_0", "name": "a", "instruction": "Say hi to the user.", "instances": [{"input": "", "output": "Hi!"}], "is_classification": false}"#;

    #[test]
    fn loads_self_instruct_jsonl() {
        let (tasks, format) = load(&format!("{GOOD}\n"), "s.jsonl").unwrap();
        assert_eq!(format, SeedFormat::SelfInstructJsonl);
        assert_eq!(tasks.len(), 1);
        assert_eq!(tasks[0].is_classification, Some(false));
        assert_eq!(tasks[0].instances[0].output, "Hi!");
    }

    #[test]
    fn loads_alpaca_json() {
        let text = r#"[{"instruction": "Name a colour.", "input": "", "output": "Blue"},
                       {"instruction": "Add the numbers.", "output": "3"}]"#;
        let (tasks, format) = load(text, "a.json").unwrap();
        assert_eq!(format, SeedFormat::AlpacaJson);
        assert_eq!(tasks.len(), 2);
        assert_eq!(tasks[1].id, "alpaca_2");
        assert_eq!(tasks[1].instances[0].input, "");
        assert_eq!(tasks[1].is_classification, None);
    }

    fn err(text: &str) -> String {
        load(text, "s.jsonl").unwrap_err().to_string()
    }

    #[test]
    fn errors_name_file_line_and_field() {
        let line2 = |s: &str| format!("{GOOD}\n{s}\n");
        assert_eq!(
            err(&line2(
                r#"{"id": "x", "name": "b", "instruction": "", "instances": [], "is_classification": false}"#
            )),
            "/s.jsonl:2: instruction: empty"
        );
        assert_eq!(
            err(&line2(
                r#"{"id": "x", "name": "b", "instruction": "Do it now please.", "instances": [], "is_classification": false}"#
            )),
            "/s.jsonl:2: instances: empty: a seed task needs at least one instance"
        );
        assert_eq!(
            err(&line2(
                r#"{"id": "x", "name": "b", "instruction": "Do it now please.", "instances": [{"input": 1, "output": "y"}], "is_classification": false}"#
            )),
            "/s.jsonl:2: instances[0].input: expected a string, found a number"
        );
        assert_eq!(
            err(&line2(
                r#"{"id": "x", "name": "b", "instruction": "Do it now please.", "instances": [{"input": "", "output": "y"}], "is_classification": "no"}"#
            )),
            "/s.jsonl:2: is_classification: expected a boolean, found a string"
        );
        assert_eq!(err(&line2(r#"{"name": "b"}"#)), "/s.jsonl:2: id: missing");
        assert_eq!(
            err(&line2(GOOD)),
            "/s.jsonl:2: id: duplicate id \"seed_task_0\" (first used on line 1)"
        );
        assert_eq!(
            err(&line2("{oops")),
            "/s.jsonl:2: malformed JSON: key must be a string"
        );
        assert_eq!(err("\n\n"), "/s.jsonl: no seed tasks in the file");
    }

    #[test]
    fn alpaca_errors_name_the_element_line() {
        let text = "[\n {\"instruction\": \"Name a colour.\", \"output\": \"Blue\"},\n {\"instruction\": \"Add.\", \"output\": 3}\n]";
        assert_eq!(
            load(text, "a.json").unwrap_err().to_string(),
            "/a.json:3: output: expected a string, found a number"
        );
    }

    #[test]
    fn project_seed_pools_load() {
        let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../seeds");
        for name in ["seed_tasks.jsonl", "seed_tasks_zh.jsonl"] {
            let (tasks, format) = load_seeds(&root.join(name)).unwrap();
            assert_eq!(format, SeedFormat::SelfInstructJsonl);
            assert!(tasks.len() >= 40, "{name}: {} tasks", tasks.len());
        }
    }
}
