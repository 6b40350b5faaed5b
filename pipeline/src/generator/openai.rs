//! The `openai` generator: any OpenAI-compatible server (OpenAI, vLLM, SGLang, llama.cpp server),
//! through its `/v1/completions` or `/v1/chat/completions` endpoint.
//!
//! - Several base URLs are driven together: each attempt goes to the URL with the fewest
//!   requests in flight (ties round-robin); a URL that refuses a connection is avoided for a
//!   few seconds and the request fails over to another one at once.
//! - At most `max_concurrency` requests are in flight at any time, over all URLs and all
//!   concurrent `generate` calls; a request waiting out its backoff holds no slot.
//! - Retried: HTTP 429, 408 and 5xx, timeouts, connection errors and a body cut off in transit,
//!   up to `max_retries` times, with exponential backoff and full jitter (a delay drawn uniformly
//!   from `[0, min(max_backoff, initial_backoff * 2^attempt)]`), or the server's `Retry-After`
//!   (seconds, on 429 and 503; capped at [`MAX_RETRY_AFTER`]) when it sends one.
//! - Not retried: other 4xx (the server's message is in the error), a 2xx whose body is not a
//!   valid response (see [`wire`] for what is checked), and a prompt that does not fit the
//!   endpoint. Each fails its own request only: `generate` returns one result per request.
//! - The API key is read once, at construction, from the environment variable named by
//!   `api_key_env` and sent as `Authorization: Bearer`. It is never logged, never part of an
//!   error (a server that echoes it back gets it replaced by `<redacted>`), never in `Debug`
//!   output, and never written anywhere: the config holds only the variable's name.
//!
//! The generator owns a small multi-thread tokio runtime; `generate` blocks on it, so it must
//! not be called from inside another tokio runtime.

mod pool;
pub mod wire;

use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use anyhow::{anyhow, bail, Context as _};
use reqwest::header::{HeaderMap, HeaderValue, CONTENT_TYPE, RETRY_AFTER};
use reqwest::StatusCode;
use serde::{Deserialize, Serialize};
use tokio::sync::Semaphore;
use tracing::instrument::WithSubscriber as _;

use super::{GenRequest, Generation, Generator};
use pool::{normalise_base_url, Pool};
pub use wire::Endpoint;

/// The longest `Retry-After` that is honoured as sent; longer ones are cut to this.
pub const MAX_RETRY_AFTER: Duration = Duration::from_secs(600);
/// How long a base URL that refused a connection is avoided while others are up.
const CONNECT_COOL_DOWN: Duration = Duration::from_secs(5);
/// The longest connect phase of one attempt (the request timeout still bounds the whole attempt).
const MAX_CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// The largest response body accepted; a bigger one fails the request.
const MAX_BODY_BYTES: usize = 64 << 20;

/// Settings of the `openai` generator (a `[generator.openai]`-style table in the pipeline config).
/// `base_urls` and `model` are required; every other field has a default.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OpenAiConfig {
    /// Servers to use together, e.g. `http://127.0.0.1:8000` or `https://api.openai.com/v1`
    /// (a trailing `/v1` is optional).
    pub base_urls: Vec<String>,
    /// The model name the servers serve (`--served-model-name` in vLLM).
    pub model: String,
    /// `completions` (text prompts) or `chat` (message lists). Default `completions`.
    #[serde(default)]
    pub endpoint: Endpoint,
    /// Requests in flight at once over all URLs. Default 16.
    #[serde(default = "default_max_concurrency")]
    pub max_concurrency: usize,
    /// Retries after the first attempt of a request. Default 5.
    #[serde(default = "default_max_retries")]
    pub max_retries: u32,
    /// Backoff cap of the first retry, doubling per retry. Default 500.
    #[serde(default = "default_initial_backoff_ms")]
    pub initial_backoff_ms: u64,
    /// Largest backoff cap. Default 30000.
    #[serde(default = "default_max_backoff_ms")]
    pub max_backoff_ms: u64,
    /// Limit on one attempt, from connecting to the end of the response body. Default 120.
    #[serde(default = "default_request_timeout_s")]
    pub request_timeout_s: f64,
    /// The environment variable holding the API key. Default `OPENAI_API_KEY`. When the
    /// variable is unset or empty, or this is empty or absent, no `Authorization` header is
    /// sent (local servers need none).
    #[serde(default = "default_api_key_env")]
    pub api_key_env: Option<String>,
}

