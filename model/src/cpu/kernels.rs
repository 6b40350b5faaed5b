//! The CPU engine's arithmetic: a matrix product against weights packed once at load, and one
//! query head's attention over its cached keys and values.
//!
//! Packed layout: the HF weight `[out, in]` is cut into blocks of [`BLOCK`] output rows, and a
//! block is stored `k`-major: `packed[(block * in + k) * BLOCK + j] = W[block * BLOCK + j][k]`
//! (rows past `out` are zero). The product walks one block at a time over every input row, [`KC`]
//! input columns at a time, so the block's slice (16 KB) stays in L1 while all rows use it: at
//! decode each weight is read from memory once per step, whatever the batch. Per `k` the
//! kernel loads the block's 16 weights (two 8-lane registers), broadcasts one input value per
//! row and issues two fused multiply-adds per row: [`TILE`] rows x 16 outputs of accumulators
//! live in registers (the register tile of a BLAS micro-kernel). x86-64 with AVX2 and FMA takes
//! that path (checked at run time); anything else runs the same loop order in plain Rust.

use rayon::prelude::*;

use super::amx::{self, PackedBf16};

/// Output rows per packed block.
pub const BLOCK: usize = 16;
/// Input rows per register tile.
const TILE: usize = 6;
/// Input rows per register tile of the AVX-512 kernel (two blocks wide: 24 of the 32 registers).
const TILE512: usize = 12;
/// Input columns per pass over a block: the block's slice (`KC * BLOCK * 4` = 16 KB) stays in
/// L1 while every row tile uses it, however long the rows are.
const KC: usize = 256;
/// Blocks per parallel task (enough work per task to hide rayon's scheduling).
const BLOCKS_PER_TASK: usize = 4;

/// A weight `[out, in]` packed for [`matmul`].
///
/// Weights that are exactly bf16 (a bf16 checkpoint) are kept as bf16 for the AMX kernel
/// ([`super::amx`]) where the CPU has one: the same products in half the memory.
#[derive(Debug, Clone)]
pub struct Packed {
    pub out: usize,
    pub inp: usize,
    data: Vec<f32>,
    bf16: Option<PackedBf16>,
}

impl Packed {
    /// Pack `w` (`[out, in]`, row-major).
    pub fn new(w: &[f32], out: usize, inp: usize) -> Self {
        if amx::available() && amx::exact_in_bf16(w) {
            return Self {
                out,
                inp,
                data: Vec::new(),
                bf16: Some(PackedBf16::new(w, out, inp)),
            };
        }
        Self::new_f32(w, out, inp)
    }

    /// Pack `w` for the f32 kernels, whatever its values.
    pub fn new_f32(w: &[f32], out: usize, inp: usize) -> Self {
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
        Self {
            out,
            inp,
            data,
            bf16: None,
        }
    }

    /// Row `o` of the original `[out, in]` matrix (an embedding lookup on a tied head).
    pub fn row(&self, o: usize, dst: &mut [f32]) {
        if let Some(p) = &self.bf16 {
            return p.row(o, dst);
        }
        let (b, j) = (o / BLOCK, o % BLOCK);
        let block = &self.data[b * self.inp * BLOCK..(b + 1) * self.inp * BLOCK];
        for (k, d) in dst.iter_mut().enumerate().take(self.inp) {
            *d = block[k * BLOCK + j];
        }
    }

    fn block(&self, b: usize) -> &[f32] {
        &self.data[b * self.inp * BLOCK..(b + 1) * self.inp * BLOCK]
    }

    /// Where block `b`'s data continues after column `k` (clamped to the last chunk of the
    /// data): what [`tile_avx512`] asks the CPU to prefetch while it multiplies a chunk.
    fn ahead(&self, b: usize, k: usize) -> *const f32 {
        let at = ((b * self.inp + k) * BLOCK).min(self.data.len().saturating_sub(KC * BLOCK));
        self.data.as_ptr().wrapping_add(at)
    }

    /// Bytes held.
    pub fn bytes(&self) -> usize {
        self.data.len() * 4 + self.bf16.as_ref().map_or(0, PackedBf16::bytes)
    }
}

