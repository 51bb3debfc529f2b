//! Request counters ([`ClientStats`]): plain atomics, snapshotted on demand.
//!
//! Operation counters (`gets`, `puts`, ...) count calls, whatever their outcome; the time
//! counters add up the wall time of those calls, retries included (for s3backer's
//! `http_avg_*_time`). Error counters count failed *attempts* by class, so one call retried
//! five times on 503 adds five to `http_5xx`. 404 (and an expected 304) are answers, not
//! errors, and are not counted here.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

/// A snapshot of the client's counters (see the field docs for what each one counts).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct ClientStats {
    /// `get_object` calls.
    pub gets: u64,
    /// `put_object` calls.
    pub puts: u64,
    /// `delete_object` calls.
    pub deletes: u64,
    /// `head_object` calls.
    pub heads: u64,
    /// `list_objects` calls.
    pub lists: u64,
    /// `delete_objects` calls that sent a request.
    pub bulk_deletes: u64,
    /// Total wall time of `get_object` calls.
    pub get_time: Duration,
    /// Total wall time of `put_object` calls.
    pub put_time: Duration,
    /// Total wall time of `delete_object` calls.
    pub delete_time: Duration,
    /// Retries (attempts after the first).
    pub retries: u64,
    /// Sum of the pauses before those retries.
    pub total_retry_delay: Duration,
    /// Attempts answered 401.
    pub http_unauthorized: u64,
    /// Attempts answered 403.
    pub http_forbidden: u64,
    /// Attempts answered 412 (stale content).
    pub http_stale: u64,
    /// Attempts answered 301, 302, 307 or 308.
    pub http_redirect: u64,
    /// Attempts answered another 3xx (e.g. an unexpected 304).
    pub http_3xx: u64,
    /// Attempts answered another 4xx (404 excluded).
    pub http_4xx: u64,
    /// Attempts answered 5xx.
    pub http_5xx: u64,
    /// Attempts answered a status outside 100..=599.
    pub http_other: u64,
    /// Attempts that timed out.
    pub timeouts: u64,
    /// Attempts that could not connect (refused, unreachable).
    pub connect_failed: u64,
    /// Attempts whose host name did not resolve.
    pub host_unknown: u64,
    /// Attempts that failed in the transport otherwise (TLS, reset, protocol, body read).
    pub transport_errors: u64,
}

impl ClientStats {
    /// The counts since `base` was taken (a reset without touching the live counters: the
    /// stats file is "reset" by remembering a baseline).
    pub fn since(&self, base: &ClientStats) -> ClientStats {
        macro_rules! sub {
            ($($f:ident),*) => { ClientStats { $($f: self.$f.saturating_sub(base.$f)),* } };
        }
        sub!(
            gets,
            puts,
            deletes,
            heads,
            lists,
            bulk_deletes,
            get_time,
            put_time,
            delete_time,
            retries,
            total_retry_delay,
            http_unauthorized,
            http_forbidden,
            http_stale,
            http_redirect,
            http_3xx,
            http_4xx,
            http_5xx,
            http_other,
            timeouts,
            connect_failed,
            host_unknown,
            transport_errors
        )
    }
}

/// Which operation a call was (for the counters).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Op {
    Get,
    Put,
    Delete,
    Head,
    List,
    BulkDelete,
}

/// Transport failure classes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum TransportClass {
    Timeout,
    Connect,
    HostUnknown,
    Other,
}

/// The live counters.
#[derive(Debug, Default)]
pub(crate) struct Counters {
    gets: AtomicU64,
    puts: AtomicU64,
    deletes: AtomicU64,
    heads: AtomicU64,
    lists: AtomicU64,
    bulk_deletes: AtomicU64,
    get_ns: AtomicU64,
    put_ns: AtomicU64,
    delete_ns: AtomicU64,
    retries: AtomicU64,
    retry_delay_ns: AtomicU64,
    http_unauthorized: AtomicU64,
    http_forbidden: AtomicU64,
    http_stale: AtomicU64,
    http_redirect: AtomicU64,
    http_3xx: AtomicU64,
    http_4xx: AtomicU64,
    http_5xx: AtomicU64,
    http_other: AtomicU64,
    timeouts: AtomicU64,
    connect_failed: AtomicU64,
    host_unknown: AtomicU64,
    transport_errors: AtomicU64,
}

fn add(c: &AtomicU64, v: u64) {
    c.fetch_add(v, Ordering::Relaxed);
}

fn nanos(d: Duration) -> u64 {
    u64::try_from(d.as_nanos()).unwrap_or(u64::MAX)
}

