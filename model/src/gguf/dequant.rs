//! Dequantisation of ggml tensor data to f32: F32, F16, BF16, Q8_0, Q4_0, Q4_1, Q5_0, Q5_1,
//! Q2_K, Q3_K, Q4_K, Q5_K and Q6_K (the I-quants, ternary and MXFP4 types are not supported).
//!
//! Block layouts follow ggml-common.h (`block_q4_0`, `block_q4_K`, ...); the arithmetic follows
//! ggml-quants.c's `dequantize_row_*` operation for operation (products are formed in the same
//! order and never fused into an FMA), so results are bit-identical to ggml's reference C code and
//! to the `gguf` Python package's numpy implementation, which `tests/gguf_fixtures.rs` checks.
//!
//! Large tensors are split into chunks of whole blocks and dequantised in parallel with rayon;
//! each block is independent, so the result does not depend on the thread count.

use half::{bf16, f16};
use rayon::prelude::*;

use super::error::GgufError;
use super::types::{GgmlType, QK_K};

/// Tensors with at least this many elements are dequantised in parallel.
const PARALLEL_THRESHOLD: usize = 1 << 18;
/// Elements per parallel work item (a multiple of every block size).
const CHUNK_ELEMENTS: usize = 1 << 16;

/// Whether [`dequantize`] supports `ty`.
pub fn can_dequantize(ty: GgmlType) -> bool {
    block_fn(ty).is_some()
}

/// Dequantises `n_elements` values of type `ty` stored in `data`.
pub fn dequantize(ty: GgmlType, data: &[u8], n_elements: usize) -> Result<Vec<f32>, GgufError> {
    // Validate before allocating: `n_elements` may come from a file.
    check_sizes(ty, data.len(), n_elements)?;
    let mut out = vec![0f32; n_elements];
    dequantize_into(ty, data, &mut out)?;
    Ok(out)
}

/// Dequantises `data` (of type `ty`) into `out`; `out.len()` is the element count.
pub fn dequantize_into(ty: GgmlType, data: &[u8], out: &mut [f32]) -> Result<(), GgufError> {
    let f = block_fn(ty).ok_or(GgufError::UnsupportedDequant(ty))?;
    check_sizes(ty, data.len(), out.len())?;
    if out.len() < PARALLEL_THRESHOLD {
        f(data, out);
        return Ok(());
    }
    let chunk_bytes = CHUNK_ELEMENTS / ty.block_size() * ty.type_size();
    out.par_chunks_mut(CHUNK_ELEMENTS)
        .zip(data.par_chunks(chunk_bytes))
        .for_each(|(dst, src)| f(src, dst));
    Ok(())
}

/// Checks that `bytes` bytes of `ty` hold exactly `elements` elements.
fn check_sizes(ty: GgmlType, bytes: usize, elements: usize) -> Result<(), GgufError> {
    let expected = ty.row_bytes(elements as u64);
    if expected != Some(bytes as u64) {
        return Err(GgufError::SizeMismatch {
            ty,
            bytes,
            elements,
        });
    }
    Ok(())
}

/// A routine that dequantises a run of whole blocks: `src.len() / type_size` blocks into
/// `dst.len() / block_size` blocks' worth of f32 (the two agree; callers check).
type BlockFn = fn(&[u8], &mut [f32]);

fn block_fn(ty: GgmlType) -> Option<BlockFn> {
    Some(match ty {
        GgmlType::F32 => dequant_f32,
        GgmlType::F16 => dequant_f16,
        GgmlType::BF16 => dequant_bf16,
        GgmlType::Q8_0 => dequant_q8_0,
        GgmlType::Q4_0 => dequant_q4_0,
        GgmlType::Q4_1 => dequant_q4_1,
        GgmlType::Q5_0 => dequant_q5_0,
        GgmlType::Q5_1 => dequant_q5_1,
        GgmlType::Q2_K => dequant_q2_k,
        GgmlType::Q3_K => dequant_q3_k,
        GgmlType::Q4_K => dequant_q4_k,
        GgmlType::Q5_K => dequant_q5_k,
        GgmlType::Q6_K => dequant_q6_k,
        _ => return None,
    })
}

#[inline(always)]
fn half_at(b: &[u8], i: usize) -> f32 {
    f16::from_bits(u16::from_le_bytes([b[i], b[i + 1]])).to_f32()
}