/// A raw output pointer `[rows, out]` shared by the tasks of one product (here and in
/// [`super::amx`]); each task writes its own columns.
#[derive(Clone, Copy)]
pub(super) struct OutPtr(pub(super) *mut f32);
// SAFETY: tasks write disjoint column ranges of the output (one range of blocks each).
unsafe impl Send for OutPtr {}
unsafe impl Sync for OutPtr {}

impl OutPtr {
    /// Write `acc` (+ `bias`, the same columns' part) to row `row`, columns `col..col +
    /// acc.len()`, of the `[rows, out]` output. (A method, so closures capture the whole `Send`
    /// wrapper, not the raw field.)
    ///
    /// # Safety
    /// The row and columns are inside the output, and no other task writes them meanwhile.
    pub(super) unsafe fn store(
        self,
        row: usize,
        out: usize,
        col: usize,
        acc: &[f32],
        bias: Option<&[f32]>,
    ) {
        // SAFETY (caller): inside the output, written by this task only.
        let dst = unsafe {
            std::slice::from_raw_parts_mut(self.0.wrapping_add(row * out + col), acc.len())
        };
        match bias {
            Some(bias) => {
                for ((d, &a), &c) in dst.iter_mut().zip(acc).zip(bias) {
                    *d = a + c;
                }
            }
            None => dst.copy_from_slice(acc),
        }
    }
}

/// The register tiles [`matmul`] can run with.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Kernel {
    Plain,
    Avx2,
    Avx512,
}

/// The fastest kernel this machine runs.
fn best_kernel() -> Kernel {
    use std::sync::OnceLock;
    static BEST: OnceLock<Kernel> = OnceLock::new();
    *BEST.get_or_init(|| {
        if simd512_available() && simd_available() {
            Kernel::Avx512
        } else if simd_available() {
            Kernel::Avx2
        } else {
            Kernel::Plain
        }
    })
}

/// `y[rows, out] = x[rows, in] · Wᵀ (+ bias)`.
pub fn matmul(x: &[f32], rows: usize, w: &Packed, bias: Option<&[f32]>, y: &mut [f32]) {
    match &w.bf16 {
        Some(p) => amx::matmul(x, rows, p, bias, y),
        None => matmul_with(best_kernel(), x, rows, w, bias, y),
    }
}