fn default_max_concurrency() -> usize {
    16
}
fn default_max_retries() -> u32 {
    5
}
fn default_initial_backoff_ms() -> u64 {
    500
}
fn default_max_backoff_ms() -> u64 {
    30_000
}
fn default_request_timeout_s() -> f64 {
    120.0
}
fn default_api_key_env() -> Option<String> {
    Some("OPENAI_API_KEY".to_string())
}

impl OpenAiConfig {
    /// The given servers and model, every other setting at its default.
    pub fn new(base_urls: Vec<String>, model: impl Into<String>) -> OpenAiConfig {
        OpenAiConfig {
            base_urls,
            model: model.into(),
            endpoint: Endpoint::default(),
            max_concurrency: default_max_concurrency(),
            max_retries: default_max_retries(),
            initial_backoff_ms: default_initial_backoff_ms(),
            max_backoff_ms: default_max_backoff_ms(),
            request_timeout_s: default_request_timeout_s(),
            api_key_env: default_api_key_env(),
        }
    }

    /// Checks every field; returns the normalised base URLs.
    pub fn validate(&self) -> anyhow::Result<Vec<String>> {
        if self.base_urls.is_empty() {
            bail!("openai generator: base_urls is empty");
        }
        let mut urls = Vec::with_capacity(self.base_urls.len());
        for (i, raw) in self.base_urls.iter().enumerate() {
            let url = normalise_base_url(raw)
                .map_err(|e| anyhow!("openai generator: base_urls[{i}]: {e}"))?;
            if urls.contains(&url) {
                bail!("openai generator: base_urls[{i}] repeats {url}");
            }
            urls.push(url);
        }
        if self.model.trim().is_empty() {
            bail!("openai generator: model is empty (give the name the server serves)");
        }
        if self.max_concurrency == 0 {
            bail!("openai generator: max_concurrency must be at least 1");
        }
        if self.max_concurrency > Semaphore::MAX_PERMITS {
            bail!(
                "openai generator: max_concurrency {} is too large",
                self.max_concurrency
            );
        }
        if self.initial_backoff_ms > self.max_backoff_ms {
            bail!(
                "openai generator: initial_backoff_ms ({}) is larger than max_backoff_ms ({})",
                self.initial_backoff_ms,
                self.max_backoff_ms
            );
        }
        if !(self.request_timeout_s.is_finite() && self.request_timeout_s > 0.0)
            || self.request_timeout_s > 86_400.0
        {
            bail!(
                "openai generator: request_timeout_s must be a positive number of seconds up to \
                 86400, got {}",
                self.request_timeout_s
            );
        }
        Ok(urls)
    }
}

/// The API key. Its `Debug` says only whether there is one.
struct ApiKey(String);

impl fmt::Debug for ApiKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("<redacted>")
    }
}

/// The `openai` generator (see the module docs).
pub struct OpenAiGenerator {
    inner: Arc<Inner>,
    runtime: tokio::runtime::Runtime,
}

struct Inner {
    config: OpenAiConfig,
    pool: Pool,
    client: reqwest::Client,
    api_key: Option<ApiKey>,
    permits: Semaphore,
    jitter: AtomicU64,
}

impl fmt::Debug for OpenAiGenerator {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("OpenAiGenerator")
            .field("config", &self.inner.config)
            .field("api_key", &self.inner.api_key)
            .finish_non_exhaustive()
    }
}

