//! `selfinstruct rouge --pairs FILE`: ROUGE-L per pair, as JSON Lines on stdout, for checking
//! agreement with Python's rouge_score.

use std::io::{BufWriter, Write};
use std::process::ExitCode;

use anyhow::{Context, Result};
use filters::RougeScorer;

use crate::cli::RougeArgs;
use crate::input::{parse_jsonl, read_utf8};

pub fn run(args: &RougeArgs) -> Result<ExitCode> {
    let text = read_utf8(&args.pairs)?;
    // Validate every line before printing anything.
    let pairs = parse_jsonl(&args.pairs, &text)?
        .iter()
        .map(|rec| Ok((rec.required_str("a")?, rec.required_str("b")?)))
        .collect::<Result<Vec<_>>>()?;
    let scorer = RougeScorer::with_stemmer(args.tokenizer.into(), args.use_stemmer);
    let stdout = std::io::stdout();
    let mut out = BufWriter::new(stdout.lock());
    for (a, b) in &pairs {
        let s = scorer.score(a, b);
        let line = serde_json::json!({"precision": s.precision, "recall": s.recall, "fmeasure": s.fmeasure});
        writeln!(out, "{line}").context("cannot write to stdout")?;
    }
    out.flush().context("cannot write to stdout")?;
    Ok(ExitCode::SUCCESS)
}
