//! The statistics text (s3backer's stats file, facts §9.4): one counter per line, the name
//! left-justified to 28 columns, a space, the value. Every layer appends its own section through
//! [`crate::BlockStore::report_stats`] (the object layer and backend first, then the layers
//! above), and `out_of_memory_errors` always comes last.
//!
//! Counters are reset by remembering a baseline, so no layer has to stop to reset them.

use std::fmt::Display;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

/// The statistics text under construction.
#[derive(Debug, Default)]
pub struct StatsReport {
    text: String,
}

impl StatsReport {
    /// An empty report.
    pub fn new() -> Self {
        Self::default()
    }

    /// Appends `name value`.
    pub fn line(&mut self, name: &str, value: impl Display) {
        self.text.push_str(&format!("{name:<28} {value}\n"));
    }

    /// Appends a duration in s3backer's `N.mmm sec` form.
    pub fn seconds(&mut self, name: &str, d: Duration) {
        self.line(name, format!("{:.3} sec", d.as_secs_f64()));
    }

    /// Appends a ratio with eight decimals (`0` when the denominator is 0).
    pub fn ratio(&mut self, name: &str, num: u64, den: u64) {
        let r = if den == 0 {
            0.0
        } else {
            num as f64 / den as f64
        };
        self.line(name, format!("{r:.8}"));
    }

    /// The finished text.
    pub fn into_text(self) -> String {
        self.text
    }
}

/// A counter that can be reset without losing concurrent increments (it keeps a baseline).
#[derive(Debug, Default)]
pub struct Counter {
    total: AtomicU64,
    base: AtomicU64,
}

impl Counter {
    /// Adds one.
    pub fn incr(&self) {
        self.add(1);
    }

    /// Adds `n`.
    pub fn add(&self, n: u64) {
        self.total.fetch_add(n, Ordering::Relaxed);
    }

    /// The count since the last reset.
    pub fn get(&self) -> u64 {
        self.total
            .load(Ordering::Relaxed)
            .saturating_sub(self.base.load(Ordering::Relaxed))
    }

    /// Starts counting from zero again.
    pub fn reset(&self) {
        self.base
            .store(self.total.load(Ordering::Relaxed), Ordering::Relaxed);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn format_matches_s3backer() {
        let mut r = StatsReport::new();
        r.line("http_gets", 12);
        r.seconds("http_avg_get_time", Duration::from_millis(1500));
        r.ratio("block_cache_read_hit_ratio", 1, 3);
        r.ratio("none", 1, 0);
        assert_eq!(
            r.into_text(),
            "http_gets                    12\n\
             http_avg_get_time            1.500 sec\n\
             block_cache_read_hit_ratio   0.33333333\n\
             none                         0.00000000\n"
        );
    }

    #[test]
    fn counters_reset_to_zero() {
        let c = Counter::default();
        c.add(5);
        c.reset();
        c.incr();
        assert_eq!(c.get(), 1);
    }
}
