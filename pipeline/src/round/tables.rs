//! The rows of a round as polars data frames (the Parquet tables of a run), and the machine pool
//! read back from `instructions.parquet`.

use anyhow::{Context, Result};
use polars::prelude::{Column, DataFrame};

use crate::parquet::{list_f64_column, list_str_column, string_column};

use super::rows::{InstanceRow, KeptInstruction, RejectReason, Rejected, RoundStats};

/// Columns that hold timings or say how a run was resumed: they differ between two runs that
/// produced the same data.
pub const RUN_DEPENDENT_COLUMNS: &[&str] = &[
    "instruction_seconds",
    "instances_seconds",
    "reused_responses",
    "wall_s",
    "generate_s",
    "generated_tokens",
    "tokens_per_s",
];

/// `instructions.parquet`.
pub fn instructions_frame(rows: &[KeptInstruction]) -> Result<DataFrame> {
    let s = |f: fn(&KeptInstruction) -> &str| rows.iter().map(f).collect::<Vec<&str>>();
    let n = |f: fn(&KeptInstruction) -> u64| rows.iter().map(f).collect::<Vec<u64>>();
    let x = |f: fn(&KeptInstruction) -> f64| rows.iter().map(f).collect::<Vec<f64>>();
    Ok(DataFrame::new_infer_height(vec![
        Column::new("id".into(), s(|r| &r.id)),
        Column::new(
            "round".into(),
            rows.iter().map(|r| r.round).collect::<Vec<u32>>(),
        ),
        Column::new("instruction".into(), s(|r| &r.instruction)),
        Column::new(
            "is_classification".into(),
            rows.iter()
                .map(|r| r.is_classification)
                .collect::<Vec<bool>>(),
        ),
        Column::new(
            "classification_answer".into(),
            s(|r| &r.classification_answer),
        ),
        Column::new("prompt_style".into(), s(|r| &r.prompt_style)),
        Column::new("prompt_id".into(), s(|r| &r.prompt_id)),
        list_str_column(
            "in_context_seed_ids",
            rows.iter().map(|r| r.in_context_seed_ids.clone()),
        ),
        list_str_column(
            "in_context_machine_ids",
            rows.iter().map(|r| r.in_context_machine_ids.clone()),
        ),
        list_str_column(
            "most_similar_ids",
            rows.iter().map(|r| r.neighbours.ids.clone()),
        ),
        list_str_column(
            "most_similar",
            rows.iter().map(|r| r.neighbours.instructions.clone()),
        ),
        list_f64_column(
            "most_similar_scores",
            rows.iter().map(|r| r.neighbours.scores.clone()),
        ),
        Column::new("max_similarity".into(), x(|r| r.neighbours.max())),
        Column::new("mean_similarity".into(), x(|r| r.neighbours.mean)),
        Column::new("generator".into(), s(|r| &r.generator)),
        Column::new("prompt_tokens".into(), n(|r| r.prompt_tokens)),
        Column::new("completion_tokens".into(), n(|r| r.completion_tokens)),
        Column::new(
            "instances_prompt_tokens".into(),
            n(|r| r.instances_prompt_tokens),
        ),
        Column::new(
            "instances_completion_tokens".into(),
            n(|r| r.instances_completion_tokens),
        ),
        Column::new("instruction_seconds".into(), x(|r| r.instruction_seconds)),
        Column::new("instances_seconds".into(), x(|r| r.instances_seconds)),
    ])?)
}

/// `instances.parquet`.
pub fn instances_frame(rows: &[InstanceRow]) -> Result<DataFrame> {
    let s = |f: fn(&InstanceRow) -> &str| rows.iter().map(f).collect::<Vec<&str>>();
    Ok(DataFrame::new_infer_height(vec![
        Column::new("instruction_id".into(), s(|r| &r.instruction_id)),
        Column::new(
            "round".into(),
            rows.iter().map(|r| r.round).collect::<Vec<u32>>(),
        ),
        Column::new(
            "index".into(),
            rows.iter().map(|r| r.index).collect::<Vec<u32>>(),
        ),
        Column::new("input".into(), s(|r| &r.input)),
        Column::new("output".into(), s(|r| &r.output)),
        Column::new("method".into(), s(|r| r.method.as_str())),
    ])?)
}

/// `rejected.parquet`.
pub fn rejected_frame(rows: &[Rejected]) -> Result<DataFrame> {
    let s = |f: fn(&Rejected) -> &str| rows.iter().map(f).collect::<Vec<&str>>();
    let o = |f: fn(&Rejected) -> Option<&str>| rows.iter().map(f).collect::<Vec<Option<&str>>>();
    Ok(DataFrame::new_infer_height(vec![
        Column::new(
            "round".into(),
            rows.iter().map(|r| r.round).collect::<Vec<u32>>(),
        ),
        Column::new("stage".into(), s(|r| r.stage.as_str())),
        Column::new("reason".into(), s(|r| r.reason.as_str())),
        Column::new("unit".into(), s(|r| r.unit.as_str())),
        Column::new("id".into(), s(|r| &r.id)),
        Column::new("text".into(), s(|r| &r.text)),
        Column::new("input".into(), o(|r| r.input.as_deref())),
        Column::new("output".into(), o(|r| r.output.as_deref())),
        Column::new("nearest_id".into(), o(|r| r.nearest_id.as_deref())),
        Column::new("nearest".into(), o(|r| r.nearest.as_deref())),
        Column::new(
            "nearest_score".into(),
            rows.iter()
                .map(|r| r.nearest_score)
                .collect::<Vec<Option<f64>>>(),
        ),
        Column::new("detail".into(), o(|r| r.detail.as_deref())),
    ])?)
}

