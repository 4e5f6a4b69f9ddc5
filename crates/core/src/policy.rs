//! What a connection does after an attempt fails or an open stream ends: a pure function of the policy,
//! the attempt count and how it ended, so every transition is unit-tested without a clock.

use std::time::Duration;

use super::{backoff::Backoff, transport::AttemptError};

/// How a connection attempt, or an open stream, came to an end.
#[derive(Debug, Clone, PartialEq)]
pub enum Ended {
    /// The stream could not be opened.
    Attempt(AttemptError),
    /// An open stream dropped (network error, idle or pong timeout, server vanished).
    Dropped { reason: String, progress: Progress },
    /// An SSE response body ended cleanly; per WHATWG the client reconnects after the reconnection time.
    Finished { progress: Progress },
    /// The server sent a WebSocket close frame.
    ServerClosed {
        code: u16,
        reason: String,
        progress: Progress,
    },
}

/// What a stream that was open achieved before it ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Progress {
    /// How long it stayed open.
    pub uptime: Duration,
    /// Whether it delivered at least one message.
    pub delivered: bool,
}

/// The next step, and the attempt number it carries.
#[derive(Debug, Clone, PartialEq)]
pub enum Step {
    /// Wait `delay`, then make attempt `attempt`.
    Retry {
        attempt: u32,
        delay: Duration,
        reason: String,
    },
    /// Terminal until `reconnect`.
    Fail { reason: String },
    /// Closed on purpose by the server.
    Disconnect { reason: String },
    /// The server cannot stream: poll instead (only offered when a poll URL is set).
    Fallback { reason: String },
}

/// Decides the next step. `attempt` is the number of the attempt that just ended (0 for the first);
/// `sample` in [0, 1) drives the jitter; `can_fall_back` says a poll URL is set.
pub fn decide(
    backoff: Option<&Backoff>,
    attempt: u32,
    ended: &Ended,
    sample: f64,
    can_fall_back: bool,
) -> Step {
    let (reason, retry_after, next_attempt) = match ended {
        Ended::Attempt(AttemptError::Fatal { reason }) => {
            return Step::Fail {
                reason: reason.clone(),
            }
        }
        Ended::Attempt(AttemptError::Stop { reason }) => {
            return Step::Disconnect {
                reason: reason.clone(),
            }
        }
        Ended::Attempt(AttemptError::NoStream { reason }) => {
            return if can_fall_back {
                Step::Fallback {
                    reason: reason.clone(),
                }
            } else {
                Step::Fail {
                    reason: reason.clone(),
                }
            }
        }
        Ended::Attempt(AttemptError::Retry {
            reason,
            retry_after,
        }) => (reason.clone(), *retry_after, attempt.saturating_add(1)),
        Ended::ServerClosed {
            code: 1000, reason, ..
        } if !backoff.is_some_and(|b| b.reconnects_on_normal_close()) => {
            return Step::Disconnect {
                reason: if reason.is_empty() {
                    "server closed the connection (1000)".into()
                } else {
                    format!("server closed the connection (1000 {reason})")
                },
            }
        }
        Ended::ServerClosed {
            code,
            reason,
            progress,
        } => (
            format!(
                "server closed the connection ({code}{}{reason})",
                if reason.is_empty() { "" } else { " " }
            ),
            None,
            after_open(backoff, attempt, *progress),
        ),
        Ended::Dropped { reason, progress } => (
            reason.clone(),
            None,
            after_open(backoff, attempt, *progress),
        ),
        Ended::Finished { progress } => (
            "stream ended".into(),
            None,
            after_open(backoff, attempt, *progress),
        ),
    };
    let Some(backoff) = backoff else {
        return if matches!(ended, Ended::Finished { .. }) {
            Step::Disconnect {
                reason: "stream ended and reconnect is off".into(),
            }
        } else {
            Step::Fail {
                reason: format!("{reason} (reconnect is off)"),
            }
        };
    };
    if can_fall_back && backoff.falls_back_after(next_attempt) {
        return Step::Fallback {
            reason: format!("{next_attempt} failed attempts: {reason}"),
        };
    }
    if !backoff.may_retry(next_attempt) {
        return Step::Fail {
            reason: format!("gave up after {} retries: {reason}", next_attempt - 1),
        };
    }
    let delay = backoff.with_retry_after(backoff.delay(next_attempt, sample), retry_after);
    Step::Retry {
        attempt: next_attempt,
        delay,
        reason,
    }
}

