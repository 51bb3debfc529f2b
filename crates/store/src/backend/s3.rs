//! The S3 backend: [`ObjectBackend`] over our thin client (`s3backer-s3client`), which owns
//! signing, retries and the connection pool.

use super::*;
use s3backer_s3client::S3Client;

/// Objects in an S3-compatible bucket.
pub struct S3Backend {
    client: S3Client,
    /// Counters at the last reset of the statistics.
    baseline: std::sync::Mutex<s3backer_s3client::ClientStats>,
}

impl S3Backend {
    /// Wraps a client for one bucket.
    pub fn new(client: S3Client) -> Self {
        S3Backend {
            client,
            baseline: Default::default(),
        }
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

    fn get_into(&self, key: &str, req: &GetRequest, dest: &mut [u8]) -> BackendResult<GetOutcome> {
        Ok(self.client.get_object_into(key, req, dest)?)
    }

    fn ranged_reads_verified(&self) -> bool {
        self.client.uses_tls()
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

    fn report_stats(&self, out: &mut crate::stats::StatsReport) {
        let base = *self.baseline.lock().unwrap_or_else(|e| e.into_inner());
        let s = self.client.stats().since(&base);
        let avg = |total: std::time::Duration, n: u64| {
            if n == 0 {
                std::time::Duration::ZERO
            } else {
                total / u32::try_from(n).unwrap_or(u32::MAX)
            }
        };
        out.line("http_gets", s.gets);
        out.line("http_puts", s.puts);
        out.line("http_deletes", s.deletes);
        out.seconds("http_avg_get_time", avg(s.get_time, s.gets));
        out.seconds("http_avg_put_time", avg(s.put_time, s.puts));
        out.seconds("http_avg_delete_time", avg(s.delete_time, s.deletes));
        out.line("http_unauthorized", s.http_unauthorized);
        out.line("http_forbidden", s.http_forbidden);
        out.line("http_stale", s.http_stale);
        out.line("http_redirect", s.http_redirect);
        out.line("http_5xx_error", s.http_5xx);
        out.line("http_4xx_error", s.http_4xx);
        out.line("http_3xx_error", s.http_3xx);
        out.line("http_other_error", s.http_other);
        out.line("http_num_retries", s.retries);
        out.seconds("http_total_retry_delay", s.total_retry_delay);
        out.line("curl_timeouts", s.timeouts);
        out.line("curl_connect_failed", s.connect_failed);
        out.line("curl_host_unknown", s.host_unknown);
        out.line("curl_other_error", s.transport_errors);
        // Beyond s3backer's list: the requests it does not count.
        out.line("http_heads", s.heads);
        out.line("http_lists", s.lists);
        out.line("http_bulk_deletes", s.bulk_deletes);
    }

    fn reset_stats(&self) {
        *self.baseline.lock().unwrap_or_else(|e| e.into_inner()) = self.client.stats();
    }
}
