//! Instruction records from any of the formats users have: JSON Lines (`{"instruction", ...}` per
//! line, self-instruct seed lines included), Alpaca JSON (`[{"instruction","input","output"}]`)
//! and Parquet (an `instruction` column, optional `id`, `input`, `output`).

use std::path::Path;

use anyhow::{bail, Result};

use crate::input::{parse_json_records, read_utf8, Located};
use crate::parquet::{read_parquet, string_column};

/// One instruction to judge, with what came with it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InstructionRecord {
    /// The record's own id, or its 1-based position in the file when it has none.
    pub id: String,
    pub instruction: String,
    pub input: Option<String>,
    pub output: Option<String>,
}

/// Reads instruction records; Parquet by the `.parquet` extension, otherwise JSON or JSON Lines
/// by the first character. An empty file is an error.
pub fn read_records(path: &Path) -> Result<Vec<InstructionRecord>> {
    let records = if path
        .extension()
        .is_some_and(|e| e.eq_ignore_ascii_case("parquet"))
    {
        read_parquet_records(path)?
    } else {
        let text = read_utf8(path)?;
        parse_json_records(path, &text)?
            .iter()
            .enumerate()
            .map(|(i, rec)| json_record(i, rec))
            .collect::<Result<Vec<_>>>()?
    };
    if records.is_empty() {
        bail!("{}: no instructions in the file", path.display());
    }
    Ok(records)
}

fn json_record(index: usize, rec: &Located) -> Result<InstructionRecord> {
    let instruction = rec.required_str("instruction")?;
    let (mut input, mut output) = (rec.optional_str("input")?, rec.optional_str("output")?);
    // Self-instruct seed lines keep their examples under "instances": take the first.
    if input.is_none() && output.is_none() {
        if let Some(first) = rec
            .object()?
            .get("instances")
            .and_then(|v| v.as_array())
            .and_then(|a| a.first())
        {
            input = first
                .get("input")
                .and_then(|v| v.as_str())
                .map(str::to_owned);
            output = first
                .get("output")
                .and_then(|v| v.as_str())
                .map(str::to_owned);
        }
    }
    let id = rec
        .optional_id("id")?
        .unwrap_or_else(|| (index + 1).to_string());
    Ok(InstructionRecord {
        id,
        instruction,
        input,
        output,
    })
}

fn read_parquet_records(path: &Path) -> Result<Vec<InstructionRecord>> {
    let df = read_parquet(path)?;
    let optional = |name: &str| -> Result<Option<Vec<Option<String>>>> {
        if df.schema().contains(name) {
            Ok(Some(string_column(&df, name, path)?))
        } else {
            Ok(None)
        }
    };
    let instructions = string_column(&df, "instruction", path)?;
    let (ids, inputs, outputs) = (optional("id")?, optional("input")?, optional("output")?);
    let mut out = Vec::with_capacity(instructions.len());
    for (row, instruction) in instructions.into_iter().enumerate() {
        let Some(instruction) = instruction else {
            bail!("{}: row {}: instruction: null", path.display(), row);
        };
        let pick = |col: &Option<Vec<Option<String>>>| col.as_ref().and_then(|c| c[row].clone());
        out.push(InstructionRecord {
            id: pick(&ids).unwrap_or_else(|| (row + 1).to_string()),
            instruction,
            input: pick(&inputs),
            output: pick(&outputs),
        });
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use polars::prelude::*;

    #[test]
    fn reads_jsonl_alpaca_and_seed_lines() {
        let dir = tempfile::tempdir().unwrap();
        let jsonl = dir.path().join("a.jsonl");
        std::fs::write(&jsonl, "{\"instruction\": \"A b c d\", \"id\": 7}\n{\"instruction\": \"E f g h\", \"instances\": [{\"input\": \"i\", \"output\": \"o\"}]}\n").unwrap();
        let recs = read_records(&jsonl).unwrap();
        assert_eq!(recs[0].id, "7");
        assert_eq!(recs[1].id, "2");
        assert_eq!(recs[1].input.as_deref(), Some("i"));
        let json = dir.path().join("a.json");
        std::fs::write(
            &json,
            "[{\"instruction\": \"x\", \"input\": \"\", \"output\": \"y\"}]",
        )
        .unwrap();
        assert_eq!(read_records(&json).unwrap()[0].output.as_deref(), Some("y"));
    }

    #[test]
    fn reads_parquet() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("in.parquet");
        let mut df =
            df!("instruction" => ["one two three four", "five six"], "output" => [Some("x"), None])
                .unwrap();
        crate::parquet::write_parquet(&mut df, &path).unwrap();
        let recs = read_records(&path).unwrap();
        assert_eq!(recs.len(), 2);
        assert_eq!(recs[1].id, "2");
        assert_eq!(recs[0].output.as_deref(), Some("x"));
        assert_eq!(recs[1].output, None);
    }

    #[test]
    fn errors() {
        let dir = tempfile::tempdir().unwrap();
        let empty = dir.path().join("e.jsonl");
        std::fs::write(&empty, "\n").unwrap();
        assert!(read_records(&empty)
            .unwrap_err()
            .to_string()
            .ends_with("e.jsonl: no instructions in the file"));
        let missing = dir.path().join("nope.jsonl");
        assert!(format!("{:#}", read_records(&missing).unwrap_err()).contains("cannot read"));
        let no_col = dir.path().join("n.parquet");
        let mut df = df!("text" => ["a"]).unwrap();
        crate::parquet::write_parquet(&mut df, &no_col).unwrap();
        assert!(format!("{:#}", read_records(&no_col).unwrap_err())
            .contains("no column \"instruction\""));
    }
}
