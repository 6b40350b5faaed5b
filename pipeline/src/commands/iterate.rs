//! `selfinstruct iterate`: the loop with round and SFT progress, a line per iteration, and the
//! exit code the targets decide (0 met, 1 budget used up, 2 error, 130 interrupted).

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::atomic::Ordering;

use anyhow::{bail, Context, Result};
use model::sft::Progress;

use crate::cli::{IterateArgs, TrainerArg, EXIT_INTERRUPTED};
use crate::commands::round::{default_folder, load_config, Bars};
use crate::commands::sft::{train_options, Bar};
use crate::commands::stop_flag;
use crate::iterate::table::IterationRow;
use crate::iterate::{run_iterate, IterateEnd, IterateObserver, IterateOptions, Trainer};
use crate::model_source::resolve_model;
use crate::round::{GeneratorKind, Observer};

/// Exit code when the iteration budget ran out before a target was met.
pub const EXIT_BUDGET: u8 = 1;

struct Screen {
    bars: Bars,
    sft: Bar,
}

impl IterateObserver for Screen {
    fn rounds(&self) -> &dyn Observer {
        &self.bars
    }
    fn sft(&mut self) -> &mut dyn Progress {
        &mut self.sft
    }
    fn iteration_started(&mut self, iteration: u32, generator: &std::path::Path) {
        eprintln!(
            "iteration {iteration}: generating with {}",
            generator.display()
        );
    }
    fn iteration_done(&mut self, row: &IterationRow) {
        self.bars.clear();
        self.sft.finish();
        println!("{}", line(row));
    }
}

/// One iteration as a line of the terminal summary.
pub fn line(row: &IterationRow) -> String {
    let loss = |v: Option<f64>| v.map_or("-".into(), |v| format!("{v:.3}"));
    format!(
        "iteration {}: rounds {}-{}, kept {}/{} ({:.1}%), {} in the run, mean ROUGE-L to nearest seed {}, \
         SFT loss {} (held-out {}), {:.0} s",
        row.iteration,
        row.first_round,
        row.last_round,
        row.instructions_kept,
        row.candidates,
        100.0 * row.acceptance_rate,
        row.instructions_total,
        loss(row.mean_rouge_to_seed),
        loss(row.sft_train_loss),
        loss(row.sft_heldout_loss),
        row.wall_s
    )
}

pub fn run(args: &IterateArgs) -> Result<ExitCode> {
    let mut config = load_config(args.config.as_deref())?;
    if let Some(n) = args.prompts_per_round {
        config.run.prompts_per_round = n;
    }
    if let Some(seed) = args.seed {
        config.run.seed = seed;
    }
    if config.generator.kind != GeneratorKind::Local {
        bail!("iterate needs generator.kind = \"local\" in the config: the loop replaces the generator's weights");
    }
    config.validate().context("invalid setting")?;
    let model_arg = args.model.clone().or_else(|| {
        config
            .generator
            .local
            .model
            .as_ref()
            .map(|p| p.to_string_lossy().into_owned())
    });
    let base_model = resolve_model(model_arg.as_deref())?;
    // Absolute, so the paths recorded in iterations.parquet hold from any working folder.
    let root = args.out.clone().unwrap_or_else(|| default_folder(&config));
    let root =
        std::path::absolute(&root).with_context(|| format!("bad --out {}", root.display()))?;
    let base_model = std::path::absolute(&base_model)
        .with_context(|| format!("bad model path {}", base_model.display()))?;
    let trainer = match (args.trainer, &args.trainer_cmd) {
        (TrainerArg::Burn, None) => Trainer::Burn,
        (TrainerArg::External, Some(cmd)) => Trainer::External {
            command: cmd.clone(),
        },
        (TrainerArg::Burn, Some(_)) => bail!("--trainer-cmd needs --trainer external"),
        (TrainerArg::External, None) => bail!("--trainer external needs --trainer-cmd \"...\""),
    };
    if let Some(a) = args.target_acceptance {
        if !(0.0..=1.0).contains(&a) {
            bail!("--target-acceptance is a share in [0, 1], got {a}");
        }
    }
    let sft = train_options(
        &args.train,
        root.clone(),
        base_model.clone(),
        PathBuf::new(),
        config.run.seed,
    )?;
    let opts = IterateOptions {
        rounds_per_iteration: args.rounds_per_iteration.unwrap_or(config.run.rounds),
        config,
        root: root.clone(),
        base_model,
        max_iterations: args.max_iterations,
        target_instructions: args.target_instructions,
        target_acceptance: args.target_acceptance,
        sft,
        trainer,
        force: args.force,
    };
    let stop = stop_flag()?;
    let mut screen = Screen {
        bars: Bars::default(),
        sft: Bar::new(stop.clone()),
    };
    let outcome = run_iterate(&opts, &|| stop.load(Ordering::SeqCst), &mut screen);
    screen.bars.clear();
    screen.sft.finish();
    let outcome = outcome?;
    let table = root.join(crate::iterate::ITERATIONS);
    match outcome.end {
        IterateEnd::TargetMet(reason) => {
            println!("target met: {reason}; see {}", table.display());
            Ok(ExitCode::SUCCESS)
        }
        IterateEnd::BudgetExhausted => {
            println!(
                "no target met after {} iterations (the --max-iterations budget); see {}",
                outcome.rows.len(),
                table.display()
            );
            Ok(ExitCode::from(EXIT_BUDGET))
        }
        IterateEnd::Interrupted => {
            eprintln!(
                "interrupted after {} finished iterations; rerun the same command to continue",
                outcome.rows.len()
            );
            Ok(ExitCode::from(EXIT_INTERRUPTED))
        }
    }
}
