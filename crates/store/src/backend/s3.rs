//! The S3 backend: [`ObjectBackend`] over our thin client (`s3backer-s3client`), which owns
//! signing, retries and the connection pool.

use super::*;
use s3backer_s3client::S3Client;

/// Objects in an S3-compatible bucket.
pub struct S3Backend {
    client: S3Client,
}

impl S3Backend {
    /// Wraps a client for one bucket.
    pub fn new(client: S3Client) -> Self {
        S3Backend { client }
    }

    /// The client (for its request counters).
    pub fn client(&self) -> &S3Client {
        &self.client
    }
}

impl ObjectBackend for S3Backend {
    fn caps(&self) -> BackendCaps {
        BackendCaps { metadata: true }
    }

    fn description(&self, prefix: &str) -> String {
        self.client.description(prefix)
    }

    fn get(&self, key: &str, req: &GetRequest) -> BackendResult<GetOutcome> {
        Ok(self.client.get_object(key, req)?)
    }

    fn head(&self, key: &str, startup_probe: bool) -> BackendResult<Option<ObjectInfo>> {
        Ok(self.client.head_object(key, startup_probe)?)
    }

    fn put(&self, key: &str, body: &[u8], req: &PutRequest) -> BackendResult<PutOutcome> {
        Ok(self.client.put_object(key, body, req)?)
    }

    fn delete(&self, key: &str) -> BackendResult<()> {
        Ok(self.client.delete_object(key)?)
    }

    fn delete_many(&self, keys: &[String]) -> BackendResult<Vec<DeleteFailure>> {
        Ok(self.client.delete_objects(keys)?)
    }

    fn list(&self, prefix: &str, marker: &str, max_keys: u32) -> BackendResult<ListPage> {
        Ok(self.client.list_objects(prefix, marker, max_keys)?)
    }
}
