//! Batched generation: a prompt's output is the same alone and inside a batch of 16 prompts of
//! mixed lengths, with refill of finished rows; seeds, `n`, stops and finish reasons.

#![allow(clippy::unwrap_used)]

use std::path::PathBuf;

use burn::backend::Flex;
use model::cpu::CpuModel;
use model::engine::{generate, GenerationRequest};
use model::generate::{greedy, FinishReason};
use model::load::load_checkpoint;
use model::sampler::SamplingParams;
use model::Model;

type B = Flex;

fn load(name: &str) -> Model<B> {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../tests/fixtures/models")
        .join(name);
    load_checkpoint::<B>(&dir, &Default::default()).unwrap().1
}

/// 16 prompts, lengths 1..=31 (mixed), ids spread over the vocabulary.
fn prompts() -> Vec<Vec<u32>> {
    (0..16u32)
        .map(|i| {
            (0..1 + (i * 7) % 31)
                .map(|j| (i * 31 + j * 17 + 3) % 256)
                .collect()
        })
        .collect()
}

#[test]
fn greedy_batch_equals_alone() {
    for name in [
        "qwen2_gqa4_untied",
        "qwen2_sliding_window",
        "qwen2_dynamic_rope",
        "qwen3_qk_norm",
        "qwen2_mha_tied",
    ] {
        let model = load(name);
        let prompts = prompts();
        let alone: Vec<Vec<u32>> = prompts
            .iter()
            .map(|p| greedy(&model, p, 12, &[]).unwrap().tokens)
            .collect();
        let requests: Vec<_> = prompts
            .iter()
            .map(|p| GenerationRequest::new(p.clone(), 12))
            .collect();
        let cpu = CpuModel::from_model(&model).unwrap();
        for max_batch in [16, 5] {
            let out = generate(&model, &requests, max_batch, None).unwrap();
            let fast = generate(&cpu, &requests, max_batch, None).unwrap();
            for (i, (a, b)) in alone.iter().zip(&out).enumerate() {
                assert_eq!(b.len(), 1);
                assert_eq!(&b[0].tokens, a, "{name}: prompt {i}, max_batch {max_batch}");
                assert_eq!(b[0].finish_reason, FinishReason::Length);
                assert_eq!(
                    &fast[i][0].tokens, a,
                    "{name} CPU engine: prompt {i}, max_batch {max_batch}"
                );
            }
        }
        // The CPU engine alone equals itself inside the batch, too.
        for (i, p) in prompts.iter().enumerate() {
            let one = generate(&cpu, &[GenerationRequest::new(p.clone(), 12)], 1, None).unwrap();
            assert_eq!(
                one[0][0].tokens, alone[i],
                "{name} CPU engine alone: prompt {i}"
            );
        }
    }
}

#[test]
fn different_max_new_tokens_refill_rows() {
    let model = load("qwen2_gqa4_untied");
    let requests: Vec<_> = prompts()
        .into_iter()
        .enumerate()
        .map(|(i, p)| GenerationRequest::new(p, 1 + i % 6))
        .collect();
    let out = generate(&model, &requests, 4, None).unwrap();
    for (r, c) in requests.iter().zip(&out) {
        let alone = greedy(&model, &r.prompt, r.max_new_tokens, &[]).unwrap();
        assert_eq!(c[0].tokens, alone.tokens);
        assert_eq!(c[0].tokens.len(), r.max_new_tokens);
    }
}

#[test]
fn sampling_is_reproducible_per_request_and_independent_of_the_batch() {
    let model = load("qwen2_mha_tied");
    let sampling = SamplingParams {
        temperature: 0.8,
        top_p: 0.9,
        top_k: 50,
        presence_penalty: 0.5,
        frequency_penalty: 0.2,
        seed: 42,
    };
    let mut req = GenerationRequest::new(vec![1, 2, 3, 4], 10);
    req.sampling = sampling;
    req.n = 3;
    let alone = generate(&model, std::slice::from_ref(&req), 8, None).unwrap();
    let mut mixed: Vec<_> = prompts()
        .into_iter()
        .map(|p| GenerationRequest::new(p, 7))
        .collect();
    mixed.insert(5, req.clone());
    let batched = generate(&model, &mixed, 6, None).unwrap();
    assert_eq!(alone[0], batched[5]);
    assert_eq!(alone[0].len(), 3);
    // The n samples use different streams.
    assert!(alone[0][0].tokens != alone[0][1].tokens || alone[0][1].tokens != alone[0][2].tokens);
    let again = generate(&model, std::slice::from_ref(&req), 2, None).unwrap();
    assert_eq!(alone, again);
}

#[test]
fn stop_tokens_and_stop_strings() {
    let model = load("qwen2_gqa4_untied");
    let prompt = vec![5, 6, 7];
    let free = greedy(&model, &prompt, 8, &[]).unwrap().tokens;
    // Stop at the third generated token's id.
    let mut req = GenerationRequest::new(prompt.clone(), 8);
    req.stop_token_ids = vec![free[2]];
    let first = free.iter().position(|&t| t == free[2]).unwrap();
    let out = generate(&model, std::slice::from_ref(&req), 4, None).unwrap();
    assert_eq!(out[0][0].tokens, free[..=first].to_vec());
    assert_eq!(out[0][0].finish_reason, FinishReason::Stop);
    // A stop string over a toy decoder (one char per id): the text is cut before it.
    let decode = |ids: &[u32]| {
        ids.iter()
            .map(|&i| char::from(b'a' + (i % 26) as u8))
            .collect::<String>()
    };
    let text = decode(&free);
    let mut req = GenerationRequest::new(prompt, 8);
    req.stop = vec![text[3..5].to_string()];
    let out = generate(&model, std::slice::from_ref(&req), 4, Some(&decode)).unwrap();
    let c = &out[0][0];
    assert_eq!(c.finish_reason, FinishReason::Stop);
    let cut = text.find(&text[3..5]).unwrap();
    assert_eq!(c.text.as_deref(), Some(&text[..cut]));
    // Without a decoder, stop strings are an error, not silently ignored.
    assert!(generate(&model, std::slice::from_ref(&req), 4, None).is_err());
}

