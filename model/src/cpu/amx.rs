//! The matrix product on Intel AMX tiles for weights that are exactly bf16 (a bf16 checkpoint,
//! widened to f32 at load, loses nothing when stored back as bf16), with f32 results.
//!
//! AMX's `tdpbf16ps` multiplies bf16 values and adds the products into f32 accumulators.
//! Weights are bf16 already; each f32 input value `x` is cut into three bf16 parts by
//! truncation, `hi = x` with the low 16 bits cleared, `mid` the same of `x - hi`, `lo = x - hi -
//! mid`: the 24-bit significand in three 8-bit pieces, so `hi + mid + lo == x` exactly (for
//! normal values; parts below f32's normal range, under 2^-126, are flushed to zero). Every
//! product of a bf16 weight and a part is exact in f32 and the sums are accumulated in f32, so
//! the result is the f32 product up to summation order, like any f32 kernel's. Each output
//! element depends on its own input row only (no data moves between rows of a tile), so a row's
//! result does not depend on the batch around it.
//!
//! Compared with the f32 kernel, weights take half the memory traffic (a decode step streams
//! every weight once), and a tile instruction does 8,192 multiply-adds. Tiles are 16 rows by 64
//! bytes: inputs `A` are 16 rows by 32 bf16, the
//! weights `B` 16 pairs of `k` by 16 outputs (each pair adjacent, the layout `tdpbf16ps` reads),
//! and the accumulators 16 rows by 16 f32. A kernel step holds 2 row tiles by 2 output blocks of
//! accumulators (tiles 0-3), the two weight tiles (4, 5) and two input tiles in turn (6, 7).
//!
//! AMX is used when the CPU has AMX-BF16 and Linux grants this process the tile state
//! (`arch_prctl(ARCH_REQ_XCOMP_PERM)`), and not when `SELFINSTRUCT_CPU_AMX=0`.

#[cfg(all(target_arch = "x86_64", target_os = "linux"))]
use std::arch::asm;

use rayon::prelude::*;

use super::kernels::OutPtr;

/// Outputs per weight tile (and per packed block).
const COLS: usize = 16;
/// Input rows per tile.
const ROWS: usize = 16;
/// `k` values per tile step (32 bf16 = 64 bytes per tile row).
const STEP: usize = 32;
/// bf16 values per tile (16 rows of 64 bytes).
const TILE: usize = ROWS * STEP;
/// Parts each input value is cut into.
const PARTS: usize = 3;
/// How many steps ahead [`product`] prefetches weight tiles.
const AHEAD: usize = 8;
/// Output block pairs per parallel task.
const PAIRS_PER_TASK: usize = 2;

/// Whether the AMX kernel runs in this process.
pub fn available() -> bool {
    use std::sync::OnceLock;
    static AVAILABLE: OnceLock<bool> = OnceLock::new();
    *AVAILABLE.get_or_init(|| {
        std::env::var("SELFINSTRUCT_CPU_AMX").map_or(true, |v| v != "0") && request_tiles()
    })
}

/// Whether the CPU has AMX-BF16 and the kernel lets this process use the tile registers.
#[cfg(all(target_arch = "x86_64", target_os = "linux"))]
fn request_tiles() -> bool {
    // CPUID leaf 7: EDX bit 22 is AMX-BF16, bit 24 AMX-TILE.
    // SAFETY: CPUID leaf 7 exists on every x86-64 CPU that has AVX2 (checked first).
    if !std::is_x86_feature_detected!("avx2") {
        return false;
    }
    #[allow(unused_unsafe)] // `__cpuid_count` is safe from Rust 1.94 on
    let leaf = unsafe { std::arch::x86_64::__cpuid_count(7, 0) };
    if leaf.edx & (1 << 22) == 0 || leaf.edx & (1 << 24) == 0 {
        return false;
    }
    const SYS_ARCH_PRCTL: i64 = 158;
    const ARCH_REQ_XCOMP_PERM: i64 = 0x1023;
    const XFEATURE_XTILEDATA: i64 = 18;
    let ret: i64;
    // SAFETY: arch_prctl only asks the kernel to allow the tile state for this process; it
    // touches no memory of ours. A kernel without AMX support returns an error.
    unsafe {
        asm!(
            "syscall",
            inlateout("rax") SYS_ARCH_PRCTL => ret,
            in("rdi") ARCH_REQ_XCOMP_PERM,
            in("rsi") XFEATURE_XTILEDATA,
            lateout("rcx") _,
            lateout("r11") _,
            options(nostack),
        );
    }
    ret == 0
}

