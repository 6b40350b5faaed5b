//! `selfinstruct generate`: continue prompts with a local model, all of them as one batch job.

use std::path::Path;
use std::process::ExitCode;
use std::time::Instant;

use anyhow::{bail, Context, Result};
use model::load_any;
use serde::Deserialize;

use crate::cli::GenerateArgs;
use crate::generator::local::{finish_reason, LocalBackend, LocalGenerator};
use crate::generator::{ChatMessage, Prompt, SamplingParams};
use crate::model_source::resolve_model;

/// One prompt of a job, as given on the command line or in a prompts file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Input {
    /// Raw text, tokenized as is.
    Text(String),
    /// A user message, wrapped by the chat template.
    Chat(String),
    /// Token ids, used as they are.
    Ids(Vec<u32>),
}

/// A line of a prompts file: exactly one of the three keys.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Line {
    prompt: Option<String>,
    chat: Option<String>,
    ids: Option<Vec<u32>>,
}

/// Reads a prompts file: JSON Lines of `{"prompt": TEXT}`, `{"chat": TEXT}` or `{"ids": [..]}`;
/// blank lines are skipped. Errors name the file and line.
pub fn read_prompts(path: &Path) -> Result<Vec<Input>> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("cannot read {}", path.display()))?;
    let mut inputs = Vec::new();
    for (i, line) in text.lines().enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        let at = || format!("{}:{}", path.display(), i + 1);
        let parsed: Line = serde_json::from_str(line).with_context(|| {
            format!(
                "{}: expected {{\"prompt\": TEXT}}, {{\"chat\": TEXT}} or {{\"ids\": [..]}}",
                at()
            )
        })?;
        let input = match (parsed.prompt, parsed.chat, parsed.ids) {
            (Some(p), None, None) => Input::Text(p),
            (None, Some(c), None) => Input::Chat(c),
            (None, None, Some(ids)) => Input::Ids(ids),
            _ => bail!(
                "{}: give exactly one of \"prompt\", \"chat\" and \"ids\"",
                at()
            ),
        };
        inputs.push(input);
    }
    if inputs.is_empty() {
        bail!("{}: no prompts", path.display());
    }
    Ok(inputs)
}

/// Token ids written as `"1 2 3"` (commas allowed too).
pub fn parse_ids(text: &str) -> Result<Vec<u32>> {
    let ids = text
        .split(|c: char| c.is_whitespace() || c == ',')
        .filter(|s| !s.is_empty())
        .map(|s| {
            s.parse::<u32>()
                .with_context(|| format!("--ids: {s:?} is not a token id"))
        })
        .collect::<Result<Vec<u32>>>()?;
    if ids.is_empty() {
        bail!("--ids: no token ids given");
    }
    Ok(ids)
}

fn inputs(args: &GenerateArgs) -> Result<Vec<Input>> {
    Ok(if let Some(p) = &args.prompt {
        vec![Input::Text(p.clone())]
    } else if let Some(c) = &args.chat {
        vec![Input::Chat(c.clone())]
    } else if let Some(ids) = &args.ids {
        vec![Input::Ids(parse_ids(ids)?)]
    } else if let Some(file) = &args.prompts {
        read_prompts(file)?
    } else {
        bail!("give one of --prompt, --chat, --ids and --prompts")
    })
}

pub fn run(args: &GenerateArgs) -> Result<ExitCode> {
    let inputs = inputs(args)?;
    let path = resolve_model(args.model.as_deref())?;
    let load_start = Instant::now();
    let loaded = load_any::<LocalBackend>(&path, &Default::default())
        .with_context(|| format!("cannot load the model {}", path.display()))?;
    let load_time = load_start.elapsed();
    let generator = LocalGenerator::new(loaded, args.batch)?;

    let params = SamplingParams {
        max_tokens: args.max_new_tokens,
        temperature: if args.greedy { 0.0 } else { args.temperature },
        top_p: args.top_p,
        seed: Some(args.seed),
        ..SamplingParams::default()
    };
    let mut requests = Vec::with_capacity(inputs.len());
    for (i, input) in inputs.iter().enumerate() {
        let ids = match input {
            Input::Text(text) => generator.encode(&Prompt::Text(text.clone())),
            Input::Chat(text) => generator.encode(&Prompt::Chat(vec![ChatMessage {
                role: "user".into(),
                content: text.clone(),
            }])),
            Input::Ids(ids) => Ok(ids.clone()),
        }
        .with_context(|| format!("prompt {}", i + 1))?;
        let mut request = generator.request(ids, &params);
        if args.ignore_eos {
            request.stop_token_ids.clear();
        }
        requests.push(request);
    }

    let (results, stats) = generator.run(&requests)?;
    let mut out = String::new();
    let many = results.len() > 1;
    for (i, completions) in results.iter().enumerate() {
        for c in completions {
            let text = c.text.clone().or_else(|| generator.decode(&c.tokens));
            if args.json {
                let line = serde_json::json!({
                    "text": text,
                    "token_ids": c.tokens,
                    "finish_reason": finish_reason(c.finish_reason).as_str(),
                });
                out.push_str(&line.to_string());
                out.push('\n');
            } else {
                if many {
                    out.push_str(&format!("### prompt {}\n", i + 1));
                }
                match text {
                    Some(text) => out.push_str(&text),
                    None => out.push_str(
                        &c.tokens
                            .iter()
                            .map(u32::to_string)
                            .collect::<Vec<_>>()
                            .join(" "),
                    ),
                }
                out.push('\n');
            }
        }
    }
    print!("{out}");

    let secs = stats.elapsed.as_secs_f64().max(1e-9);
    eprintln!(
        "{} prompt(s): {} prompt tokens, {} generated tokens in {:.2} s ({:.1} tok/s generated, {:.1} tok/s prompt+generated; model load {:.2} s, batch {})",
        requests.len(),
        stats.prompt_tokens,
        stats.generated_tokens,
        secs,
        stats.generated_tokens as f64 / secs,
        (stats.prompt_tokens + stats.generated_tokens) as f64 / secs,
        load_time.as_secs_f64(),
        args.batch,
    );
    Ok(ExitCode::SUCCESS)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn ids_parse_with_spaces_and_commas() {
        assert_eq!(parse_ids(" 1 2,3\n4 ").unwrap(), vec![1, 2, 3, 4]);
        assert!(parse_ids("1 x").unwrap_err().to_string().contains("\"x\""));
        assert!(parse_ids("  ").is_err());
        assert!(parse_ids("-1").is_err());
    }

    #[test]
    fn prompts_file_kinds_and_errors() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("p.jsonl");
        std::fs::write(
            &path,
            "{\"prompt\": \"a\"}\n\n{\"chat\": \"b\"}\n{\"ids\": [1, 2]}\n",
        )
        .unwrap();
        assert_eq!(
            read_prompts(&path).unwrap(),
            vec![
                Input::Text("a".into()),
                Input::Chat("b".into()),
                Input::Ids(vec![1, 2])
            ]
        );
        std::fs::write(
            &path,
            "{\"prompt\": \"a\"}\n{\"prompt\": \"a\", \"ids\": [1]}\n",
        )
        .unwrap();
        let e = read_prompts(&path).unwrap_err().to_string();
        assert!(e.contains("p.jsonl:2"), "{e}");
        std::fs::write(&path, "{\"text\": \"a\"}\n").unwrap();
        let e = format!("{:#}", read_prompts(&path).unwrap_err());
        assert!(e.contains("p.jsonl:1"), "{e}");
    }
}