fn dequant_f32(src: &[u8], dst: &mut [f32]) {
    for (s, d) in src.chunks_exact(4).zip(dst.iter_mut()) {
        *d = f32::from_le_bytes([s[0], s[1], s[2], s[3]]);
    }
}

fn dequant_f16(src: &[u8], dst: &mut [f32]) {
    for (s, d) in src.chunks_exact(2).zip(dst.iter_mut()) {
        *d = f16::from_bits(u16::from_le_bytes([s[0], s[1]])).to_f32();
    }
}

fn dequant_bf16(src: &[u8], dst: &mut [f32]) {
    // bf16 is the top half of an f32, so this is exact for every bit pattern (NaNs included).
    for (s, d) in src.chunks_exact(2).zip(dst.iter_mut()) {
        *d = bf16::from_bits(u16::from_le_bytes([s[0], s[1]])).to_f32();
    }
}

/// `block_q8_0`: f16 scale `d`, then 32 signed bytes; `y = q * d`.
fn dequant_q8_0(src: &[u8], dst: &mut [f32]) {
    for (b, y) in src.chunks_exact(34).zip(dst.chunks_exact_mut(32)) {
        let d = half_at(b, 0);
        for (y, &q) in y.iter_mut().zip(&b[2..34]) {
            *y = f32::from(q as i8) * d;
        }
    }
}

/// `block_q4_0`: f16 `d`, 16 bytes of nibbles. Low nibbles are elements 0..16, high nibbles
/// 16..32; `y = (q - 8) * d`.
fn dequant_q4_0(src: &[u8], dst: &mut [f32]) {
    for (b, y) in src.chunks_exact(18).zip(dst.chunks_exact_mut(32)) {
        let d = half_at(b, 0);
        let (lo, hi) = y.split_at_mut(16);
        for ((l, h), &q) in lo.iter_mut().zip(hi.iter_mut()).zip(&b[2..18]) {
            *l = f32::from((q & 0x0F) as i8 - 8) * d;
            *h = f32::from((q >> 4) as i8 - 8) * d;
        }
    }
}

/// `block_q4_1`: f16 `d`, f16 `m`, 16 bytes of nibbles (layout as Q4_0); `y = q * d + m`.
fn dequant_q4_1(src: &[u8], dst: &mut [f32]) {
    for (b, y) in src.chunks_exact(20).zip(dst.chunks_exact_mut(32)) {
        let d = half_at(b, 0);
        let m = half_at(b, 2);
        let (lo, hi) = y.split_at_mut(16);
        for ((l, h), &q) in lo.iter_mut().zip(hi.iter_mut()).zip(&b[4..20]) {
            *l = f32::from(q & 0x0F) * d + m;
            *h = f32::from(q >> 4) * d + m;
        }
    }
}

/// The fifth bit of element `i` of a Q5_0/Q5_1 block: bit `i` of the little-endian u32 `qh`.
#[inline(always)]
fn fifth_bit(qh: u32, i: usize) -> u8 {
    (((qh >> i) & 1) as u8) << 4
}

/// `block_q5_0`: f16 `d`, u32 `qh` (fifth bits), 16 bytes of nibbles (layout as Q4_0);
/// `y = (q - 16) * d`.
fn dequant_q5_0(src: &[u8], dst: &mut [f32]) {
    for (b, y) in src.chunks_exact(22).zip(dst.chunks_exact_mut(32)) {
        let d = half_at(b, 0);
        let qh = u32::from_le_bytes([b[2], b[3], b[4], b[5]]);
        let (lo, hi) = y.split_at_mut(16);
        for (j, ((l, h), &q)) in lo.iter_mut().zip(hi.iter_mut()).zip(&b[6..22]).enumerate() {
            *l = f32::from(((q & 0x0F) | fifth_bit(qh, j)) as i8 - 16) * d;
            *h = f32::from(((q >> 4) | fifth_bit(qh, j + 16)) as i8 - 16) * d;
        }
    }
}