#[cfg(not(all(target_arch = "x86_64", target_os = "linux")))]
fn request_tiles() -> bool {
    false
}

/// Whether every value is a bf16 value (low 16 bits zero), so [`PackedBf16`] holds it exactly.
pub fn exact_in_bf16(w: &[f32]) -> bool {
    w.par_chunks(1 << 16)
        .all(|c| c.iter().all(|v| v.to_bits() & 0xffff == 0))
}

/// A weight `[out, in]` of bf16 values, packed in weight tiles: block `b` of 16 outputs, step
/// `s` of 32 inputs is one tile of 16 rows (pairs of inputs) by 16 outputs x 2, element
/// `[p][j * 2 + e] = W[b * 16 + j][s * 32 + p * 2 + e]`. Blocks go in pairs (the kernel's two
/// weight tiles), a pair's tiles step by step, the two blocks' tiles of a step side by side: a
/// product reads one sequential stream. Blocks are padded to an even count and inputs to a
/// whole step, with zeros.
#[derive(Debug, Clone)]
pub struct PackedBf16 {
    pub out: usize,
    pub inp: usize,
    steps: usize,
    data: Vec<Line>,
}

impl PackedBf16 {
    /// Pack `w` (`[out, in]`, row-major, every value exact in bf16: see [`exact_in_bf16`]).
    pub fn new(w: &[f32], out: usize, inp: usize) -> Self {
        assert_eq!(w.len(), out * inp, "weight size");
        let steps = inp.div_ceil(STEP);
        let blocks = out.div_ceil(2 * COLS) * 2;
        let mut data = lines(blocks * steps * TILE);
        as_u16_mut(&mut data)
            .par_chunks_mut(steps * 2 * TILE)
            .enumerate()
            .for_each(|(pair, dst)| {
                for c in 0..2 {
                    for j in 0..COLS {
                        let o = (2 * pair + c) * COLS + j;
                        if o >= out {
                            break;
                        }
                        for (k, &v) in w[o * inp..(o + 1) * inp].iter().enumerate() {
                            let at = (k / STEP * 2 + c) * TILE + (k % STEP / 2) * 2 * COLS;
                            dst[at + j * 2 + k % 2] = (v.to_bits() >> 16) as u16;
                        }
                    }
                }
            });
        Self {
            out,
            inp,
            steps,
            data,
        }
    }

    /// Row `o` of the original matrix.
    pub fn row(&self, o: usize, dst: &mut [f32]) {
        let (b, j) = (o / COLS, o % COLS);
        for (k, d) in dst.iter_mut().enumerate().take(self.inp) {
            let at = self.at(b, k / STEP) + (k % STEP / 2) * 2 * COLS + j * 2 + k % 2;
            *d = f32::from_bits((as_u16(&self.data)[at] as u32) << 16);
        }
    }

    /// Bytes held.
    pub fn bytes(&self) -> usize {
        self.data.len() * 64
    }

    /// Where the tile of block `block`, step `step` starts in `data`.
    fn at(&self, block: usize, step: usize) -> usize {
        ((block / 2 * self.steps + step) * 2 + block % 2) * TILE
    }

    fn tile(&self, block: usize, step: usize) -> *const u16 {
        as_u16(&self.data)
            .as_ptr()
            .wrapping_add(self.at(block, step))
    }
}

/// 64 bytes, aligned to a cache line: the unit tile data is stored in (a tile row; tile loads
/// of rows that straddle two lines run at half speed).
#[derive(Debug, Clone, Copy)]
#[repr(C, align(64))]
struct Line([u16; 32]);

/// `n` bf16 values (a whole number of lines) in cache-line-aligned storage.
fn lines(n: usize) -> Vec<Line> {
    vec![Line([0; 32]); n.div_ceil(32)]
}

