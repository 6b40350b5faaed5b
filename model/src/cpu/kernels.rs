//! The CPU engine's arithmetic: a matrix product against weights packed once at load, and the
//! small vector pieces of attention (dot products, `y += a * x`).
//!
//! Packed layout: the HF weight `[out, in]` is cut into blocks of [`BLOCK`] output rows, and a
//! block is stored `k`-major: `packed[(block * in + k) * BLOCK + j] = W[block * BLOCK + j][k]`
//! (rows past `out` are zero). The product walks one block at a time over every input row, so a
//! block (`BLOCK * in * 4` bytes, 36 KB for `in` = 576) stays in cache while all rows use it: at
//! decode each weight is read from memory once per step, whatever the batch. Per `k` the
//! kernel loads the block's 16 weights (two 8-lane registers), broadcasts one input value per
//! row and issues two fused multiply-adds per row: [`TILE`] rows x 16 outputs of accumulators
//! live in registers (the register tile of a BLAS micro-kernel). x86-64 with AVX2 and FMA takes
//! that path (checked at run time); anything else runs the same loop order in plain Rust.

use rayon::prelude::*;

/// Output rows per packed block.
pub const BLOCK: usize = 16;
/// Input rows per register tile.
const TILE: usize = 6;
/// Blocks per parallel task (enough work per task to hide rayon's scheduling).
const BLOCKS_PER_TASK: usize = 4;

/// A weight `[out, in]` packed for [`matmul`].
#[derive(Debug, Clone)]
pub struct Packed {
    pub out: usize,
    pub inp: usize,
    data: Vec<f32>,
}

impl Packed {
    /// Pack `w` (`[out, in]`, row-major).
    pub fn new(w: &[f32], out: usize, inp: usize) -> Self {
        assert_eq!(w.len(), out * inp, "weight size");
        let blocks = out.div_ceil(BLOCK);
        let mut data = vec![0.0f32; blocks * inp * BLOCK];
        data.par_chunks_mut(inp * BLOCK)
            .enumerate()
            .for_each(|(b, dst)| {
                for j in 0..BLOCK {
                    let o = b * BLOCK + j;
                    if o >= out {
                        break;
                    }
                    let row = &w[o * inp..(o + 1) * inp];
                    for (k, &v) in row.iter().enumerate() {
                        dst[k * BLOCK + j] = v;
                    }
                }
            });
        Self { out, inp, data }
    }

    /// Row `o` of the original `[out, in]` matrix (an embedding lookup on a tied head).
    pub fn row(&self, o: usize, dst: &mut [f32]) {
        let (b, j) = (o / BLOCK, o % BLOCK);
        let block = &self.data[b * self.inp * BLOCK..(b + 1) * self.inp * BLOCK];
        for (k, d) in dst.iter_mut().enumerate().take(self.inp) {
            *d = block[k * BLOCK + j];
        }
    }

    fn block(&self, b: usize) -> &[f32] {
        &self.data[b * self.inp * BLOCK..(b + 1) * self.inp * BLOCK]
    }

    /// Bytes held.
    pub fn bytes(&self) -> usize {
        self.data.len() * 4
    }
}

/// A raw output pointer shared by the tasks of one product; each task writes its own columns.
#[derive(Clone, Copy)]
struct OutPtr(*mut f32);
// SAFETY: tasks write disjoint column ranges of the output (one range of blocks each).
unsafe impl Send for OutPtr {}
unsafe impl Sync for OutPtr {}

impl OutPtr {
    /// Element `i` (a method, so closures capture the whole `Send` wrapper, not the raw field).
    fn at(self, i: usize) -> *mut f32 {
        self.0.wrapping_add(i)
    }
}

/// `y[rows, out] = x[rows, in] · Wᵀ (+ bias)`.
pub fn matmul(x: &[f32], rows: usize, w: &Packed, bias: Option<&[f32]>, y: &mut [f32]) {
    let (inp, out) = (w.inp, w.out);
    assert_eq!(x.len(), rows * inp, "matmul input size");
    assert_eq!(y.len(), rows * out, "matmul output size");
    if let Some(b) = bias {
        assert_eq!(b.len(), out, "bias size");
    }
    let blocks = out.div_ceil(BLOCK);
    let ptr = OutPtr(y.as_mut_ptr());
    let simd = simd_available();
    (0..blocks.div_ceil(BLOCKS_PER_TASK))
        .into_par_iter()
        .for_each(|task| {
            let first = task * BLOCKS_PER_TASK;
            for b in first..(first + BLOCKS_PER_TASK).min(blocks) {
                let cols = (out - b * BLOCK).min(BLOCK);
                let mut r = 0;
                while r < rows {
                    let n = (rows - r).min(TILE);
                    let mut tile = [[0.0f32; BLOCK]; TILE];
                    let xs = &x[r * inp..(r + n) * inp];
                    if simd {
                        // SAFETY: AVX2 and FMA were detected; `xs` holds `n` rows of `inp`
                        // values and the block `inp * BLOCK` values.
                        unsafe { tile_avx2(xs, n, inp, w.block(b), &mut tile) };
                    } else {
                        tile_plain(xs, n, inp, w.block(b), &mut tile);
                    }
                    for (i, acc) in tile.iter().enumerate().take(n) {
                        let row = r + i;
                        for (j, &v) in acc.iter().enumerate().take(cols) {
                            let col = b * BLOCK + j;
                            let v = v + bias.map_or(0.0, |bias| bias[col]);
                            // SAFETY: `row < rows`, `col < out`, so the index is inside `y`;
                            // no other task writes block `b`'s columns.
                            unsafe { *ptr.at(row * out + col) = v };
                        }
                    }
                    r += n;
                }
            }
        });
}

