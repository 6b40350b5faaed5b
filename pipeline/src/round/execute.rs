//! One round of the loop (DESIGN.md, "The loop", steps 1-5), from the pool to the rows to commit:
//!
//! 1. one instruction-generation prompt per `run.prompts_per_round`, its in-context tasks drawn
//!    from the seeds and the machine pool with the stream of `(seed, round, prompt)`;
//! 2. all of them sent as one step; each response parsed as a numbered list (a response that
//!    ended on the length limit is dropped whole, by default);
//! 3. rule filters, then ROUGE-L against the seeds, the machine pool and every candidate accepted
//!    before it in this round (the reference's greedy order: prompt, sample, item);
//! 4. classification identification of the survivors, one step;
//! 5. instance generation (input-first, or output-first for classification tasks), one step,
//!    then instance parsing and filters. An instruction left with no instance is dropped.
//!
//! Every candidate and every piece of text that does not make it is returned as a [`Rejected`]
//! row with its stage and reason. Requests carry seeds derived from `(seed, round, step, index)`.
//! The ROUGE-L pool of a round is rebuilt from the seeds and the committed machine pool, so a
//! resumed round sees exactly what an uninterrupted one would.

use std::time::Instant;

use anyhow::{Context, Result};
use filters::{InstanceFilter, Verdict};

use crate::dedup::{run_dedup, DedupOptions, PoolEntry};
use crate::generator::{GenRequest, Generator};
use crate::parse::{parse_class_answer, parse_instances, parse_instruction_list, ClassAnswer};
use crate::prompts::{sample_in_context, InContextTask, InstanceMethod, Origin, Prompter};
use crate::records::InstructionRecord;
use crate::seeds::SeedTask;

use super::config::PipelineConfig;
use super::generate::{
    completion_tokens, request_seed, stream, Answer, Observer, Step, StepRunner,
};
use super::journal::Journal;
use super::rows::{
    InstanceRow, KeptInstruction, RejectReason, Rejected, RoundStage, RoundStats, Unit,
};

/// What a round reads.
pub struct RoundInputs<'a> {
    pub config: &'a PipelineConfig,
    pub prompter: &'a Prompter,
    pub seeds: &'a [SeedTask],
    /// The committed machine pool, `(id, instruction)`, in commit order.
    pub machine: &'a [(String, String)],
}

/// Everything a round commits.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct RoundOutput {
    pub kept: Vec<KeptInstruction>,
    pub instances: Vec<InstanceRow>,
    pub rejected: Vec<Rejected>,
    pub stats: RoundStats,
}

/// A candidate instruction and where it came from.
struct Candidate {
    id: String,
    text: String,
    prompt: usize,
}

/// A candidate that passed the filters, on its way through classification and instances.
struct Survivor {
    candidate: Candidate,
    neighbours: crate::dedup::Neighbours,
    is_classification: bool,
    answer: String,
}