fn as_u16(lines: &[Line]) -> &[u16] {
    // SAFETY: `Line` is 32 `u16`s with no padding (size 64 = 32 x 2).
    unsafe { std::slice::from_raw_parts(lines.as_ptr().cast(), lines.len() * 32) }
}

fn as_u16_mut(lines: &mut [Line]) -> &mut [u16] {
    // SAFETY: as for `as_u16`.
    unsafe { std::slice::from_raw_parts_mut(lines.as_mut_ptr().cast(), lines.len() * 32) }
}

/// The input rows cut into three bf16 parts, in input tiles: row tile `t`, step `s`, part `p`
/// is the tile at `((t * steps + s) * 3 + p) * 512`. Rows are padded to whole tiles and inputs
/// to whole steps, with zeros.
struct Parts<'a> {
    steps: usize,
    data: &'a [u16],
}

thread_local! {
    /// The parts buffer, kept between products (a fresh one per product would be mapped and
    /// zeroed by the kernel every time).
    static PARTS_BUFFER: std::cell::RefCell<Vec<Line>> = const { std::cell::RefCell::new(Vec::new()) };
}

/// Cut `x` (`[rows, inp]`) into [`Parts`] and call `f` with them.
fn with_parts<R>(x: &[f32], rows: usize, inp: usize, f: impl FnOnce(&Parts<'_>) -> R) -> R {
    let steps = inp.div_ceil(STEP);
    let tiles = rows.div_ceil(ROWS);
    let size = tiles * steps * PARTS * TILE;
    let run = |buffer: &mut Vec<Line>| {
        if buffer.len() * 32 < size {
            *buffer = lines(size);
        }
        let data = &mut as_u16_mut(buffer)[..size];
        data.par_chunks_mut(steps * PARTS * TILE)
            .enumerate()
            .for_each(|(t, dst)| {
                for m in 0..ROWS {
                    let r = t * ROWS + m;
                    for s in 0..steps {
                        let at = s * PARTS * TILE + m * STEP;
                        let chunk = if r < rows {
                            &x[r * inp + s * STEP..r * inp + inp.min((s + 1) * STEP)]
                        } else {
                            &[]
                        };
                        split(chunk, &mut dst[at..]);
                    }
                }
            });
        f(&Parts { steps, data })
    };
    // A product started inside another's parallel loop on this thread gets its own buffer.
    PARTS_BUFFER.with(|cell| match cell.try_borrow_mut() {
        Ok(mut buffer) => run(&mut buffer),
        Err(_) => run(&mut Vec::new()),
    })
}

impl Parts<'_> {
    fn tile(&self, row_tile: usize, step: usize) -> *const u16 {
        self.data[(row_tile * self.steps + step) * PARTS * TILE..].as_ptr()
    }
}

/// Cut `x` (up to 32 values) into its three bf16 parts: `dst[p * 512 + k]` is part `p` of
/// `x[k]`; zeros past `x`'s end.
fn split(x: &[f32], dst: &mut [u16]) {
    let mut v = [0.0f32; STEP];
    v[..x.len()].copy_from_slice(x);
    let (hi, rest) = dst.split_at_mut(TILE);
    let (mid, lo) = rest.split_at_mut(TILE);
    // Fixed-size slices: no bounds checks in the loop, which the compiler vectorizes.
    let (hi, mid, lo) = (&mut hi[..STEP], &mut mid[..STEP], &mut lo[..STEP]);
    for k in 0..STEP {
        let h = v[k].to_bits() & 0xffff_0000;
        let rest = v[k] - f32::from_bits(h);
        let m = rest.to_bits() & 0xffff_0000;
        let l = rest - f32::from_bits(m);
        hi[k] = (h >> 16) as u16;
        mid[k] = (m >> 16) as u16;
        lo[k] = (l.to_bits() >> 16) as u16;
    }
}