/// `block_q5_1`: f16 `d`, f16 `m`, u32 `qh`, 16 bytes of nibbles; `y = q * d + m`.
fn dequant_q5_1(src: &[u8], dst: &mut [f32]) {
    for (b, y) in src.chunks_exact(24).zip(dst.chunks_exact_mut(32)) {
        let d = half_at(b, 0);
        let m = half_at(b, 2);
        let qh = u32::from_le_bytes([b[4], b[5], b[6], b[7]]);
        let (lo, hi) = y.split_at_mut(16);
        for (j, ((l, h), &q)) in lo.iter_mut().zip(hi.iter_mut()).zip(&b[8..24]).enumerate() {
            *l = f32::from((q & 0x0F) | fifth_bit(qh, j)) * d + m;
            *h = f32::from((q >> 4) | fifth_bit(qh, j + 16)) * d + m;
        }
    }
}

/// `block_q2_K` (84 bytes): 16 bytes of 4-bit scale/min pairs, 64 bytes of 2-bit quants, f16
/// `d`, f16 `dmin`. Each half of 128 elements uses 32 quant bytes; its sub-block `2s + p` (16
/// elements) takes bits `2s..2s+2` of bytes `16p..16p+16`; `y = d*(sc & 15) * q - dmin*(sc >> 4)`.
fn dequant_q2_k(src: &[u8], dst: &mut [f32]) {
    for (b, y) in src.chunks_exact(84).zip(dst.chunks_exact_mut(QK_K)) {
        let d = half_at(b, 80);
        let dmin = half_at(b, 82);
        let scales = &b[0..16];
        for (k, y) in y.chunks_exact_mut(16).enumerate() {
            let (half, shift, part) = (k / 8, 2 * ((k % 8) / 2), k % 2);
            let sc = scales[k];
            let dl = d * f32::from(sc & 0x0F);
            let ml = dmin * f32::from(sc >> 4);
            let q = &b[16 + 32 * half + 16 * part..][..16];
            for (y, &q) in y.iter_mut().zip(q) {
                *y = dl * f32::from((q >> shift) & 3) - ml;
            }
        }
    }
}

/// `block_q3_K` (110 bytes): 32 bytes `hmask`, 64 bytes of 2-bit quants, 12 bytes of packed
/// 6-bit scales, f16 `d`. Sub-block `k` (16 elements) of half `h`, shift `s`, part `p`
/// (k = 8h + 2s + p) takes bits `2s..2s+2` of `qs[32h + 16p + l]` and subtracts 4 unless bit
/// `k / 2` of `hmask[16p + l]` is set; `y = d * (scale - 32) * q`.
fn dequant_q3_k(src: &[u8], dst: &mut [f32]) {
    for (b, y) in src.chunks_exact(110).zip(dst.chunks_exact_mut(QK_K)) {
        let hmask = &b[0..32];
        let qs = &b[32..96];
        let sc = &b[96..108];
        let d = half_at(b, 108);
        for (k, y) in y.chunks_exact_mut(16).enumerate() {
            let low = if k < 8 { sc[k] & 0x0F } else { sc[k - 8] >> 4 };
            let high = (sc[8 + k % 4] >> (2 * (k / 4))) & 3;
            let dl = d * f32::from((low | (high << 4)) as i8 - 32);
            let (half, shift, part) = (k / 8, 2 * ((k % 8) / 2), k % 2);
            let q = &qs[32 * half + 16 * part..][..16];
            let hm = &hmask[16 * part..][..16];
            let bit = 1u8 << (k / 2);
            for ((y, &q), &h) in y.iter_mut().zip(q).zip(hm) {
                let v = ((q >> shift) & 3) as i8 - if h & bit != 0 { 0 } else { 4 };
                *y = dl * f32::from(v);
            }
        }
    }
}

/// The 6-bit scale and min of sub-block `j` (0..8) of a Q4_K/Q5_K super-block, packed in 12
/// bytes (`get_scale_min_k4` in ggml-quants.c): sub-blocks 0..4 use the low 6 bits of bytes
/// `j` and `j + 4`; sub-blocks 4..8 combine a nibble of byte `j + 4` with the top two bits of
/// bytes `j - 4` and `j`.
#[inline(always)]
fn scale_min_k4(j: usize, q: &[u8]) -> (u8, u8) {
    if j < 4 {
        (q[j] & 63, q[j + 4] & 63)
    } else {
        (
            (q[j + 4] & 0x0F) | ((q[j - 4] >> 6) << 4),
            (q[j + 4] >> 4) | ((q[j] >> 6) << 4),
        )
    }
}