/// Runs round `round` (1-based). Returns [`super::Interrupted`] inside the error when `stop`
/// turned true between generation chunks; what was generated is in the journal by then.
pub fn run_round(
    inputs: &RoundInputs<'_>,
    round: u32,
    generator: &dyn Generator,
    journal: &mut Journal,
    stop: &dyn Fn() -> bool,
    observer: &dyn Observer,
) -> Result<RoundOutput> {
    let start = Instant::now();
    let cfg = inputs.config;
    let seed = cfg.run.seed;
    let mut runner = StepRunner::new(
        generator,
        journal,
        cfg.generator.chunk_requests,
        stop,
        observer,
    );
    let mut out = RoundOutput::default();
    let reject = |stage, reason, unit, id: &str, text: &str| {
        Rejected::new(round, stage, reason, unit, id.to_owned(), text.to_owned())
    };

    // 1-2. Instruction generation.
    let mut prompts: Vec<(String, Vec<InContextTask>)> =
        Vec::with_capacity(cfg.run.prompts_per_round);
    let mut requests = Vec::with_capacity(cfg.run.prompts_per_round);
    for p in 0..cfg.run.prompts_per_round {
        let mut rng = stream(seed, round, Step::SampleInContext, p);
        let tasks = sample_in_context(inputs.seeds, inputs.machine, &cfg.prompts, &mut rng)?;
        let prompt = inputs.prompter.instruction_generation(&tasks)?;
        let params = cfg.sampling.instructions.params(
            inputs.prompter.instruction_stop(),
            cfg.sampling.instruction_samples,
            request_seed(seed, round, Step::Instructions, p),
        );
        requests.push(GenRequest { prompt, params });
        prompts.push((format!("r{round}-p{p}"), tasks));
    }
    let list_answers = runner.run(round, Step::Instructions, &requests)?;
    let mut candidates = Vec::new();
    for (p, answer) in list_answers.iter().enumerate() {
        let prompt_id = &prompts[p].0;
        let Ok(generation) = &answer.result else {
            out.rejected.push(failed(
                reject(
                    RoundStage::InstructionGeneration,
                    RejectReason::GenerationFailed,
                    Unit::Response,
                    prompt_id,
                    "",
                ),
                answer,
            ));
            continue;
        };
        for (s, sample) in generation.samples.iter().enumerate() {
            let parsed = parse_instruction_list(
                &sample.text,
                sample.finish_reason,
                cfg.prompts.on_length,
                cfg.prompts.style,
            );
            for dropped in parsed.dropped {
                let id = format!("{prompt_id}-s{s}");
                out.rejected.push(reject(
                    RoundStage::InstructionGeneration,
                    RejectReason::Response(dropped.reason),
                    Unit::Response,
                    &id,
                    &dropped.text,
                ));
            }
            for (i, text) in parsed.items.into_iter().enumerate() {
                candidates.push(Candidate {
                    id: format!("{prompt_id}-s{s}-i{i}"),
                    text,
                    prompt: p,
                });
            }
        }
    }
    out.stats.candidates = candidates.len() as u64;

    // 3. Rule filters and ROUGE-L, in candidate order.
    let pool: Vec<PoolEntry> = inputs
        .seeds
        .iter()
        .map(|s| PoolEntry {
            id: s.id.clone(),
            instruction: s.instruction.clone(),
        })
        .chain(inputs.machine.iter().map(|(id, text)| PoolEntry {
            id: id.clone(),
            instruction: text.clone(),
        }))
        .collect();
    let records: Vec<InstructionRecord> = candidates
        .iter()
        .map(|c| InstructionRecord {
            id: c.id.clone(),
            instruction: c.text.clone(),
            input: None,
            output: None,
        })
        .collect();
    let options = DedupOptions {
        rules: Some(cfg.filters.rules.clone()),
        near_dup: cfg.filters.rouge,
    };
    let filtered =
        run_dedup(records, &pool, &options, |_| {}).context("filtering the candidates")?;
    for r in filtered.rejected {
        let stage = if r.neighbours.is_some() {
            RoundStage::Rouge
        } else {
            RoundStage::Rules
        };
        let mut row = reject(
            stage,
            RejectReason::Filter(r.reason),
            Unit::Instruction,
            &r.record.id,
            &r.record.instruction,
        );
        if let Some(nb) = r.neighbours {
            row.nearest_id = nb.ids.first().cloned();
            row.nearest = nb.instructions.first().cloned();
            row.nearest_score = nb.scores.first().copied();
        }
        out.rejected.push(row);
    }
    let mut slots: Vec<Option<Candidate>> = candidates.into_iter().map(Some).collect();
    let survivors: Vec<Survivor> = filtered
        .kept
        .into_iter()
        .filter_map(|k| {
            let mut candidate = slots.get_mut(k.row)?.take()?;
            candidate.text = k.record.instruction;
            Some(Survivor {
                candidate,
                neighbours: k.neighbours,
                is_classification: false,
                answer: String::new(),
            })
        })
        .collect();
    observer.funnel(
        0,
        out.rejected
            .iter()
            .filter(|r| r.unit == Unit::Instruction)
            .count() as u64,
    );

    // 4. Classification identification.
    let requests = survivors
        .iter()
        .enumerate()
        .map(|(j, s)| {
            let prompt = inputs.prompter.is_classification(&s.candidate.text)?;
            let params = cfg.sampling.classification.params(
                cfg.sampling.classification_stop.clone(),
                1,
                request_seed(seed, round, Step::Classification, j),
            );
            Ok(GenRequest { prompt, params })
        })
        .collect::<Result<Vec<_>>>()?;
    let class_answers = runner.run(round, Step::Classification, &requests)?;
    let mut classified = Vec::with_capacity(survivors.len());
    for ((j, mut s), answer) in survivors.into_iter().enumerate().zip(&class_answers) {
        match &answer.result {
            Ok(g) => {
                let text = g.samples.first().map_or("", |x| x.text.as_str());
                // Anything but a clear Yes is an ordinary task, as in the reference.
                s.is_classification = parse_class_answer(text) == ClassAnswer::Yes;
                s.answer = text.trim().to_owned();
                classified.push((j, s));
            }
            Err(_) => out.rejected.push(failed(
                reject(
                    RoundStage::Classification,
                    RejectReason::GenerationFailed,
                    Unit::Instruction,
                    &s.candidate.id,
                    &s.candidate.text,
                ),
                answer,
            )),
        }
    }

    // 5. Instance generation, parsing and filters.
    let requests = classified
        .iter()
        .map(|(j, s)| {
            let method = InstanceMethod::for_task(s.is_classification);
            let prompt = inputs.prompter.instances(&s.candidate.text, method)?;
            let params = cfg.sampling.instances.params(
                inputs.prompter.instance_stop(),
                1,
                request_seed(seed, round, Step::Instances, *j),
            );
            Ok(GenRequest { prompt, params })
        })
        .collect::<Result<Vec<_>>>()?;
    let instance_answers = runner.run(round, Step::Instances, &requests)?;
    let filter = InstanceFilter::new(cfg.filters.instances.clone()).context("filters.instances")?;
    for ((_, s), answer) in classified.into_iter().zip(&instance_answers) {
        let c = &s.candidate;
        let Ok(generation) = &answer.result else {
            out.rejected.push(failed(
                reject(
                    RoundStage::Instances,
                    RejectReason::GenerationFailed,
                    Unit::Instruction,
                    &c.id,
                    &c.text,
                ),
                answer,
            ));
            continue;
        };
        let method = InstanceMethod::for_task(s.is_classification);
        let text = generation.samples.first().map_or("", |x| x.text.as_str());
        let generated = parse_instances(text, method);
        let outcome = filter.filter_task(&generated);
        out.stats.instances_generated += generated.len() as u64;
        for (instance, verdict) in generated.iter().zip(&outcome.verdicts) {
            if let Verdict::Drop(reason) = verdict {
                let mut row = reject(
                    RoundStage::Instances,
                    RejectReason::Filter(*reason),
                    Unit::Instance,
                    &c.id,
                    &c.text,
                );
                row.input = Some(instance.input.clone());
                row.output = Some(instance.output.clone());
                out.rejected.push(row);
            }
        }
        if outcome.kept.is_empty() {
            let mut row = reject(
                RoundStage::Instances,
                RejectReason::NoInstances,
                Unit::Instruction,
                &c.id,
                &c.text,
            );
            row.detail = Some(format!("{} generated, none kept", generated.len()));
            out.rejected.push(row);
            continue;
        }
        out.stats.instances_kept += outcome.kept.len() as u64;
        for (index, instance) in outcome.kept.into_iter().enumerate() {
            out.instances.push(InstanceRow {
                instruction_id: c.id.clone(),
                round,
                index: index as u32,
                input: instance.input,
                output: instance.output,
                method,
            });
        }
        let source = Source {
            prompt: &prompts[c.prompt],
            list: &list_answers[c.prompt],
            instances: answer,
        };
        out.kept.push(kept_row(round, cfg, source, s));
        observer.funnel(
            out.kept.len() as u64,
            out.rejected
                .iter()
                .filter(|r| r.unit == Unit::Instruction)
                .count() as u64,
        );
    }

    out.stats = stats(
        round,
        &out,
        [&list_answers, &class_answers, &instance_answers],
        out.stats.candidates,
    );
    out.stats.wall_s = start.elapsed().as_secs_f64();
    out.stats.generate_s = runner.generate_s;
    out.stats.generated_tokens = runner.generated_tokens;
    Ok(out)
}