/// The backoff grows only over attempts that made no progress: an open stream that delivered a message, or
/// stayed up for the stable period, starts the count afresh (the next wait is the base delay, as the SSE
/// reconnection time is). One that opened and dropped with nothing to show counts as a failure.
fn after_open(backoff: Option<&Backoff>, attempt: u32, progress: Progress) -> u32 {
    if progress.delivered || backoff.is_some_and(|b| b.is_stable(progress.uptime)) {
        1
    } else {
        attempt.saturating_add(1)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::options::ReconnectOptions;

    fn ms(v: u64) -> Duration {
        Duration::from_millis(v)
    }

    fn up(uptime: u64, delivered: bool) -> Progress {
        Progress {
            uptime: ms(uptime),
            delivered,
        }
    }

    fn retry(reason: &str) -> Ended {
        Ended::Attempt(AttemptError::Retry {
            reason: reason.into(),
            retry_after: None,
        })
    }

    #[test]
    fn transitions() {
        let b = Backoff::new(ReconnectOptions::default());
        let limited = Backoff::new(ReconnectOptions {
            max_retries: Some(2),
            ..Default::default()
        });
        let cases: Vec<(Option<&Backoff>, u32, Ended, bool, Step)> = vec![
            (
                Some(&b),
                0,
                retry("refused"),
                false,
                Step::Retry {
                    attempt: 1,
                    delay: ms(1000),
                    reason: "refused".into(),
                },
            ),
            (
                Some(&b),
                3,
                retry("refused"),
                false,
                Step::Retry {
                    attempt: 4,
                    delay: ms(8000),
                    reason: "refused".into(),
                },
            ),
            (
                Some(&b),
                0,
                Ended::Attempt(AttemptError::Retry {
                    reason: "HTTP 503".into(),
                    retry_after: Some(ms(7000)),
                }),
                false,
                Step::Retry {
                    attempt: 1,
                    delay: ms(7000),
                    reason: "HTTP 503".into(),
                },
            ),
            (
                Some(&b),
                0,
                Ended::Attempt(AttemptError::Fatal {
                    reason: "HTTP 401".into(),
                }),
                false,
                Step::Fail {
                    reason: "HTTP 401".into(),
                },
            ),
            (
                Some(&b),
                0,
                Ended::Attempt(AttemptError::Stop {
                    reason: "204".into(),
                }),
                false,
                Step::Disconnect {
                    reason: "204".into(),
                },
            ),
            (
                Some(&b),
                0,
                Ended::Attempt(AttemptError::NoStream {
                    reason: "json".into(),
                }),
                false,
                Step::Fail {
                    reason: "json".into(),
                },
            ),
            (
                Some(&b),
                0,
                Ended::Attempt(AttemptError::NoStream {
                    reason: "json".into(),
                }),
                true,
                Step::Fallback {
                    reason: "json".into(),
                },
            ),
            // A stream that stayed up long enough restarts the count; a flapping one keeps growing.
            (
                Some(&b),
                4,
                Ended::Dropped {
                    reason: "reset".into(),
                    progress: up(60_000, false),
                },
                false,
                Step::Retry {
                    attempt: 1,
                    delay: ms(1000),
                    reason: "reset".into(),
                },
            ),
            (
                Some(&b),
                2,
                Ended::Dropped {
                    reason: "reset".into(),
                    progress: up(10, false),
                },
                false,
                Step::Retry {
                    attempt: 3,
                    delay: ms(4000),
                    reason: "reset".into(),
                },
            ),
            (
                Some(&b),
                0,
                Ended::Finished {
                    progress: up(9000, false),
                },
                false,
                Step::Retry {
                    attempt: 1,
                    delay: ms(1000),
                    reason: "stream ended".into(),
                },
            ),
            (
                Some(&b),
                0,
                Ended::ServerClosed {
                    code: 1000,
                    reason: "bye".into(),
                    progress: up(1, false),
                },
                false,
                Step::Disconnect {
                    reason: "server closed the connection (1000 bye)".into(),
                },
            ),
            (
                Some(&b),
                0,
                Ended::ServerClosed {
                    code: 1011,
                    reason: "".into(),
                    progress: up(1, false),
                },
                false,
                Step::Retry {
                    attempt: 1,
                    delay: ms(1000),
                    reason: "server closed the connection (1011)".into(),
                },
            ),
            (
                Some(&limited),
                2,
                retry("refused"),
                false,
                Step::Fail {
                    reason: "gave up after 2 retries: refused".into(),
                },
            ),
            (
                None,
                0,
                retry("refused"),
                false,
                Step::Fail {
                    reason: "refused (reconnect is off)".into(),
                },
            ),
            (
                None,
                0,
                Ended::Finished {
                    progress: up(1, false),
                },
                false,
                Step::Disconnect {
                    reason: "stream ended and reconnect is off".into(),
                },
            ),
        ];
        for (i, (b, attempt, ended, fb, want)) in cases.into_iter().enumerate() {
            let got = decide(b, attempt, &ended, 0.0, fb);
            assert_eq!(got, want, "case {i}: expected {want:?}, got {got:?}");
        }
    }

    /// A stream that delivered and then dropped waits the base delay, however short its life and however
    /// many attempts came before; one that delivered nothing keeps growing the backoff.
    #[test]
    fn only_attempts_without_progress_grow_the_backoff() {
        let mut b = Backoff::new(ReconnectOptions::default());
        b.set_base(ms(20));
        for attempt in [0, 1, 5, 30] {
            let step = decide(
                Some(&b),
                attempt,
                &Ended::Finished {
                    progress: up(3, true),
                },
                0.0,
                false,
            );
            assert!(
                matches!(step, Step::Retry { attempt: 1, delay, .. } if delay == ms(20)),
                "expected attempt 1 after 20 ms, got {step:?}"
            );
            let closed = Ended::ServerClosed {
                code: 1011,
                reason: String::new(),
                progress: up(3, true),
            };
            assert!(matches!(
                decide(Some(&b), attempt, &closed, 0.0, false),
                Step::Retry { attempt: 1, .. }
            ));
        }
        let idle = decide(
            Some(&b),
            3,
            &Ended::Finished {
                progress: up(3, false),
            },
            0.0,
            false,
        );
        assert!(
            matches!(idle, Step::Retry { attempt: 4, delay, .. } if delay == ms(160)),
            "expected attempt 4 after 160 ms, got {idle:?}"
        );
    }

    #[test]
    fn falls_back_after_the_configured_failures() {
        let b = Backoff::new(ReconnectOptions::default()).with_fallback_after(Some(3));
        assert!(matches!(
            decide(Some(&b), 1, &retry("x"), 0.0, true),
            Step::Retry { attempt: 2, .. }
        ));
        // Attempt 2 was the third failure in a row: poll.
        assert_eq!(
            decide(Some(&b), 2, &retry("x"), 0.0, true),
            Step::Fallback {
                reason: "3 failed attempts: x".into()
            }
        );
        // The fallback comes before giving up on maxRetries.
        let strict = Backoff::new(ReconnectOptions {
            max_retries: Some(1),
            ..Default::default()
        })
        .with_fallback_after(Some(3));
        assert!(matches!(
            decide(Some(&strict), 2, &retry("x"), 0.0, true),
            Step::Fallback { .. }
        ));
        // Without a poll URL the same count just keeps retrying.
        assert!(matches!(
            decide(Some(&b), 3, &retry("x"), 0.0, false),
            Step::Retry { attempt: 4, .. }
        ));
    }
}
