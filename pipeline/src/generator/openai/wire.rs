//! The OpenAI wire format: request bodies for `/v1/completions` and `/v1/chat/completions`, and
//! the parsing of their (non-streaming) responses into [`Sample`]s.
//!
//! Servers differ (OpenAI, vLLM, SGLang, llama.cpp server, TGI), so parsing is strict about what
//! the pipeline needs (a `choices` array, each choice's text) and lenient about what it can do
//! without (`index`, `usage`). Finish reasons are mapped as follows:
//!
//! | server value                                        | [`FinishReason`] |
//! |-----------------------------------------------------|------------------|
//! | `"stop"`, `"eos"`, `"eos_token"`, `"stop_sequence"`, `"end_turn"`, `"tool_calls"`, `"function_call"` | `Stop` |
//! | `"length"`, `"max_tokens"`, `"model_length"`        | `Length`         |
//! | `null` or absent                                    | `Stop`           |
//! | anything else (`"content_filter"`, `"abort"`, ...)  | an error         |
//!
//! `null` maps to `Stop` because the reference implementation drops a response only when it says
//! `"length"`; a server that does not report a reason has not told us the text was cut.
//! `content_filter` and `abort` mean the text is not what the model would have written, so the
//! request fails rather than feeding a mangled sample to the filters.

use serde::Serialize;
use serde_json::Value;

use super::super::{ChatMessage, FinishReason, GenRequest, Prompt, Sample};

/// Which OpenAI API a generator talks to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Deserialize, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Endpoint {
    /// `POST {base}/v1/completions` with `prompt` (raw text; for base models, as in the paper).
    #[default]
    Completions,
    /// `POST {base}/v1/chat/completions` with `messages` (the server applies the chat template).
    Chat,
}

impl Endpoint {
    /// The path under the base URL, `/v1` included.
    pub fn path(self) -> &'static str {
        match self {
            Endpoint::Completions => "/v1/completions",
            Endpoint::Chat => "/v1/chat/completions",
        }
    }
}

/// The JSON body of one request. Borrowed from the [`GenRequest`]; optional fields are omitted
/// rather than sent as `null` or `[]`, because some servers reject those.
#[derive(Debug, Serialize)]
pub struct RequestBody<'a> {
    model: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    prompt: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    messages: Option<&'a [ChatMessage]>,
    max_tokens: u32,
    temperature: f32,
    top_p: f32,
    presence_penalty: f32,
    frequency_penalty: f32,
    #[serde(skip_serializing_if = "<[String]>::is_empty")]
    stop: &'a [String],
    n: u32,
    #[serde(skip_serializing_if = "Option::is_none")]
    seed: Option<u64>,
}

/// Builds the body for `request` on `endpoint`. A text prompt on the chat endpoint, or a chat
/// prompt on the completions endpoint, is an error: silently wrapping or flattening it would
/// change what the model sees.
pub fn request_body<'a>(
    endpoint: Endpoint,
    model: &'a str,
    request: &'a GenRequest,
) -> Result<RequestBody<'a>, String> {
    let (prompt, messages) = match (&request.prompt, endpoint) {
        (Prompt::Text(text), Endpoint::Completions) => (Some(text.as_str()), None),
        (Prompt::Chat(messages), Endpoint::Chat) => (None, Some(messages.as_slice())),
        (Prompt::Text(_), Endpoint::Chat) => {
            return Err("a text prompt cannot be sent to the chat endpoint \
                        (use endpoint = \"completions\", or the chat prompt style)"
                .to_string())
        }
        (Prompt::Chat(_), Endpoint::Completions) => {
            return Err("a chat prompt cannot be sent to the completions endpoint \
                        (use endpoint = \"chat\", or the completion prompt style)"
                .to_string())
        }
    };
    let p = &request.params;
    if p.n == 0 {
        return Err("n must be at least 1".to_string());
    }
    Ok(RequestBody {
        model,
        prompt,
        messages,
        max_tokens: p.max_tokens,
        temperature: p.temperature,
        top_p: p.top_p,
        presence_penalty: p.presence_penalty,
        frequency_penalty: p.frequency_penalty,
        stop: &p.stop,
        n: p.n,
        seed: p.seed,
    })
}