/// `y[rows, out] = x[rows, in] · Wᵀ (+ bias)` on AMX tiles (which must be [`available`]).
pub fn matmul(x: &[f32], rows: usize, w: &PackedBf16, bias: Option<&[f32]>, y: &mut [f32]) {
    let (inp, out) = (w.inp, w.out);
    assert_eq!(x.len(), rows * inp, "matmul input size");
    assert_eq!(y.len(), rows * out, "matmul output size");
    if let Some(b) = bias {
        assert_eq!(b.len(), out, "bias size");
    }
    assert!(available(), "AMX kernel without AMX");
    if rows == 0 {
        return;
    }
    with_parts(x, rows, inp, |parts| product_all(parts, rows, w, bias, y));
}

/// [`matmul`] once the inputs are cut into parts.
fn product_all(
    parts: &Parts<'_>,
    rows: usize,
    w: &PackedBf16,
    bias: Option<&[f32]>,
    y: &mut [f32],
) {
    let out = w.out;
    let pairs = out.div_ceil(2 * COLS);
    let y = OutPtr(y.as_mut_ptr());
    (0..pairs.div_ceil(PAIRS_PER_TASK))
        .into_par_iter()
        .for_each(|task| {
            let mut acc = [[0.0f32; ROWS * COLS]; 4];
            // SAFETY: AMX is available (asserted); the tiles are configured before use and
            // released after, on this thread, with no other AMX code in between.
            unsafe { configure() };
            for pair in task * PAIRS_PER_TASK..((task + 1) * PAIRS_PER_TASK).min(pairs) {
                let tiles = rows.div_ceil(ROWS);
                let mut first = 0;
                while first < tiles {
                    // Row tiles two at a time (a last odd one alone: the same sums in the same
                    // order, so a row's result does not depend on its neighbours).
                    let two = first + 1 < tiles;
                    // SAFETY: blocks `2 * pair` and `2 * pair + 1` exist (blocks are padded to
                    // an even count), row tiles `first` (and `first + 1` with `two`) too, each
                    // with `steps` steps; `acc` holds four tiles.
                    unsafe { product(w, parts, 2 * pair, first, two, &mut acc) };
                    // acc[r * 2 + c]: row tile first + r, block c; element [m][j].
                    for (i, tile) in acc.iter().enumerate().take(if two { 4 } else { 2 }) {
                        let (r, c) = (i / 2, i % 2);
                        let col0 = (2 * pair + c) * COLS;
                        if col0 >= out {
                            continue;
                        }
                        let cols = (out - col0).min(COLS);
                        for m in 0..ROWS {
                            let row = (first + r) * ROWS + m;
                            if row >= rows {
                                break;
                            }
                            let src = &tile[m * COLS..m * COLS + cols];
                            let bias = bias.map(|b| &b[col0..col0 + cols]);
                            // SAFETY: `row < rows`, columns `col0..col0 + cols <= out`; no
                            // other task writes these columns.
                            unsafe { y.store(row, out, col0, src, bias) };
                        }
                    }
                    first += if two { 2 } else { 1 };
                }
            }
            // SAFETY: as for `configure`.
            unsafe { release() };
        });
}

/// Configure all eight tiles as 16 rows of 64 bytes (palette 1).
#[cfg(all(target_arch = "x86_64", target_os = "linux"))]
unsafe fn configure() {
    let mut cfg = [0u8; 64];
    cfg[0] = 1;
    for t in 0..8 {
        cfg[16 + 2 * t] = (STEP * 2) as u8;
        cfg[48 + t] = ROWS as u8;
    }
    // SAFETY (caller): AMX is available; `cfg` is a valid 64-byte tile configuration.
    unsafe { asm!("ldtilecfg [{}]", in(reg) cfg.as_ptr(), options(nostack, readonly)) };
}

#[cfg(all(target_arch = "x86_64", target_os = "linux"))]
unsafe fn release() {
    // SAFETY (caller): AMX is available.
    unsafe { asm!("tilerelease", options(nostack, nomem)) };
}

