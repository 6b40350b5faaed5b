//! The `openai` generator against a scripted OpenAI-compatible server on loopback: real HTTP,
//! the real client, every retry and failure path the pipeline relies on.

mod openai_server;

use std::time::{Duration, Instant};

use openai_server::{dead_url, Reply, Request, Server};
use pipeline::generator::openai::{Endpoint, OpenAiConfig, OpenAiGenerator};
use pipeline::generator::{
    ChatMessage, FinishReason, GenRequest, Generation, Generator, Prompt, SamplingParams,
};
use serde_json::{json, Value};

/// Fast retries, a generous timeout, no API key: what most tests want.
fn config(urls: Vec<String>) -> OpenAiConfig {
    OpenAiConfig {
        max_retries: 3,
        initial_backoff_ms: 1,
        max_backoff_ms: 20,
        request_timeout_s: 10.0,
        api_key_env: None,
        ..OpenAiConfig::new(urls, "test-model")
    }
}

fn text(prompt: &str) -> GenRequest {
    GenRequest {
        prompt: Prompt::Text(prompt.to_string()),
        params: SamplingParams::default(),
    }
}

fn completion(text: &str, finish: &str) -> Value {
    json!({"id": "cmpl-1", "object": "text_completion", "model": "test-model",
           "choices": [{"index": 0, "text": text, "finish_reason": finish, "logprobs": null}],
           "usage": {"prompt_tokens": 11, "completion_tokens": 9, "total_tokens": 20}})
}

/// A numbered list that continues the prompt at "9.", naming the prompt so order can be checked.
fn numbered_list(req: &Request) -> Value {
    let p = req.prompt();
    completion(
        &format!(" Describe {p}.\n10. Summarise {p}.\n11. Translate {p}."),
        "stop",
    )
}

fn ok<E: std::fmt::Display>(result: &Result<Generation, E>) -> &Generation {
    match result {
        Ok(g) => g,
        Err(e) => panic!("request failed: {e:#}"),
    }
}

fn err<E: std::fmt::Display>(result: &Result<Generation, E>) -> String {
    match result {
        Ok(g) => panic!("request succeeded: {g:?}"),
        Err(e) => format!("{e:#}"),
    }
}

#[test]
fn numbered_list_completions_in_request_order_with_every_parameter() {
    let server = Server::start(|req, _| Reply::ok(numbered_list(req)));
    let generator = OpenAiGenerator::new(config(vec![server.url()])).expect("generator");
    let params = SamplingParams {
        max_tokens: 1024,
        temperature: 0.7,
        top_p: 0.5,
        presence_penalty: 2.0,
        frequency_penalty: 0.0,
        stop: vec!["\n\n".into(), "\n16".into(), "16.".into(), "16 .".into()],
        n: 1,
        seed: Some(7),
    };
    let mut requests: Vec<GenRequest> = (0..6).map(|i| text(&format!("p{i}"))).collect();
    requests[0].params = params;
    let results = generator.generate(&requests);
    assert_eq!(results.len(), 6);
    for (i, result) in results.iter().enumerate() {
        let g = ok(result);
        assert_eq!(g.samples.len(), 1);
        assert_eq!(
            g.samples[0].text,
            format!(" Describe p{i}.\n10. Summarise p{i}.\n11. Translate p{i}.")
        );
        assert_eq!(g.samples[0].finish_reason, FinishReason::Stop);
        assert_eq!(g.samples[0].completion_tokens, Some(9));
        assert_eq!(g.prompt_tokens, Some(11));
        assert_eq!(g.generator, format!("openai:test-model@{}", server.url()));
    }

    let received = server.requests();
    assert_eq!(received.len(), 6);
    for r in &received {
        assert_eq!(r.method, "POST");
        assert_eq!(r.path, "/v1/completions");
        assert_eq!(r.header("content-type"), Some("application/json"));
        assert_eq!(r.header("authorization"), None);
    }
    let first = received
        .iter()
        .find(|r| r.prompt() == "p0")
        .expect("p0 sent");
    assert_eq!(
        first.body,
        json!({"model": "test-model", "prompt": "p0", "max_tokens": 1024, "temperature": 0.7,
               "top_p": 0.5, "presence_penalty": 2.0, "frequency_penalty": 0.0,
               "stop": ["\n\n", "\n16", "16.", "16 ."], "n": 1, "seed": 7})
    );
    let plain = received
        .iter()
        .find(|r| r.prompt() == "p1")
        .expect("p1 sent");
    let keys: Vec<&str> = plain
        .body
        .as_object()
        .expect("object")
        .keys()
        .map(String::as_str)
        .collect();
    assert!(
        !keys.contains(&"stop") && !keys.contains(&"seed"),
        "{keys:?}"
    );
}

