//! The base URLs one generator drives together: normalisation (with or without a trailing
//! `/v1`), and the choice of URL for each attempt (least in flight, ties round-robin, URLs that
//! just refused a connection avoided for a cool-down while others are up).

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use reqwest::Url;

/// A base URL as given, normalised: scheme http(s), no credentials, no query or fragment, no
/// trailing `/` and no trailing `/v1` (the endpoint path adds it back).
pub fn normalise_base_url(raw: &str) -> Result<String, String> {
    let trimmed = raw.trim();
    let url =
        Url::parse(trimmed).map_err(|e| format!("base URL {trimmed:?} is not a URL ({e})"))?;
    if !matches!(url.scheme(), "http" | "https") {
        return Err(format!(
            "base URL {trimmed:?}: the scheme must be http or https"
        ));
    }
    if url.host_str().is_none_or(str::is_empty) {
        return Err(format!("base URL {trimmed:?} has no host"));
    }
    // Credentials in a URL would end up in logs, errors and the manifest; the key belongs in
    // the environment (`api_key_env`). The URL itself is not echoed, so neither is a password.
    if !url.username().is_empty() || url.password().is_some() {
        return Err("a base URL must not carry credentials (user:password@); \
                    put the API key in the environment variable named by api_key_env"
            .to_string());
    }
    if url.query().is_some() || url.fragment().is_some() {
        return Err(format!(
            "base URL {trimmed:?} must not have a query or fragment"
        ));
    }
    let mut s = url.as_str().trim_end_matches('/').to_string();
    if let Some(stripped) = s.strip_suffix("/v1") {
        s = stripped.to_string();
    }
    Ok(s)
}

/// One base URL and its live state.
#[derive(Debug)]
pub struct Base {
    /// Normalised (see [`normalise_base_url`]).
    pub url: String,
    in_flight: AtomicUsize,
    down_until: Mutex<Option<Instant>>,
}

/// The set of base URLs with their load.
#[derive(Debug)]
pub struct Pool {
    bases: Vec<Base>,
    next: AtomicUsize,
}

/// Held while a request is in flight on a base; releases its slot when dropped.
pub struct Lease<'a> {
    pub index: usize,
    base: &'a Base,
}

impl Drop for Lease<'_> {
    fn drop(&mut self) {
        self.base.in_flight.fetch_sub(1, Ordering::Relaxed);
    }
}

impl Pool {
    /// `urls` must already be normalised and non-empty.
    pub fn new(urls: Vec<String>) -> Pool {
        Pool {
            bases: urls
                .into_iter()
                .map(|url| Base {
                    url,
                    in_flight: AtomicUsize::new(0),
                    down_until: Mutex::new(None),
                })
                .collect(),
            next: AtomicUsize::new(0),
        }
    }

    pub fn urls(&self) -> impl Iterator<Item = &str> {
        self.bases.iter().map(|b| b.url.as_str())
    }

    pub fn url(&self, index: usize) -> &str {
        &self.bases[index].url
    }

    pub fn len(&self) -> usize {
        self.bases.len()
    }

    /// Picks the base for the next attempt: among bases that are up and not in `avoid` (the
    /// bases this request has just failed to connect to), the one with the fewest requests in
    /// flight, ties broken round-robin. Falls back to bases that are down, then to avoided
    /// ones, so there is always an answer.
    pub fn acquire(&self, avoid: &[usize]) -> Lease<'_> {
        let now = Instant::now();
        let start = self.next.fetch_add(1, Ordering::Relaxed);
        let n = self.bases.len();
        let mut best: Option<(u8, usize, usize)> = None; // (tier, in flight, index)
        for k in 0..n {
            let i = (start + k) % n;
            let base = &self.bases[i];
            let down = base
                .down_until
                .lock()
                .map(|d| d.is_some_and(|t| t > now))
                .unwrap_or(false);
            let tier = u8::from(down) + 2 * u8::from(avoid.contains(&i));
            let load = base.in_flight.load(Ordering::Relaxed);
            if best.is_none_or(|(bt, bl, _)| (tier, load) < (bt, bl)) {
                best = Some((tier, load, i));
            }
        }
        let index = best.map_or(0, |(_, _, i)| i);
        let base = &self.bases[index];
        base.in_flight.fetch_add(1, Ordering::Relaxed);
        Lease { index, base }
    }

    /// A connection to this base failed: others are preferred for `cool_down`.
    pub fn mark_down(&self, index: usize, cool_down: Duration) {
        if let Ok(mut d) = self.bases[index].down_until.lock() {
            *d = Some(Instant::now() + cool_down);
        }
    }

    /// A request on this base got an HTTP answer: it is up.
    pub fn mark_up(&self, index: usize) {
        if let Ok(mut d) = self.bases[index].down_until.lock() {
            *d = None;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base_urls_are_normalised() {
        for (raw, want) in [
            ("http://127.0.0.1:8000", "http://127.0.0.1:8000"),
            ("http://127.0.0.1:8000/", "http://127.0.0.1:8000"),
            ("http://127.0.0.1:8000/v1", "http://127.0.0.1:8000"),
            ("http://127.0.0.1:8000/v1/", "http://127.0.0.1:8000"),
            (
                " https://api.example.com/proxy/v1 ",
                "https://api.example.com/proxy",
            ),
            ("https://api.example.com/v10", "https://api.example.com/v10"),
        ] {
            assert_eq!(normalise_base_url(raw).as_deref(), Ok(want), "{raw}");
        }
    }

    #[test]
    fn bad_base_urls_are_rejected_without_echoing_credentials() {
        assert!(normalise_base_url("localhost:8000").is_err());
        assert!(normalise_base_url("ftp://host/").is_err());
        assert!(normalise_base_url("http://host/?a=1").is_err());
        let err = normalise_base_url("http://user:hunter2@host/").expect_err("credentials");
        assert!(!err.contains("hunter2"), "{err}");
    }

    #[test]
    fn acquire_spreads_load_and_avoids_down_bases() {
        let pool = Pool::new(vec!["a".into(), "b".into(), "c".into()]);
        let leases: Vec<_> = (0..3).map(|_| pool.acquire(&[])).collect();
        let mut got: Vec<_> = leases.iter().map(|l| l.index).collect();
        got.sort_unstable();
        assert_eq!(got, [0, 1, 2]);
        drop(leases);

        pool.mark_down(1, Duration::from_secs(60));
        for _ in 0..6 {
            assert_ne!(pool.acquire(&[]).index, 1);
        }
        // With every other base avoided, a down base is still used rather than none.
        assert_eq!(pool.acquire(&[0, 2]).index, 1);
        pool.mark_up(1);
        let held = [pool.acquire(&[]), pool.acquire(&[])];
        let third = pool.acquire(&[]);
        assert!(!held.iter().any(|l| l.index == third.index));
    }

    #[test]
    fn leases_release_their_slot() {
        let pool = Pool::new(vec!["a".into(), "b".into()]);
        let first = pool.acquire(&[]);
        let i = first.index;
        drop(first);
        // Both idle again: the round-robin start moves on, so the other base comes next.
        assert_ne!(pool.acquire(&[]).index, i);
    }
}
