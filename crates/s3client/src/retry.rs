//! When to try again, and how long to wait (facts §4.5).
//!
//! # Classification ([`classify_http`])
//! Retried: 401, 403, 412, 3xx, any other status ≥ 300 except 404 (and except 304 where the
//! operation asked for it), timeouts, connect/DNS/other transport errors. Never retried: 2xx,
//! 404, an expected 304. Exceptions that fail at once:
//! * an error body whose `Code` is definitive ([`DEFINITIVE_CODES`]: bad credentials, no such
//!   bucket, malformed request...). `BadDigest` is *not* definitive: the body was corrupted in
//!   transit and a resend may succeed;
//! * status 501 (Not Implemented) whatever the code: the server lacks the operation (e.g. bulk
//!   delete) and the caller wants to fall back quickly;
//! * `head_object(.., startup_probe = true)` on a 4xx other than 404/408/429 (decided in
//!   `head_object.rs`).
//!
//! # Schedule ([`Backoff`])
//! Pauses start at `--initialRetryPause` and double; the last one is shortened so that the
//! **sum** of pauses equals `--maxRetryPause`; then we give up, return the last error and log
//! `giving up on: METHOD URL`. Defaults 200 ms / 30 s give 200, 400, 800, 1600, 3200, 6400,
//! 12800, 4600 ms: 8 pauses, 9 attempts. A 503 with `Retry-After: N` waits at least N seconds
//! (still within the budget). A zero initial pause is treated as 1 ms so the schedule ends.
//!
//! Sleeping goes through a [`Sleeper`] so tests can record pauses instead of sleeping.

use std::sync::Arc;
use std::time::Duration;

use crate::error::S3Error;
use crate::stats::Counters;

/// S3 error codes that retrying cannot fix.
pub(crate) const DEFINITIVE_CODES: &[&str] = &[
    "InvalidAccessKeyId",
    "SignatureDoesNotMatch",
    "AccessDenied",
    "NoSuchBucket",
    "InvalidBucketName",
    "AuthorizationHeaderMalformed",
    "AllAccessDisabled",
    "InvalidArgument",
    "InvalidRequest",
    "MissingContentMD5",
    "InvalidDigest",
    "NotImplemented",
];

/// How the client waits between attempts.
pub(crate) type Sleeper = Arc<dyn Fn(Duration) + Send + Sync>;

/// The real sleeper.
pub(crate) fn thread_sleeper() -> Sleeper {
    Arc::new(std::thread::sleep)
}

/// What one attempt produced.
pub(crate) enum Attempt<T> {
    /// Finished (successfully, or with a result the caller interprets).
    Done(T),
    /// Failed in a way worth retrying; wait at least `at_least` if given (`Retry-After`).
    Retry {
        error: S3Error,
        at_least: Option<Duration>,
    },
    /// Failed for good.
    Fail(S3Error),
}

/// Whether an error response is worth retrying (see the module doc). `expected_304` is true
/// for conditional GETs, where 304 is an answer rather than an error; `404` and an expected
/// `304` are never retried (callers normally handle both before asking).
pub(crate) fn classify_http(status: u16, code: Option<&str>, expected_304: bool) -> bool {
    if status < 300 || status == 404 || (status == 304 && expected_304) || status == 501 {
        return false;
    }
    !code.is_some_and(|c| DEFINITIVE_CODES.contains(&c))
}

/// The retry budget from the settings.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct RetryPolicy {
    pub(crate) initial_pause: Duration,
    pub(crate) max_total_pause: Duration,
}

impl RetryPolicy {
    pub(crate) fn backoff(&self) -> Backoff {
        Backoff {
            next: self.initial_pause.max(Duration::from_millis(1)),
            spent: Duration::ZERO,
            budget: self.max_total_pause,
        }
    }
}

/// The pause sequence of one request.
#[derive(Debug)]
pub(crate) struct Backoff {
    next: Duration,
    spent: Duration,
    budget: Duration,
}

impl Backoff {
    /// The next pause, at least `at_least` (capped by what is left of the budget), or `None`
    /// when the budget is used up.
    pub(crate) fn next_pause(&mut self, at_least: Option<Duration>) -> Option<Duration> {
        let left = self.budget.saturating_sub(self.spent);
        if left.is_zero() {
            return None;
        }
        let pause = self.next.max(at_least.unwrap_or_default()).min(left);
        self.spent += pause;
        self.next = self.next.saturating_mul(2);
        Some(pause)
    }
}

/// The full pause schedule for a policy, assuming every attempt fails without `Retry-After`.
#[cfg(test)]
pub(crate) fn schedule(policy: RetryPolicy) -> Vec<Duration> {
    let mut b = policy.backoff();
    std::iter::from_fn(|| b.next_pause(None)).collect()
}

