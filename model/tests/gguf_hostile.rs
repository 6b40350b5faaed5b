//! Truncated, corrupted and hostile GGUF files: each must be a typed error naming the right
//! byte offset, never a panic and never a huge allocation.

use std::path::PathBuf;

use model::gguf::{GgmlType, GgufContent, GgufError, GgufFile};

fn fixture(name: &str) -> Vec<u8> {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../tests/fixtures/gguf")
        .join(name);
    std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// Builds GGUF bytes field by field, so each test can break exactly one thing.
#[derive(Default)]
struct Gguf {
    b: Vec<u8>,
}

impl Gguf {
    fn header(tensors: u64, kvs: u64) -> Gguf {
        let mut g = Gguf::default();
        g.b.extend(b"GGUF");
        g.u32(3).u64(tensors).u64(kvs);
        g
    }
    fn u8(&mut self, v: u8) -> &mut Self {
        self.b.push(v);
        self
    }
    fn u32(&mut self, v: u32) -> &mut Self {
        self.b.extend(v.to_le_bytes());
        self
    }
    fn u64(&mut self, v: u64) -> &mut Self {
        self.b.extend(v.to_le_bytes());
        self
    }
    fn str(&mut self, s: &str) -> &mut Self {
        self.u64(s.len() as u64);
        self.b.extend(s.as_bytes());
        self
    }
    /// A u32-valued metadata entry.
    fn kv_u32(&mut self, key: &str, v: u32) -> &mut Self {
        self.str(key).u32(4).u32(v)
    }
    fn tensor(&mut self, name: &str, dims: &[u64], ty: u32, offset: u64) -> &mut Self {
        self.str(name).u32(dims.len() as u32);
        for &d in dims {
            self.u64(d);
        }
        self.u32(ty).u64(offset)
    }
    /// Pads to 32 and appends `n` data bytes.
    fn data(&mut self, n: usize) -> &mut Self {
        while !self.b.len().is_multiple_of(32) {
            self.b.push(0);
        }
        self.b.extend(std::iter::repeat_n(0x11u8, n));
        self
    }
    fn pos(&self) -> u64 {
        self.b.len() as u64
    }
    fn parse(&self) -> Result<GgufContent, GgufError> {
        GgufContent::parse(&self.b)
    }
}

/// Parses and returns the error, failing the test if the bytes were accepted.
fn reject(g: &Gguf) -> GgufError {
    match g.parse() {
        Ok(c) => panic!("accepted: {c:?}"),
        Err(e) => e,
    }
}

/// The end of the furthest tensor's data: the shortest prefix that still holds every tensor.
fn data_end(c: &GgufContent) -> u64 {
    c.tensors
        .iter()
        .map(|t| t.data_start + t.n_bytes)
        .max()
        .unwrap_or(c.data_offset.min(c.file_len))
}

/// Checks the prefixes of fixture `name` whose lengths `lengths` yields: a prefix missing any
/// tensor byte must be rejected with a truncation-type error, one missing only trailing
/// padding is accepted (every tensor byte is there; llama.cpp's loader accepts it too).
fn check_prefixes(name: &str, lengths: impl Fn(&GgufContent, usize) -> Vec<usize>) -> usize {
    let bytes = fixture(name);
    let full = GgufContent::parse(&bytes).unwrap_or_else(|e| panic!("{name}: {e}"));
    let needed = data_end(&full);
    let lengths = lengths(&full, bytes.len());
    for &n in &lengths {
        let result = GgufContent::parse(&bytes[..n]);
        if (n as u64) < needed {
            let err = result
                .err()
                .unwrap_or_else(|| panic!("{name}: prefix of {n} bytes accepted"));
            match err {
                // inside the header or directory: reported where the missing field starts
                GgufError::Truncated {
                    offset,
                    needed,
                    available,
                    ..
                } => {
                    assert!(
                        offset + available == n as u64 && needed > available,
                        "{name}@{n}: {err}"
                    );
                }
                // a count checked against the bytes left, before they were read
                GgufError::CountTooLarge { offset, .. } => {
                    assert!(offset < n as u64, "{name}@{n}: {err}")
                }
                // inside the data section
                GgufError::TensorOutOfBounds { file_len, end, .. } => {
                    assert!(file_len == n as u64 && end > file_len, "{name}@{n}: {err}");
                }
                other => panic!("{name}: prefix of {n} bytes gave an unexpected error: {other}"),
            }
        } else {
            assert!(
                result.is_ok(),
                "{name}: prefix of {n} bytes (all tensor data present) rejected"
            );
        }
    }
    lengths.len()
}

#[test]
fn every_truncation_of_the_types_fixture_is_an_error() {
    let checked = check_prefixes("types.gguf", |_, len| (0..len).collect());
    assert!(checked > 14_000);
}

#[test]
fn every_truncation_of_a_model_fixture_is_an_error() {
    let checked = check_prefixes("micro_llama.gguf", |_, len| (0..len).collect());
    assert!(checked > 20_000);
}

#[test]
fn truncations_of_a_larger_model_fixture_are_errors() {
    // Every prefix through the directory and the first tensor, then every prefix within 40
    // bytes of each tensor's start and end, then a stride through the rest (all 200k prefixes
    // would take a minute in a debug build and test nothing the others do not).
    check_prefixes("tiny_qwen3.gguf", |c, len| {
        let mut n: Vec<usize> = (0..(c.data_offset as usize + 2048).min(len)).collect();
        for t in &c.tensors {
            for edge in [t.data_start as usize, (t.data_start + t.n_bytes) as usize] {
                n.extend(edge.saturating_sub(40)..(edge + 40).min(len));
            }
        }
        n.extend((0..len).step_by(97));
        n.sort_unstable();
        n.dedup();
        n
    });
}

#[test]
fn bad_magic() {
    let mut g = Gguf::header(0, 0);
    g.b[0..4].copy_from_slice(b"GGML");
    assert!(matches!(reject(&g), GgufError::BadMagic { found } if &found == b"GGML"));
}

#[test]
fn unsupported_versions() {
    for v in [0u32, 1, 4, 0xFFFF_FFFF] {
        let mut g = Gguf::header(0, 0);
        g.b[4..8].copy_from_slice(&v.to_le_bytes());
        assert!(
            matches!(reject(&g), GgufError::UnsupportedVersion { offset: 4, version } if version == v)
        );
    }
    // a big-endian v3 file reads its version byte-swapped
    let mut g = Gguf::header(0, 0);
    g.b[4..8].copy_from_slice(&3u32.to_be_bytes());
    assert!(matches!(reject(&g), GgufError::BigEndian { offset: 4 }));
}

#[test]
fn absurd_counts_are_rejected_before_allocation() {
    let e = reject(&Gguf::header(u64::MAX, 0));
    assert!(
        matches!(
            e,
            GgufError::CountTooLarge {
                offset: 8,
                count: u64::MAX,
                ..
            }
        ),
        "{e}"
    );
    let e = reject(&Gguf::header(0, 1 << 40));
    assert!(
        matches!(e, GgufError::CountTooLarge { offset: 16, .. }),
        "{e}"
    );

    // a key whose length claims 2^62 bytes
    let mut g = Gguf::header(0, 1);
    g.u64(1 << 62).u32(0).u64(0);
    assert!(matches!(
        reject(&g),
        GgufError::CountTooLarge {
            offset: 24,
            count: 0x4000_0000_0000_0000,
            ..
        }
    ));

    // an array of 2^61 u64, and one whose length times element size overflows u64
    for (ty, count) in [(10u32, 1u64 << 61), (10, u64::MAX / 4), (8, u64::MAX)] {
        let mut g = Gguf::header(0, 1);
        g.str("k").u32(9);
        let count_at = g.pos() + 4;
        g.u32(ty).u64(count).u64(0);
        let e = reject(&g);
        assert!(
            matches!(e, GgufError::CountTooLarge { offset, .. } if offset == count_at),
            "{e}"
        );
    }
}

#[test]
fn unknown_value_types() {
    let mut g = Gguf::header(0, 1);
    g.str("k");
    let at = g.pos();
    g.u32(13).u32(0);
    assert!(
        matches!(reject(&g), GgufError::UnknownValueType { offset, type_id: 13 } if offset == at)
    );

    let mut g = Gguf::header(0, 1);
    g.str("k").u32(9);
    let at = g.pos();
    g.u32(0xFFFF_FFFF).u64(1);
    assert!(matches!(reject(&g), GgufError::UnknownValueType { offset, .. } if offset == at));
}

#[test]
fn nesting_is_bounded() {
    // 100 levels of one-element arrays of arrays
    let mut g = Gguf::header(0, 1);
    g.str("k").u32(9);
    for _ in 0..100 {
        g.u32(9).u64(1);
    }
    g.u32(0).u64(0);
    assert!(matches!(
        reject(&g),
        GgufError::NestingTooDeep { max: 8, .. }
    ));

    // depth 8 is fine
    let mut g = Gguf::header(0, 1);
    g.str("k").u32(9);
    for _ in 0..7 {
        g.u32(9).u64(1);
    }
    g.u32(0).u64(0);
    assert!(g.parse().is_ok());
}

#[test]
fn invalid_scalars() {
    let mut g = Gguf::header(0, 1);
    g.str("k").u32(7);
    let at = g.pos();
    g.u8(2);
    assert!(matches!(reject(&g), GgufError::InvalidBool { offset, value: 2 } if offset == at));

    let mut g = Gguf::header(0, 1);
    g.u64(2);
    g.b.extend([0xC3, 0x28]); // invalid UTF-8
    g.u32(0).u8(0);
    assert!(matches!(
        reject(&g),
        GgufError::InvalidUtf8 {
            offset: 24,
            what: "metadata key"
        }
    ));

    let mut g = Gguf::header(0, 2);
    g.kv_u32("a", 1);
    let at = g.pos();
    g.kv_u32("a", 2);
    assert!(matches!(reject(&g), GgufError::DuplicateKey { offset, .. } if offset == at));
}

#[test]
fn bad_alignment() {
    for a in [0u32, 3, 48] {
        let mut g = Gguf::header(0, 1);
        g.str("general.alignment").u32(4);
        let at = g.pos();
        g.u32(a);
        assert!(
            matches!(reject(&g), GgufError::BadAlignment { offset, .. } if offset == at),
            "alignment {a}"
        );
    }
    // stored as u64: llama.cpp requires u32
    let mut g = Gguf::header(0, 1);
    g.str("general.alignment").u32(10).u64(32);
    assert!(matches!(reject(&g), GgufError::BadAlignment { .. }));

    // a valid custom alignment moves the data section
    let mut g = Gguf::header(1, 1);
    g.kv_u32("general.alignment", 64).tensor("t", &[4], 0, 0);
    while !g.b.len().is_multiple_of(64) {
        g.u8(0);
    }
    g.b.extend([0u8; 16]);
    let c = g.parse().expect("valid");
    assert_eq!((c.alignment, c.data_offset % 64), (64, 0));
}

#[test]
fn bad_tensor_directory_entries() {
    let dims_overflow = [1u64 << 32, 1 << 32, 1 << 32];
    /// (ggml dims, type id, data offset, the error expected)
    type Case<'a> = (&'a [u64], u32, u64, fn(&GgufError) -> bool);
    let cases: [Case<'_>; 7] = [
        (&[1, 1, 1, 1, 1], 0, 0, |e| {
            matches!(e, GgufError::TooManyDims { n_dims: 5, .. })
        }),
        (&dims_overflow, 0, 0, |e| {
            matches!(e, GgufError::ShapeOverflow { .. })
        }),
        (&[u64::MAX, 0], 0, 0, |e| {
            matches!(e, GgufError::ShapeOverflow { .. })
        }),
        (&[32], 4, 0, |e| {
            matches!(e, GgufError::UnknownTensorType { type_id: 4, .. })
        }),
        (&[32], 1000, 0, |e| {
            matches!(e, GgufError::UnknownTensorType { type_id: 1000, .. })
        }),
        (&[33], GgmlType::Q8_0.id(), 0, |e| {
            matches!(
                e,
                GgufError::RowNotBlockAligned {
                    ne0: 33,
                    block_size: 32,
                    ..
                }
            )
        }),
        (&[8], 0, 1, |e| {
            matches!(
                e,
                GgufError::MisalignedTensor {
                    data_offset: 1,
                    alignment: 32,
                    ..
                }
            )
        }),
    ];
    for (dims, ty, offset, check) in cases {
        let mut g = Gguf::header(1, 0);
        g.tensor("t", dims, ty, offset).data(64);
        let e = reject(&g);
        assert!(check(&e), "dims {dims:?} type {ty} offset {offset}: {e}");
    }

    // a tensor whose data runs past the end, and one whose offset overflows
    for (offset, n_data) in [(0u64, 31usize), (32, 32), (u64::MAX - 31, 64)] {
        let mut g = Gguf::header(1, 0);
        g.tensor("t", &[8], 0, offset).data(n_data);
        let e = reject(&g);
        assert!(
            matches!(e, GgufError::TensorOutOfBounds { offset: 24, .. }),
            "offset {offset}: {e}"
        );
    }

    // two tensors sharing bytes; a third, empty one anywhere is fine
    let mut g = Gguf::header(3, 0);
    g.tensor("a", &[8], 0, 0).tensor("empty", &[0], 0, 32);
    let at = g.pos();
    g.tensor("b", &[8], 0, 32).data(96);
    assert!(g.parse().is_ok(), "adjacent tensors do not overlap");
    g.b[at as usize + 9 + 4 + 8 + 4..][..8].copy_from_slice(&0u64.to_le_bytes());
    let e = reject(&g);
    assert!(
        matches!(&e, GgufError::TensorOverlap { offset, name, other } if *offset == at && name == "b" && other == "a"),
        "{e}"
    );

    let mut g = Gguf::header(2, 0);
    g.tensor("t", &[8], 0, 0);
    let at = g.pos();
    g.tensor("t", &[8], 0, 32).data(64);
    assert!(matches!(reject(&g), GgufError::DuplicateTensor { offset, .. } if offset == at));
}

