//! Supervised fine-tuning on the tiny chat fixture (`tests/fixtures/models/llama_chat`): the loss
//! falls when overfitting a handful of examples (full and LoRA), autodiff gradients equal finite
//! differences, a resumed run continues the same loss curve, merged LoRA equals the adapters, and
//! a non-finite loss stops the run naming the step.

#![allow(clippy::unwrap_used)]

use std::path::{Path, PathBuf};

use burn::backend::{Autodiff, Flex};
use burn::module::{AutodiffModule, Param};
use burn::optim::GradientsParams;
use burn::tensor::backend::Backend;
use burn::tensor::{Tensor, TensorData};
use model::lora::{attach_lora, merge_lora, LoraSettings, LoraTarget};
use model::sft::loss::nll_sum;
use model::sft::trainer::mean_loss;
use model::sft::{
    tokenize_example, train, Budgets, Progress, PromptFormat, Quiet, SftRecord, StepRecord,
    TokenizedExample, TrainError, TrainSettings,
};
use model::{load_any, LoadedModel, Model};

type Ad = Autodiff<Flex>;

fn fixture() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/fixtures/models/llama_chat")
}

fn load<B: Backend>() -> LoadedModel<B> {
    load_any::<B>(&fixture(), &Default::default()).unwrap()
}

fn examples() -> Vec<TokenizedExample> {
    let loaded = load::<Flex>();
    let bundle = loaded.tokenizer.unwrap();
    let pairs = [
        ("Name a primary colour.", "", "Red"),
        ("Add the numbers.", "2 and 3", "5"),
        ("Translate to French.", "cat", "chat"),
        ("Is the sentence positive?", "I love this.", "Yes"),
        ("Give the opposite word.", "hot", "cold"),
        ("Say hello.", "", "Hello there, friend."),
    ];
    pairs
        .iter()
        .map(|(i, x, o)| {
            let record = SftRecord {
                instruction: i.to_string(),
                input: x.to_string(),
                output: o.to_string(),
            };
            tokenize_example(&bundle, PromptFormat::ChatTemplate, &record).unwrap()
        })
        .collect()
}

fn settings(epochs: usize, lr: f64) -> TrainSettings {
    TrainSettings {
        epochs,
        max_steps: None,
        lr,
        warmup_ratio: 0.0,
        budgets: Budgets {
            batch_tokens: 120,
            micro_batch_tokens: 90,
        },
        heldout_fraction: 0.0,
        seed: 3,
        checkpoint_every: 0,
        keep_checkpoints: 2,
        eval_every: 0,
        optim: Default::default(),
    }
}

fn lora() -> LoraSettings {
    LoraSettings {
        rank: 4,
        alpha: 8.0,
        dropout: 0.0,
        targets: LoraTarget::ALL.to_vec(),
    }
}

fn losses(history: &[StepRecord]) -> Vec<f64> {
    history.iter().map(|r| r.loss).collect()
}

fn full_loss<B: Backend>(model: &Model<B>, examples: &[TokenizedExample]) -> f64 {
    let all: Vec<usize> = (0..examples.len()).collect();
    mean_loss(model, examples, &all, 10_000).unwrap().unwrap()
}

#[test]
fn full_fine_tuning_overfits_a_handful_of_examples() {
    let examples = examples();
    let model = load::<Ad>().model;
    let before = full_loss(&model.valid(), &examples);
    let dir = tempfile::tempdir().unwrap();
    let out = train(
        model,
        &examples,
        &settings(12, 3e-3),
        dir.path(),
        "t",
        false,
        &mut Quiet,
    )
    .unwrap();
    let after = full_loss(&out.model.valid(), &examples);
    assert!(after < 0.3 * before, "loss {before} -> {after}");
    assert!(out.history.len() >= 12);
    let first = out.history.first().unwrap();
    assert!(first.tokens > 0 && first.trained_tokens > 0 && first.trained_tokens < first.tokens);
}