/// A successfully parsed response.
#[derive(Debug, Clone, PartialEq)]
pub struct Parsed {
    /// In `index` order.
    pub samples: Vec<Sample>,
    pub prompt_tokens: Option<u32>,
}

/// Parses a 2xx response body. The error says what was wrong; the caller adds the URL, the
/// status and the (truncated) body.
///
/// `usage.completion_tokens` is attributed to the sample only when there is exactly one choice:
/// with `n > 1` servers report the sum over all choices, which says nothing about each sample.
pub fn parse_response(endpoint: Endpoint, body: &str) -> Result<Parsed, String> {
    let value: Value =
        serde_json::from_str(body).map_err(|e| format!("response is not valid JSON ({e})"))?;
    let obj = value.as_object().ok_or("response is not a JSON object")?;
    if let Some(error) = obj.get("error").filter(|e| !e.is_null()) {
        return Err(format!(
            "response carries an error: {}",
            error_message(error)
        ));
    }
    let choices = obj
        .get("choices")
        .ok_or("response has no `choices`")?
        .as_array()
        .ok_or("`choices` is not an array")?;
    if choices.is_empty() {
        return Err("`choices` is empty".to_string());
    }
    let mut indexed = Vec::with_capacity(choices.len());
    for (position, choice) in choices.iter().enumerate() {
        let (index, sample) =
            parse_choice(endpoint, choice).map_err(|e| format!("choices[{position}]: {e}"))?;
        indexed.push((index.unwrap_or(position as u64), sample));
    }
    indexed.sort_by_key(|(index, _)| *index);
    if let Some(pair) = indexed.windows(2).find(|w| w[0].0 == w[1].0) {
        return Err(format!("two choices have index {}", pair[0].0));
    }
    let mut samples: Vec<Sample> = indexed.into_iter().map(|(_, s)| s).collect();

    let (prompt_tokens, completion_tokens) = match obj.get("usage") {
        None | Some(Value::Null) => (None, None),
        Some(usage) => {
            let usage = usage.as_object().ok_or("`usage` is not an object")?;
            (
                token_count(usage.get("prompt_tokens"), "usage.prompt_tokens")?,
                token_count(usage.get("completion_tokens"), "usage.completion_tokens")?,
            )
        }
    };
    if let [only] = samples.as_mut_slice() {
        only.completion_tokens = completion_tokens;
    }
    Ok(Parsed {
        samples,
        prompt_tokens,
    })
}

fn parse_choice(endpoint: Endpoint, choice: &Value) -> Result<(Option<u64>, Sample), String> {
    let choice = choice.as_object().ok_or("not an object")?;
    let index = match choice.get("index") {
        None | Some(Value::Null) => None,
        Some(v) => Some(v.as_u64().ok_or("`index` is not a non-negative integer")?),
    };
    let text = match endpoint {
        Endpoint::Completions => choice
            .get("text")
            .ok_or("no `text`")?
            .as_str()
            .ok_or("`text` is not a string")?
            .to_string(),
        Endpoint::Chat => {
            let message = choice
                .get("message")
                .ok_or("no `message`")?
                .as_object()
                .ok_or("`message` is not an object")?;
            // `null` content is what servers send when a reasoning model spent every token on
            // its hidden reasoning: an empty sample, which the instance filters then drop.
            match message.get("content").ok_or("no `message.content`")? {
                Value::Null => String::new(),
                Value::String(s) => s.clone(),
                _ => return Err("`message.content` is not a string".to_string()),
            }
        }
    };
    let finish_reason = match choice.get("finish_reason") {
        None | Some(Value::Null) => FinishReason::Stop,
        Some(Value::String(s)) => finish_reason(s)?,
        Some(_) => return Err("`finish_reason` is not a string".to_string()),
    };
    Ok((
        index,
        Sample {
            text,
            finish_reason,
            completion_tokens: None,
        },
    ))
}