#[test]
fn truncated_response_reports_length() {
    let server = Server::start(|_, _| Reply::ok(completion(" Write a story about", "length")));
    let generator = OpenAiGenerator::new(config(vec![server.url()])).expect("generator");
    let results = generator.generate(&[text("p")]);
    let g = ok(&results[0]);
    assert_eq!(g.samples[0].finish_reason, FinishReason::Length);
    assert_eq!(g.samples[0].text, " Write a story about");
}

#[test]
fn rate_limit_429_is_retried_after_retry_after() {
    // Retry-After: 0 with a huge backoff: the server's word wins, so the retry comes at once.
    let server = Server::start(|req, seen| match seen {
        0 => Reply::json(429, json!({"error": {"message": "slow down"}}))
            .with_header("Retry-After", "0"),
        _ => Reply::ok(numbered_list(req)),
    });
    let generator = OpenAiGenerator::new(OpenAiConfig {
        initial_backoff_ms: 60_000,
        max_backoff_ms: 60_000,
        ..config(vec![server.url()])
    })
    .expect("generator");
    let started = Instant::now();
    let results = generator.generate(&[text("a"), text("b")]);
    assert!(
        started.elapsed() < Duration::from_secs(8),
        "{:?}",
        started.elapsed()
    );
    assert!(ok(&results[0]).samples[0].text.contains("Describe a"));
    assert!(ok(&results[1]).samples[0].text.contains("Describe b"));
    assert_eq!(server.count("a"), 2);
    assert_eq!(server.count("b"), 2);

    // Retry-After: 1 with no backoff at all: the retry waits the second out.
    let server = Server::start(|req, seen| match seen {
        0 => Reply::json(429, json!({"error": "busy"})).with_header("Retry-After", "1"),
        _ => Reply::ok(numbered_list(req)),
    });
    let generator = OpenAiGenerator::new(OpenAiConfig {
        initial_backoff_ms: 0,
        max_backoff_ms: 0,
        ..config(vec![server.url()])
    })
    .expect("generator");
    let started = Instant::now();
    let results = generator.generate(&[text("c")]);
    ok(&results[0]);
    assert!(
        started.elapsed() >= Duration::from_millis(950),
        "{:?}",
        started.elapsed()
    );
    assert_eq!(server.count("c"), 2);
}

#[test]
fn server_error_500_is_retried() {
    let server = Server::start(|req, seen| match seen {
        0 => Reply::raw(500, "Internal Server Error"),
        _ => Reply::ok(numbered_list(req)),
    });
    let generator = OpenAiGenerator::new(config(vec![server.url()])).expect("generator");
    let results = generator.generate(&[text("x")]);
    assert!(ok(&results[0]).samples[0].text.contains("Describe x"));
    assert_eq!(server.count("x"), 2);
}

#[test]
fn a_body_cut_off_in_transit_is_retried() {
    let server = Server::start(|req, seen| match seen {
        0 => Reply::CutOff {
            sent: "{\"choices\": [{\"text\": \"par".into(),
        },
        _ => Reply::ok(numbered_list(req)),
    });
    let generator = OpenAiGenerator::new(config(vec![server.url()])).expect("generator");
    let results = generator.generate(&[text("cut")]);
    assert!(ok(&results[0]).samples[0].text.contains("Describe cut"));
    assert_eq!(server.count("cut"), 2);
}