/// Accumulate two row tiles (from `row_tile`; one without `two`) times two blocks (from
/// `block`) over all steps into `acc` (`acc[r * 2 + c]`, 16 rows x 16 outputs each). Either
/// way each accumulator adds the three parts' products in order, step by step.
#[cfg(all(target_arch = "x86_64", target_os = "linux"))]
unsafe fn product(
    w: &PackedBf16,
    parts: &Parts<'_>,
    block: usize,
    row_tile: usize,
    two: bool,
    acc: &mut [[f32; ROWS * COLS]; 4],
) {
    let stride = STEP * 2;
    // SAFETY (caller): tiles are configured; every pointer below starts a whole tile of the
    // packed weights or the parts (the callers' indices are in range).
    unsafe {
        asm!(
            "tilezero tmm0",
            "tilezero tmm1",
            "tilezero tmm2",
            "tilezero tmm3",
            options(nostack, nomem)
        );
        for s in 0..w.steps {
            // The weights stream from memory: ask for the tiles `AHEAD` steps on (the next
            // pair's first ones near the end, which the next call reads).
            let next = w.tile(block, s).wrapping_add(AHEAD * 2 * TILE);
            for line in 0..2 * TILE * 2 / 64 {
                use std::arch::x86_64::{_mm_prefetch, _MM_HINT_T0};
                _mm_prefetch::<_MM_HINT_T0>(next.wrapping_add(line * 32) as *const i8);
            }
            if !two {
                // Each part in its own tile register: a load need not wait for the products
                // reading the previous part (tile registers are not renamed).
                asm!(
                    "tileloadd tmm4, [{b0} + {st}*1]",
                    "tileloadd tmm5, [{b1} + {st}*1]",
                    "tileloadd tmm6, [{a0} + {st}*1]",
                    "tileloadd tmm7, [{a0} + {st}*1 + {p}]",
                    "tileloadd tmm2, [{a0} + {st}*1 + {p2}]",
                    "tdpbf16ps tmm0, tmm6, tmm4",
                    "tdpbf16ps tmm1, tmm6, tmm5",
                    "tdpbf16ps tmm0, tmm7, tmm4",
                    "tdpbf16ps tmm1, tmm7, tmm5",
                    "tdpbf16ps tmm0, tmm2, tmm4",
                    "tdpbf16ps tmm1, tmm2, tmm5",
                    b0 = in(reg) w.tile(block, s),
                    b1 = in(reg) w.tile(block + 1, s),
                    a0 = in(reg) parts.tile(row_tile, s),
                    st = in(reg) stride,
                    p = const TILE * 2,
                    p2 = const TILE * 4,
                    options(nostack, readonly)
                );
                continue;
            }
            // Part by part, each accumulator is touched every fourth product (the products'
            // latency is longer than their issue interval).
            asm!(
                "tileloadd tmm4, [{b0} + {st}*1]",
                "tileloadd tmm5, [{b1} + {st}*1]",
                "tileloadd tmm6, [{a0} + {st}*1]",
                "tdpbf16ps tmm0, tmm6, tmm4",
                "tdpbf16ps tmm1, tmm6, tmm5",
                "tileloadd tmm7, [{a1} + {st}*1]",
                "tdpbf16ps tmm2, tmm7, tmm4",
                "tdpbf16ps tmm3, tmm7, tmm5",
                "tileloadd tmm6, [{a0} + {st}*1 + {p}]",
                "tdpbf16ps tmm0, tmm6, tmm4",
                "tdpbf16ps tmm1, tmm6, tmm5",
                "tileloadd tmm7, [{a1} + {st}*1 + {p}]",
                "tdpbf16ps tmm2, tmm7, tmm4",
                "tdpbf16ps tmm3, tmm7, tmm5",
                "tileloadd tmm6, [{a0} + {st}*1 + {p2}]",
                "tdpbf16ps tmm0, tmm6, tmm4",
                "tdpbf16ps tmm1, tmm6, tmm5",
                "tileloadd tmm7, [{a1} + {st}*1 + {p2}]",
                "tdpbf16ps tmm2, tmm7, tmm4",
                "tdpbf16ps tmm3, tmm7, tmm5",
                b0 = in(reg) w.tile(block, s),
                b1 = in(reg) w.tile(block + 1, s),
                a0 = in(reg) parts.tile(row_tile, s),
                a1 = in(reg) parts.tile(row_tile + 1, s),
                st = in(reg) stride,
                p = const TILE * 2,
                p2 = const TILE * 4,
                options(nostack, readonly)
            );
        }
        let st = COLS * 4;
        if !two {
            asm!(
                "tilestored [{c0} + {st}*1], tmm0",
                "tilestored [{c1} + {st}*1], tmm1",
                c0 = in(reg) acc[0].as_mut_ptr(),
                c1 = in(reg) acc[1].as_mut_ptr(),
                st = in(reg) st,
                options(nostack)
            );
            return;
        }
        asm!(
            "tilestored [{c0} + {st}*1], tmm0",
            "tilestored [{c1} + {st}*1], tmm1",
            "tilestored [{c2} + {st}*1], tmm2",
            "tilestored [{c3} + {st}*1], tmm3",
            c0 = in(reg) acc[0].as_mut_ptr(),
            c1 = in(reg) acc[1].as_mut_ptr(),
            c2 = in(reg) acc[2].as_mut_ptr(),
            c3 = in(reg) acc[3].as_mut_ptr(),
            st = in(reg) st,
            options(nostack)
        );
    }
}

