//! Checked time. Every deadline the engine sets goes through [`deadline`], and every delay a server asks for
//! (`Retry-After`, SSE `retry:`) through [`server_delay`], so no value from a server or a page can overflow an
//! `Instant` or park a connection for longer than [`MAX_SERVER_DELAY`].

use std::time::Duration;

use tokio::time::Instant;

/// Longest wait a server can impose (`Retry-After`, `retry:`): ten minutes.
pub const MAX_SERVER_DELAY: Duration = Duration::from_secs(600);

/// What stands for "never" in a timer: a year, far past any connection's life.
pub(crate) const NEVER: Duration = Duration::from_secs(365 * 86_400);

/// A delay asked for by a server, capped at [`MAX_SERVER_DELAY`].
pub fn server_delay(asked: Duration) -> Duration {
    asked.min(MAX_SERVER_DELAY)
}

/// The instant `after` from now; past what an `Instant` can hold it is "never", not a panic.
pub(crate) fn deadline(after: Duration) -> Instant {
    let now = Instant::now();
    now.checked_add(after.min(NEVER))
        .or_else(|| now.checked_add(Duration::from_secs(86_400)))
        .unwrap_or(now)
}

/// A duration of `ms` milliseconds, at most [`NEVER`].
pub(crate) fn millis(ms: u64) -> Duration {
    Duration::from_millis(ms).min(NEVER)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn huge_values_neither_panic_nor_wait_forever() {
        assert_eq!(
            server_delay(Duration::from_secs(u64::MAX)),
            MAX_SERVER_DELAY
        );
        assert_eq!(server_delay(Duration::from_secs(7)), Duration::from_secs(7));
        let later = deadline(Duration::MAX);
        assert!(later > Instant::now() + Duration::from_secs(86_000));
        assert_eq!(millis(u64::MAX), NEVER);
    }
}