/// The generation a kept instruction came from.
struct Source<'a> {
    prompt: &'a (String, Vec<InContextTask>),
    list: &'a Answer,
    instances: &'a Answer,
}

fn kept_row(round: u32, cfg: &PipelineConfig, source: Source<'_>, s: Survivor) -> KeptInstruction {
    let ids = |origin| {
        source
            .prompt
            .1
            .iter()
            .filter(|t| t.origin == origin)
            .map(|t| t.id.clone())
            .collect()
    };
    let (generator, prompt_tokens, completion_tokens) = tokens(source.list);
    let (_, instances_prompt_tokens, instances_completion_tokens) = tokens(source.instances);
    KeptInstruction {
        id: s.candidate.id,
        round,
        instruction: s.candidate.text,
        is_classification: s.is_classification,
        classification_answer: s.answer,
        prompt_style: cfg.prompts.style.as_str().to_owned(),
        prompt_id: source.prompt.0.clone(),
        in_context_seed_ids: ids(Origin::Seed),
        in_context_machine_ids: ids(Origin::Machine),
        neighbours: s.neighbours,
        generator,
        prompt_tokens,
        completion_tokens,
        instances_prompt_tokens,
        instances_completion_tokens,
        instruction_seconds: source.list.seconds,
        instances_seconds: source.instances.seconds,
    }
}