impl OpenAiGenerator {
    /// Validates `config`, reads the API key from the environment and builds the HTTP client.
    pub fn new(config: OpenAiConfig) -> anyhow::Result<OpenAiGenerator> {
        let urls = config.validate()?;
        let api_key = read_api_key(config.api_key_env.as_deref())?;
        let timeout = Duration::from_secs_f64(config.request_timeout_s);
        let client = reqwest::Client::builder()
            .timeout(timeout)
            .connect_timeout(timeout.min(MAX_CONNECT_TIMEOUT))
            .pool_max_idle_per_host(config.max_concurrency)
            .user_agent(concat!("selfinstruct/", env!("CARGO_PKG_VERSION")))
            .build()
            .context("openai generator: building the HTTP client")?;
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .thread_name("openai-generator")
            .enable_all()
            .build()
            .context("openai generator: starting the async runtime")?;
        let seed = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0x5eed, |d| d.as_nanos() as u64);
        Ok(OpenAiGenerator {
            inner: Arc::new(Inner {
                permits: Semaphore::new(config.max_concurrency),
                config,
                pool: Pool::new(urls),
                client,
                api_key,
                jitter: AtomicU64::new(seed),
            }),
            runtime,
        })
    }

    pub fn config(&self) -> &OpenAiConfig {
        &self.inner.config
    }

    /// Whether an API key was found in the environment.
    pub fn has_api_key(&self) -> bool {
        self.inner.api_key.is_some()
    }
}

impl Generator for OpenAiGenerator {
    fn generate(&self, requests: &[GenRequest]) -> Vec<anyhow::Result<Generation>> {
        // The runtime's worker threads log to the caller's subscriber, not the global one.
        let dispatch = tracing::dispatcher::get_default(Clone::clone);
        let handles: Vec<_> = requests
            .iter()
            .map(|request| {
                let inner = Arc::clone(&self.inner);
                let request = request.clone();
                self.runtime.spawn(
                    async move { inner.run(&request).await }.with_subscriber(dispatch.clone()),
                )
            })
            .collect();
        self.runtime.block_on(async {
            let mut results = Vec::with_capacity(handles.len());
            for handle in handles {
                results.push(match handle.await {
                    Ok(result) => result,
                    Err(e) => Err(anyhow!("openai generator: request task failed: {e}")),
                });
            }
            results
        })
    }

    fn describe(&self) -> String {
        let urls: Vec<&str> = self.inner.pool.urls().collect();
        format!("openai:{}@{}", self.inner.config.model, urls.join(","))
    }
}

fn read_api_key(var: Option<&str>) -> anyhow::Result<Option<ApiKey>> {
    let Some(var) = var.filter(|v| !v.is_empty()) else {
        return Ok(None);
    };
    let key = match std::env::var(var) {
        Ok(key) => key,
        Err(std::env::VarError::NotPresent) => {
            tracing::debug!(env = var, "no API key: the variable is not set");
            return Ok(None);
        }
        Err(std::env::VarError::NotUnicode(_)) => {
            bail!("openai generator: the API key in ${var} is not valid Unicode")
        }
    };
    let key = key.trim().to_string();
    if key.is_empty() {
        return Ok(None);
    }
    if HeaderValue::from_str(&format!("Bearer {key}")).is_err() {
        bail!(
            "openai generator: the API key in ${var} has characters not allowed in an HTTP header"
        );
    }
    Ok(Some(ApiKey(key)))
}

/// What one attempt came to.
enum Attempt {
    Done(wire::Parsed),
    /// Worth another try; `connect` when the server could not be reached at all.
    Retry {
        error: String,
        retry_after: Option<Duration>,
        connect: bool,
    },
    Fatal(String),
}