impl Counters {
    /// Counts one call of `op` that took `elapsed`.
    pub(crate) fn record_op(&self, op: Op, elapsed: Duration) {
        match op {
            Op::Get => {
                add(&self.gets, 1);
                add(&self.get_ns, nanos(elapsed));
            }
            Op::Put => {
                add(&self.puts, 1);
                add(&self.put_ns, nanos(elapsed));
            }
            Op::Delete => {
                add(&self.deletes, 1);
                add(&self.delete_ns, nanos(elapsed));
            }
            Op::Head => add(&self.heads, 1),
            Op::List => add(&self.lists, 1),
            Op::BulkDelete => add(&self.bulk_deletes, 1),
        }
    }

    /// Counts a retry after `pause`.
    pub(crate) fn record_retry(&self, pause: Duration) {
        add(&self.retries, 1);
        add(&self.retry_delay_ns, nanos(pause));
    }

    /// Counts an attempt answered with error `status`.
    pub(crate) fn record_http_error(&self, status: u16) {
        let c = match status {
            401 => &self.http_unauthorized,
            403 => &self.http_forbidden,
            412 => &self.http_stale,
            301 | 302 | 307 | 308 => &self.http_redirect,
            300..=399 => &self.http_3xx,
            400..=499 => &self.http_4xx,
            500..=599 => &self.http_5xx,
            _ => &self.http_other,
        };
        add(c, 1);
    }

    /// Counts an attempt that failed in the transport.
    pub(crate) fn record_transport_error(&self, class: TransportClass) {
        let c = match class {
            TransportClass::Timeout => &self.timeouts,
            TransportClass::Connect => &self.connect_failed,
            TransportClass::HostUnknown => &self.host_unknown,
            TransportClass::Other => &self.transport_errors,
        };
        add(c, 1);
    }

    /// A consistent-enough copy (each counter is read atomically, not all at once).
    pub(crate) fn snapshot(&self) -> ClientStats {
        let get = |c: &AtomicU64| c.load(Ordering::Relaxed);
        let dur = |c: &AtomicU64| Duration::from_nanos(c.load(Ordering::Relaxed));
        ClientStats {
            gets: get(&self.gets),
            puts: get(&self.puts),
            deletes: get(&self.deletes),
            heads: get(&self.heads),
            lists: get(&self.lists),
            bulk_deletes: get(&self.bulk_deletes),
            get_time: dur(&self.get_ns),
            put_time: dur(&self.put_ns),
            delete_time: dur(&self.delete_ns),
            retries: get(&self.retries),
            total_retry_delay: dur(&self.retry_delay_ns),
            http_unauthorized: get(&self.http_unauthorized),
            http_forbidden: get(&self.http_forbidden),
            http_stale: get(&self.http_stale),
            http_redirect: get(&self.http_redirect),
            http_3xx: get(&self.http_3xx),
            http_4xx: get(&self.http_4xx),
            http_5xx: get(&self.http_5xx),
            http_other: get(&self.http_other),
            timeouts: get(&self.timeouts),
            connect_failed: get(&self.connect_failed),
            host_unknown: get(&self.host_unknown),
            transport_errors: get(&self.transport_errors),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counters_by_class() {
        let c = Counters::default();
        for s in [401, 403, 412, 301, 304, 400, 409, 500, 503, 999] {
            c.record_http_error(s);
        }
        c.record_transport_error(TransportClass::Timeout);
        c.record_transport_error(TransportClass::Connect);
        c.record_transport_error(TransportClass::HostUnknown);
        c.record_transport_error(TransportClass::Other);
        c.record_op(Op::Get, Duration::from_millis(5));
        c.record_op(Op::Get, Duration::from_millis(7));
        c.record_op(Op::BulkDelete, Duration::ZERO);
        let s = c.snapshot();
        assert_eq!(
            (
                s.http_unauthorized,
                s.http_forbidden,
                s.http_stale,
                s.http_redirect
            ),
            (1, 1, 1, 1)
        );
        assert_eq!(
            (s.http_3xx, s.http_4xx, s.http_5xx, s.http_other),
            (1, 2, 2, 1)
        );
        assert_eq!(
            (
                s.timeouts,
                s.connect_failed,
                s.host_unknown,
                s.transport_errors
            ),
            (1, 1, 1, 1)
        );
        assert_eq!(s.gets, 2);
        assert_eq!(s.get_time, Duration::from_millis(12));
        assert_eq!(s.bulk_deletes, 1);
    }
}
