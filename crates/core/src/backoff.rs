//! The reconnect policy: pure arithmetic on attempt numbers, so tests assert exact delays.

use std::time::Duration;

use super::{options::ReconnectOptions, time::server_delay};

/// Exponential backoff with downward-only jitter.
#[derive(Debug, Clone)]
pub struct Backoff {
    opts: ReconnectOptions,
    /// The base delay; SSE `retry:` replaces it.
    base: Duration,
    /// Consecutive failures after which a connection with a poll URL degrades to polling.
    fallback_after: Option<u32>,
}

impl Backoff {
    pub fn new(opts: ReconnectOptions) -> Self {
        let base = Duration::from_millis(opts.initial_delay_ms);
        Self {
            opts,
            base,
            fallback_after: None,
        }
    }

    pub fn with_fallback_after(mut self, failures: Option<u32>) -> Self {
        self.fallback_after = failures;
        self
    }

    /// Whether `failures` consecutive failed attempts reach `afterFailures`: time to poll instead.
    pub fn falls_back_after(&self, failures: u32) -> bool {
        self.fallback_after.is_some_and(|n| failures >= n)
    }

    pub fn reconnects_on_normal_close(&self) -> bool {
        self.opts.on_normal_close
    }

    /// SSE `retry:` sets the reconnection time (WHATWG), which becomes the base of the backoff; a server
    /// cannot set it past [`MAX_SERVER_DELAY`](crate::time::MAX_SERVER_DELAY).
    pub fn set_base(&mut self, base: Duration) {
        self.base = server_delay(base);
    }

    /// False when `attempt` is past `maxRetries`: give up.
    pub fn may_retry(&self, attempt: u32) -> bool {
        self.opts.max_retries.is_none_or(|max| attempt <= max)
    }

    /// Delay before attempt `attempt` (1-based): min(base x multiplier^(attempt-1), max), then shortened by
    /// `jitter x sample` where `sample` is in [0, 1). The ceiling never falls below the base.
    pub fn delay(&self, attempt: u32, sample: f64) -> Duration {
        let exp = attempt.saturating_sub(1).min(64) as i32;
        let raw = self.base.as_secs_f64() * self.opts.multiplier.powi(exp);
        let ceiling = Duration::from_millis(self.opts.max_delay_ms)
            .max(self.base)
            .as_secs_f64();
        let capped = raw.min(ceiling);
        let jittered = capped * (1.0 - self.opts.jitter * sample.clamp(0.0, 1.0));
        Duration::from_secs_f64(jittered.max(0.0))
    }

    /// Whether a connection that stayed up `uptime` has earned a reset of the attempt count.
    pub fn is_stable(&self, uptime: Duration) -> bool {
        uptime >= Duration::from_millis(self.opts.stable_after_ms)
    }

    /// The wait a server asked for with `Retry-After`, honoured over the policy when longer.
    pub fn with_retry_after(&self, computed: Duration, retry_after: Option<Duration>) -> Duration {
        match retry_after {
            Some(ra) => computed.max(server_delay(ra)),
            None => computed,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::time::MAX_SERVER_DELAY;

    fn ms(v: u64) -> Duration {
        Duration::from_millis(v)
    }

    #[test]
    fn default_policy_doubles_from_one_second_and_caps_at_thirty() {
        let b = Backoff::new(ReconnectOptions::default());
        let got: Vec<u64> = (1..=8)
            .map(|n| b.delay(n, 0.0).as_millis() as u64)
            .collect();
        assert_eq!(
            got,
            vec![1000, 2000, 4000, 8000, 16000, 30000, 30000, 30000],
            "got {got:?}"
        );
    }

    #[test]
    fn jitter_only_shortens_and_by_at_most_twenty_percent() {
        let b = Backoff::new(ReconnectOptions::default());
        for (attempt, sample, want) in [
            (1, 0.5, 900),
            (1, 0.999_999, 800),
            (3, 1.0, 3200),
            (7, 0.25, 28500),
        ] {
            let got = b.delay(attempt, sample).as_millis() as u64;
            assert!(
                (want..=want + 1).contains(&got),
                "attempt {attempt} sample {sample}: expected {want}, got {got}"
            );
        }
    }

    #[test]
    fn sse_retry_sets_the_base() {
        let mut b = Backoff::new(ReconnectOptions::default());
        b.set_base(ms(250));
        assert_eq!(b.delay(1, 0.0), ms(250));
        assert_eq!(b.delay(2, 0.0), ms(500));
        // A base above the policy's ceiling is honoured as given: the server asked for it...
        b.set_base(ms(60_000));
        assert_eq!(b.delay(1, 0.0), ms(60_000));
        // ...up to the cap on any server-given delay.
        b.set_base(ms(u64::MAX));
        assert_eq!(b.delay(1, 0.0), MAX_SERVER_DELAY);
    }

    #[test]
    fn max_retries_and_retry_after() {
        let b = Backoff::new(ReconnectOptions {
            max_retries: Some(2),
            ..Default::default()
        });
        assert!(b.may_retry(1) && b.may_retry(2) && !b.may_retry(3));
        assert_eq!(b.with_retry_after(ms(1000), Some(ms(5000))), ms(5000));
        assert_eq!(b.with_retry_after(ms(8000), Some(ms(5000))), ms(8000));
        assert_eq!(
            b.with_retry_after(ms(1), Some(Duration::from_secs(99_999))),
            MAX_SERVER_DELAY
        );
    }

    #[test]
    fn stability_resets_after_the_stable_period() {
        let b = Backoff::new(ReconnectOptions::default());
        assert!(!b.is_stable(ms(4999)));
        assert!(b.is_stable(ms(5000)));
    }
}
