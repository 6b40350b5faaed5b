//! Length of the longest common subsequence of two token-id sequences.
//!
//! [`lcs_len`] and [`BitPattern`] use the bit-parallel algorithm of Allison and Dix (1986) in
//! Hyyrö's formulation (2004): the pattern `a` (length `m`) becomes one bit mask per distinct
//! token, `M[x]` with bit `i` set where `a[i] == x`; a bit vector `V`, all ones, is updated once
//! per token `y` of the text as
//!
//! ```text
//! U = V & M[y];   V = (V + U) | (V & !M[y])
//! ```
//!
//! and the LCS length is the number of zero bits among the low `m` bits of `V`. Patterns longer
//! than 64 tokens use several 64-bit words with the carry of the addition passed upward, so the
//! cost is `ceil(m / 64) * n` word operations instead of the `m * n` cells of the table.
//!
//! [`lcs_dp`] is the plain dynamic programme of `rouge_score._lcs_table`, kept as the oracle the
//! property tests check the fast paths against.

/// Slot value meaning "this token does not occur in the pattern".
pub const NO_SLOT: u32 = u32::MAX;

/// LCS length by the textbook O(m·n) table (two rows). The reference for the bit-parallel code.
pub fn lcs_dp<T: PartialEq>(a: &[T], b: &[T]) -> usize {
    if a.is_empty() || b.is_empty() {
        return 0;
    }
    let mut prev = vec![0usize; b.len() + 1];
    let mut cur = vec![0usize; b.len() + 1];
    for x in a {
        for (j, y) in b.iter().enumerate() {
            cur[j + 1] = if x == y {
                prev[j] + 1
            } else {
                prev[j + 1].max(cur[j])
            };
        }
        std::mem::swap(&mut prev, &mut cur);
    }
    prev[b.len()]
}

/// LCS length of two token-id sequences, bit-parallel. The shorter sequence is the pattern.
///
/// Pattern masks are found through a per-thread table indexed by token id when ids are small
/// (interned ids are), otherwise by a scan of the pattern (at most 64 tokens) or binary search.
pub fn lcs_len(a: &[u32], b: &[u32]) -> usize {
    let (p, t) = if a.len() <= b.len() { (a, b) } else { (b, a) };
    if p.is_empty() {
        return 0;
    }
    if p.len() <= 64 {
        let dense = DENSE.with(|d| d.try_borrow_mut().ok().and_then(|mut d| d.lcs_word(p, t)));
        return dense.unwrap_or_else(|| lcs_short(p, t));
    }
    let max_id = p.iter().copied().max().unwrap_or(0);
    if max_id < DENSE_LIMIT {
        let dense = DENSE.with(|d| {
            d.try_borrow_mut()
                .ok()
                .map(|mut d| d.lcs_words(p, t, max_id))
        });
        if let Some(l) = dense {
            return l;
        }
    }
    BitPattern::from_ids(p).lcs_ids(t)
}

/// Token ids below this use the per-thread dense tables (at most 8 MiB of masks per thread).
const DENSE_LIMIT: u32 = 1 << 20;

/// Per-thread tables indexed by token id, all zero / [`NO_SLOT`] between calls.
#[derive(Default)]
struct Dense {
    mask: Vec<u64>,
    slot: Vec<u32>,
}

thread_local! {
    static DENSE: std::cell::RefCell<Dense> =
        const { std::cell::RefCell::new(Dense { mask: Vec::new(), slot: Vec::new() }) };
}

impl Dense {
    /// Single-word pattern (at most 64 tokens); `None` when an id is too large for the table.
    fn lcs_word(&mut self, p: &[u32], t: &[u32]) -> Option<usize> {
        for (i, &x) in p.iter().enumerate() {
            let x = x as usize;
            if x >= self.mask.len() {
                if x >= DENSE_LIMIT as usize {
                    for &y in &p[..i] {
                        self.mask[y as usize] = 0;
                    }
                    return None;
                }
                self.mask.resize(x + 1, 0);
            }
            self.mask[x] |= 1u64 << i;
        }
        let mut v = !0u64;
        for &y in t {
            let m = self.mask.get(y as usize).copied().unwrap_or(0);
            v = v.wrapping_add(v & m) | (v & !m);
        }
        for &x in p {
            self.mask[x as usize] = 0;
        }
        Some(count_zeros_low(v, p.len()))
    }