/// `block_q4_K` (144 bytes): f16 `d`, f16 `dmin`, 12 bytes of packed 6-bit scales/mins, 128
/// bytes of nibbles. Each 64 elements use 32 bytes: low nibbles for the first 32 (sub-block
/// 2i), high nibbles for the next 32 (sub-block 2i+1); `y = d*sc * q - dmin*m`.
fn dequant_q4_k(src: &[u8], dst: &mut [f32]) {
    for (b, y) in src.chunks_exact(144).zip(dst.chunks_exact_mut(QK_K)) {
        let d = half_at(b, 0);
        let dmin = half_at(b, 2);
        let scales = &b[4..16];
        let qs = &b[16..144];
        for (i, (q, y)) in qs.chunks_exact(32).zip(y.chunks_exact_mut(64)).enumerate() {
            let (sc1, m1) = scale_min_k4(2 * i, scales);
            let (sc2, m2) = scale_min_k4(2 * i + 1, scales);
            let (d1, m1) = (d * f32::from(sc1), dmin * f32::from(m1));
            let (d2, m2) = (d * f32::from(sc2), dmin * f32::from(m2));
            let (lo, hi) = y.split_at_mut(32);
            for ((l, h), &q) in lo.iter_mut().zip(hi.iter_mut()).zip(q) {
                *l = d1 * f32::from(q & 0x0F) - m1;
                *h = d2 * f32::from(q >> 4) - m2;
            }
        }
    }
}

/// `block_q5_K` (176 bytes): as Q4_K plus 32 bytes `qh` of fifth bits (between the scales and
/// the nibbles); sub-block `s` takes its fifth bit from bit `s` of `qh[l]`.
fn dequant_q5_k(src: &[u8], dst: &mut [f32]) {
    for (b, y) in src.chunks_exact(176).zip(dst.chunks_exact_mut(QK_K)) {
        let d = half_at(b, 0);
        let dmin = half_at(b, 2);
        let scales = &b[4..16];
        let qh = &b[16..48];
        let qs = &b[48..176];
        for (i, (q, y)) in qs.chunks_exact(32).zip(y.chunks_exact_mut(64)).enumerate() {
            let (sc1, m1) = scale_min_k4(2 * i, scales);
            let (sc2, m2) = scale_min_k4(2 * i + 1, scales);
            let (d1, m1) = (d * f32::from(sc1), dmin * f32::from(m1));
            let (d2, m2) = (d * f32::from(sc2), dmin * f32::from(m2));
            let (u1, u2) = (1u8 << (2 * i), 2u8 << (2 * i));
            let (lo, hi) = y.split_at_mut(32);
            for (((l, h), &q), &qh) in lo.iter_mut().zip(hi.iter_mut()).zip(q).zip(qh) {
                let q1 = (q & 0x0F) + if qh & u1 != 0 { 16 } else { 0 };
                let q2 = (q >> 4) + if qh & u2 != 0 { 16 } else { 0 };
                *l = d1 * f32::from(q1) - m1;
                *h = d2 * f32::from(q2) - m2;
            }
        }
    }
}

/// `block_q6_K` (210 bytes): 128 bytes `ql` (low nibbles), 64 bytes `qh` (two high bits each),
/// 16 signed 8-bit scales (one per 16 elements), f16 `d`; `y = d*scale * (q - 32)`. Each half
/// of 128 elements uses 64 bytes of `ql` and 32 of `qh`: element `32k + l` of the half takes
/// the low (k = 0, 1) or high (k = 2, 3) nibble of `ql[l + 32 (k % 2)]` and bits `2k..2k+2` of
/// `qh[l]`.
fn dequant_q6_k(src: &[u8], dst: &mut [f32]) {
    for (b, y) in src.chunks_exact(210).zip(dst.chunks_exact_mut(QK_K)) {
        let d = half_at(b, 208);
        let mut scale = [0f32; 16];
        for (s, &sc) in scale.iter_mut().zip(&b[192..208]) {
            *s = d * f32::from(sc as i8);
        }
        for (half, y) in y.chunks_exact_mut(128).enumerate() {
            let ql = &b[64 * half..64 * half + 64];
            let qh = &b[128 + 32 * half..128 + 32 * half + 32];
            let sc = &scale[8 * half..8 * half + 8];
            for l in 0..32 {
                let h = qh[l];
                let q1 = ((ql[l] & 0x0F) | ((h & 3) << 4)) as i8 - 32;
                let q2 = ((ql[l + 32] & 0x0F) | (((h >> 2) & 3) << 4)) as i8 - 32;
                let q3 = ((ql[l] >> 4) | (((h >> 4) & 3) << 4)) as i8 - 32;
                let q4 = ((ql[l + 32] >> 4) | (((h >> 6) & 3) << 4)) as i8 - 32;
                let is = l / 16;
                y[l] = sc[is] * f32::from(q1);
                y[l + 32] = sc[is + 2] * f32::from(q2);
                y[l + 64] = sc[is + 4] * f32::from(q3);
                y[l + 96] = sc[is + 6] * f32::from(q4);
            }
        }
    }
}