/// [`matmul`] with a given kernel (which must be available: see [`best_kernel`]).
fn matmul_with(
    kernel: Kernel,
    x: &[f32],
    rows: usize,
    w: &Packed,
    bias: Option<&[f32]>,
    y: &mut [f32],
) {
    let (inp, out) = (w.inp, w.out);
    assert!(w.bf16.is_none(), "f32 kernel on bf16 weights");
    assert_eq!(x.len(), rows * inp, "matmul input size");
    assert_eq!(y.len(), rows * out, "matmul output size");
    if let Some(b) = bias {
        assert_eq!(b.len(), out, "bias size");
    }
    let blocks = out.div_ceil(BLOCK);
    let ptr = OutPtr(y.as_mut_ptr());
    let simd = kernel != Kernel::Plain;
    let wide = kernel == Kernel::Avx512;
    (0..blocks.div_ceil(BLOCKS_PER_TASK))
        .into_par_iter()
        .for_each(|task| {
            let first = task * BLOCKS_PER_TASK;
            let last = (first + BLOCKS_PER_TASK).min(blocks);
            let mut acc = vec![[0.0f32; BLOCK]; rows];
            let mut acc2 = vec![[0.0f32; BLOCK]; rows];
            let mut b = first;
            while b < last {
                // AVX-512 takes two blocks (32 outputs) per register tile.
                let pair = wide && b + 1 < last;
                acc.iter_mut().for_each(|a| *a = [0.0; BLOCK]);
                acc2.iter_mut().for_each(|a| *a = [0.0; BLOCK]);
                let (block, block2) = (w.block(b), w.block((b + 1).min(blocks - 1)));
                for kc in (0..inp).step_by(KC) {
                    let len = (inp - kc).min(KC);
                    let chunk = &block[kc * BLOCK..(kc + len) * BLOCK];
                    if pair {
                        let chunk2 = &block2[kc * BLOCK..(kc + len) * BLOCK];
                        let tiles = acc.chunks_mut(TILE512).zip(acc2.chunks_mut(TILE512));
                        // The second row tile prefetches the next chunks: the first one reads
                        // this chunk from memory, the others from L1, so their spare memory
                        // bandwidth fetches what comes next. (A single tile is bound by memory
                        // already: no prefetch there.)
                        let fetcher = if rows > TILE512 { 1 } else { usize::MAX };
                        let ahead = [w.ahead(b, kc + KC), w.ahead(b + 1, kc + KC)];
                        for (t, (tile, tile2)) in tiles.enumerate() {
                            let xs = &x[t * TILE512 * inp + kc..];
                            let pf = (t == fetcher).then_some(ahead);
                            // SAFETY: AVX-512F was detected.
                            unsafe { tile_avx512(xs, inp, len, [chunk, chunk2], tile, tile2, pf) };
                        }
                        continue;
                    }
                    for (t, tile) in acc.chunks_mut(TILE).enumerate() {
                        let xs = &x[t * TILE * inp + kc..];
                        if simd {
                            // SAFETY: AVX2 and FMA were detected.
                            unsafe { tile_avx2(xs, inp, len, chunk, tile) };
                        } else {
                            tile_plain(xs, inp, len, chunk, tile);
                        }
                    }
                }
                let done: &[&Vec<[f32; BLOCK]>] = if pair { &[&acc, &acc2] } else { &[&acc] };
                for (i, acc) in done.iter().enumerate() {
                    let b = b + i;
                    let cols = (out - b * BLOCK).min(BLOCK);
                    let cols_bias = bias.map(|bias| &bias[b * BLOCK..b * BLOCK + cols]);
                    for (row, acc) in acc.iter().enumerate() {
                        // SAFETY: `row < rows` and columns `b * BLOCK..b * BLOCK + cols` (`<= out`)
                        // are inside `y`; no other task writes block `b`'s columns.
                        unsafe { ptr.store(row, out, b * BLOCK, &acc[..cols], cols_bias) };
                    }
                }
                b += done.len();
            }
        });
}

/// `tile[i] += Σ_k x[i * stride + k] · chunk[k]` for the tile's rows and `k < len`.
fn tile_plain(xs: &[f32], stride: usize, len: usize, chunk: &[f32], tile: &mut [[f32; BLOCK]]) {
    for (i, acc) in tile.iter_mut().enumerate() {
        let x = &xs[i * stride..i * stride + len];
        for (k, &xv) in x.iter().enumerate() {
            let w = &chunk[k * BLOCK..(k + 1) * BLOCK];
            for (a, &wv) in acc.iter_mut().zip(w) {
                *a += xv * wv;
            }
        }
    }
}