#[cfg(not(all(target_arch = "x86_64", target_os = "linux")))]
unsafe fn configure() {}

#[cfg(not(all(target_arch = "x86_64", target_os = "linux")))]
unsafe fn release() {}

#[cfg(not(all(target_arch = "x86_64", target_os = "linux")))]
unsafe fn product(
    _: &PackedBf16,
    _: &Parts<'_>,
    _: usize,
    _: usize,
    _: bool,
    _: &mut [[f32; ROWS * COLS]; 4],
) {
    unreachable!("AMX is never available here")
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::super::testing::{bf16, reference, values};
    use super::*;

    #[test]
    fn the_three_parts_add_up_to_the_value() {
        let mut xs = values(1000, 1);
        xs.extend([
            0.0,
            -0.0,
            1.0,
            f32::MAX,
            f32::MIN_POSITIVE,
            1.0 + f32::EPSILON,
            -3.3e-7,
        ]);
        for chunk in xs.chunks(STEP) {
            let mut parts = vec![0u16; PARTS * TILE];
            split(chunk, &mut parts);
            for (k, &x) in chunk.iter().enumerate() {
                let p = |i: usize| f32::from_bits((parts[i * TILE + k] as u32) << 16);
                // Largest first, each exact: the sum is exact in f32 as well.
                assert_eq!(p(0) + p(1) + p(2), x, "{x}");
                assert!(p(1).abs() <= p(0).abs() && p(2).abs() <= p(1).abs().max(p(0).abs()));
            }
        }
    }

    #[test]
    fn bf16_values_are_told_apart() {
        assert!(exact_in_bf16(&bf16(values(1000, 4))));
        assert!(!exact_in_bf16(&values(1000, 4)));
    }

    #[test]
    fn matmul_equals_the_definition_and_rows_do_not_depend_on_the_batch() {
        if !available() {
            eprintln!("skipped: no AMX here");
            return;
        }
        for &(rows, out, inp) in &[
            (1, 1, 1),
            (7, 17, 5),
            (16, 32, 32),
            (33, 50, 65),
            (32, 100, 896),
            (40, 70, 600),
            (3, 130, 4864),
        ] {
            let x = values(rows * inp, 1);
            let w = bf16(values(out * inp, 2));
            let bias = values(out, 3);
            let packed = PackedBf16::new(&w, out, inp);
            let mut y = vec![f32::NAN; rows * out];
            matmul(&x, rows, &packed, Some(&bias), &mut y);
            let expect = reference(&x, rows, &w, out, inp);
            for r in 0..rows {
                for o in 0..out {
                    let want = expect[r * out + o] + bias[o] as f64;
                    let got = y[r * out + o] as f64;
                    assert!(
                        (got - want).abs() < 1e-5 * want.abs().max(10.0),
                        "{rows}x{out}x{inp} [{r}][{o}]: {got} vs {want}"
                    );
                }
                // The same row alone: bit for bit.
                let mut alone = vec![f32::NAN; out];
                matmul(
                    &x[r * inp..(r + 1) * inp],
                    1,
                    &packed,
                    Some(&bias),
                    &mut alone,
                );
                assert_eq!(
                    alone,
                    y[r * out..(r + 1) * out],
                    "row {r} of {rows}x{out}x{inp}"
                );
            }
        }
    }
}