impl Inner {
    async fn run(&self, request: &GenRequest) -> anyhow::Result<Generation> {
        let endpoint = self.config.endpoint;
        let body = wire::request_body(endpoint, &self.config.model, request)
            .map_err(|e| anyhow!("openai generator: request not sent: {e}"))?;
        let body = serde_json::to_vec(&body).context("openai generator: encoding the request")?;
        let max_attempts = self.config.max_retries.saturating_add(1);
        let mut avoid: Vec<usize> = Vec::new();
        let mut attempt: u32 = 0;
        loop {
            let (outcome, base, url) = {
                let _permit = self
                    .permits
                    .acquire()
                    .await
                    .map_err(|_| anyhow!("openai generator: shut down"))?;
                let lease = self.pool.acquire(&avoid);
                let url = format!("{}{}", self.pool.url(lease.index), endpoint.path());
                tracing::debug!(url = %url, attempt = attempt + 1, max_attempts, "POST");
                (self.attempt(&url, body.clone()).await, lease.index, url)
            };
            let (error, retry_after, connect) = match outcome {
                Attempt::Done(parsed) => {
                    self.pool.mark_up(base);
                    if parsed.samples.len() != request.params.n as usize {
                        // llama.cpp's server, for one, ignores `n`: keep what came, say so.
                        tracing::warn!(
                            url = %url,
                            asked = request.params.n,
                            got = parsed.samples.len(),
                            "server returned a different number of samples than requested"
                        );
                    }
                    return Ok(Generation {
                        samples: parsed.samples,
                        prompt_tokens: parsed.prompt_tokens,
                        generator: format!("openai:{}@{}", self.config.model, self.pool.url(base)),
                    });
                }
                Attempt::Fatal(error) => {
                    self.pool.mark_up(base);
                    bail!(self.redact(error));
                }
                Attempt::Retry {
                    error,
                    retry_after,
                    connect,
                } => (self.redact(error), retry_after, connect),
            };
            attempt += 1;
            if attempt >= max_attempts {
                bail!("{error} (gave up after {attempt} attempts)");
            }
            let mut delay = retry_after.unwrap_or_else(|| self.backoff(attempt - 1));
            if connect {
                self.pool.mark_down(base, CONNECT_COOL_DOWN);
                if !avoid.contains(&base) {
                    avoid.push(base);
                }
                if avoid.len() < self.pool.len() {
                    // Another URL has not been tried yet: fail over at once.
                    delay = Duration::ZERO;
                } else {
                    avoid.clear();
                }
            } else {
                self.pool.mark_up(base);
            }
            tracing::warn!(
                url = %url,
                attempt,
                max_attempts,
                delay_ms = delay.as_millis() as u64,
                error = %error,
                "openai request failed; retrying"
            );
            tokio::time::sleep(delay).await;
        }
    }