/// Whether the AVX-512 kernel can run here.
pub fn simd512_available() -> bool {
    #[cfg(target_arch = "x86_64")]
    {
        std::is_x86_feature_detected!("avx512f")
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        false
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

/// The register tile for the listed input rows: per row two accumulators of 8 lanes (16
/// outputs), each its own local so all stay in registers (six rows use 12 of the 16 AVX
/// registers, the block's two weight vectors and the broadcast the other three).
#[cfg(target_arch = "x86_64")]
macro_rules! tile_rows {
    ($x:ident, $stride:ident, $len:ident, $w:ident, $t:ident; $(($r:literal, $lo:ident, $hi:ident, $row:ident)),+) => {{
        use std::arch::x86_64::*;
        $(
            let mut $lo = _mm256_loadu_ps($t.add($r * BLOCK));
            let mut $hi = _mm256_loadu_ps($t.add($r * BLOCK + 8));
            let $row = $x.add($r * $stride);
        )+
        let mut wp = $w;
        for k in 0..$len {
            let w0 = _mm256_loadu_ps(wp);
            let w1 = _mm256_loadu_ps(wp.add(8));
            wp = wp.add(BLOCK);
            $(
                let b = _mm256_broadcast_ss(&*$row.add(k));
                $lo = _mm256_fmadd_ps(b, w0, $lo);
                $hi = _mm256_fmadd_ps(b, w1, $hi);
            )+
        }
        $(
            _mm256_storeu_ps($t.add($r * BLOCK), $lo);
            _mm256_storeu_ps($t.add($r * BLOCK + 8), $hi);
        )+
    }};
}

/// [`tile_plain`] as the AVX2 register tile.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
unsafe fn tile_avx2(
    xs: &[f32],
    stride: usize,
    len: usize,
    chunk: &[f32],
    tile: &mut [[f32; BLOCK]],
) {
    let n = tile.len();
    assert!(n <= TILE && n > 0 && xs.len() >= (n - 1) * stride + len && chunk.len() >= len * BLOCK);
    let (x, w, t) = (xs.as_ptr(), chunk.as_ptr(), tile.as_mut_ptr() as *mut f32);
    // SAFETY (all arms): row `i < n` of `x` holds `len` values from `i * stride`, `w` holds
    // `len * BLOCK` values and `t` `n * BLOCK` (checked above).
    unsafe {
        match n {
            1 => tile_rows!(x, stride, len, w, t; (0, a0, b0, x0)),
            2 => tile_rows!(x, stride, len, w, t; (0, a0, b0, x0), (1, a1, b1, x1)),
            3 => {
                tile_rows!(x, stride, len, w, t; (0, a0, b0, x0), (1, a1, b1, x1), (2, a2, b2, x2))
            }
            4 => {
                tile_rows!(x, stride, len, w, t; (0, a0, b0, x0), (1, a1, b1, x1), (2, a2, b2, x2), (3, a3, b3, x3))
            }
            5 => {
                tile_rows!(x, stride, len, w, t; (0, a0, b0, x0), (1, a1, b1, x1), (2, a2, b2, x2), (3, a3, b3, x3), (4, a4, b4, x4))
            }
            _ => {
                tile_rows!(x, stride, len, w, t; (0, a0, b0, x0), (1, a1, b1, x1), (2, a2, b2, x2), (3, a3, b3, x3), (4, a4, b4, x4), (5, a5, b5, x5))
            }
        }
    }
}

/// The AVX-512 register tile: the listed input rows times two blocks (16 outputs each, one
/// 16-lane register per row and block), accumulated onto `t` and `t2`.
#[cfg(target_arch = "x86_64")]
macro_rules! tile_rows_512 {
    ($x:ident, $stride:ident, $len:ident, $w:ident, $w2:ident, $t:ident, $t2:ident, $p1:ident, $p2:ident, $step:ident; $(($r:literal, $lo:ident, $hi:ident, $row:ident)),+) => {{
        use std::arch::x86_64::*;
        $(
            let mut $lo = _mm512_loadu_ps($t.add($r * BLOCK));
            let mut $hi = _mm512_loadu_ps($t2.add($r * BLOCK));
            let $row = $x.add($r * $stride);
        )+
        for k in 0..$len {
            _mm_prefetch::<_MM_HINT_T1>($p1.wrapping_add(k * $step) as *const i8);
            _mm_prefetch::<_MM_HINT_T1>($p2.wrapping_add(k * $step) as *const i8);
            let w0 = _mm512_loadu_ps($w.add(k * BLOCK));
            let w1 = _mm512_loadu_ps($w2.add(k * BLOCK));
            $(
                let b = _mm512_set1_ps(*$row.add(k));
                $lo = _mm512_fmadd_ps(b, w0, $lo);
                $hi = _mm512_fmadd_ps(b, w1, $hi);
            )+
        }
        $(
            _mm512_storeu_ps($t.add($r * BLOCK), $lo);
            _mm512_storeu_ps($t2.add($r * BLOCK), $hi);
        )+
    }};
}

/// [`tile_plain`] for two blocks at once (`chunks`, accumulated onto `tile` and `tile2`), as
/// the AVX-512 register tile.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f")]
unsafe fn tile_avx512(
    xs: &[f32],
    stride: usize,
    len: usize,
    chunks: [&[f32]; 2],
    tile: &mut [[f32; BLOCK]],
    tile2: &mut [[f32; BLOCK]],
    prefetch: Option<[*const f32; 2]>,
) {
    let n = tile.len();
    assert!(n <= TILE512 && n > 0 && tile2.len() == n);
    // Prefetch addresses are hints, never dereferenced (any address is sound). Without a
    // prefetch, the kernel re-touches the chunk's own first line (in L1: nearly free).
    let (p1, p2, step) = match prefetch {
        Some([p1, p2]) => (p1, p2, BLOCK),
        None => (chunks[0].as_ptr(), chunks[1].as_ptr(), 0),
    };
    assert!(xs.len() >= (n - 1) * stride + len && chunks.iter().all(|c| c.len() >= len * BLOCK));
    let (x, w, w2) = (xs.as_ptr(), chunks[0].as_ptr(), chunks[1].as_ptr());
    let (t, t2) = (
        tile.as_mut_ptr() as *mut f32,
        tile2.as_mut_ptr() as *mut f32,
    );
    // SAFETY (all arms): row `i < n` of `x` holds `len` values from `i * stride`, `w` and `w2`
    // hold `len * BLOCK` values, `t` and `t2` `n * BLOCK` (checked above).
    unsafe {
        match n {
            1 => tile_rows_512!(x, stride, len, w, w2, t, t2, p1, p2, step; (0, a0, b0, x0)),
            2 => {
                tile_rows_512!(x, stride, len, w, w2, t, t2, p1, p2, step; (0, a0, b0, x0), (1, a1, b1, x1))
            }
            3 => {
                tile_rows_512!(x, stride, len, w, w2, t, t2, p1, p2, step; (0, a0, b0, x0), (1, a1, b1, x1), (2, a2, b2, x2))
            }
            4 => {
                tile_rows_512!(x, stride, len, w, w2, t, t2, p1, p2, step; (0, a0, b0, x0), (1, a1, b1, x1), (2, a2, b2, x2), (3, a3, b3, x3))
            }
            5 => {
                tile_rows_512!(x, stride, len, w, w2, t, t2, p1, p2, step; (0, a0, b0, x0), (1, a1, b1, x1), (2, a2, b2, x2), (3, a3, b3, x3), (4, a4, b4, x4))
            }
            6 => {
                tile_rows_512!(x, stride, len, w, w2, t, t2, p1, p2, step; (0, a0, b0, x0), (1, a1, b1, x1), (2, a2, b2, x2), (3, a3, b3, x3), (4, a4, b4, x4), (5, a5, b5, x5))
            }
            7 => {
                tile_rows_512!(x, stride, len, w, w2, t, t2, p1, p2, step; (0, a0, b0, x0), (1, a1, b1, x1), (2, a2, b2, x2), (3, a3, b3, x3), (4, a4, b4, x4), (5, a5, b5, x5), (6, a6, b6, x6))
            }
            8 => {
                tile_rows_512!(x, stride, len, w, w2, t, t2, p1, p2, step; (0, a0, b0, x0), (1, a1, b1, x1), (2, a2, b2, x2), (3, a3, b3, x3), (4, a4, b4, x4), (5, a5, b5, x5), (6, a6, b6, x6), (7, a7, b7, x7))
            }
            9 => {
                tile_rows_512!(x, stride, len, w, w2, t, t2, p1, p2, step; (0, a0, b0, x0), (1, a1, b1, x1), (2, a2, b2, x2), (3, a3, b3, x3), (4, a4, b4, x4), (5, a5, b5, x5), (6, a6, b6, x6), (7, a7, b7, x7), (8, a8, b8, x8))
            }
            10 => {
                tile_rows_512!(x, stride, len, w, w2, t, t2, p1, p2, step; (0, a0, b0, x0), (1, a1, b1, x1), (2, a2, b2, x2), (3, a3, b3, x3), (4, a4, b4, x4), (5, a5, b5, x5), (6, a6, b6, x6), (7, a7, b7, x7), (8, a8, b8, x8), (9, a9, b9, x9))
            }
            11 => {
                tile_rows_512!(x, stride, len, w, w2, t, t2, p1, p2, step; (0, a0, b0, x0), (1, a1, b1, x1), (2, a2, b2, x2), (3, a3, b3, x3), (4, a4, b4, x4), (5, a5, b5, x5), (6, a6, b6, x6), (7, a7, b7, x7), (8, a8, b8, x8), (9, a9, b9, x9), (10, a10, b10, x10))
            }
            _ => {
                tile_rows_512!(x, stride, len, w, w2, t, t2, p1, p2, step; (0, a0, b0, x0), (1, a1, b1, x1), (2, a2, b2, x2), (3, a3, b3, x3), (4, a4, b4, x4), (5, a5, b5, x5), (6, a6, b6, x6), (7, a7, b7, x7), (8, a8, b8, x8), (9, a9, b9, x9), (10, a10, b10, x10), (11, a11, b11, x11))
            }
        }
    }
}

fn dot_plain(a: &[f32], b: &[f32]) -> f32 {
    a.iter().zip(b).map(|(x, y)| x * y).sum()
}

fn axpy_plain(a: f32, x: &[f32], y: &mut [f32]) {
    for (y, &x) in y.iter_mut().zip(x) {
        *y += a * x;
    }
}

/// The cached keys and values one query head reads: rows `keys` of caches laid out
/// `[t][stride]`, the head's part at `offset..offset + head_dim` of each row.
pub struct HeadCache<'a> {
    pub k: &'a [f32],
    pub v: &'a [f32],
    pub stride: usize,
    pub offset: usize,
    pub keys: std::ops::Range<usize>,
}

impl HeadCache<'_> {
    fn row(&self, t: usize, d: usize) -> std::ops::Range<usize> {
        t * self.stride + self.offset..t * self.stride + self.offset + d
    }
}

