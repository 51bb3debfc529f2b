//! An in-memory object store with per-operation call counters, for unit tests of the layers
//! above it: tests assert both the bytes and the requests ("a zero write issues one DELETE and
//! no PUT").

use super::*;
use std::collections::BTreeMap;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};

/// An operation, for counting.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Op {
    /// GET.
    Get,
    /// HEAD.
    Head,
    /// PUT.
    Put,
    /// DELETE.
    Delete,
    /// Multi-object delete.
    DeleteMany,
    /// List.
    List,
}

const OPS: usize = 6;

/// A stored object.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StoredObject {
    /// Body.
    pub body: Vec<u8>,
    /// Metadata as given to PUT.
    pub meta: Vec<(String, String)>,
    /// Content-Encoding as given to PUT.
    pub content_encoding: Option<String>,
    /// Content-Type as given to PUT.
    pub content_type: Option<String>,
}

/// A distinct ETag per stored version (a counter; real servers use the MD5 of the body).
fn next_etag() -> Etag {
    static N: AtomicU64 = AtomicU64::new(1);
    let n = N.fetch_add(1, Ordering::Relaxed);
    let mut e = [0u8; 16];
    e[..8].copy_from_slice(&n.to_le_bytes());
    Etag(e)
}

/// The in-memory store.
#[derive(Default)]
pub struct MemoryBackend {
    objects: Mutex<BTreeMap<String, StoredObject>>,
    etags: Mutex<BTreeMap<String, Etag>>,
    counts: [AtomicU64; OPS],
    /// PUTs that came with the body's CRC-32 (checked) from the layer above.
    puts_with_crc: AtomicU64,
    /// When set, `delete_many` fails as servers without bulk delete do.
    pub refuse_bulk_delete: std::sync::atomic::AtomicBool,
}

impl MemoryBackend {
    /// An empty store.
    pub fn new() -> Self {
        Self::default()
    }

    fn count(&self, op: Op) {
        self.counts[op as usize].fetch_add(1, Ordering::Relaxed);
    }

    /// How many times `op` was called.
    pub fn calls(&self, op: Op) -> u64 {
        self.counts[op as usize].load(Ordering::Relaxed)
    }

    /// Resets all counters.
    pub fn reset_counts(&self) {
        self.counts
            .iter()
            .for_each(|c| c.store(0, Ordering::Relaxed));
        self.puts_with_crc.store(0, Ordering::Relaxed);
    }

    /// How many PUTs came with a CRC-32 (each one checked against its body).
    pub fn puts_with_crc(&self) -> u64 {
        self.puts_with_crc.load(Ordering::Relaxed)
    }

    /// A copy of an object.
    pub fn object(&self, key: &str) -> Option<StoredObject> {
        self.lock().get(key).cloned()
    }

    /// Every key, sorted.
    pub fn keys(&self) -> Vec<String> {
        self.lock().keys().cloned().collect()
    }

    /// Stores an object directly (an out-of-band change by another writer).
    pub fn insert(&self, key: &str, object: StoredObject) {
        self.lock().insert(key.to_string(), object);
        self.etags
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(key.to_string(), next_etag());
    }

    fn etag(&self, key: &str) -> Option<Etag> {
        self.etags
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(key)
            .copied()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, BTreeMap<String, StoredObject>> {
        self.objects.lock().unwrap_or_else(|e| e.into_inner())
    }
}

impl ObjectBackend for MemoryBackend {
    fn caps(&self) -> BackendCaps {
        BackendCaps { metadata: true }
    }

    fn description(&self, prefix: &str) -> String {
        format!("memory:///{prefix}")
    }

    fn get(&self, key: &str, req: &GetRequest) -> BackendResult<GetOutcome> {
        self.count(Op::Get);
        let etag = self.etag(key);
        if req.if_none_match.is_some() && req.if_none_match == etag && self.lock().contains_key(key)
        {
            return Ok(GetOutcome::NotModified);
        }
        Ok(match self.lock().get(key) {
            Some(o) => GetOutcome::Found(ObjectData {
                body: o.body.clone(),
                etag,
                content_encoding: o.content_encoding.clone(),
                meta: o.meta.clone(),
                range_of: None,
                in_dest: false,
            }),
            None => GetOutcome::NotFound,
        })
    }

    /// Like the S3 client: a plain body of exactly the buffer's size is handed over in it.
    fn get_into(&self, key: &str, req: &GetRequest, dest: &mut [u8]) -> BackendResult<GetOutcome> {
        Ok(match self.get(key, req)? {
            GetOutcome::Found(mut d)
                if d.content_encoding.is_none() && d.body.len() == dest.len() =>
            {
                dest.copy_from_slice(&d.body);
                d.body = Vec::new();
                d.in_dest = true;
                GetOutcome::Found(d)
            }
            other => other,
        })
    }

    fn head(&self, key: &str, _startup_probe: bool) -> BackendResult<Option<ObjectInfo>> {
        self.count(Op::Head);
        let etag = self.etag(key);
        Ok(self.lock().get(key).map(|o| ObjectInfo {
            etag,
            content_length: Some(o.body.len() as u64),
            content_encoding: o.content_encoding.clone(),
            meta: o.meta.clone(),
        }))
    }

    fn put(&self, key: &str, body: &[u8], req: &PutRequest) -> BackendResult<PutOutcome> {
        self.count(Op::Put);
        // As S3 does (BadDigest): a CRC-32 given with the body must be the body's. Every layer
        // test that writes through a cache holds the cache's kept CRCs to this.
        if let Some(crc) = req.crc32
            && crc != crc32fast::hash(body)
        {
            return Err(BackendError::Injected(format!(
                "BadDigest: the CRC-32 sent with {key} ({crc:08x}) is not its body's ({:08x})",
                crc32fast::hash(body)
            )));
        }
        if req.crc32.is_some() {
            self.puts_with_crc.fetch_add(1, Ordering::Relaxed);
        }
        let object = StoredObject {
            body: body.to_vec(),
            meta: req.meta.clone(),
            content_encoding: req.content_encoding.clone(),
            content_type: req.content_type.clone(),
        };
        self.lock().insert(key.to_string(), object);
        let etag = next_etag();
        self.etags
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(key.to_string(), etag);
        Ok(PutOutcome { etag: Some(etag) })
    }

    fn delete(&self, key: &str) -> BackendResult<()> {
        self.count(Op::Delete);
        self.lock().remove(key);
        Ok(())
    }

    fn delete_many(&self, keys: &[String]) -> BackendResult<Vec<DeleteFailure>> {
        self.count(Op::DeleteMany);
        if self.refuse_bulk_delete.load(Ordering::Relaxed) {
            return Err(BackendError::Injected("bulk delete refused".into()));
        }
        let mut objects = self.lock();
        keys.iter().for_each(|k| {
            objects.remove(k);
        });
        Ok(Vec::new())
    }

    fn list(&self, prefix: &str, marker: &str, max_keys: u32) -> BackendResult<ListPage> {
        self.count(Op::List);
        let objects = self.lock();
        let mut keys: Vec<String> = objects
            .keys()
            .filter(|k| k.starts_with(prefix) && k.as_str() > marker)
            .take(max_keys as usize + 1)
            .cloned()
            .collect();
        let is_truncated = keys.len() > max_keys as usize;
        keys.truncate(max_keys as usize);
        Ok(ListPage { keys, is_truncated })
    }
}