#[test]
fn retries_give_up_after_max_retries() {
    let server =
        Server::start(|_, _| Reply::json(503, json!({"error": {"message": "overloaded"}})));
    let generator = OpenAiGenerator::new(OpenAiConfig {
        max_retries: 2,
        ..config(vec![server.url()])
    })
    .expect("generator");
    let results = generator.generate(&[text("x")]);
    let e = err(&results[0]);
    assert!(e.contains("HTTP 503: overloaded"), "{e}");
    assert!(e.contains("gave up after 3 attempts"), "{e}");
    assert_eq!(server.count("x"), 3);
}

#[test]
fn malformed_json_fails_that_request_only_and_names_url_status_and_body() {
    let long_garbage = format!("{{\"choices\": [{}", "x".repeat(2000));
    let server = Server::start(move |req, _| match req.prompt() {
        "bad" => Reply::raw(200, "{\"choices\": [{\"text\": \"cut"),
        "long" => Reply::raw(200, &long_garbage),
        "nochoices" => Reply::ok(json!({"id": "x", "object": "text_completion"})),
        _ => Reply::ok(numbered_list(req)),
    });
    let generator = OpenAiGenerator::new(config(vec![server.url()])).expect("generator");
    let results = generator.generate(&[
        text("good1"),
        text("bad"),
        text("long"),
        text("nochoices"),
        text("good2"),
    ]);
    ok(&results[0]);
    ok(&results[4]);
    let url = format!("{}/v1/completions", server.url());

    let e = err(&results[1]);
    assert!(e.contains(&url), "{e}");
    assert!(e.contains("HTTP 200"), "{e}");
    assert!(e.contains("not valid JSON"), "{e}");
    assert!(e.contains("{\"choices\": [{\"text\": \"cut"), "{e}");

    let e = err(&results[2]);
    assert!(e.contains("not valid JSON") && e.contains("..."), "{e}");
    assert!(e.len() < 600, "body not truncated: {} chars", e.len());

    let e = err(&results[3]);
    assert!(e.contains("no `choices`") && e.contains(&url), "{e}");

    // A malformed 2xx is not retried.
    assert_eq!(server.count("bad"), 1);
    assert_eq!(server.count("long"), 1);
}

#[test]
fn slow_reply_times_out_then_succeeds() {
    let server = Server::start(|req, seen| match seen {
        0 => Reply::ok(numbered_list(req)).after(Duration::from_secs(3)),
        _ => Reply::ok(numbered_list(req)),
    });
    let generator = OpenAiGenerator::new(OpenAiConfig {
        request_timeout_s: 0.5,
        ..config(vec![server.url()])
    })
    .expect("generator");
    let started = Instant::now();
    let results = generator.generate(&[text("slow")]);
    assert!(ok(&results[0]).samples[0].text.contains("Describe slow"));
    assert!(
        started.elapsed() < Duration::from_millis(2500),
        "{:?}",
        started.elapsed()
    );
    assert_eq!(server.count("slow"), 2);
}

#[test]
fn client_errors_are_not_retried_and_carry_the_servers_message() {
    let server = Server::start(|req, _| match req.prompt() {
        "400" => Reply::json(
            400,
            json!({"error": {"message": "max_tokens is too large: 99999", "type": "invalid_request_error"}}),
        ),
        "401" => Reply::json(
            401,
            json!({"error": {"message": "Incorrect API key provided"}}),
        ),
        "404" => Reply::json(404, json!({"detail": "Not Found"})),
        _ => Reply::ok(numbered_list(req)),
    });
    let generator = OpenAiGenerator::new(config(vec![server.url()])).expect("generator");
    let results = generator.generate(&[text("400"), text("401"), text("404"), text("fine")]);
    let e = err(&results[0]);
    assert!(
        e.contains("HTTP 400: max_tokens is too large: 99999"),
        "{e}"
    );
    assert!(
        e.contains(&format!("{}/v1/completions", server.url())),
        "{e}"
    );
    assert!(err(&results[1]).contains("HTTP 401: Incorrect API key provided"));
    assert!(err(&results[2]).contains("HTTP 404: Not Found"));
    ok(&results[3]);
    for p in ["400", "401", "404"] {
        assert_eq!(server.count(p), 1, "{p} was retried");
    }
}