    /// Multi-word pattern over slots, every id below `max_id + 1 <= DENSE_LIMIT`.
    fn lcs_words(&mut self, p: &[u32], t: &[u32], max_id: u32) -> usize {
        let need = max_id as usize + 1;
        if self.slot.len() < need {
            self.slot.resize(need, NO_SLOT);
        }
        let mut n_slots = 0u32;
        let mut slots = Vec::with_capacity(p.len());
        for &x in p {
            let s = &mut self.slot[x as usize];
            if *s == NO_SLOT {
                *s = n_slots;
                n_slots += 1;
            }
            slots.push(*s);
        }
        let mut bp = BitPattern::from_slots(&slots, n_slots as usize);
        let slot = &self.slot;
        let r = bp.lcs_slots(
            t.iter()
                .map(|&y| slot.get(y as usize).copied().unwrap_or(NO_SLOT)),
        );
        for &x in p {
            self.slot[x as usize] = NO_SLOT;
        }
        r
    }
}

/// Single-word case for ids too large for the dense table: the mask of each text token is built
/// by a branch-free scan of the pattern.
fn lcs_short(p: &[u32], t: &[u32]) -> usize {
    debug_assert!(!p.is_empty() && p.len() <= 64);
    let mut v = !0u64;
    for &y in t {
        let mut m = 0u64;
        for (i, &x) in p.iter().enumerate() {
            m |= u64::from(x == y) << i;
        }
        v = v.wrapping_add(v & m) | (v & !m);
    }
    count_zeros_low(v, p.len())
}

#[inline]
fn count_zeros_low(v: u64, bits: usize) -> usize {
    let valid = if bits >= 64 {
        !0u64
    } else {
        (1u64 << bits) - 1
    };
    (!v & valid).count_ones() as usize
}

/// A pattern prepared for bit-parallel LCS against many texts: one mask per distinct pattern
/// token ("slot"), `words` 64-bit words each.
#[derive(Debug, Clone, Default)]
pub struct BitPattern {
    len: usize,
    words: usize,
    /// Sorted distinct pattern ids, for [`BitPattern::lcs_ids`]; `slot` = position here.
    ids: Vec<u32>,
    /// `masks[slot * words + w]`.
    masks: Vec<u64>,
    /// Scratch state vector for the multi-word case.
    v: Vec<u64>,
}

impl BitPattern {
    /// Prepares `pattern` (token ids). Slots are the pattern's distinct ids in increasing order.
    pub fn from_ids(pattern: &[u32]) -> Self {
        let mut ids: Vec<u32> = pattern.to_vec();
        ids.sort_unstable();
        ids.dedup();
        let slots: Vec<u32> = pattern
            .iter()
            .map(|x| ids.binary_search(x).map_or(NO_SLOT, |s| s as u32))
            .collect();
        let mut bp = BitPattern::from_slots(&slots, ids.len());
        bp.ids = ids;
        bp
    }

    /// Prepares a pattern given as slot numbers (`0..n_slots`); [`NO_SLOT`] entries match nothing.
    /// Callers that map ids to slots themselves (the near-duplicate index keeps a dense table)
    /// use this with [`BitPattern::lcs_slots`].
    pub fn from_slots(slots: &[u32], n_slots: usize) -> Self {
        let len = slots.len();
        let words = len.div_ceil(64).max(1);
        let mut masks = vec![0u64; n_slots * words];
        for (i, &s) in slots.iter().enumerate() {
            if s != NO_SLOT {
                masks[s as usize * words + i / 64] |= 1u64 << (i % 64);
            }
        }
        BitPattern {
            len,
            words,
            ids: Vec::new(),
            masks,
            v: vec![!0u64; words],
        }
    }

    /// Pattern length in tokens.
    pub fn len(&self) -> usize {
        self.len
    }