/// Who answered, prompt tokens and completion tokens (all samples) of an answer.
fn tokens(answer: &Answer) -> (String, u64, u64) {
    match &answer.result {
        Ok(g) => (
            g.generator.clone(),
            u64::from(g.prompt_tokens.unwrap_or(0)),
            completion_tokens(g),
        ),
        Err(_) => (String::new(), 0, 0),
    }
}

/// The round's counts, from its rows and the answers of its three steps.
fn stats(round: u32, out: &RoundOutput, steps: [&[Answer]; 3], candidates: u64) -> RoundStats {
    let mut stats = RoundStats {
        round,
        prompts: steps[0].len() as u64,
        candidates,
        kept: out.kept.len() as u64,
        kept_classification: out.kept.iter().filter(|k| k.is_classification).count() as u64,
        instances_generated: out.stats.instances_generated,
        instances_kept: out.stats.instances_kept,
        ..RoundStats::default()
    };
    for answer in steps.iter().flat_map(|s| s.iter()) {
        stats.requests += 1;
        stats.reused_responses += u64::from(answer.reused);
        match &answer.result {
            Ok(g) => {
                stats.prompt_tokens += u64::from(g.prompt_tokens.unwrap_or(0));
                stats.completion_tokens += completion_tokens(g);
            }
            Err(_) => stats.failed_requests += 1,
        }
    }
    for row in &out.rejected {
        *stats
            .drops
            .entry(row.reason.as_str().to_owned())
            .or_insert(0) += 1;
    }
    stats
}