    async fn attempt(&self, url: &str, body: Vec<u8>) -> Attempt {
        let mut request = self
            .client
            .post(url)
            .header(CONTENT_TYPE, "application/json")
            .body(body);
        if let Some(key) = &self.api_key {
            request = request.bearer_auth(&key.0);
        }
        let mut response = match request.send().await {
            Ok(response) => response,
            Err(e) => {
                let connect = e.is_connect();
                let what = if e.is_timeout() {
                    "timed out"
                } else if e.is_connect() {
                    "could not connect"
                } else {
                    "request failed"
                };
                return Attempt::Retry {
                    error: format!("POST {url}: {what}: {}", error_chain(e)),
                    retry_after: None,
                    connect,
                };
            }
        };
        let status = response.status();
        let retry_after = if matches!(
            status,
            StatusCode::TOO_MANY_REQUESTS | StatusCode::SERVICE_UNAVAILABLE
        ) {
            parse_retry_after(response.headers())
        } else {
            None
        };
        let mut bytes = Vec::new();
        loop {
            match response.chunk().await {
                Ok(Some(chunk)) => {
                    if bytes.len() + chunk.len() > MAX_BODY_BYTES {
                        return Attempt::Fatal(format!(
                            "POST {url}: HTTP {}: the response body is larger than {MAX_BODY_BYTES} bytes",
                            status.as_u16()
                        ));
                    }
                    bytes.extend_from_slice(&chunk);
                }
                Ok(None) => break,
                Err(e) => {
                    let what = if e.is_timeout() {
                        "timed out"
                    } else {
                        "failed"
                    };
                    return Attempt::Retry {
                        error: format!(
                            "POST {url}: HTTP {}: reading the body {what}: {}",
                            status.as_u16(),
                            error_chain(e)
                        ),
                        retry_after: None,
                        connect: false,
                    };
                }
            }
        }
        let text = String::from_utf8_lossy(&bytes);
        if status.is_success() {
            return match wire::parse_response(self.config.endpoint, &text) {
                Ok(parsed) => Attempt::Done(parsed),
                Err(what) => Attempt::Fatal(format!(
                    "POST {url}: HTTP {}: {what}; body: {}",
                    status.as_u16(),
                    wire::truncate(&text, wire::MESSAGE_CHARS)
                )),
            };
        }
        let error = format!(
            "POST {url}: HTTP {}: {}",
            status.as_u16(),
            wire::server_message(&text)
        );
        if status == StatusCode::TOO_MANY_REQUESTS
            || status == StatusCode::REQUEST_TIMEOUT
            || status.is_server_error()
        {
            Attempt::Retry {
                error,
                retry_after,
                connect: false,
            }
        } else {
            Attempt::Fatal(error)
        }
    }

    /// Full jitter: uniform in `[0, min(max_backoff, initial_backoff * 2^retry)]`.
    fn backoff(&self, retry: u32) -> Duration {
        let cap = backoff_cap(
            self.config.initial_backoff_ms,
            self.config.max_backoff_ms,
            retry,
        );
        let draw = splitmix64(
            self.jitter
                .fetch_add(0x9E37_79B9_7F4A_7C15, Ordering::Relaxed),
        );
        Duration::from_millis(if cap == 0 { 0 } else { draw % (cap + 1) })
    }

    /// Replaces the API key wherever it appears (a server or proxy may echo request headers).
    fn redact(&self, message: String) -> String {
        match &self.api_key {
            Some(ApiKey(key)) if message.contains(key.as_str()) => {
                message.replace(key.as_str(), "<redacted>")
            }
            _ => message,
        }
    }
}

/// `min(max, initial * 2^retry)` in milliseconds, without overflow.
fn backoff_cap(initial_ms: u64, max_ms: u64, retry: u32) -> u64 {
    initial_ms
        .checked_shl(retry.min(63))
        .filter(|v| v >> retry.min(63) == initial_ms)
        .map_or(max_ms, |v| v.min(max_ms))
}