    /// True for the empty pattern.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// LCS length against a text given as token ids (pattern built by [`BitPattern::from_ids`]).
    pub fn lcs_ids(&mut self, text: &[u32]) -> usize {
        let ids = std::mem::take(&mut self.ids);
        let r = self.lcs_slots(
            text.iter()
                .map(|x| ids.binary_search(x).map_or(NO_SLOT, |s| s as u32)),
        );
        self.ids = ids;
        r
    }

    /// LCS length against a text given as the slot of each of its tokens ([`NO_SLOT`] for
    /// tokens absent from the pattern, which leave the state unchanged).
    pub fn lcs_slots(&mut self, text: impl Iterator<Item = u32>) -> usize {
        if self.len == 0 {
            return 0;
        }
        if self.words == 1 {
            let mut v = !0u64;
            for s in text {
                if s != NO_SLOT {
                    let m = self.masks[s as usize];
                    v = v.wrapping_add(v & m) | (v & !m);
                }
            }
            return count_zeros_low(v, self.len);
        }
        let w = self.words;
        self.v.clear();
        self.v.resize(w, !0u64);
        for s in text {
            if s == NO_SLOT {
                continue;
            }
            let m = &self.masks[s as usize * w..(s as usize + 1) * w];
            let mut carry = false;
            for (vw, &mw) in self.v.iter_mut().zip(m) {
                let x = *vw;
                let (s1, c1) = x.overflowing_add(x & mw);
                let (s2, c2) = s1.overflowing_add(u64::from(carry));
                carry = c1 | c2;
                *vw = s2 | (x & !mw);
            }
        }
        let full = self.len / 64;
        let mut zeros: usize = self.v[..full]
            .iter()
            .map(|x| x.count_zeros() as usize)
            .sum();
        if !self.len.is_multiple_of(64) {
            zeros += count_zeros_low(self.v[full], self.len % 64);
        }
        zeros
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn small_cases() {
        assert_eq!(lcs_len(&[], &[1, 2]), 0);
        assert_eq!(lcs_len(&[1, 2, 3], &[]), 0);
        assert_eq!(lcs_len(&[1, 2, 3, 4], &[2, 4, 1, 3]), 2);
        assert_eq!(lcs_len(&[7; 10], &[7; 3]), 3);
        assert_eq!(lcs_dp(&[1, 2, 3, 4], &[2, 4, 1, 3]), 2);
    }

    #[test]
    fn word_boundaries() {
        for n in [63usize, 64, 65, 127, 128, 129, 200] {
            let a: Vec<u32> = (0..n as u32).collect();
            let b: Vec<u32> = (0..n as u32).rev().collect();
            assert_eq!(lcs_len(&a, &a), n, "n={n}");
            assert_eq!(lcs_len(&a, &b), 1, "n={n}");
            let mut p = BitPattern::from_ids(&a);
            assert_eq!(p.lcs_ids(&a), n);
        }
    }

    fn seq(alphabet: u32, max_len: usize) -> impl Strategy<Value = Vec<u32>> {
        prop::collection::vec(0..alphabet, 0..max_len)
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(400))]

        #[test]
        fn bit_parallel_equals_dp(alpha in 1u32..12, a in seq(12, 300), b in seq(12, 300)) {
            let a: Vec<u32> = a.into_iter().map(|x| x % alpha).collect();
            let b: Vec<u32> = b.into_iter().map(|x| x % alpha).collect();
            let want = lcs_dp(&a, &b);
            prop_assert_eq!(lcs_len(&a, &b), want);
            prop_assert_eq!(lcs_len(&b, &a), want);
            let mut p = BitPattern::from_ids(&a);
            prop_assert_eq!(p.lcs_ids(&b), want);
            prop_assert_eq!(p.lcs_ids(&b), want, "pattern reuse");
        }

        #[test]
        fn large_ids_take_the_sorted_path(a in seq(6, 150), b in seq(6, 150)) {
            let big = |v: &[u32]| v.iter().map(|x| u32::MAX - 7 + x).collect::<Vec<_>>();
            prop_assert_eq!(lcs_len(&big(&a), &big(&b)), lcs_dp(&a, &b));
        }

        #[test]
        fn short_sequences_binary_alphabet(a in seq(2, 70), b in seq(2, 70)) {
            prop_assert_eq!(lcs_len(&a, &b), lcs_dp(&a, &b));
        }
    }
}
