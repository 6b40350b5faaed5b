//! Dequantisation throughput, one thread and all threads, 100M elements per type. Ignored by
//! default (it allocates ~0.5 GB and only means something in a release build):
//!
//!     cargo test -p model --release --test gguf_dequant_speed -- --ignored --nocapture

use std::time::Instant;

use model::gguf::{dequantize_into, GgmlType};

const N: usize = 100_000_000; // a multiple of 256

/// Pseudo-random block bytes with a small finite f16 scale in every half-float slot the type
/// has, so the timing is not distorted by NaN/inf arithmetic.
fn blocks(ty: GgmlType, n_elements: usize) -> Vec<u8> {
    let n_blocks = n_elements / ty.block_size();
    let ts = ty.type_size();
    let mut state = 0x2545_F491_4F6C_DD1Du64;
    let mut data: Vec<u8> = (0..n_blocks * ts)
        .map(|_| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state as u8
        })
        .collect();
    let scale = half::f16::from_f32(0.01).to_le_bytes();
    let slots: &[usize] = match ty {
        GgmlType::Q8_0 | GgmlType::Q4_0 => &[0],
        GgmlType::Q4_1 | GgmlType::Q4_K | GgmlType::Q5_K => &[0, 2],
        GgmlType::Q6_K => &[208],
        _ => &[],
    };
    if ty == GgmlType::F16 || ty == GgmlType::BF16 {
        for x in data.chunks_exact_mut(2) {
            x[1] &= 0x3F; // keep the exponent small and finite
        }
    }
    for b in data.chunks_exact_mut(ts) {
        for &s in slots {
            b[s..s + 2].copy_from_slice(&scale);
        }
    }
    data
}

#[test]
#[ignore = "benchmark: run in release with --ignored --nocapture"]
fn dequantization_throughput() {
    let mut out = vec![0f32; N];
    let one = rayon::ThreadPoolBuilder::new()
        .num_threads(1)
        .build()
        .expect("thread pool");
    eprintln!(
        "{:<6} {:>12} {:>12}   (100M elements, {} threads available)",
        "type",
        "1 thread",
        "all",
        rayon::current_num_threads()
    );
    for ty in [
        GgmlType::F32,
        GgmlType::F16,
        GgmlType::BF16,
        GgmlType::Q8_0,
        GgmlType::Q4_0,
        GgmlType::Q4_1,
        GgmlType::Q4_K,
        GgmlType::Q5_K,
        GgmlType::Q6_K,
    ] {
        let data = blocks(ty, N);
        // touch the output once so page faults are not timed
        dequantize_into(ty, &data, &mut out).expect("dequantize");
        let t = Instant::now();
        one.install(|| dequantize_into(ty, &data, &mut out))
            .expect("dequantize");
        let single = t.elapsed().as_secs_f64();
        let t = Instant::now();
        dequantize_into(ty, &data, &mut out).expect("dequantize");
        let all = t.elapsed().as_secs_f64();
        eprintln!("{:<6} {:>10.3} s {:>10.3} s", ty.name(), single, all);
        assert!(
            single < 10.0,
            "{ty}: 100M elements took {single:.1} s on one thread"
        );
    }
}