/// Maps a server's finish reason (see the module docs for the table).
pub fn finish_reason(reason: &str) -> Result<FinishReason, String> {
    match reason {
        "stop" | "eos" | "eos_token" | "stop_sequence" | "end_turn" | "tool_calls"
        | "function_call" => Ok(FinishReason::Stop),
        "length" | "max_tokens" | "model_length" => Ok(FinishReason::Length),
        other => Err(format!(
            "unsupported finish_reason {:?}",
            truncate(other, 40)
        )),
    }
}

fn token_count(value: Option<&Value>, name: &str) -> Result<Option<u32>, String> {
    match value {
        None | Some(Value::Null) => Ok(None),
        Some(v) => v
            .as_u64()
            .and_then(|n| u32::try_from(n).ok())
            .map(Some)
            .ok_or_else(|| format!("`{name}` is not a token count")),
    }
}

/// The server's message from an error body (`{"error": {"message": ...}}`, `{"error": "..."}`,
/// `{"message": ...}` or `{"detail": ...}`), else the body itself; truncated either way.
pub fn server_message(body: &str) -> String {
    match serde_json::from_str::<Value>(body) {
        Ok(Value::Object(obj)) => {
            if let Some(error) = obj.get("error").filter(|e| !e.is_null()) {
                return error_message(error);
            }
            for key in ["message", "detail"] {
                if let Some(Value::String(s)) = obj.get(key) {
                    return truncate(s, MESSAGE_CHARS);
                }
            }
            truncate(body, MESSAGE_CHARS)
        }
        _ => truncate(body, MESSAGE_CHARS),
    }
}

fn error_message(error: &Value) -> String {
    match error {
        Value::String(s) => truncate(s, MESSAGE_CHARS),
        Value::Object(e) => match e.get("message") {
            Some(Value::String(s)) => truncate(s, MESSAGE_CHARS),
            _ => truncate(&error.to_string(), MESSAGE_CHARS),
        },
        other => truncate(&other.to_string(), MESSAGE_CHARS),
    }
}

/// How much of a server's body or message goes into an error.
pub const MESSAGE_CHARS: usize = 200;