/// Runs `attempt` until it is done, fails for good or the budget is used up.
pub(crate) fn run<T>(
    policy: RetryPolicy,
    sleeper: &Sleeper,
    stats: &Counters,
    method: &str,
    url: &str,
    mut attempt: impl FnMut() -> Attempt<T>,
) -> Result<T, S3Error> {
    let mut backoff = policy.backoff();
    loop {
        match attempt() {
            Attempt::Done(v) => return Ok(v),
            Attempt::Fail(e) => return Err(e),
            Attempt::Retry { error, at_least } => match backoff.next_pause(at_least) {
                None => {
                    log::warn!("giving up on: {method} {url}");
                    return Err(error);
                }
                Some(pause) => {
                    log::info!("retrying {method} {url} in {pause:?}: {error}");
                    stats.record_retry(pause);
                    sleeper(pause);
                }
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Mutex;

    fn ms(v: u64) -> Duration {
        Duration::from_millis(v)
    }

    fn policy(initial: u64, max: u64) -> RetryPolicy {
        RetryPolicy {
            initial_pause: ms(initial),
            max_total_pause: ms(max),
        }
    }

    #[test]
    fn default_schedule_matches_s3backer() {
        let s = schedule(policy(200, 30_000));
        assert_eq!(
            s,
            [200, 400, 800, 1600, 3200, 6400, 12800, 4600]
                .map(ms)
                .to_vec()
        );
        assert_eq!(s.iter().sum::<Duration>(), ms(30_000));
    }

    #[test]
    fn other_schedules() {
        assert_eq!(schedule(policy(100, 700)), [100, 200, 400].map(ms).to_vec());
        assert_eq!(
            schedule(policy(100, 750)),
            [100, 200, 400, 50].map(ms).to_vec()
        );
        assert_eq!(schedule(policy(1000, 300)), [300].map(ms).to_vec());
        assert!(schedule(policy(200, 0)).is_empty());
        // A zero initial pause still ends.
        assert_eq!(schedule(policy(0, 3)), [1, 2].map(ms).to_vec());
    }

    #[test]
    fn retry_after_raises_a_pause_within_the_budget() {
        let mut b = policy(200, 30_000).backoff();
        assert_eq!(b.next_pause(Some(ms(5000))), Some(ms(5000)));
        assert_eq!(b.next_pause(None), Some(ms(400)));
        assert_eq!(b.next_pause(Some(ms(60_000))), Some(ms(24_600)));
        assert_eq!(b.next_pause(None), None);
    }

    #[test]
    fn classification_table() {
        let cases: &[(u16, Option<&str>, bool, bool)] = &[
            // status, code, expected_304, retry?
            (200, None, false, false),
            (204, None, false, false),
            (404, None, false, false),
            (404, Some("NoSuchBucket"), false, false),
            (304, None, true, false),
            (304, None, false, true),
            (301, Some("PermanentRedirect"), false, true),
            (307, None, false, true),
            (400, Some("BadDigest"), false, true),
            // SigV4's signed payload hash did not match: damaged in transit, like BadDigest.
            (400, Some("XAmzContentSHA256Mismatch"), false, true),
            (400, Some("RequestTimeout"), false, true),
            (400, Some("InvalidDigest"), false, false),
            (400, Some("InvalidArgument"), false, false),
            (400, Some("MissingContentMD5"), false, false),
            (401, None, false, true),
            (403, None, false, true),
            (403, Some("SignatureDoesNotMatch"), false, false),
            (403, Some("InvalidAccessKeyId"), false, false),
            (403, Some("AccessDenied"), false, false),
            (403, Some("RequestTimeTooSkewed"), false, true),
            (409, Some("OperationAborted"), false, true),
            (412, Some("PreconditionFailed"), false, true),
            (500, Some("InternalError"), false, true),
            (501, None, false, false),
            (501, Some("NotImplemented"), false, false),
            (503, Some("SlowDown"), false, true),
        ];
        for &(status, code, expected_304, retry) in cases {
            assert_eq!(
                classify_http(status, code, expected_304),
                retry,
                "{status} {code:?}"
            );
        }
    }

    #[test]
    fn run_retries_then_gives_up_with_the_last_error() {
        let slept = Arc::new(Mutex::new(Vec::new()));
        let record = slept.clone();
        let sleeper: Sleeper = Arc::new(move |d| record.lock().unwrap().push(d));
        let stats = Counters::default();
        let mut n = 0;
        let r: Result<(), S3Error> = run(policy(10, 70), &sleeper, &stats, "GET", "u", || {
            n += 1;
            Attempt::Retry {
                error: S3Error::Transport {
                    method: "GET",
                    url: "u".into(),
                    detail: format!("attempt {n}"),
                },
                at_least: None,
            }
        });
        assert_eq!(n, 4);
        assert!(r.unwrap_err().to_string().contains("attempt 4"));
        assert_eq!(*slept.lock().unwrap(), [10, 20, 40].map(ms).to_vec());
        let s = stats.snapshot();
        assert_eq!(s.retries, 3);
        assert_eq!(s.total_retry_delay, ms(70));
    }

    #[test]
    fn run_stops_on_done_and_fail() {
        let sleeper: Sleeper = Arc::new(|_| {});
        let stats = Counters::default();
        let mut n = 0;
        let r = run(policy(10, 1000), &sleeper, &stats, "GET", "u", || {
            n += 1;
            if n < 3 {
                Attempt::Retry {
                    error: S3Error::Config { detail: "x".into() },
                    at_least: None,
                }
            } else {
                Attempt::Done(n)
            }
        });
        assert_eq!(r.unwrap(), 3);
        let r: Result<(), S3Error> = run(policy(10, 1000), &sleeper, &stats, "GET", "u", || {
            Attempt::Fail(S3Error::Config { detail: "y".into() })
        });
        assert!(r.is_err());
        assert_eq!(stats.snapshot().retries, 2);
    }
}
