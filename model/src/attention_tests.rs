use super::*;
use crate::config::RopeScaling;
use crate::rope::Rope;
use crate::testutil::{linear_from, max_abs_diff, rand_linear, rand_vec, randn};
use burn::backend::Flex;

type B = Flex;

fn settings(
    h: usize,
    kvh: usize,
    window: Option<usize>,
    logn: Option<usize>,
    imp: AttentionImpl,
) -> AttentionSettings {
    AttentionSettings {
        num_heads: h,
        num_kv_heads: kvh,
        head_dim: 8,
        window,
        logn_train_len: logn,
        implementation: imp,
    }
}

fn attn(s: AttentionSettings, seed: u64) -> Attention<B> {
    let dev = Default::default();
    let (h, kvh, d, hidden) = (s.num_heads, s.num_kv_heads, s.head_dim, 16);
    Attention {
        q_proj: rand_linear(h * d, hidden, true, seed, &dev),
        k_proj: rand_linear(kvh * d, hidden, true, seed + 10, &dev),
        v_proj: rand_linear(kvh * d, hidden, true, seed + 20, &dev),
        o_proj: rand_linear(hidden, h * d, false, seed + 30, &dev),
        q_norm: None,
        k_norm: None,
        q_lora: None,
        k_lora: None,
        v_lora: None,
        o_lora: None,
        settings: s,
    }
}

fn tables(start: usize, s: usize) -> RopeTables<B> {
    let rope = Rope {
        dim: 8,
        theta: 10000.0,
        scaling: RopeScaling::None,
        max_position_embeddings: 64,
    };
    rope.tables(
        &(start..start + s).collect::<Vec<_>>(),
        start + s,
        &Default::default(),
    )
}

fn run(a: &Attention<B>, x: Tensor<B, 3>) -> Tensor<B, 3> {
    let s = x.dims()[1];
    a.forward(x, &tables(0, s), 0, None).0
}

#[test]
fn window_mask() {
    // window 2: each query sees itself and one key before it.
    let m = causal_mask(0, 4, Some(2));
    let expect = [
        [false, true, true, true],
        [false, false, true, true],
        [true, false, false, true],
        [true, true, false, false],
    ];
    assert_eq!(m, expect.concat());
    // Decoding position 5 with a cache of 5: keys 4 and 5 visible.
    assert_eq!(
        causal_mask(5, 1, Some(2)),
        vec![true, true, true, true, false, false]
    );
    assert_eq!(causal_mask(2, 1, None), vec![false, false, false]);
}

#[test]
fn logn_factors_independent_values() {
    // n = 4: factor log_4(p + 1) once p + 1 > 4. log_4 8 = 1.5, log_4 16 = 2.
    let f = logn_factors(4, 0, 16);
    assert_eq!(&f[..4], &[1.0, 1.0, 1.0, 1.0]);
    assert!((f[7] - 1.5).abs() < 1e-6);
    assert!((f[15] - 2.0).abs() < 1e-6);
    assert!((f[4] as f64 - 5f64.ln() / 4f64.ln()).abs() < 1e-6);
    // With an offset (decode step at position 63, n = 8): log_8 64 = 2.
    assert!((logn_factors(8, 63, 1)[0] - 2.0).abs() < 1e-6);
}

#[test]
fn logn_scales_queries_past_train_len() {
    // Scaling the query at position 7 by 1.5 is the same as scaling q_proj (weight and bias) by 1.5
    // for that row; rows at or below the training length are untouched.
    let dev = Default::default();
    let x = randn::<B, 3>([1, 8, 16], &dev);
    let with = attn(settings(2, 2, None, Some(4), AttentionImpl::Plain), 1);
    let without = attn(settings(2, 2, None, None, AttentionImpl::Plain), 1);
    let w = rand_vec(16 * 16, 1)
        .iter()
        .map(|v| v * 1.5)
        .collect::<Vec<_>>();
    let b = rand_vec(16, 2).iter().map(|v| v * 1.5).collect::<Vec<_>>();
    let mut scaled = attn(settings(2, 2, None, None, AttentionImpl::Plain), 1);
    scaled.q_proj = linear_from(&w, [16, 16], Some(&b), &dev);
    let y = run(&with, x.clone());
    let y0 = run(&without, x.clone());
    let ys = run(&scaled, x);
    let row = |t: &Tensor<B, 3>, i: usize| t.clone().slice([0..1, i..i + 1, 0..16]);
    for i in 0..4 {
        assert!(max_abs_diff(row(&y, i), row(&y0, i)) < 1e-6);
    }
    assert!(max_abs_diff(row(&y, 7), row(&ys, 7)) < 1e-5);
    assert!(
        max_abs_diff(row(&y, 7), row(&y0, 7)) > 1e-4,
        "scaling had no effect"
    );
}

#[test]
fn gqa_equals_repeated_heads() {
    // kv heads [k0, k1] shared by query heads [0, 1] and [2, 3] == MHA with k/v rows [k0, k0, k1, k1].
    let dev = Default::default();
    let gqa = attn(settings(4, 2, None, None, AttentionImpl::Plain), 3);
    let mut mha = attn(settings(4, 4, None, None, AttentionImpl::Plain), 3);
    let repeat = |seed: u64| {
        let (w, b) = (rand_vec(16 * 16, seed), rand_vec(16, seed + 1));
        let w: Vec<f32> = [&w[..128], &w[..128], &w[128..], &w[128..]].concat();
        let b: Vec<f32> = [&b[..8], &b[..8], &b[8..], &b[8..]].concat();
        linear_from::<B>(&w, [32, 16], Some(&b), &dev)
    };
    mha.k_proj = repeat(13);
    mha.v_proj = repeat(23);
    let x = randn::<B, 3>([2, 5, 16], &dev);
    assert!(max_abs_diff(run(&gqa, x.clone()), run(&mha, x)) < 1e-5);
}

#[test]
fn fused_matches_plain() {
    let dev = Default::default();
    for window in [None, Some(3)] {
        let plain = attn(settings(4, 2, window, None, AttentionImpl::Plain), 5);
        let fused = attn(settings(4, 2, window, None, AttentionImpl::Fused), 5);
        let x = randn::<B, 3>([2, 7, 16], &dev);
        let diff = max_abs_diff(run(&plain, x.clone()), run(&fused, x));
        assert!(diff < 1e-5, "window {window:?}: {diff}");
    }
}

#[test]
fn cached_chunks_equal_one_pass() {
    let dev = Default::default();
    for imp in [AttentionImpl::Plain, AttentionImpl::Fused] {
        let a = attn(settings(4, 2, Some(3), Some(4), imp), 7);
        let x = randn::<B, 3>([1, 7, 16], &dev);
        let full = run(&a, x.clone());
        let (y1, kv) = a.forward(x.clone().slice([0..1, 0..5, 0..16]), &tables(0, 5), 0, None);
        let (y2, kv) = a.forward(
            x.clone().slice([0..1, 5..6, 0..16]),
            &tables(5, 1),
            5,
            Some(kv),
        );
        let (y3, kv) = a.forward(x.slice([0..1, 6..7, 0..16]), &tables(6, 1), 6, Some(kv));
        assert_eq!(kv.k.dims(), [1, 2, 7, 8]);
        let chunked = Tensor::cat(vec![y1, y2, y3], 1);
        assert!(max_abs_diff(full, chunked) < 1e-5, "{imp:?}");
    }
}