/// The first `max` characters of `s` (never splitting a character), with `...` when cut.
pub fn truncate(s: &str, max: usize) -> String {
    match s.char_indices().nth(max) {
        None => s.to_string(),
        Some((cut, _)) => format!("{}...", &s[..cut]),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::generator::SamplingParams;
    use serde_json::json;

    fn text_request(prompt: &str, params: SamplingParams) -> GenRequest {
        GenRequest {
            prompt: Prompt::Text(prompt.to_string()),
            params,
        }
    }

    #[test]
    fn completions_body_has_every_parameter_and_omits_empty_stop_and_seed() {
        let params = SamplingParams {
            max_tokens: 1024,
            temperature: 0.7,
            top_p: 0.5,
            presence_penalty: 2.0,
            frequency_penalty: 0.25,
            stop: vec!["\n\n".into(), "16.".into()],
            n: 3,
            seed: Some(42),
        };
        let req = text_request("1. Do it\n2.", params);
        let body =
            serde_json::to_value(request_body(Endpoint::Completions, "m", &req).expect("body"))
                .expect("json");
        assert_eq!(
            body,
            json!({"model": "m", "prompt": "1. Do it\n2.", "max_tokens": 1024, "temperature": 0.7f32,
                   "top_p": 0.5, "presence_penalty": 2.0, "frequency_penalty": 0.25,
                   "stop": ["\n\n", "16."], "n": 3, "seed": 42})
        );

        let req = text_request("x", SamplingParams::default());
        let body =
            serde_json::to_value(request_body(Endpoint::Completions, "m", &req).expect("body"))
                .expect("json");
        let obj = body.as_object().expect("object");
        assert!(!obj.contains_key("stop"), "{body}");
        assert!(!obj.contains_key("seed"), "{body}");
        assert!(!obj.contains_key("messages"), "{body}");
        assert_eq!(obj["n"], 1);
    }

    #[test]
    fn chat_body_sends_messages() {
        let req = GenRequest {
            prompt: Prompt::Chat(vec![
                ChatMessage {
                    role: "system".into(),
                    content: "Be brief.".into(),
                },
                ChatMessage {
                    role: "user".into(),
                    content: "List tasks.".into(),
                },
            ]),
            params: SamplingParams::default(),
        };
        let body = serde_json::to_value(request_body(Endpoint::Chat, "qwen", &req).expect("body"))
            .expect("json");
        assert_eq!(
            body["messages"],
            json!([{"role": "system", "content": "Be brief."}, {"role": "user", "content": "List tasks."}])
        );
        assert!(body.get("prompt").is_none());
    }

    #[test]
    fn prompt_style_must_match_the_endpoint() {
        let text = text_request("x", SamplingParams::default());
        let err = request_body(Endpoint::Chat, "m", &text).expect_err("text on chat");
        assert!(
            err.contains("text prompt cannot be sent to the chat endpoint"),
            "{err}"
        );
        let chat = GenRequest {
            prompt: Prompt::Chat(vec![]),
            params: SamplingParams::default(),
        };
        let err = request_body(Endpoint::Completions, "m", &chat).expect_err("chat on completions");
        assert!(
            err.contains("chat prompt cannot be sent to the completions endpoint"),
            "{err}"
        );
    }

    #[test]
    fn n_zero_is_rejected() {
        let req = text_request(
            "x",
            SamplingParams {
                n: 0,
                ..SamplingParams::default()
            },
        );
        assert!(request_body(Endpoint::Completions, "m", &req).is_err());
    }

    #[test]
    fn completions_response_single_choice_gets_usage() {
        let body = r#"{"id":"c","object":"text_completion","choices":[{"index":0,"text":" Write a poem.\n10. Sort","finish_reason":"length","logprobs":null}],
                      "usage":{"prompt_tokens":120,"completion_tokens":7,"total_tokens":127}}"#;
        let parsed = parse_response(Endpoint::Completions, body).expect("parse");
        assert_eq!(parsed.prompt_tokens, Some(120));
        assert_eq!(
            parsed.samples,
            vec![Sample {
                text: " Write a poem.\n10. Sort".into(),
                finish_reason: FinishReason::Length,
                completion_tokens: Some(7)
            }]
        );
    }

    #[test]
    fn choices_are_ordered_by_index_and_aggregate_usage_is_not_split() {
        let body = json!({"choices": [
            {"index": 2, "text": "c", "finish_reason": "stop"},
            {"index": 0, "text": "a", "finish_reason": "eos"},
            {"index": 1, "text": "b", "finish_reason": null}],
            "usage": {"prompt_tokens": 5, "completion_tokens": 30}})
        .to_string();
        let parsed = parse_response(Endpoint::Completions, &body).expect("parse");
        let texts: Vec<_> = parsed.samples.iter().map(|s| s.text.as_str()).collect();
        assert_eq!(texts, ["a", "b", "c"]);
        assert!(parsed.samples.iter().all(|s| s.completion_tokens.is_none()));
        assert!(parsed
            .samples
            .iter()
            .all(|s| s.finish_reason == FinishReason::Stop));
        assert_eq!(parsed.prompt_tokens, Some(5));
    }

    #[test]
    fn chat_response_content_and_null_content() {
        let body = json!({"choices": [
            {"index": 0, "message": {"role": "assistant", "content": "Yes"}, "finish_reason": "stop"},
            {"index": 1, "message": {"role": "assistant", "content": null}, "finish_reason": "length"}]})
        .to_string();
        let parsed = parse_response(Endpoint::Chat, &body).expect("parse");
        assert_eq!(parsed.samples[0].text, "Yes");
        assert_eq!(parsed.samples[1].text, "");
        assert_eq!(parsed.samples[1].finish_reason, FinishReason::Length);
        assert_eq!(parsed.prompt_tokens, None);
    }

    #[test]
    fn missing_index_falls_back_to_position_and_usage_is_optional() {
        let body = r#"{"choices":[{"text":"a"},{"text":"b"}]}"#;
        let parsed = parse_response(Endpoint::Completions, body).expect("parse");
        assert_eq!(parsed.samples.len(), 2);
        assert_eq!(parsed.samples[1].text, "b");
    }

    #[test]
    fn finish_reason_table() {
        for s in [
            "stop",
            "eos",
            "eos_token",
            "stop_sequence",
            "end_turn",
            "tool_calls",
        ] {
            assert_eq!(finish_reason(s), Ok(FinishReason::Stop), "{s}");
        }
        for s in ["length", "max_tokens", "model_length"] {
            assert_eq!(finish_reason(s), Ok(FinishReason::Length), "{s}");
        }
        assert!(finish_reason("content_filter").is_err());
        assert!(finish_reason("abort").is_err());
    }

    #[test]
    fn malformed_responses_say_what_is_wrong() {
        let cases: &[(Endpoint, &str, &str)] = &[
            (Endpoint::Completions, "{\"choices\": [", "not valid JSON"),
            (Endpoint::Completions, "[]", "not a JSON object"),
            (Endpoint::Completions, "{}", "no `choices`"),
            (
                Endpoint::Completions,
                r#"{"choices": {}}"#,
                "`choices` is not an array",
            ),
            (
                Endpoint::Completions,
                r#"{"choices": []}"#,
                "`choices` is empty",
            ),
            (
                Endpoint::Completions,
                r#"{"choices": [{"index": 0}]}"#,
                "choices[0]: no `text`",
            ),
            (
                Endpoint::Completions,
                r#"{"choices": [{"text": 3}]}"#,
                "`text` is not a string",
            ),
            (
                Endpoint::Completions,
                r#"{"choices": [{"text": "a", "index": -1}]}"#,
                "`index`",
            ),
            (
                Endpoint::Completions,
                r#"{"choices": [{"text": "a", "index": 0}, {"text": "b", "index": 0}]}"#,
                "two choices have index 0",
            ),
            (
                Endpoint::Completions,
                r#"{"choices": [{"text": "a", "finish_reason": 1}]}"#,
                "`finish_reason`",
            ),
            (
                Endpoint::Completions,
                r#"{"choices": [{"text": "a", "finish_reason": "content_filter"}]}"#,
                "unsupported finish_reason \"content_filter\"",
            ),
            (
                Endpoint::Completions,
                r#"{"choices": [{"text": "a"}], "usage": 3}"#,
                "`usage` is not an object",
            ),
            (
                Endpoint::Completions,
                r#"{"choices": [{"text": "a"}], "usage": {"prompt_tokens": "12"}}"#,
                "`usage.prompt_tokens` is not a token count",
            ),
            (
                Endpoint::Chat,
                r#"{"choices": [{"text": "a"}]}"#,
                "no `message`",
            ),
            (
                Endpoint::Chat,
                r#"{"choices": [{"message": {}}]}"#,
                "no `message.content`",
            ),
            (
                Endpoint::Chat,
                r#"{"choices": [{"message": {"content": []}}]}"#,
                "`message.content` is not a string",
            ),
            (
                Endpoint::Chat,
                r#"{"error": {"message": "model overloaded"}}"#,
                "model overloaded",
            ),
        ];
        for (endpoint, body, want) in cases {
            let err = parse_response(*endpoint, body).expect_err(body);
            assert!(err.contains(want), "{body}: got {err:?}, want {want:?}");
        }
    }

    #[test]
    fn server_message_finds_the_message() {
        assert_eq!(
            server_message(r#"{"error":{"message":"bad model","type":"x"}}"#),
            "bad model"
        );
        assert_eq!(server_message(r#"{"error":"nope"}"#), "nope");
        assert_eq!(server_message(r#"{"detail":"Not Found"}"#), "Not Found");
        assert_eq!(server_message(r#"{"message":"m"}"#), "m");
        assert_eq!(server_message("plain text"), "plain text");
        let long = "é".repeat(500);
        let got = server_message(&long);
        assert_eq!(got.chars().count(), MESSAGE_CHARS + 3);
        assert!(got.ends_with("..."));
    }

    #[test]
    fn truncate_respects_char_boundaries() {
        assert_eq!(truncate("abc", 3), "abc");
        assert_eq!(truncate("abcd", 3), "abc...");
        assert_eq!(truncate("日本語です", 2), "日本...");
        assert_eq!(truncate("", 0), "");
    }
}