fn tile_plain(xs: &[f32], n: usize, inp: usize, block: &[f32], tile: &mut [[f32; BLOCK]; TILE]) {
    for (i, acc) in tile.iter_mut().enumerate().take(n) {
        let x = &xs[i * inp..(i + 1) * inp];
        for (k, &xv) in x.iter().enumerate() {
            let w = &block[k * BLOCK..(k + 1) * BLOCK];
            for (a, &wv) in acc.iter_mut().zip(w) {
                *a += xv * wv;
            }
        }
    }
}

/// Whether the AVX2 + FMA kernels can run here.
pub fn simd_available() -> bool {
    #[cfg(target_arch = "x86_64")]
    {
        std::is_x86_feature_detected!("avx2") && std::is_x86_feature_detected!("fma")
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        false
    }
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
unsafe fn tile_avx2(
    xs: &[f32],
    n: usize,
    inp: usize,
    block: &[f32],
    tile: &mut [[f32; BLOCK]; TILE],
) {
    // SAFETY (all calls below): same contract as this function.
    unsafe {
        match n {
            1 => tile_n::<1>(xs, inp, block, tile),
            2 => tile_n::<2>(xs, inp, block, tile),
            3 => tile_n::<3>(xs, inp, block, tile),
            4 => tile_n::<4>(xs, inp, block, tile),
            5 => tile_n::<5>(xs, inp, block, tile),
            _ => tile_n::<6>(xs, inp, block, tile),
        }
    }
}

/// `N` input rows times one packed block, accumulated in `2 N` registers.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
#[inline]
unsafe fn tile_n<const N: usize>(
    xs: &[f32],
    inp: usize,
    block: &[f32],
    tile: &mut [[f32; BLOCK]; TILE],
) {
    use std::arch::x86_64::*;
    debug_assert!(xs.len() >= N * inp && block.len() >= inp * BLOCK);
    let mut acc = [[_mm256_setzero_ps(); 2]; N];
    let x = xs.as_ptr();
    let w = block.as_ptr();
    for k in 0..inp {
        // SAFETY: `k < inp`: the block holds `inp * BLOCK` values and `xs` `N * inp`.
        unsafe {
            let w0 = _mm256_loadu_ps(w.add(k * BLOCK));
            let w1 = _mm256_loadu_ps(w.add(k * BLOCK + 8));
            for (i, a) in acc.iter_mut().enumerate() {
                let xv = _mm256_broadcast_ss(&*x.add(i * inp + k));
                a[0] = _mm256_fmadd_ps(xv, w0, a[0]);
                a[1] = _mm256_fmadd_ps(xv, w1, a[1]);
            }
        }
    }
    for (i, a) in acc.iter().enumerate() {
        // SAFETY: each tile row holds 16 values.
        unsafe {
            _mm256_storeu_ps(tile[i].as_mut_ptr(), a[0]);
            _mm256_storeu_ps(tile[i].as_mut_ptr().add(8), a[1]);
        }
    }
}

/// `Σ a[i] b[i]`.
pub fn dot(a: &[f32], b: &[f32]) -> f32 {
    debug_assert_eq!(a.len(), b.len());
    #[cfg(target_arch = "x86_64")]
    if simd_cached() {
        // SAFETY: AVX2 and FMA were detected.
        return unsafe { dot_avx2(a, b) };
    }
    a.iter().zip(b).map(|(x, y)| x * y).sum()
}

/// `y += a * x`.
pub fn axpy(a: f32, x: &[f32], y: &mut [f32]) {
    debug_assert_eq!(x.len(), y.len());
    #[cfg(target_arch = "x86_64")]
    if simd_cached() {
        // SAFETY: AVX2 and FMA were detected.
        return unsafe { axpy_avx2(a, x, y) };
    }
    for (y, &x) in y.iter_mut().zip(x) {
        *y += a * x;
    }
}

fn simd_cached() -> bool {
    use std::sync::OnceLock;
    static SIMD: OnceLock<bool> = OnceLock::new();
    *SIMD.get_or_init(simd_available)
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
unsafe fn dot_avx2(a: &[f32], b: &[f32]) -> f32 {
    use std::arch::x86_64::*;
    let n = a.len().min(b.len());
    let (pa, pb) = (a.as_ptr(), b.as_ptr());
    let mut acc0 = _mm256_setzero_ps();
    let mut acc1 = _mm256_setzero_ps();
    let mut i = 0;
    // SAFETY: every load reads `i..i + 8` or `i + 8..i + 16` with the bound checked first.
    unsafe {
        while i + 16 <= n {
            acc0 = _mm256_fmadd_ps(_mm256_loadu_ps(pa.add(i)), _mm256_loadu_ps(pb.add(i)), acc0);
            acc1 = _mm256_fmadd_ps(
                _mm256_loadu_ps(pa.add(i + 8)),
                _mm256_loadu_ps(pb.add(i + 8)),
                acc1,
            );
            i += 16;
        }
        while i + 8 <= n {
            acc0 = _mm256_fmadd_ps(_mm256_loadu_ps(pa.add(i)), _mm256_loadu_ps(pb.add(i)), acc0);
            i += 8;
        }
    }
    let mut lanes = [0.0f32; 8];
    // SAFETY: `lanes` holds 8 values.
    unsafe { _mm256_storeu_ps(lanes.as_mut_ptr(), _mm256_add_ps(acc0, acc1)) };
    let mut sum: f32 = lanes.iter().sum();
    for j in i..n {
        sum += a[j] * b[j];
    }
    sum
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
unsafe fn axpy_avx2(a: f32, x: &[f32], y: &mut [f32]) {
    use std::arch::x86_64::*;
    let n = x.len().min(y.len());
    let av = _mm256_set1_ps(a);
    let (px, py) = (x.as_ptr(), y.as_mut_ptr());
    let mut i = 0;
    // SAFETY: every access covers `i..i + 8` with `i + 8 <= n`.
    unsafe {
        while i + 8 <= n {
            let v = _mm256_fmadd_ps(av, _mm256_loadu_ps(px.add(i)), _mm256_loadu_ps(py.add(i)));
            _mm256_storeu_ps(py.add(i), v);
            i += 8;
        }
    }
    for j in i..n {
        y[j] += a * x[j];
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn reference(x: &[f32], rows: usize, w: &[f32], out: usize, inp: usize) -> Vec<f64> {
        let mut y = vec![0.0f64; rows * out];
        for r in 0..rows {
            for o in 0..out {
                y[r * out + o] = (0..inp)
                    .map(|k| x[r * inp + k] as f64 * w[o * inp + k] as f64)
                    .sum();
            }
        }
        y
    }

    fn values(n: usize, seed: u32) -> Vec<f32> {
        (0..n)
            .map(|i| {
                (((i as u32).wrapping_mul(2654435761).wrapping_add(seed) >> 8) % 2000) as f32
                    / 1000.0
                    - 1.0
            })
            .collect()
    }

    #[test]
    fn matmul_equals_the_definition_for_ragged_shapes() {
        for &(rows, out, inp) in &[
            (1, 1, 1),
            (7, 17, 5),
            (6, 16, 64),
            (13, 50, 33),
            (32, 100, 129),
        ] {
            let x = values(rows * inp, 1);
            let w = values(out * inp, 2);
            let bias = values(out, 3);
            let packed = Packed::new(&w, out, inp);
            let mut y = vec![f32::NAN; rows * out];
            matmul(&x, rows, &packed, Some(&bias), &mut y);
            let expect = reference(&x, rows, &w, out, inp);
            for (i, (&got, want)) in y.iter().zip(expect).enumerate() {
                let want = want + bias[i % out] as f64;
                assert!(
                    (got as f64 - want).abs() < 1e-4,
                    "{rows}x{out}x{inp} [{i}]: {got} vs {want}"
                );
            }
            let mut plain = [[0.0f32; BLOCK]; TILE];
            let n = rows.min(TILE);
            tile_plain(&x[..n * inp], n, inp, packed.block(0), &mut plain);
            for (i, row) in plain.iter().enumerate().take(n) {
                for j in 0..out.min(BLOCK) {
                    let want = reference(&x, rows, &w, out, inp)[i * out + j];
                    assert!((row[j] as f64 - want).abs() < 1e-4);
                }
            }
        }
    }

    #[test]
    fn packed_rows_read_back() {
        let w = values(37 * 9, 4);
        let packed = Packed::new(&w, 37, 9);
        let mut row = vec![0.0; 9];
        for o in [0, 15, 16, 36] {
            packed.row(o, &mut row);
            assert_eq!(row, w[o * 9..(o + 1) * 9]);
        }
    }

    #[test]
    fn dot_and_axpy() {
        for n in [0, 1, 7, 8, 9, 16, 33, 64] {
            let a = values(n, 5);
            let b = values(n, 6);
            let want: f64 = a.iter().zip(&b).map(|(x, y)| *x as f64 * *y as f64).sum();
            assert!((dot(&a, &b) as f64 - want).abs() < 1e-4);
            let mut y = b.clone();
            axpy(0.5, &a, &mut y);
            for i in 0..n {
                assert!((y[i] - (b[i] + 0.5 * a[i])).abs() < 1e-6);
            }
        }
    }
}