#[test]
fn lora_overfits_trains_only_adapters_and_merges_exactly() {
    let examples = examples();
    <Ad as Backend>::seed(&Default::default(), 11);
    let base = load::<Ad>().model;
    let base_embed = base.embed_tokens.weight.val().into_data();
    let model = attach_lora(base, &lora());
    let before = full_loss(&model.valid(), &examples);
    let dir = tempfile::tempdir().unwrap();
    let out = train(
        model,
        &examples,
        &settings(12, 1e-2),
        dir.path(),
        "t",
        false,
        &mut Quiet,
    )
    .unwrap();
    let trained = out.model.valid();
    let after = full_loss(&trained, &examples);
    assert!(after < 0.5 * before, "loss {before} -> {after}");
    // The base weights did not move.
    assert_eq!(trained.embed_tokens.weight.val().into_data(), base_embed);
    // Merged weights compute what the adapters computed.
    let ids = &examples[1].ids;
    let adapted = trained.logits(ids).unwrap();
    let merged = merge_lora(trained).logits(ids).unwrap();
    let diff: f32 = (adapted - merged).abs().max().into_scalar();
    assert!(diff < 1e-4, "merged vs adapted: {diff}");
}

/// Autodiff gradients of the masked loss equal central differences on the largest-gradient
/// elements of a few weights.
#[test]
fn gradients_match_finite_differences() {
    let examples = examples();
    let refs: Vec<&TokenizedExample> = examples.iter().take(3).collect();
    let model = load::<Ad>().model;
    let (nll, n) = nll_sum(&model, &refs).unwrap();
    let grads = GradientsParams::from_grads(nll.div_scalar(n as f64).backward(), &model);
    let inner = model.valid();
    let loss_of = |m: &Model<Flex>| -> f64 {
        let (nll, n) = nll_sum(m, &refs).unwrap();
        nll.into_scalar() as f64 / n as f64
    };

    type Pick = fn(&mut Model<Flex>) -> &mut Param<Tensor<Flex, 2>>;
    let picks: [(&str, Pick, usize); 4] = [
        (
            "layers.0.self_attn.q_proj",
            |m| &mut m.layers[0].self_attn.q_proj.weight,
            0,
        ),
        (
            "layers.1.mlp.down_proj",
            |m| &mut m.layers[1].mlp.down_proj.weight,
            0,
        ),
        (
            "layers.0.self_attn.v_proj",
            |m| &mut m.layers[0].self_attn.v_proj.weight,
            0,
        ),
        ("embed_tokens", |m| &mut m.embed_tokens.weight, 0),
    ];
    let ad_grad = |name: &str| -> Vec<f32> {
        let id = match name {
            "layers.0.self_attn.q_proj" => model.layers[0].self_attn.q_proj.weight.id,
            "layers.1.mlp.down_proj" => model.layers[1].mlp.down_proj.weight.id,
            "layers.0.self_attn.v_proj" => model.layers[0].self_attn.v_proj.weight.id,
            _ => model.embed_tokens.weight.id,
        };
        grads
            .get::<Flex, 2>(id)
            .unwrap()
            .into_data()
            .to_vec::<f32>()
            .unwrap()
    };
    let h = 1e-2f32;
    let mut checked = 0;
    for (name, pick, _) in picks {
        let g = ad_grad(name);
        // The three largest-magnitude elements.
        let mut order: Vec<usize> = (0..g.len()).collect();
        order.sort_by(|&a, &b| g[b].abs().total_cmp(&g[a].abs()));
        assert!(
            g[order[0]].abs() > 1e-3,
            "{name}: gradient {} too small to test",
            g[order[0]]
        );
        for &e in order.iter().take(3) {
            let mut plus = inner.clone();
            let mut minus = inner.clone();
            for (m, sign) in [(&mut plus, 1.0f32), (&mut minus, -1.0)] {
                let param = pick(m);
                let w = param.val();
                let dims = w.dims();
                let mut bump = vec![0.0f32; dims[0] * dims[1]];
                bump[e] = sign * h;
                let bump = Tensor::<Flex, 2>::from_data(TensorData::new(bump, dims), &w.device());
                *param = Param::from_tensor(w + bump);
            }
            let fd = (loss_of(&plus) - loss_of(&minus)) / (2.0 * h as f64);
            let ad = g[e] as f64;
            assert!(
                (ad - fd).abs() <= 2e-3 + 0.03 * fd.abs(),
                "{name}[{e}]: autodiff {ad} vs finite difference {fd}"
            );
            checked += 1;
        }
    }
    assert_eq!(checked, 12);
}

