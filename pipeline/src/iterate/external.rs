//! `--trainer external`: the loop hands training to another tool (TRL, LLaMA-Factory, axolotl on
//! a GPU cluster, ...). For each iteration it writes the training data in the two formats those
//! tools read, runs the user's shell command, and loads the Hugging Face checkpoint the command
//! wrote as the next generator.
//!
//! The command sees (as environment variables, and as `{placeholders}` substituted shell-quoted):
//!
//! | variable | placeholder | what |
//! |---|---|---|
//! | `SELFINSTRUCT_MESSAGES` | `{messages}` | OpenAI-messages JSONL: `{"messages": [user, assistant]}` per line |
//! | `SELFINSTRUCT_ALPACA` | `{alpaca}` | Alpaca JSON: `[{"instruction", "input", "output"}]` |
//! | `SELFINSTRUCT_BASE_MODEL` | `{base_model}` | the base model as a Hugging Face folder (a GGUF base is exported once) |
//! | `SELFINSTRUCT_OUTPUT_DIR` | `{output_dir}` | where the command must write the trained Hugging Face checkpoint |

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{bail, Context, Result};
use burn::backend::Flex;
use model::export::{export_hf, ExportOptions};
use model::load_any;

use crate::export::{write_records, Format};
use crate::sft::data::load_training_data;

/// Writes the training data (seeds and kept instances of the run) into `dir`; returns the paths
/// of the messages JSONL and the Alpaca JSON.
pub fn write_training_data(run: &Path, dir: &Path) -> Result<(PathBuf, PathBuf)> {
    let data = load_training_data(run, true)?;
    std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    let messages = dir.join("train.messages.jsonl");
    let alpaca = dir.join("train.alpaca.json");
    write_records(&data.records, Format::Messages, &messages, None)?;
    write_records(&data.records, Format::Alpaca, &alpaca, None)?;
    Ok((messages, alpaca))
}

/// The base model as a Hugging Face folder: itself, or (for a GGUF file) an export of it under
/// `root/iterations/base-hf`, made once.
pub fn base_as_hf(base: &Path, root: &Path) -> Result<PathBuf> {
    if base.is_dir() {
        return Ok(base.to_path_buf());
    }
    let dest = root.join("iterations").join("base-hf");
    if dest.join("config.json").is_file() {
        return Ok(dest);
    }
    let loaded = load_any::<Flex>(base, &Default::default())
        .with_context(|| format!("cannot load the model {}", base.display()))?;
    let options = ExportOptions {
        overwrite: true,
        ..ExportOptions::default()
    };
    export_hf(&loaded.model, &loaded.config, base, &dest, &options)
        .with_context(|| format!("exporting {} to {}", base.display(), dest.display()))?;
    Ok(dest)
}

/// `'...'` with embedded quotes escaped, for substituting paths into a shell command.
fn shell_quote(s: &str) -> String {
    format!("'{}'", s.replace('\'', r"'\''"))
}

/// Runs one external training for the iteration whose SFT folder is `out`; returns the
/// checkpoint folder it wrote (`out/model`). A folder already holding a checkpoint (a rerun
/// after a crash) is used as it is.
pub fn train(command: &str, root: &Path, base: &Path, out: &Path) -> Result<PathBuf> {
    let model_dir = out.join("model");
    if model_dir.join("config.json").is_file() {
        return Ok(model_dir);
    }
    let (messages, alpaca) = write_training_data(root, &out.join("data"))?;
    let base_hf = base_as_hf(base, root)?;
    let vars = [
        ("SELFINSTRUCT_MESSAGES", "{messages}", &messages),
        ("SELFINSTRUCT_ALPACA", "{alpaca}", &alpaca),
        ("SELFINSTRUCT_BASE_MODEL", "{base_model}", &base_hf),
        ("SELFINSTRUCT_OUTPUT_DIR", "{output_dir}", &model_dir),
    ];
    let mut line = command.to_string();
    let mut cmd = Command::new("sh");
    for (var, placeholder, path) in vars {
        let text = path.display().to_string();
        line = line.replace(placeholder, &shell_quote(&text));
        cmd.env(var, &text);
    }
    tracing::info!(command = %line, "running the external trainer");
    let status = cmd
        .arg("-c")
        .arg(&line)
        .status()
        .with_context(|| format!("cannot run the trainer command {line:?}"))?;
    if !status.success() {
        bail!("the trainer command failed ({status}): {line}");
    }
    if !model_dir.join("config.json").is_file() {
        bail!(
            "the trainer command succeeded but wrote no Hugging Face checkpoint to {} (no config.json); \
             it must save the model there ($SELFINSTRUCT_OUTPUT_DIR)",
            model_dir.display()
        );
    }
    Ok(model_dir)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quoting_survives_quotes_and_spaces() {
        assert_eq!(shell_quote("a b"), "'a b'");
        assert_eq!(shell_quote("it's"), r"'it'\''s'");
    }
}