/// One query head's attention: `out = Σ_t softmax_t(scale · q·k_t) v_t` over the cache's key
/// rows (exact softmax, max subtracted). `scores` is scratch space.
pub fn attend(
    q: &[f32],
    cache: &HeadCache<'_>,
    scale: f32,
    scores: &mut Vec<f32>,
    out: &mut [f32],
) {
    let d = q.len();
    let end = cache.keys.end * cache.stride;
    assert!(end <= cache.k.len().min(cache.v.len()) && cache.offset + d <= cache.stride);
    assert_eq!(out.len(), d);
    scores.clear();
    #[cfg(target_arch = "x86_64")]
    if best_kernel() != Kernel::Plain {
        // SAFETY: AVX2 and FMA were detected.
        return unsafe { attend_avx2(q, cache, scale, scores, out) };
    }
    attend_plain(q, cache, scale, scores, out);
}

fn attend_plain(
    q: &[f32],
    cache: &HeadCache<'_>,
    scale: f32,
    scores: &mut Vec<f32>,
    out: &mut [f32],
) {
    let d = q.len();
    scores.clear();
    scores.extend(
        cache
            .keys
            .clone()
            .map(|t| dot_plain(q, &cache.k[cache.row(t, d)]) * scale),
    );
    let sum = softmax_weights(scores);
    out.fill(0.0);
    for (t, &p) in cache.keys.clone().zip(scores.iter()) {
        axpy_plain(p / sum, &cache.v[cache.row(t, d)], out);
    }
}

