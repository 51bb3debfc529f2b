//! A fault-injecting decorator around any backend, for tests: fail the k-th call of an
//! operation, fail every call while a switch is on, or apply a PUT and then report failure
//! (the reply was lost: a retry or a later read must still be right).

use super::memory::Op;
use super::*;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

/// How an injected fault behaves.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FaultKind {
    /// The call fails without reaching the inner backend.
    Fail,
    /// The call reaches the inner backend, then reports failure anyway.
    ApplyThenFail,
}

/// The k-th call (1-based, counted from when the rule was added) of `op` fails with `kind`.
#[derive(Clone, Copy, Debug)]
struct Rule {
    op: Op,
    nth: u64,
    kind: FaultKind,
}

/// The decorator.
pub struct FaultyBackend {
    inner: Arc<dyn ObjectBackend>,
    rules: Mutex<Vec<Rule>>,
    calls: [AtomicU64; 6],
    /// While set, every call fails.
    pub all_fail: AtomicBool,
}

impl FaultyBackend {
    /// Wraps `inner` with no faults.
    pub fn new(inner: Arc<dyn ObjectBackend>) -> Self {
        FaultyBackend {
            inner,
            rules: Mutex::new(Vec::new()),
            calls: Default::default(),
            all_fail: AtomicBool::new(false),
        }
    }

    /// The `nth` next call of `op` fails with `kind`.
    pub fn fail_nth(&self, op: Op, nth: u64, kind: FaultKind) {
        let base = self.calls[op as usize].load(Ordering::SeqCst);
        self.rules
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(Rule {
                op,
                nth: base + nth,
                kind,
            });
    }

    /// Counts the call and decides its fate: `None` = proceed normally.
    fn check(&self, op: Op) -> Option<FaultKind> {
        let n = self.calls[op as usize].fetch_add(1, Ordering::SeqCst) + 1;
        if self.all_fail.load(Ordering::SeqCst) {
            return Some(FaultKind::Fail);
        }
        let mut rules = self.rules.lock().unwrap_or_else(|e| e.into_inner());
        let hit = rules.iter().position(|r| r.op == op && r.nth == n)?;
        Some(rules.remove(hit).kind)
    }

    fn run<T>(&self, op: Op, f: impl FnOnce() -> BackendResult<T>) -> BackendResult<T> {
        match self.check(op) {
            None => f(),
            Some(FaultKind::Fail) => Err(BackendError::Injected(format!("{op:?} failed"))),
            Some(FaultKind::ApplyThenFail) => {
                f()?;
                Err(BackendError::Injected(format!(
                    "{op:?} applied, reply lost"
                )))
            }
        }
    }
}

impl ObjectBackend for FaultyBackend {
    fn caps(&self) -> BackendCaps {
        self.inner.caps()
    }
    fn description(&self, prefix: &str) -> String {
        format!("faulty+{}", self.inner.description(prefix))
    }
    fn get(&self, key: &str, req: &GetRequest) -> BackendResult<GetOutcome> {
        self.run(Op::Get, || self.inner.get(key, req))
    }
    fn head(&self, key: &str, startup_probe: bool) -> BackendResult<Option<ObjectInfo>> {
        self.run(Op::Head, || self.inner.head(key, startup_probe))
    }
    fn put(&self, key: &str, body: &[u8], req: &PutRequest) -> BackendResult<PutOutcome> {
        self.run(Op::Put, || self.inner.put(key, body, req))
    }
    fn delete(&self, key: &str) -> BackendResult<()> {
        self.run(Op::Delete, || self.inner.delete(key))
    }
    fn delete_many(&self, keys: &[String]) -> BackendResult<Vec<DeleteFailure>> {
        self.run(Op::DeleteMany, || self.inner.delete_many(keys))
    }
    fn list(&self, prefix: &str, marker: &str, max_keys: u32) -> BackendResult<ListPage> {
        self.run(Op::List, || self.inner.list(prefix, marker, max_keys))
    }
    fn sync(&self) -> BackendResult<()> {
        self.inner.sync()
    }
}