#[test]
fn chat_endpoint_sends_messages_and_reads_message_content() {
    let server = Server::start(|req, _| {
        Reply::ok(json!({"object": "chat.completion", "choices": [{"index": 0,
            "message": {"role": "assistant", "content": format!("Yes: {}", req.prompt())},
            "finish_reason": "stop"}], "usage": {"prompt_tokens": 20, "completion_tokens": 2}}))
    });
    let generator = OpenAiGenerator::new(OpenAiConfig {
        endpoint: Endpoint::Chat,
        // A base URL given with /v1 works as well.
        ..config(vec![format!("{}/v1/", server.url())])
    })
    .expect("generator");
    let chat = GenRequest {
        prompt: Prompt::Chat(vec![
            ChatMessage {
                role: "system".into(),
                content: "Answer Yes or No.".into(),
            },
            ChatMessage {
                role: "user".into(),
                content: "Is this a classification task?".into(),
            },
        ]),
        params: SamplingParams {
            max_tokens: 3,
            ..SamplingParams::default()
        },
    };
    let results = generator.generate(&[chat, text("not a chat")]);
    let g = ok(&results[0]);
    assert_eq!(g.samples[0].text, "Yes: Is this a classification task?");
    assert_eq!(g.samples[0].completion_tokens, Some(2));
    assert_eq!(g.prompt_tokens, Some(20));
    let e = err(&results[1]);
    assert!(
        e.contains("text prompt cannot be sent to the chat endpoint"),
        "{e}"
    );

    let received = server.requests();
    assert_eq!(received.len(), 1, "the mismatched prompt must not be sent");
    assert_eq!(received[0].path, "/v1/chat/completions");
    assert_eq!(
        received[0].body["messages"],
        json!([{"role": "system", "content": "Answer Yes or No."},
               {"role": "user", "content": "Is this a classification task?"}])
    );
    assert!(received[0].body.get("prompt").is_none());
}

#[test]
fn n_samples_come_back_in_index_order() {
    let server = Server::start(|req, _| {
        let n = req.body["n"].as_u64().unwrap_or(1);
        let choices: Vec<Value> = (0..n)
            .rev()
            .map(|i| {
                json!({"index": i, "text": format!("sample {i}"),
                            "finish_reason": if i == 1 { "length" } else { "stop" }})
            })
            .collect();
        Reply::ok(
            json!({"choices": choices, "usage": {"prompt_tokens": 4, "completion_tokens": 40}}),
        )
    });
    let generator = OpenAiGenerator::new(config(vec![server.url()])).expect("generator");
    let request = GenRequest {
        prompt: Prompt::Text("p".into()),
        params: SamplingParams {
            n: 3,
            temperature: 1.0,
            seed: Some(1),
            ..SamplingParams::default()
        },
    };
    let results = generator.generate(&[request]);
    let g = ok(&results[0]);
    let texts: Vec<&str> = g.samples.iter().map(|s| s.text.as_str()).collect();
    assert_eq!(texts, ["sample 0", "sample 1", "sample 2"]);
    assert_eq!(g.samples[1].finish_reason, FinishReason::Length);
    assert_eq!(g.prompt_tokens, Some(4));
    // Usage is summed over the samples: no per-sample count is made up.
    assert!(g.samples.iter().all(|s| s.completion_tokens.is_none()));
    assert_eq!(server.requests()[0].body["n"], 3);
}

#[test]
fn two_base_urls_share_the_load() {
    let delay = Duration::from_millis(30);
    let a = Server::start(move |req, _| Reply::ok(numbered_list(req)).after(delay));
    let b = Server::start(move |req, _| Reply::ok(numbered_list(req)).after(delay));
    let generator = OpenAiGenerator::new(OpenAiConfig {
        max_concurrency: 4,
        ..config(vec![a.url(), format!("{}/v1", b.url())])
    })
    .expect("generator");
    assert_eq!(
        generator.describe(),
        format!("openai:test-model@{},{}", a.url(), b.url())
    );
    let requests: Vec<GenRequest> = (0..20).map(|i| text(&format!("q{i}"))).collect();
    let results = generator.generate(&requests);
    for (i, r) in results.iter().enumerate() {
        assert!(ok(r).samples[0].text.contains(&format!("Describe q{i}.")));
    }
    let (na, nb) = (a.requests().len(), b.requests().len());
    assert_eq!(na + nb, 20);
    assert!(na >= 5 && nb >= 5, "unbalanced: {na} vs {nb}");
    let answered_by_b = results
        .iter()
        .filter(|r| ok(r).generator.ends_with(&b.url()))
        .count();
    assert_eq!(answered_by_b, nb);
}