/// Scale and 32 quants of Q8_0 block `block` of a row, for quantised dot products that work on
/// blocks directly instead of dequantising; `None` past the end of `row`.
pub fn q8_0_block(row: &[u8], block: usize) -> Option<(f32, [i8; 32])> {
    let start = block.checked_mul(34)?;
    let b = row.get(start..start.checked_add(34)?)?;
    let mut qs = [0i8; 32];
    for (q, &byte) in qs.iter_mut().zip(&b[2..34]) {
        *q = byte as i8;
    }
    Some((half_at(b, 0), qs))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn f16_bytes(x: f32) -> [u8; 2] {
        f16::from_f32(x).to_bits().to_le_bytes()
    }

    #[test]
    fn q8_0_hand_block() {
        let mut b = f16_bytes(0.5).to_vec();
        b.extend((0..32).map(|i| (i as i8 - 16) as u8));
        let y = dequantize(GgmlType::Q8_0, &b, 32).expect("valid block");
        let want: Vec<f32> = (0..32).map(|i| (i as f32 - 16.0) * 0.5).collect();
        assert_eq!(y, want);
        let (d, qs) = q8_0_block(&b, 0).expect("block 0 exists");
        assert_eq!((d, qs[0], qs[31]), (0.5, -16, 15));
        assert!(q8_0_block(&b, 1).is_none());
    }

    #[test]
    fn q4_0_nibble_order() {
        // byte j holds element j (low nibble) and element j + 16 (high nibble)
        let mut b = f16_bytes(2.0).to_vec();
        b.extend((0..16).map(|j| (j as u8) | (15 - j as u8) << 4));
        let y = dequantize(GgmlType::Q4_0, &b, 32).expect("valid block");
        for j in 0..16 {
            assert_eq!(y[j], (j as f32 - 8.0) * 2.0);
            assert_eq!(y[j + 16], (7.0 - j as f32) * 2.0);
        }
    }

    #[test]
    fn size_mismatch_is_an_error() {
        assert!(matches!(
            dequantize(GgmlType::Q4_K, &[0; 143], 256),
            Err(GgufError::SizeMismatch { .. })
        ));
        assert!(matches!(
            dequantize(GgmlType::Q8_0, &[0; 34], 33),
            Err(GgufError::SizeMismatch { .. })
        ));
        assert!(matches!(
            dequantize(GgmlType::IQ2_XS, &[0; 74], 256),
            Err(GgufError::UnsupportedDequant(_))
        ));
    }

    #[test]
    fn parallel_and_serial_paths_agree() {
        // deterministic pseudo-random bytes with sane scales
        let n_blocks = PARALLEL_THRESHOLD / QK_K * 2 + 3;
        let mut state = 0x1234_5678u32;
        let mut data: Vec<u8> = (0..n_blocks * 210)
            .map(|_| {
                state ^= state << 13;
                state ^= state >> 17;
                state ^= state << 5;
                state as u8
            })
            .collect();
        for b in data.chunks_exact_mut(210) {
            b[208..210].copy_from_slice(&f16_bytes(0.01));
        }
        let par = dequantize(GgmlType::Q6_K, &data, n_blocks * QK_K).expect("valid");
        let mut ser = vec![0f32; n_blocks * QK_K];
        dequant_q6_k(&data, &mut ser);
        assert_eq!(par, ser);
    }
}