struct StopAfter(usize, usize);
impl Progress for StopAfter {
    fn step(&mut self, record: &StepRecord) {
        self.1 = record.step;
    }
    fn stop_requested(&self) -> bool {
        self.1 >= self.0
    }
}

#[test]
fn resume_continues_the_same_loss_curve() {
    let examples = examples();
    let mut s = settings(3, 3e-3);
    s.checkpoint_every = 2;
    s.warmup_ratio = 0.2;
    let whole_dir = tempfile::tempdir().unwrap();
    let whole = train(
        load::<Ad>().model,
        &examples,
        &s,
        whole_dir.path(),
        "run",
        false,
        &mut Quiet,
    )
    .unwrap();
    assert!(whole.total_steps >= 6, "{} steps", whole.total_steps);

    let dir = tempfile::tempdir().unwrap();
    let first = train(
        load::<Ad>().model,
        &examples,
        &s,
        dir.path(),
        "run",
        false,
        &mut StopAfter(3, 0),
    )
    .unwrap();
    assert!(first.stopped);
    assert_eq!(first.history.len(), 3);

    // Another fingerprint is refused.
    let other = train(
        load::<Ad>().model,
        &examples,
        &s,
        dir.path(),
        "other",
        true,
        &mut Quiet,
    );
    assert!(matches!(other, Err(TrainError::FingerprintMismatch { .. })));

    let rest = train(
        load::<Ad>().model,
        &examples,
        &s,
        dir.path(),
        "run",
        true,
        &mut Quiet,
    )
    .unwrap();
    assert_eq!(rest.resumed_from, Some(3));
    let (a, b) = (losses(&whole.history), losses(&rest.history));
    assert_eq!(a.len(), b.len());
    for (step, (x, y)) in a.iter().zip(&b).enumerate() {
        assert!(
            (x - y).abs() <= 1e-5 * x.abs().max(1.0),
            "step {}: {x} vs {y}",
            step + 1
        );
    }
    let final_whole = full_loss(&whole.model.valid(), &examples);
    let final_rest = full_loss(&rest.model.valid(), &examples);
    assert!(
        (final_whole - final_rest).abs() < 1e-5,
        "{final_whole} vs {final_rest}"
    );
    // Only the newest checkpoints are kept.
    let kept = std::fs::read_dir(dir.path()).unwrap().count();
    assert_eq!(kept, 2);
}

#[test]
fn a_non_finite_loss_stops_the_run_naming_the_step() {
    let examples = examples();
    let mut model = load::<Ad>().model;
    let w = model.norm.weight.val();
    let nan = Tensor::<Ad, 1>::from_data(
        TensorData::new(vec![f32::NAN; w.dims()[0]], w.dims()),
        &w.device(),
    );
    model.norm.weight = Param::from_tensor(nan);
    let dir = tempfile::tempdir().unwrap();
    let err = train(
        model,
        &examples,
        &settings(1, 1e-3),
        dir.path(),
        "t",
        false,
        &mut Quiet,
    )
    .err()
    .unwrap();
    match err {
        TrainError::NonFinite { step, .. } => assert_eq!(step, 1),
        other => panic!("{other}"),
    }
    assert!(err_text_names_step(1));
}

fn err_text_names_step(step: usize) -> bool {
    let e = TrainError::NonFinite {
        value: f64::NAN,
        step,
        micro_batch: 0,
        examples: vec![4],
    };
    e.to_string().contains("step 1") && e.to_string().contains("[4]")
}
