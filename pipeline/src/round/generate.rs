//! One generation step of a round: the seeds of its requests, and sending them to the generator
//! a chunk at a time through the round's journal, so that finished work survives a crash and
//! Ctrl-C is honoured between chunks.

use std::fmt;
use std::time::Instant;

use anyhow::Result;

use crate::generator::{GenRequest, Generation, Generator};
use crate::prompts::SplitMix64;

use super::journal::{request_key, Entry, Journal};

/// The steps of a round, numbered for seed derivation (the numbers are part of every run's data:
/// never renumber).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Step {
    /// Choosing the in-context tasks of instruction-generation prompts.
    SampleInContext,
    Instructions,
    Classification,
    Instances,
}

impl Step {
    fn code(self) -> u64 {
        match self {
            Step::SampleInContext => 0,
            Step::Instructions => 1,
            Step::Classification => 2,
            Step::Instances => 3,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Step::SampleInContext => "sampling",
            Step::Instructions => "instructions",
            Step::Classification => "classification",
            Step::Instances => "instances",
        }
    }
}

/// The random stream of one unit of work: `(run seed, round, step, index)`. Independent of
/// everything drawn before, so a resumed round draws exactly what an uninterrupted one would.
pub fn stream(seed: u64, round: u32, step: Step, index: usize) -> SplitMix64 {
    SplitMix64::derive(seed, &[u64::from(round), step.code(), index as u64])
}

/// The sampling seed of request `index` of a step.
pub fn request_seed(seed: u64, round: u32, step: Step, index: usize) -> u64 {
    stream(seed, round, step, index).next_u64()
}

/// Completion tokens of every sample of a generation (0 where the generator does not count).
pub fn completion_tokens(generation: &Generation) -> u64 {
    generation
        .samples
        .iter()
        .map(|s| u64::from(s.completion_tokens.unwrap_or(0)))
        .sum()
}

/// The answer to one request of a step.
#[derive(Debug, Clone, PartialEq)]
pub struct Answer {
    /// The generation, or the generator's error as text.
    pub result: std::result::Result<Generation, String>,
    /// Wall seconds of the generator call that produced it.
    pub seconds: f64,
    /// Taken from the journal rather than generated now.
    pub reused: bool,
}

/// Ctrl-C (or another stop request) arrived before the round could finish.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Interrupted;

impl fmt::Display for Interrupted {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("interrupted")
    }
}

impl std::error::Error for Interrupted {}

/// What a round reports while it runs (progress bars live in the CLI).
pub trait Observer {
    /// A step starts with `requests` requests.
    fn step_started(&self, _round: u32, _step: Step, _requests: usize) {}
    /// `done` requests of the current step are answered; `tokens` completion tokens came with
    /// the last ones, in `seconds` of generation.
    fn requests_done(&self, _done: usize, _tokens: u64, _seconds: f64) {}
    /// Kept and rejected candidates of the round so far.
    fn funnel(&self, _kept: u64, _rejected: u64) {}
    /// A round was committed.
    fn round_committed(&self, _stats: &super::rows::RoundStats) {}
}

/// An observer that ignores everything.
pub struct Quiet;

impl Observer for Quiet {}

/// Sends the requests of steps through a journal.
pub struct StepRunner<'a> {
    pub generator: &'a dyn Generator,
    pub journal: &'a mut Journal,
    pub chunk: usize,
    pub stop: &'a dyn Fn() -> bool,
    pub observer: &'a dyn Observer,
    /// Seconds and completion tokens of generator calls made so far.
    pub generate_s: f64,
    pub generated_tokens: u64,
}

impl<'a> StepRunner<'a> {
    pub fn new(
        generator: &'a dyn Generator,
        journal: &'a mut Journal,
        chunk: usize,
        stop: &'a dyn Fn() -> bool,
        observer: &'a dyn Observer,
    ) -> Self {
        StepRunner {
            generator,
            journal,
            chunk,
            stop,
            observer,
            generate_s: 0.0,
            generated_tokens: 0,
        }
    }