fn splitmix64(x: u64) -> u64 {
    let mut z = x.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// `Retry-After` in seconds (integer or decimal), capped at [`MAX_RETRY_AFTER`]. The HTTP-date
/// form is not parsed; the usual backoff applies then.
fn parse_retry_after(headers: &HeaderMap) -> Option<Duration> {
    let value = headers.get(RETRY_AFTER)?.to_str().ok()?.trim();
    let seconds: f64 = value.parse().ok()?;
    if !seconds.is_finite() || seconds < 0.0 {
        return None;
    }
    Some(Duration::from_secs_f64(
        seconds.min(MAX_RETRY_AFTER.as_secs_f64()),
    ))
}

/// A reqwest error and its causes on one line, without the URL (the caller names it).
fn error_chain(error: reqwest::Error) -> String {
    let error = error.without_url();
    let mut out = error.to_string();
    let mut source = std::error::Error::source(&error);
    while let Some(cause) = source {
        let text = cause.to_string();
        if !out.contains(&text) {
            out.push_str(": ");
            out.push_str(&text);
        }
        source = cause.source();
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::{Read as _, Write as _};
    use std::sync::Mutex;

    fn config(urls: &[&str]) -> OpenAiConfig {
        OpenAiConfig::new(urls.iter().map(|u| u.to_string()).collect(), "m")
    }

    #[test]
    fn config_defaults_and_unknown_fields() {
        let parsed: OpenAiConfig =
            serde_json::from_str(r#"{"base_urls": ["http://h:1"], "model": "m"}"#).expect("parse");
        assert_eq!(parsed, config(&["http://h:1"]));
        assert_eq!(parsed.max_concurrency, 16);
        assert_eq!(parsed.max_retries, 5);
        assert_eq!(parsed.request_timeout_s, 120.0);
        assert_eq!(parsed.api_key_env.as_deref(), Some("OPENAI_API_KEY"));
        assert_eq!(parsed.endpoint, Endpoint::Completions);

        let chat: OpenAiConfig = serde_json::from_str(
            r#"{"base_urls": ["http://h:1"], "model": "m", "endpoint": "chat"}"#,
        )
        .expect("parse");
        assert_eq!(chat.endpoint, Endpoint::Chat);

        let err = serde_json::from_str::<OpenAiConfig>(
            r#"{"base_urls": ["http://h:1"], "model": "m", "max_concurency": 3}"#,
        )
        .expect_err("typo");
        assert!(err.to_string().contains("max_concurency"), "{err}");
        assert!(serde_json::from_str::<OpenAiConfig>(r#"{"model": "m"}"#).is_err());
    }

    #[test]
    fn validate_rejects_bad_settings() {
        let cases: Vec<(OpenAiConfig, &str)> = vec![
            (config(&[]), "base_urls is empty"),
            (config(&["http://h:1", "http://h:1/v1/"]), "repeats"),
            (config(&["h:1"]), "base_urls[0]"),
            (
                OpenAiConfig {
                    model: " ".into(),
                    ..config(&["http://h:1"])
                },
                "model is empty",
            ),
            (
                OpenAiConfig {
                    max_concurrency: 0,
                    ..config(&["http://h:1"])
                },
                "max_concurrency",
            ),
            (
                OpenAiConfig {
                    initial_backoff_ms: 10,
                    max_backoff_ms: 5,
                    ..config(&["http://h:1"])
                },
                "initial_backoff_ms",
            ),
            (
                OpenAiConfig {
                    request_timeout_s: 0.0,
                    ..config(&["http://h:1"])
                },
                "request_timeout_s",
            ),
            (
                OpenAiConfig {
                    request_timeout_s: f64::NAN,
                    ..config(&["http://h:1"])
                },
                "request_timeout_s",
            ),
        ];
        for (cfg, want) in cases {
            let err = cfg.validate().expect_err(want).to_string();
            assert!(err.contains(want), "got {err:?}, want {want:?}");
        }
        assert_eq!(
            config(&["http://a:1/v1", "https://b/"])
                .validate()
                .expect("valid"),
            ["http://a:1", "https://b"]
        );
    }

    #[test]
    fn generator_is_send_and_sync_and_answers_no_requests_with_nothing() {
        fn assert_send_sync<T: Send + Sync>() {}
        assert_send_sync::<OpenAiGenerator>();
        let generator = OpenAiGenerator::new(OpenAiConfig {
            api_key_env: None,
            ..config(&["https://api.example.com/v1"])
        })
        .expect("an https base URL builds a rustls client");
        assert!(generator.generate(&[]).is_empty());
        assert_eq!(generator.describe(), "openai:m@https://api.example.com");
    }

    #[test]
    fn backoff_cap_doubles_up_to_the_max() {
        assert_eq!(backoff_cap(500, 30_000, 0), 500);
        assert_eq!(backoff_cap(500, 30_000, 3), 4_000);
        assert_eq!(backoff_cap(500, 30_000, 10), 30_000);
        assert_eq!(backoff_cap(500, 30_000, 200), 30_000);
        assert_eq!(backoff_cap(u64::MAX / 2, u64::MAX, 5), u64::MAX);
        assert_eq!(backoff_cap(0, 0, 4), 0);
    }

    #[test]
    fn backoff_draws_stay_within_the_cap_and_vary() {
        let generator = OpenAiGenerator::new(OpenAiConfig {
            initial_backoff_ms: 100,
            max_backoff_ms: 1_000,
            api_key_env: None,
            ..config(&["http://127.0.0.1:9"])
        })
        .expect("generator");
        let draws: Vec<u64> = (0..200)
            .map(|_| generator.inner.backoff(2).as_millis() as u64)
            .collect();
        assert!(draws.iter().all(|&d| d <= 400), "{draws:?}");
        assert!(draws.iter().any(|&d| d != draws[0]), "no jitter: {draws:?}");
    }

    #[test]
    fn retry_after_seconds() {
        let mut headers = HeaderMap::new();
        assert_eq!(parse_retry_after(&headers), None);
        headers.insert(RETRY_AFTER, HeaderValue::from_static("0"));
        assert_eq!(parse_retry_after(&headers), Some(Duration::ZERO));
        headers.insert(RETRY_AFTER, HeaderValue::from_static("2"));
        assert_eq!(parse_retry_after(&headers), Some(Duration::from_secs(2)));
        headers.insert(RETRY_AFTER, HeaderValue::from_static("0.25"));
        assert_eq!(
            parse_retry_after(&headers),
            Some(Duration::from_millis(250))
        );
        headers.insert(RETRY_AFTER, HeaderValue::from_static("99999"));
        assert_eq!(parse_retry_after(&headers), Some(MAX_RETRY_AFTER));
        headers.insert(RETRY_AFTER, HeaderValue::from_static("-1"));
        assert_eq!(parse_retry_after(&headers), None);
        headers.insert(
            RETRY_AFTER,
            HeaderValue::from_static("Wed, 21 Oct 2015 07:28:00 GMT"),
        );
        assert_eq!(parse_retry_after(&headers), None);
    }

    #[test]
    fn debug_and_describe_never_show_the_key() {
        let var = "SELFINSTRUCT_UNIT_TEST_KEY_3141";
        std::env::set_var(var, "sk-unit-secret-value");
        let generator = OpenAiGenerator::new(OpenAiConfig {
            api_key_env: Some(var.into()),
            ..config(&["http://127.0.0.1:9/v1", "http://127.0.0.2:9"])
        })
        .expect("generator");
        assert!(generator.has_api_key());
        let debug = format!("{generator:?} {generator:#?}");
        assert!(!debug.contains("sk-unit-secret-value"), "{debug}");
        assert!(debug.contains("<redacted>"), "{debug}");
        assert_eq!(
            generator.describe(),
            "openai:m@http://127.0.0.1:9,http://127.0.0.2:9"
        );
        assert_eq!(
            generator
                .inner
                .redact("echo: Bearer sk-unit-secret-value".into()),
            "echo: Bearer <redacted>"
        );
    }

    #[test]
    fn missing_or_empty_key_means_no_header_and_bad_key_is_an_error_without_the_key() {
        assert!(read_api_key(None).expect("none").is_none());
        assert!(read_api_key(Some("")).expect("empty name").is_none());
        assert!(read_api_key(Some("SELFINSTRUCT_UNIT_TEST_UNSET_2718"))
            .expect("unset")
            .is_none());
        let var = "SELFINSTRUCT_UNIT_TEST_BAD_KEY_1618";
        std::env::set_var(var, "sk-bad\u{7f}secret");
        let err = read_api_key(Some(var)).expect_err("bad header").to_string();
        assert!(err.contains(var) && !err.contains("secret"), "{err}");
    }

    /// A log sink for one test's subscriber.
    #[derive(Clone, Default)]
    struct Captured(Arc<Mutex<Vec<u8>>>);

    impl std::io::Write for Captured {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            if let Ok(mut v) = self.0.lock() {
                v.extend_from_slice(buf);
            }
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    /// Answers `replies` requests on 127.0.0.1 with HTTP 500 whose body echoes the request's
    /// Authorization header (as a careless proxy might), then stops.
    fn echoing_500_server(replies: usize) -> (String, std::thread::JoinHandle<()>) {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        let url = format!("http://{}", listener.local_addr().expect("addr"));
        let thread = std::thread::spawn(move || {
            for _ in 0..replies {
                let Ok((mut stream, _)) = listener.accept() else {
                    return;
                };
                let _ = stream.set_read_timeout(Some(Duration::from_secs(5)));
                let mut buf = Vec::new();
                let mut chunk = [0u8; 4096];
                // The request is small: read until its body (after the blank line) is in.
                while let Ok(n @ 1..) = stream.read(&mut chunk) {
                    buf.extend_from_slice(&chunk[..n]);
                    let text = String::from_utf8_lossy(&buf);
                    if let Some((head, body)) = text.split_once("\r\n\r\n") {
                        let len = head
                            .lines()
                            .find_map(|l| {
                                l.to_ascii_lowercase()
                                    .strip_prefix("content-length:")
                                    .map(|v| v.trim().to_string())
                            })
                            .and_then(|v| v.parse::<usize>().ok())
                            .unwrap_or(0);
                        if body.len() >= len {
                            break;
                        }
                    }
                }
                let text = String::from_utf8_lossy(&buf).to_string();
                let auth = text
                    .lines()
                    .find(|l| l.to_ascii_lowercase().starts_with("authorization:"))
                    .unwrap_or("")
                    .to_string();
                let body = serde_json::json!({"error": {"message": format!("upstream failed; you sent {auth}")}}).to_string();
                let reply = format!(
                    "HTTP/1.1 500 Internal Server Error\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                    body.len()
                );
                let _ = stream.write_all(reply.as_bytes());
            }
        });
        (url, thread)
    }

    #[test]
    fn retries_are_logged_with_url_and_attempt_but_never_the_key() {
        let var = "SELFINSTRUCT_UNIT_TEST_LOG_KEY_5772";
        let key = "sk-log-secret-0042-abcdef";
        std::env::set_var(var, key);
        let (url, server) = echoing_500_server(2);
        let generator = OpenAiGenerator::new(OpenAiConfig {
            max_retries: 1,
            initial_backoff_ms: 1,
            max_backoff_ms: 5,
            request_timeout_s: 10.0,
            api_key_env: Some(var.into()),
            ..config(&[&url])
        })
        .expect("generator");
        let logs = Captured::default();
        let sink = logs.clone();
        let subscriber = tracing_subscriber::fmt()
            .with_max_level(tracing::Level::DEBUG)
            .with_ansi(false)
            .with_writer(move || sink.clone())
            .finish();
        let request = GenRequest {
            prompt: super::super::Prompt::Text("p".into()),
            params: super::super::SamplingParams::default(),
        };
        let results =
            tracing::subscriber::with_default(subscriber, || generator.generate(&[request]));
        server.join().expect("server thread");

        let error = format!("{:#}", results[0].as_ref().expect_err("two 500s"));
        assert!(
            error.contains("Bearer <redacted>") && !error.contains(key),
            "{error}"
        );
        let logs = String::from_utf8(logs.0.lock().expect("logs").clone()).expect("utf-8");
        assert!(logs.contains("retrying"), "{logs}");
        assert!(logs.contains(&format!("{url}/v1/completions")), "{logs}");
        assert!(logs.contains("attempt=1"), "{logs}");
        assert!(!logs.contains(key), "the key reached the logs: {logs}");
    }
}