#[test]
fn a_dead_base_url_fails_over_to_a_live_one() {
    let live = Server::start(|req, _| Reply::ok(numbered_list(req)));
    let generator = OpenAiGenerator::new(OpenAiConfig {
        max_retries: 1,
        ..config(vec![dead_url(), live.url()])
    })
    .expect("generator");
    let requests: Vec<GenRequest> = (0..10).map(|i| text(&format!("f{i}"))).collect();
    let results = generator.generate(&requests);
    for r in &results {
        assert!(ok(r).generator.ends_with(&live.url()));
    }
    assert_eq!(live.requests().len(), 10);

    // With nothing alive the error says it could not connect, and where.
    let dead = dead_url();
    let generator = OpenAiGenerator::new(OpenAiConfig {
        max_retries: 1,
        ..config(vec![dead.clone()])
    })
    .expect("generator");
    let e = err(&generator.generate(&[text("x")])[0]);
    assert!(e.contains("could not connect") && e.contains(&dead), "{e}");
    assert!(e.contains("gave up after 2 attempts"), "{e}");
}

#[test]
fn concurrency_is_bounded() {
    let server =
        Server::start(|req, _| Reply::ok(numbered_list(req)).after(Duration::from_millis(60)));
    let generator = OpenAiGenerator::new(OpenAiConfig {
        max_concurrency: 3,
        ..config(vec![server.url()])
    })
    .expect("generator");
    let requests: Vec<GenRequest> = (0..12).map(|i| text(&format!("c{i}"))).collect();
    let results = generator.generate(&requests);
    assert!(results.iter().all(|r| r.is_ok()));
    let max = server.max_in_flight();
    assert!((2..=3).contains(&max), "max in flight {max}");
}

#[test]
fn api_key_goes_in_the_authorization_header_and_nowhere_else() {
    let var = "SELFINSTRUCT_TEST_OPENAI_KEY_E2E_8812";
    let key = "sk-e2e-0123456789abcdef-do-not-leak";
    // Edition 2021: set_var is safe; the name is unique to this test.
    std::env::set_var(var, key);
    let server = Server::start(move |req, _| {
        let auth = req.header("authorization").unwrap_or("").to_string();
        match req.prompt() {
            // A server (or proxy) that echoes the header back in its error.
            "echo" => Reply::json(
                401,
                json!({"error": {"message": format!("bad credentials: {auth}")}}),
            ),
            "garbage" => Reply::raw(200, &format!("not json {auth}")),
            _ if auth == format!("Bearer {key}") => Reply::ok(numbered_list(req)),
            _ => Reply::json(401, json!({"error": {"message": "missing key"}})),
        }
    });
    let cfg = OpenAiConfig {
        api_key_env: Some(var.into()),
        ..config(vec![server.url(), dead_url()])
    };
    let generator = OpenAiGenerator::new(cfg.clone()).expect("generator");
    assert!(generator.has_api_key());
    let results = generator.generate(&[text("ok"), text("echo"), text("garbage")]);
    ok(&results[0]);
    for r in &results[1..] {
        let e = err(r);
        assert!(!e.contains(key), "key leaked into an error: {e}");
        assert!(e.contains("<redacted>"), "{e}");
    }
    let received = server.requests();
    assert!(received
        .iter()
        .all(|r| r.header("authorization") == Some(&*format!("Bearer {key}"))));

    let shown = format!(
        "{generator:?} {generator:#?} {} {cfg:?}",
        generator.describe()
    );
    assert!(
        !shown.contains(key),
        "key leaked into Debug/describe: {shown}"
    );

    // Connection errors do not carry it either.
    let unreachable = OpenAiGenerator::new(OpenAiConfig {
        max_retries: 0,
        api_key_env: Some(var.into()),
        ..config(vec![dead_url()])
    })
    .expect("generator");
    let e = err(&unreachable.generate(&[text("x")])[0]);
    assert!(!e.contains(key), "{e}");
}
