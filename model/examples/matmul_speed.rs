//! GFLOP/s of the CPU engine's matrix product (`model::cpu::kernels::matmul`) on decode and
//! prefill shapes of SmolLM2-135M and Qwen2.5-0.5B, random weights.
//!
//! ```text
//! RAYON_NUM_THREADS=2 cargo run -p model --example matmul_speed
//! ```

use std::time::Instant;

use model::cpu::kernels::{matmul, Packed};

fn main() {
    // (name, rows, out, in)
    let shapes = [
        ("smollm qkv", 32, 960, 576),
        ("smollm gate+up", 32, 3072, 576),
        ("smollm down", 32, 576, 1536),
        ("smollm head", 32, 49152, 576),
        ("smollm gate+up prefill", 64, 3072, 576),
        ("qwen0.5b gate+up", 32, 9728, 896),
        ("qwen0.5b down", 32, 896, 4864),
        ("smollm gate+up batch 1", 1, 3072, 576),
    ];
    println!("threads {}", rayon::current_num_threads());
    for (name, rows, out, inp) in shapes {
        let w: Vec<f32> = (0..out * inp)
            .map(|i| ((i * 7919) % 1000) as f32 / 1000.0 - 0.5)
            .collect();
        let x: Vec<f32> = (0..rows * inp)
            .map(|i| ((i * 104729) % 1000) as f32 / 1000.0 - 0.5)
            .collect();
        let packed = Packed::new(&w, out, inp);
        let mut y = vec![0.0f32; rows * out];
        matmul(&x, rows, &packed, None, &mut y);
        let flop = 2.0 * (rows * out * inp) as f64;
        let reps = ((2e10 / flop) as usize).max(3);
        let t = Instant::now();
        for _ in 0..reps {
            matmul(&x, rows, &packed, None, &mut y);
        }
        let s = t.elapsed().as_secs_f64();
        println!(
            "{name:26} {rows:3}x{out:6}x{inp:5}: {:6.1} GFLOP/s",
            flop * reps as f64 / s / 1e9
        );
    }
    // A forward pass reads every layer's weights once per step: cycle through enough distinct
    // matrices that they do not stay in the last-level cache.
    // Each with f32 weights and with bf16 values (a bf16 checkpoint: the AMX kernel where the
    // CPU has one).
    for (name, rows, out, inp, count, bf16) in [
        ("qwen0.5b gate+up x24", 32, 9728, 896, 24, false),
        ("qwen0.5b gate+up x24 bf16", 32, 9728, 896, 24, true),
        ("qwen0.5b down x24 bf16", 32, 896, 4864, 24, true),
        ("qwen0.5b gate+up x24 bf16", 1, 9728, 896, 24, true),
        ("smollm gate+up x30", 32, 3072, 576, 30, false),
        ("smollm gate+up x30 bf16", 32, 3072, 576, 30, true),
    ] {
        let x: Vec<f32> = (0..rows * inp)
            .map(|i| ((i * 104729) % 1000) as f32 / 1000.0 - 0.5)
            .collect();
        let mut y = vec![0.0f32; rows * out];
        let packed: Vec<Packed> = (0..count)
            .map(|c| {
                let w: Vec<f32> = (0..out * inp)
                    .map(|i| ((i * 7919 + c) % 1000) as f32 / 1000.0 - 0.5)
                    .map(|v| {
                        if bf16 {
                            f32::from_bits(v.to_bits() & 0xffff_0000)
                        } else {
                            v
                        }
                    })
                    .collect();
                Packed::new(&w, out, inp)
            })
            .collect();
        // Best of several sweeps (the machine's speed drifts).
        let mut best = f64::INFINITY;
        for _ in 0..5 {
            let t = Instant::now();
            for w in &packed {
                matmul(&x, rows, w, None, &mut y);
            }
            best = best.min(t.elapsed().as_secs_f64());
        }
        let flop = 2.0 * (rows * out * inp * count) as f64;
        let bytes: usize = packed.iter().map(Packed::bytes).sum();
        println!(
            "{name:26} {rows:3}x{out:6}x{inp:5}: {:6.1} GFLOP/s streamed, {:.1} GB/s of weights (best of 5)",
            flop / best / 1e9,
            bytes as f64 / best / 1e9
        );
    }
}