    /// Answers every request, in order: from the journal where it has the answer, otherwise from
    /// the generator, a chunk at a time, each finished chunk journaled before the next starts.
    /// Returns [`Interrupted`] (inside the error) when `stop` says so between chunks.
    pub fn run(&mut self, round: u32, step: Step, requests: &[GenRequest]) -> Result<Vec<Answer>> {
        self.observer.step_started(round, step, requests.len());
        let keys = requests
            .iter()
            .map(request_key)
            .collect::<Result<Vec<_>>>()?;
        let mut answers: Vec<Option<Answer>> = keys
            .iter()
            .map(|k| {
                self.journal.get(k).map(|(g, s)| Answer {
                    result: Ok(g.clone()),
                    seconds: *s,
                    reused: true,
                })
            })
            .collect();
        let mut done = answers.iter().filter(|a| a.is_some()).count();
        self.observer.requests_done(done, 0, 0.0);
        let missing: Vec<usize> = (0..requests.len())
            .filter(|&i| answers[i].is_none())
            .collect();
        for chunk in missing.chunks(self.chunk.max(1)) {
            if (self.stop)() {
                return Err(Interrupted.into());
            }
            let batch: Vec<GenRequest> = chunk.iter().map(|&i| requests[i].clone()).collect();
            let start = Instant::now();
            let results = self.generator.generate(&batch);
            let seconds = start.elapsed().as_secs_f64();
            anyhow::ensure!(
                results.len() == batch.len(),
                "the generator answered {} of {} requests",
                results.len(),
                batch.len()
            );
            let mut entries = Vec::new();
            let mut tokens = 0u64;
            for (&i, result) in chunk.iter().zip(results) {
                let result = result.map_err(|e| format!("{e:#}"));
                if let Ok(generation) = &result {
                    tokens += completion_tokens(generation);
                    entries.push(Entry {
                        key: keys[i].clone(),
                        generation: generation.clone(),
                        seconds,
                    });
                }
                answers[i] = Some(Answer {
                    result,
                    seconds,
                    reused: false,
                });
            }
            self.journal.append(entries)?;
            self.generate_s += seconds;
            self.generated_tokens += tokens;
            done += chunk.len();
            self.observer.requests_done(done, tokens, seconds);
        }
        answers
            .into_iter()
            .map(|a| a.ok_or_else(|| anyhow::anyhow!("internal: a request was left unanswered")))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use std::cell::Cell;

    use super::*;
    use crate::generator::{FinishReason, Prompt, Sample, SamplingParams};

    /// Answers "echo: <prompt>", fails prompts starting with "fail", counts calls.
    struct Echo {
        calls: Cell<usize>,
        requests: Cell<usize>,
    }

    impl Generator for Echo {
        fn generate(&self, requests: &[GenRequest]) -> Vec<Result<Generation>> {
            self.calls.set(self.calls.get() + 1);
            self.requests.set(self.requests.get() + requests.len());
            requests
                .iter()
                .map(|r| {
                    let Prompt::Text(p) = &r.prompt else {
                        anyhow::bail!("chat")
                    };
                    anyhow::ensure!(!p.starts_with("fail"), "server said no");
                    Ok(Generation {
                        samples: vec![Sample {
                            text: format!("echo: {p}"),
                            finish_reason: FinishReason::Stop,
                            completion_tokens: Some(2),
                        }],
                        prompt_tokens: Some(1),
                        generator: "echo".into(),
                    })
                })
                .collect()
        }
        fn describe(&self) -> String {
            "echo".into()
        }
    }

    fn req(p: &str) -> GenRequest {
        GenRequest {
            prompt: Prompt::Text(p.into()),
            params: SamplingParams::default(),
        }
    }

    fn texts(answers: &[Answer]) -> Vec<String> {
        answers
            .iter()
            .map(|a| match &a.result {
                Ok(g) => g.samples[0].text.clone(),
                Err(e) => format!("error: {e}"),
            })
            .collect()
    }

    #[test]
    fn seeds_are_stable_and_distinct_per_unit() {
        assert_eq!(
            request_seed(1, 2, Step::Instructions, 3),
            request_seed(1, 2, Step::Instructions, 3)
        );
        let all = [
            request_seed(1, 2, Step::Instructions, 3),
            request_seed(1, 2, Step::Classification, 3),
            request_seed(1, 2, Step::Instructions, 4),
            request_seed(1, 3, Step::Instructions, 3),
            request_seed(2, 2, Step::Instructions, 3),
        ];
        let mut unique = all.to_vec();
        unique.sort_unstable();
        unique.dedup();
        assert_eq!(unique.len(), all.len());
    }

    #[test]
    fn chunks_are_journaled_and_reused_and_failures_asked_again() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("journal.jsonl");
        let echo = Echo {
            calls: Cell::new(0),
            requests: Cell::new(0),
        };
        let requests = vec![req("a"), req("fail b"), req("c"), req("d"), req("e")];
        let mut journal = Journal::open(&path).unwrap();
        let mut runner = StepRunner::new(&echo, &mut journal, 2, &|| false, &Quiet);
        let answers = runner.run(1, Step::Instructions, &requests).unwrap();
        assert_eq!(
            texts(&answers),
            [
                "echo: a",
                "error: server said no",
                "echo: c",
                "echo: d",
                "echo: e"
            ]
        );
        assert_eq!(runner.generated_tokens, 8);
        assert_eq!((echo.calls.get(), echo.requests.get()), (3, 5));
        drop(journal);

        let mut journal = Journal::open(&path).unwrap();
        assert_eq!(journal.len(), 4);
        let mut runner = StepRunner::new(&echo, &mut journal, 2, &|| false, &Quiet);
        let again = runner.run(1, Step::Instructions, &requests).unwrap();
        assert_eq!(texts(&again), texts(&answers));
        assert_eq!(
            again.iter().map(|a| a.reused).collect::<Vec<_>>(),
            [true, false, true, true, true]
        );
        // Only the failed request went to the generator again.
        assert_eq!((echo.calls.get(), echo.requests.get()), (4, 6));
    }

    #[test]
    fn stop_is_honoured_between_chunks_and_keeps_what_finished() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("journal.jsonl");
        let echo = Echo {
            calls: Cell::new(0),
            requests: Cell::new(0),
        };
        let requests = vec![req("a"), req("b"), req("c")];
        let mut journal = Journal::open(&path).unwrap();
        let stop = || echo.calls.get() >= 1;
        let mut runner = StepRunner::new(&echo, &mut journal, 2, &stop, &Quiet);
        let err = runner.run(1, Step::Instructions, &requests).unwrap_err();
        assert!(err.downcast_ref::<Interrupted>().is_some());
        assert_eq!(journal.len(), 2);
    }
}