/// `rounds.parquet`: one row per round, with a `drop_<reason>` column for every reason.
pub fn rounds_frame(rows: &[RoundStats]) -> Result<DataFrame> {
    let n = |f: fn(&RoundStats) -> u64| rows.iter().map(f).collect::<Vec<u64>>();
    let x = |f: fn(&RoundStats) -> f64| rows.iter().map(f).collect::<Vec<f64>>();
    let mut columns = vec![
        Column::new(
            "round".into(),
            rows.iter().map(|r| r.round).collect::<Vec<u32>>(),
        ),
        Column::new("prompts".into(), n(|r| r.prompts)),
        Column::new("requests".into(), n(|r| r.requests)),
        Column::new("failed_requests".into(), n(|r| r.failed_requests)),
        Column::new("reused_responses".into(), n(|r| r.reused_responses)),
        Column::new("prompt_tokens".into(), n(|r| r.prompt_tokens)),
        Column::new("completion_tokens".into(), n(|r| r.completion_tokens)),
        Column::new("candidates".into(), n(|r| r.candidates)),
        Column::new("kept".into(), n(|r| r.kept)),
        Column::new("acceptance_rate".into(), x(RoundStats::acceptance_rate)),
        Column::new("kept_classification".into(), n(|r| r.kept_classification)),
        Column::new("instances_generated".into(), n(|r| r.instances_generated)),
        Column::new("instances_kept".into(), n(|r| r.instances_kept)),
    ];
    for reason in RejectReason::all() {
        let name = format!("drop_{}", reason.as_str());
        columns.push(Column::new(
            name.into(),
            rows.iter().map(|r| r.drops(reason)).collect::<Vec<u64>>(),
        ));
    }
    columns.extend([
        Column::new("wall_s".into(), x(|r| r.wall_s)),
        Column::new("generate_s".into(), x(|r| r.generate_s)),
        Column::new("generated_tokens".into(), n(|r| r.generated_tokens)),
        Column::new("tokens_per_s".into(), x(RoundStats::tokens_per_s)),
    ]);
    Ok(DataFrame::new_infer_height(columns)?)
}

/// The machine pool, `(id, instruction)` in row order, from an `instructions.parquet` frame.
pub fn machine_pool(df: &DataFrame, path: &std::path::Path) -> Result<Vec<(String, String)>> {
    let ids = string_column(df, "id", path)?;
    let texts = string_column(df, "instruction", path)?;
    ids.into_iter()
        .zip(texts)
        .enumerate()
        .map(|(i, pair)| match pair {
            (Some(id), Some(text)) => Ok((id, text)),
            _ => {
                None.with_context(|| format!("{}: row {i}: null id or instruction", path.display()))
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dedup::Neighbours;
    use crate::prompts::InstanceMethod;
    use crate::round::rows::{RoundStage, Unit};

    fn kept(id: &str) -> KeptInstruction {
        KeptInstruction {
            id: id.into(),
            round: 1,
            instruction: format!("Instruction {id}."),
            is_classification: false,
            classification_answer: "No".into(),
            prompt_style: "completion".into(),
            prompt_id: "r1-p0".into(),
            in_context_seed_ids: vec!["s1".into()],
            in_context_machine_ids: vec![],
            neighbours: Neighbours {
                ids: vec!["s1".into()],
                instructions: vec!["Seed.".into()],
                scores: vec![0.5],
                mean: 0.5,
            },
            generator: "g".into(),
            prompt_tokens: 1,
            completion_tokens: 2,
            instances_prompt_tokens: 3,
            instances_completion_tokens: 4,
            instruction_seconds: 0.1,
            instances_seconds: 0.2,
        }
    }

    #[test]
    fn empty_frames_have_the_same_schema_as_full_ones() {
        let full = instructions_frame(&[kept("a")]).unwrap();
        let empty = instructions_frame(&[]).unwrap();
        assert_eq!(full.schema(), empty.schema());
        let row = InstanceRow {
            instruction_id: "a".into(),
            round: 1,
            index: 0,
            input: "".into(),
            output: "o".into(),
            method: InstanceMethod::InputFirst,
        };
        assert_eq!(
            instances_frame(&[row]).unwrap().schema(),
            instances_frame(&[]).unwrap().schema()
        );
        let mut rej = Rejected::new(
            1,
            RoundStage::Rouge,
            RejectReason::GenerationFailed,
            Unit::Instruction,
            "x".into(),
            "t".into(),
        );
        rej.nearest_score = Some(0.9);
        assert_eq!(
            rejected_frame(&[rej]).unwrap().schema(),
            rejected_frame(&[]).unwrap().schema()
        );
        assert_eq!(
            rounds_frame(&[RoundStats::default()]).unwrap().schema(),
            rounds_frame(&[]).unwrap().schema()
        );
    }

    #[test]
    fn machine_pool_reads_back_ids_and_instructions() {
        let df = instructions_frame(&[kept("a"), kept("b")]).unwrap();
        let pool = machine_pool(&df, std::path::Path::new("x.parquet")).unwrap();
        assert_eq!(
            pool,
            [
                ("a".to_string(), "Instruction a.".to_string()),
                ("b".to_string(), "Instruction b.".to_string())
            ]
        );
    }
}