/// [`attend`] with AVX2: scores four keys at a time (four independent accumulator chains, one
/// combined horizontal sum), and the weighted sum of values with the output head held in
/// registers, 64 dimensions at a time. Head sizes that are not a multiple of 64 take the plain
/// loop.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
unsafe fn attend_avx2(
    q: &[f32],
    cache: &HeadCache<'_>,
    scale: f32,
    scores: &mut Vec<f32>,
    out: &mut [f32],
) {
    use std::arch::x86_64::*;
    let d = q.len();
    if !d.is_multiple_of(64) || d == 0 {
        return attend_plain(q, cache, scale, scores, out);
    }
    let (k, v) = (cache.k.as_ptr(), cache.v.as_ptr());
    let at = |t: usize| t * cache.stride + cache.offset;
    let keys = cache.keys.clone();
    let mut t = keys.start;
    // SAFETY (all pointer reads below): `attend` checked that every key row `t < keys.end`
    // holds `offset + d <= stride` values inside `k` and `v`; `q` and `out` hold `d`.
    unsafe {
        while t + 4 <= keys.end {
            let rows = [
                k.add(at(t)),
                k.add(at(t + 1)),
                k.add(at(t + 2)),
                k.add(at(t + 3)),
            ];
            let mut acc = [_mm256_setzero_ps(); 4];
            for i in (0..d).step_by(8) {
                let qv = _mm256_loadu_ps(q.as_ptr().add(i));
                acc[0] = _mm256_fmadd_ps(qv, _mm256_loadu_ps(rows[0].add(i)), acc[0]);
                acc[1] = _mm256_fmadd_ps(qv, _mm256_loadu_ps(rows[1].add(i)), acc[1]);
                acc[2] = _mm256_fmadd_ps(qv, _mm256_loadu_ps(rows[2].add(i)), acc[2]);
                acc[3] = _mm256_fmadd_ps(qv, _mm256_loadu_ps(rows[3].add(i)), acc[3]);
            }
            // [a0+a1 pairs.., b..] -> four sums in one 128-bit vector.
            let ab = _mm256_hadd_ps(acc[0], acc[1]);
            let cd = _mm256_hadd_ps(acc[2], acc[3]);
            let abcd = _mm256_hadd_ps(ab, cd);
            let sums = _mm_add_ps(_mm256_castps256_ps128(abcd), _mm256_extractf128_ps(abcd, 1));
            let mut four = [0.0f32; 4];
            _mm_storeu_ps(four.as_mut_ptr(), sums);
            scores.extend(four.iter().map(|s| s * scale));
            t += 4;
        }
        while t < keys.end {
            scores.push(dot_avx2(q, &cache.k[at(t)..at(t) + d]) * scale);
            t += 1;
        }
    }
    let sum = softmax_weights(scores);
    // 64 dimensions (8 registers) per pass; a constant count so they stay in registers.
    for chunk in (0..d).step_by(64) {
        let mut acc = [_mm256_setzero_ps(); 8];
        for (t, &p) in keys.clone().zip(scores.iter()) {
            let w = _mm256_set1_ps(p / sum);
            // SAFETY: as above; `chunk + 64 <= d`.
            unsafe {
                let row = v.add(at(t) + chunk);
                for (j, a) in acc.iter_mut().enumerate() {
                    *a = _mm256_fmadd_ps(w, _mm256_loadu_ps(row.add(8 * j)), *a);
                }
            }
        }
        for (j, a) in acc.iter().enumerate() {
            // SAFETY: `out` holds `d` values, `chunk + 64 <= d`.
            unsafe { _mm256_storeu_ps(out.as_mut_ptr().add(chunk + 8 * j), *a) };
        }
    }
}