#[test]
fn zero_sized_and_zero_dimensional_tensors() {
    let mut g = Gguf::header(2, 0);
    g.tensor("empty", &[0, 5], 0, 0)
        .tensor("scalar", &[], 0, 0)
        .data(4);
    let c = g.parse().expect("valid");
    assert_eq!(c.tensors[0].n_bytes, 0);
    assert_eq!((c.tensors[1].n_elements, c.tensors[1].n_bytes), (1, 4));
    assert_eq!(c.tensors[1].shape(), Vec::<usize>::new());
}

#[test]
fn random_corruption_never_panics() {
    // A deterministic stand-in for the fuzzer that runs in every `cargo test`: flip bytes of a
    // real file and parse (and, when it parses, dequantise everything).
    let base = fixture("types.gguf");
    let directory_end = GgufContent::parse(&base)
        .expect("fixture parses")
        .data_offset as usize;
    let mut state = 0x9E37_79B9_7F4A_7C15u64;
    let mut next = move || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        state
    };
    let mut accepted = 0;
    for _ in 0..3000 {
        let mut bytes = base.clone();
        for _ in 0..(next() % 4 + 1) {
            // mostly hit the header and directory, where the parser lives
            let i = (next() as usize) % directory_end;
            bytes[i] = next() as u8;
        }
        if let Ok(c) = GgufContent::parse(&bytes) {
            accepted += 1;
            for t in &c.tensors {
                let data = c.tensor_bytes(&bytes, t).expect("in bounds after parse");
                let _ = model::gguf::dequantize(t.ggml_type, data, t.n_elements as usize);
            }
        }
    }
    assert!(
        accepted > 0,
        "some corruptions (in string contents, values) are benign"
    );
}

#[test]
fn opening_missing_and_non_gguf_files() {
    let e = GgufFile::open("/nonexistent/model.gguf").expect_err("missing file");
    assert!(matches!(e, GgufError::Io { .. }), "{e}");
    let dir = tempfile::tempdir().expect("tempdir");
    let empty = dir.path().join("empty.gguf");
    std::fs::write(&empty, b"").expect("write");
    let e = GgufFile::open(&empty).expect_err("empty file");
    assert!(
        matches!(
            e,
            GgufError::Truncated { offset: 0, .. } | GgufError::Io { .. }
        ),
        "{e}"
    );
}