/// Adds the generator's error to a row.
fn failed(mut row: Rejected, answer: &Answer) -> Rejected {
    row.detail = answer.result.as_ref().err().cloned();
    row
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::round::generate::Quiet;
    use crate::round::testing::{config, Scripted};
    use crate::seeds::load_seeds;

    fn run(
        cfg: &PipelineConfig,
        machine: &[(String, String)],
        generator: &Scripted,
    ) -> RoundOutput {
        let dir = tempfile::tempdir().unwrap();
        let (seeds, _) = load_seeds(&cfg.run.seed_tasks).unwrap();
        let prompter = Prompter::load(cfg.prompts.clone()).unwrap();
        let inputs = RoundInputs {
            config: cfg,
            prompter: &prompter,
            seeds: &seeds,
            machine,
        };
        let mut journal = Journal::open(&dir.path().join("j.jsonl")).unwrap();
        let mut out = run_round(&inputs, 1, generator, &mut journal, &|| false, &Quiet).unwrap();
        // Timings differ from run to run.
        for k in &mut out.kept {
            (k.instruction_seconds, k.instances_seconds) = (0.0, 0.0);
        }
        (out.stats.wall_s, out.stats.generate_s) = (0.0, 0.0);
        out
    }

    fn count(out: &RoundOutput, f: impl Fn(&Rejected) -> bool) -> u64 {
        out.rejected.iter().filter(|r| f(r)).count() as u64
    }

    #[test]
    fn funnel_accounts_for_every_candidate() {
        let cfg = config(12, 1);
        let out = run(&cfg, &[], &Scripted::new());
        let s = &out.stats;
        assert!(s.kept > 0 && s.candidates > s.kept, "{s:?}");
        // Every candidate is kept or has exactly one instruction-level rejection.
        assert_eq!(
            s.candidates,
            s.kept + count(&out, |r| r.unit == Unit::Instruction)
        );
        // Each reason count is its rows.
        for reason in RejectReason::all() {
            assert_eq!(
                s.drops(reason),
                count(&out, |r| r.reason == reason),
                "{reason}"
            );
        }
        assert!(s.drops(RejectReason::Filter(filters::DropReason::TooShort)) > 0);
        assert!(s.drops(RejectReason::Filter(filters::DropReason::Blacklisted)) > 0);
        assert!(
            s.drops(RejectReason::Response(
                crate::parse::ResponseDrop::LengthLimit
            )) > 0
        );
        assert!(s.drops(RejectReason::NoInstances) > 0);
        assert!(s.drops(RejectReason::Filter(filters::DropReason::InputEqualsOutput)) > 0);
        // Requests: prompts, then one classification per filter survivor, one instance request each.
        let survivors = s.candidates
            - count(&out, |r| {
                matches!(r.stage, RoundStage::Rules | RoundStage::Rouge)
            });
        assert_eq!(s.requests, s.prompts + 2 * survivors);
        assert_eq!(s.prompts, 12);
        assert_eq!(s.instances_kept, out.instances.len() as u64);
        // Every kept instruction has instances, classification ones output-first.
        for k in &out.kept {
            let mine: Vec<_> = out
                .instances
                .iter()
                .filter(|i| i.instruction_id == k.id)
                .collect();
            assert!(!mine.is_empty() && mine.len() <= 5);
            let method = InstanceMethod::for_task(k.is_classification);
            assert!(mine.iter().all(|i| i.method == method));
            assert_eq!(
                k.is_classification,
                k.instruction.starts_with("Classify"),
                "{k:?}"
            );
            assert_eq!(k.in_context_seed_ids.len(), 8);
            assert!(k.neighbours.scores.len() == 10 && k.neighbours.max() <= 0.7);
        }
        // ROUGE rejections name their nearest neighbour.
        for r in out.rejected.iter().filter(|r| r.stage == RoundStage::Rouge) {
            assert!(
                r.nearest_score.unwrap() > 0.7 && r.nearest.is_some() && r.nearest_id.is_some()
            );
        }
    }

    #[test]
    fn same_config_and_seed_give_the_same_round() {
        let cfg = config(10, 1);
        let a = run(&cfg, &[], &Scripted::new());
        assert_eq!(a, run(&cfg, &[], &Scripted::new()));
        let mut other = cfg.clone();
        other.run.seed = 7;
        assert_ne!(a.kept, run(&other, &[], &Scripted::new()).kept);
    }

    #[test]
    fn machine_pool_enters_the_prompts_once_it_has_tasks() {
        let cfg = config(4, 1);
        let machine = vec![(
            "r0-p0-s0-i0".to_string(),
            "Name three uses of a paperclip at school.".to_string(),
        )];
        let out = run(&cfg, &machine, &Scripted::new());
        assert!(out.kept.iter().all(
            |k| k.in_context_machine_ids == ["r0-p0-s0-i0"] && k.in_context_seed_ids.len() == 7
        ));
    }

    #[test]
    fn failed_requests_are_recorded_with_the_error() {
        let cfg = config(6, 1);
        let mut generator = Scripted::new();
        generator.fail_prompt_containing = Some("Is it classification?".into());
        let out = run(&cfg, &[], &generator);
        assert!(out.kept.is_empty());
        let failed: Vec<_> = out
            .rejected
            .iter()
            .filter(|r| r.reason == RejectReason::GenerationFailed)
            .collect();
        assert!(!failed.is_empty());
        assert!(failed.iter().all(|r| r.stage == RoundStage::Classification
            && r.detail.as_deref() == Some("HTTP 500 (gave up after 3 attempts)")));
        assert_eq!(out.stats.failed_requests, failed.len() as u64);
        assert_eq!(
            out.stats.candidates,
            count(&out, |r| r.unit == Unit::Instruction)
        );
    }
}