/// `scores[i] = exp(scores[i] - max)`; returns their sum.
fn softmax_weights(scores: &mut [f32]) -> f32 {
    let max = scores.iter().copied().fold(f32::NEG_INFINITY, f32::max);
    let mut sum = 0.0f32;
    for s in scores.iter_mut() {
        *s = (*s - max).exp();
        sum += *s;
    }
    sum
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
#[inline]
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
    let v = _mm256_add_ps(acc0, acc1);
    let quad = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    let pair = _mm_add_ps(quad, _mm_movehl_ps(quad, quad));
    let mut sum = _mm_cvtss_f32(_mm_add_ss(pair, _mm_shuffle_ps(pair, pair, 1)));
    for j in i..n {
        sum += a[j] * b[j];
    }
    sum
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::super::testing::{bf16, reference, values};
    use super::*;

    #[test]
    fn matmul_equals_the_definition_for_ragged_shapes() {
        for &(rows, out, inp) in &[
            (1, 1, 1),
            (7, 17, 5),
            (6, 16, 64),
            (13, 50, 33),
            (32, 100, 129),
            (40, 70, 600),
            (9, 40, 700),
        ] {
            let x = values(rows * inp, 1);
            let w = values(out * inp, 2);
            let bias = values(out, 3);
            let packed = Packed::new_f32(&w, out, inp);
            let expect = reference(&x, rows, &w, out, inp);
            let kernels = [Kernel::Plain, Kernel::Avx2, Kernel::Avx512];
            for kernel in kernels.into_iter().filter(|&k| k <= best_kernel()) {
                let mut y = vec![f32::NAN; rows * out];
                matmul_with(kernel, &x, rows, &packed, Some(&bias), &mut y);
                for (i, (&got, &want)) in y.iter().zip(&expect).enumerate() {
                    let want = want + bias[i % out] as f64;
                    // f32 accumulation of up to 700 products: relative to the size of the value.
                    assert!(
                        (got as f64 - want).abs() < 1e-5 * want.abs().max(10.0),
                        "{kernel:?} {rows}x{out}x{inp} [{i}]: {got} vs {want}"
                    );
                }
            }
            // The plain tile, one pass over all of `in`.
            let n = rows.min(TILE);
            let mut plain = vec![[0.0f32; BLOCK]; n];
            tile_plain(&x, inp, inp, packed.block(0), &mut plain);
            let expect = reference(&x, rows, &w, out, inp);
            for (i, row) in plain.iter().enumerate() {
                for (j, &got) in row.iter().enumerate().take(out.min(BLOCK)) {
                    let want = expect[i * out + j];
                    assert!((got as f64 - want).abs() < 1e-5 * want.abs().max(10.0));
                }
            }
        }
    }

    #[test]
    fn packed_rows_read_back() {
        // f32 values, and bf16 ones (packed for the AMX kernel where the CPU has one).
        for (w, inp) in [(values(37 * 9, 4), 9), (bf16(values(37 * 70, 4)), 70)] {
            let packed = Packed::new(&w, 37, inp);
            let mut row = vec![0.0; inp];
            for o in [0, 15, 16, 36] {
                packed.row(o, &mut row);
                assert_eq!(row, w[o * inp..(o + 1) * inp]);
            }
        }
    }

    #[test]
    fn attention_equals_the_definition() {
        // (stride, head dim, offset, keys): head sizes off and on the 8-lane path, key counts
        // around the 4-key blocks.
        let cases = [
            (24, 12, 12, 2..6),
            (128, 64, 64, 0..7),
            (128, 64, 0, 3..4),
            (256, 128, 128, 1..10),
            (72, 72, 0, 0..8),
        ];
        for (stride, d, offset, keys) in cases {
            let k = values(10 * stride, 7);
            let v = values(10 * stride, 8);
            let q = values(d, 9);
            let scale = 0.3;
            let logits: Vec<f64> = keys
                .clone()
                .map(|t| {
                    (0..d)
                        .map(|i| q[i] as f64 * k[t * stride + offset + i] as f64)
                        .sum::<f64>()
                        * scale
                })
                .collect();
            let max = logits.iter().copied().fold(f64::MIN, f64::max);
            let w: Vec<f64> = logits.iter().map(|l| (l - max).exp()).collect();
            let total: f64 = w.iter().sum();
            let cache = HeadCache {
                k: &k,
                v: &v,
                stride,
                offset,
                keys: keys.clone(),
            };
            let mut scratch = Vec::new();
            let mut out = vec![f32::NAN; d];
            attend(&q, &cache, scale as f32, &mut scratch, &mut out);
            let mut plain = vec![f32::NAN; d];
            attend_plain(&q, &cache, scale as f32, &mut scratch, &mut plain);
            for i in 0..d {
                let want: f64 = keys
                    .clone()
                    .zip(&w)
                    .map(|(t, p)| p / total * v[t * stride + offset + i] as f64)
                    .sum();
                assert!(
                    (out[i] as f64 - want).abs() < 1e-5,
                    "d {d} [{i}]: {} vs {want}",
                    out[i]
                );
                assert!((plain[i] as f64 - want).abs() < 1e-5, "plain d {d} [{i}]");
            }
        }
    }

    #[test]
    fn dot_and_axpy() {
        for n in [0, 1, 7, 8, 9, 16, 33, 64] {
            let a = values(n, 5);
            let b = values(n, 6);
            let want: f64 = a.iter().zip(&b).map(|(x, y)| *x as f64 * *y as f64).sum();
            assert!((dot_plain(&a, &b) as f64 - want).abs() < 1e-4);
            #[cfg(target_arch = "x86_64")]
            if simd_available() {
                // SAFETY: AVX2 and FMA were detected.
                let got = unsafe { dot_avx2(&a, &b) };
                assert!((got as f64 - want).abs() < 1e-4);
            }
            let mut y = b.clone();
            axpy_plain(0.5, &a, &mut y);
            for i in 0..n {
                assert!((y[i] - (b[i] + 0.5 * a[i])).abs() < 1e-6);
            }
        }
    }
}
