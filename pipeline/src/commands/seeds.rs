//! `selfinstruct seeds FILE`: validate a seed pool and print what is in it.

use std::process::ExitCode;

use anyhow::{bail, Result};
use filters::{NearDupConfig, NearDupIndex};

use crate::cli::SeedsArgs;
use crate::seeds::load_seeds;
use crate::table::{percent, render};

pub fn run(args: &SeedsArgs) -> Result<ExitCode> {
    let (tasks, format) = load_seeds(&args.file)?;
    let n = tasks.len() as u64;
    let classification = tasks
        .iter()
        .filter(|t| t.is_classification == Some(true))
        .count() as u64;
    let empty_input = tasks
        .iter()
        .filter(|t| t.instances.iter().all(|i| i.input.trim().is_empty()))
        .count() as u64;
    let instances: usize = tasks.iter().map(|t| t.instances.len()).sum();

    // Most similar earlier seed for every seed: the pool's own near-duplicate check.
    let config = NearDupConfig {
        threshold: args.max_rouge,
        top_k: 1,
        tokenizer: args.tokenizer.into(),
        ..Default::default()
    };
    let mut index = NearDupIndex::new(config)?;
    let mut worst: Vec<(f64, usize, usize)> = Vec::new();
    for (i, task) in tasks.iter().enumerate() {
        let novelty = index.check(&task.instruction);
        if let Some(&(j, score)) = novelty.top_k.first() {
            worst.push((score, j, i));
        }
        index.insert(&task.instruction)?;
    }
    worst.sort_by(|a, b| b.0.total_cmp(&a.0));
    let max = worst.first().map_or(0.0, |w| w.0);

    let rows = vec![
        vec!["format".to_string(), format!("{format:?}")],
        vec!["tasks".to_string(), n.to_string()],
        vec!["instances".to_string(), instances.to_string()],
        vec![
            "classification".to_string(),
            format!("{classification} ({})", percent(classification, n)),
        ],
        vec![
            "empty input".to_string(),
            format!("{empty_input} ({})", percent(empty_input, n)),
        ],
        vec!["max pairwise ROUGE-L".to_string(), format!("{max:.4}")],
    ];
    print!("{}", render(&["", ""], &rows));
    println!("most similar pairs:");
    for (score, j, i) in worst.iter().take(5) {
        println!("  {score:.4}  {} ~ {}", tasks[*i].id, tasks[*j].id);
    }
    if max > args.max_rouge {
        bail!(
            "{}: seeds {} and {} have ROUGE-L {max:.4} > {}",
            args.file.display(),
            tasks[worst[0].1].id,
            tasks[worst[0].2].id,
            args.max_rouge
        );
    }
    Ok(ExitCode::SUCCESS)
}