#[test]
fn zero_new_tokens_and_bad_input() {
    let model = load("qwen2_gqa4_untied");
    let out = generate(&model, &[GenerationRequest::new(vec![1], 0)], 4, None).unwrap();
    assert_eq!(out[0][0].tokens, Vec::<u32>::new());
    assert_eq!(out[0][0].finish_reason, FinishReason::Length);
    assert!(generate(&model, &[GenerationRequest::new(vec![999], 3)], 4, None).is_err());
    assert!(generate(&model, &[GenerationRequest::new(vec![], 3)], 4, None).is_err());
    assert!(generate(&model, &[GenerationRequest::new(vec![1], 3)], 0, None).is_err());
}

/// Prompts sharing a long prefix (several prefill chunks) with different tails: in one job the
/// shared chunks are computed once; each output equals the prompt's output alone (no sharing)
/// and the full-prompt greedy reference.
#[test]
fn shared_prompt_prefixes_give_the_same_output() {
    let chunk = model::engine::PREFILL_CHUNK;
    for name in ["qwen2_gqa4_untied", "qwen3_qk_norm", "llama_gqa2_sharded"] {
        let model = load(name);
        let prefix: Vec<u32> = (0..2 * chunk as u32 + 9)
            .map(|j| (j * 13 + 5) % 256)
            .collect();
        let prompts: Vec<Vec<u32>> = (0..6u32)
            .map(|i| {
                let mut p = prefix.clone();
                // Tails of 0..=5 extra tokens; i = 0 ends inside the third chunk.
                p.extend((0..i).map(|j| (i * 29 + j * 7 + 1) % 256));
                // One prompt ends exactly on a chunk boundary, one is the prefix cut shorter.
                match i {
                    4 => p.truncate(2 * chunk),
                    5 => p.truncate(chunk + 3),
                    _ => {}
                }
                p
            })
            .collect();
        let requests: Vec<_> = prompts
            .iter()
            .map(|p| GenerationRequest::new(p.clone(), 8))
            .collect();
        let together = generate(&model, &requests, 4, None).unwrap();
        let cpu = CpuModel::from_model(&model).unwrap();
        let fast = generate(&cpu, &requests, 4, None).unwrap();
        for (i, (p, out)) in prompts.iter().zip(&together).enumerate() {
            let alone = generate(&model, &requests[i..=i], 1, None).unwrap();
            assert_eq!(out[0].tokens, alone[0][0].tokens, "{name}: prompt {i}");
            let reference = greedy(&model, p, 8, &[]).unwrap().tokens;
            assert_eq!(out[0].tokens, reference, "{name}: prompt {i} vs greedy");
            assert_eq!(
                fast[i][0].tokens, reference,
                "{name} CPU engine: prompt {i}"
            );
        }
    }
}

/// What `Runner::splits_anywhere` promises for the CPU engine: a prompt prefilled in pieces cut
/// anywhere, or beside other sequences in one forward pass, gives bit-identical logits to the
/// prompt in one piece, alone. (The engine then shares prompt prefixes of any length.)
#[test]
fn cpu_engine_rows_do_not_depend_on_the_cut_or_the_neighbours() {
    // qwen2_mha_tied is bf16 on disk: its products take the AMX kernel where the CPU has one.
    for name in [
        "qwen2_gqa4_untied",
        "qwen3_qk_norm",
        "llama_gqa2_sharded",
        "qwen2_mha_tied",
    ] {
        let cpu = CpuModel::from_model(&load(name)).unwrap();
        let prompt: Vec<u32> = (0..150u32).map(|j| (j * 31 + 7) % 256).collect();
        let whole = {
            let mut kv = cpu.new_seq();
            cpu.forward(&mut [(&mut kv, &prompt[..])]).unwrap()
        };
        for cut in [1, 13, 64, 100, 149] {
            let mut kv = cpu.new_seq();
            cpu.append(&mut kv, &prompt[..cut]).unwrap();
            let pieces = cpu.forward(&mut [(&mut kv, &prompt[cut..])]).unwrap();
            assert!(
                pieces
                    .iter()
                    .zip(&whole)
                    .all(|(a, b)| a.to_bits() == b.to_bits()),
                "{name}: cut at {cut}"
            );
        }
        // Beside another sequence of another length, in the same forward pass.
        let other: Vec<u32> = (0..37u32).map(|j| (j * 11 + 3) % 256).collect();
        let (mut a, mut b) = (cpu.new_seq(), cpu.new_seq());
        let both = cpu
            .forward(&mut [(&mut b, &other[..]), (&mut a, &prompt[..])])
            .unwrap();
        let vocab = whole.len();
        assert!(
            both[vocab..]
                .iter()
                .zip(&whole)
                .all(|(x, y)| x.to_bits() == y.to_bits()),
            "{name}: beside another sequence"
        );
    }
}
