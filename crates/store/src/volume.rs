//! A volume: one disk in one bucket (or directory) and its lifecycle, shared by every front end.
//!
//! ```text
//! Volume::open      connect, auto-detect the geometry, check the mount token   (no threads: safe
//!                   before nbdkit forks; every user error is reported here)
//! establish_mount   write our mount token (never with --readOnly)
//! build_disk        assemble the layer stack and the I/O pool                 (after any fork)
//! ... serve ...
//! Disk::shutdown    flush everything
//! release_mount     delete the token, only if it is still ours and the flush succeeded
//! ```

use crate::backend::dir::{DirBackend, DirOptions};
use crate::backend::s3::S3Backend;
use crate::backend::{BackendError, GetOutcome, GetRequest, ObjectBackend, ObjectInfo, PutRequest};
use crate::bitmap::AtomicBitmap;
use crate::codec::{BlockCodec, Cipher, CodecError, Compression, Encryption};
use crate::format::keys::KeyFormat;
use crate::format::meta;
use crate::format::zero_map::{self as zero_map_format, Block0};
use crate::layers::block_cache::cache_file::{
    CacheFile, FileHeader, Loaded, RecordKind, identity_of,
};
use crate::layers::zero_map::MapSaver;
use crate::layers::{BlockCache, CacheOptions, Checked, ObjectBlocks, ZeroMap};
use crate::{BlockNum, BlockStore, Disk, Geometry, StoreError, StoreResult};
use s3backer_config::{CompressionAlgorithm, Config, DEFAULT_BLOCK_SIZE, Mode, format_size};
use s3backer_s3client::{ClientOptions, S3Client};
use std::path::Path;
use std::sync::{Arc, Mutex};

/// One disk in one bucket.
pub struct Volume {
    config: Config,
    backend: Arc<dyn ObjectBackend>,
    keys: KeyFormat,
    geometry: Geometry,
    codec: Arc<BlockCodec>,
    /// Block 0 as the startup probe found it (`None`: not probed), to validate a saved zero map.
    block0_at_start: Option<Block0>,
    /// The cache file, opened before any fork, handed to the cache when the disk is built.
    cache_file: Mutex<Option<Loaded>>,
    /// Held for the volume's lifetime: one process per cache file.
    _cache_lock: Option<std::fs::File>,
    /// The token we wrote, once written.
    our_token: Mutex<Option<u32>>,
}

impl Volume {
    /// Connects to the configured bucket or directory and validates it against the configuration
    /// (see the module documentation).
    pub fn open(config: &Config) -> StoreResult<Volume> {
        let backend = connect(config)?;
        Self::open_with_backend(config, backend)
    }

    /// Like [`Volume::open`] over a given backend (tests, tools).
    pub fn open_with_backend(
        config: &Config,
        backend: Arc<dyn ObjectBackend>,
    ) -> StoreResult<Volume> {
        if config.s3.credentials.is_some() || config.codec.encryption.is_some() {
            forbid_core_dumps();
        }
        let keys = KeyFormat {
            prefix: config.prefix.clone(),
            hashed: config.block_hash_prefix,
        };
        let (geometry, block0) = detect_geometry(config, backend.as_ref(), &keys)?;
        let codec = Arc::new(build_codec(config, geometry)?);
        let block0_at_start = match &block0 {
            Probe::NotProbed => None,
            Probe::Absent => Some(Block0::Absent),
            Probe::Present(info) => Some(info.etag.map_or(Block0::Unknown, |e| Block0::Etag(e.0))),
        };
        let mut config = config.clone();
        if config.cache.size > geometry.num_blocks {
            // Only worth a warning if the user asked for that size (the default is 1000).
            if config.explicit.contains("blockCacheSize") {
                log::warn!(
                    "--blockCacheSize={} is more than the disk's {} blocks; using {}",
                    config.cache.size,
                    geometry.num_blocks,
                    geometry.num_blocks
                );
            }
            config.cache.size = geometry.num_blocks;
        }
        let (cache_file, cache_lock) = match (&config.cache.file, config.mode == Mode::Erase) {
            (Some(path), false) if config.cache.size > 0 => {
                let (loaded, lock) = open_cache_file(path, &config, geometry)?;
                (Some(loaded), Some(lock))
            }
            _ => (None, None),
        };
        let volume = Volume {
            config,
            backend,
            keys,
            geometry,
            codec,
            block0_at_start,
            cache_file: Mutex::new(cache_file),
            _cache_lock: cache_lock,
            our_token: Mutex::new(None),
        };
        if volume.config.mode == Mode::Serve {
            volume.check_not_mounted()?;
        }
        if volume.config.mode != Mode::ResetMountedFlag {
            volume.check_encoding(block0)?;
        }
        Ok(volume)
    }

    /// The disk's shape.
    pub fn geometry(&self) -> Geometry {
        self.geometry
    }

    /// The configuration this volume was opened with.
    pub fn config(&self) -> &Config {
        &self.config
    }

    /// Where the disk lives, for logs.
    pub fn description(&self) -> String {
        self.backend.description(&self.keys.prefix)
    }

    /// The backend (tests and tools).
    pub fn backend(&self) -> &Arc<dyn ObjectBackend> {
        &self.backend
    }

    /// The object names of this disk.
    pub fn keys(&self) -> &KeyFormat {
        &self.keys
    }

    fn progress(&self, msg: &str) {
        if !self.config.quiet {
            log::info!("{msg}");
        }
    }

    /// The mount token in the bucket: 0 when not mounted.
    pub fn read_mount_token(&self) -> StoreResult<u32> {
        if !self.backend.caps().metadata {
            return Ok(0);
        }
        Ok(
            match self.backend.head(&self.keys.mount_token_key(), true)? {
                None => 0,
                Some(info) => meta::parse_mount_token(&info.meta),
            },
        )
    }

    fn check_not_mounted(&self) -> StoreResult<()> {
        let token = self.read_mount_token()?;
        let (file_token, dirty, path) =
            match &*self.cache_file.lock().unwrap_or_else(|e| e.into_inner()) {
                Some(l) => (
                    l.header.mount_token,
                    l.records
                        .iter()
                        .filter(|(_, r)| r.kind == RecordKind::Dirty)
                        .count(),
                    l.file.path().display().to_string(),
                ),
                None => (0, 0, String::new()),
            };
        if dirty > 0 && !self.config.cache.recover_dirty {
            return Err(StoreError::Startup(format!(
                "the cache file {path} holds {dirty} blocks written before an unclean shutdown and not yet \
                 in the bucket; start with --blockCacheRecoverDirtyBlocks to upload them, or delete the \
                 file to discard them"
            )));
        }
        if token != 0 && token == file_token {
            // The mount that crashed was this cache file's: taking over is what recovery means.
            log::info!(
                "recovering from unclean shutdown (mount token 0x{token:08x} matches the cache file)"
            );
            if dirty > 0 {
                log::info!("{dirty} dirty blocks in cache file {path} will be recovered");
            }
            return Ok(());
        }
        if token != 0 && dirty > 0 && !self.config.force {
            return Err(StoreError::AlreadyMounted(format!(
                "mount token mismatch (cache file: 0x{file_token:08x}, bucket: 0x{token:08x}): the bucket was \
                 mounted elsewhere since the cache file's {dirty} dirty blocks were written; delete the file \
                 to discard them, or use --force to upload them anyway"
            )));
        }
        if dirty > 0 {
            log::info!("{dirty} dirty blocks in cache file {path} will be recovered");
        }
        if token == 0 {
            return Ok(());
        }
        let what = format!(
            "{} appears to be already mounted (mount token 0x{token:08x} in object \"{}\")",
            self.description(),
            self.keys.mount_token_key()
        );
        if self.config.force {
            log::warn!("{what}; continuing because of --force");
            return Ok(());
        }
        Err(StoreError::AlreadyMounted(format!(
            "{what}; if it is not mounted anywhere, clear the flag with --reset-mounted-flag, or use --force"
        )))
    }

    /// Writes a fresh mount token (not with `--readOnly`, and not where the backend has no
    /// metadata: the directory backend holds a lock instead).
    pub fn establish_mount(&self) -> StoreResult<()> {
        if self.config.read_only || !self.backend.caps().metadata {
            return Ok(());
        }
        let token = loop {
            let t = crate::rand::random_u32() & 0x7fff_ffff;
            if t != 0 && t != meta::SHARED_DISK_TOKEN {
                break t;
            }
        };
        let body = format!(
            "{}\n{}\n",
            hostname(),
            s3backer_s3client::format_amz_timestamp(std::time::SystemTime::now())
        );
        let req = PutRequest {
            content_type: Some(meta::TOKEN_CONTENT_TYPE.to_string()),
            content_encoding: None,
            meta: vec![(meta::META_MOUNT_TOKEN.to_string(), format!("{token:08x}"))],
            crc32: None,
        };
        self.backend
            .put(&self.keys.mount_token_key(), body.as_bytes(), &req)?;
        *self.our_token.lock().unwrap_or_else(|e| e.into_inner()) = Some(token);
        if let Some(l) = &*self.cache_file.lock().unwrap_or_else(|e| e.into_inner()) {
            l.file
                .write_header(token, false)
                .and_then(|()| l.file.sync())
                .map_err(|e| {
                    StoreError::io(format!("cache file {}", l.file.path().display()), e)
                })?;
        }
        self.progress(&format!("established new mount token 0x{token:08x}"));
        Ok(())
    }

    /// Deletes our mount token, if we wrote one and it is still ours (another instance may have
    /// taken the bucket over with `--force`; its token is not ours to delete).
    pub fn release_mount(&self) -> StoreResult<()> {
        let Some(ours) = self
            .our_token
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .take()
        else {
            return Ok(());
        };
        let current = self.read_mount_token()?;
        if current != ours {
            log::warn!(
                "mount token changed while mounted (bucket has 0x{current:08x}, ours was 0x{ours:08x}); leaving it in place"
            );
            return Ok(());
        }
        self.backend.delete(&self.keys.mount_token_key())?;
        self.progress(&format!("cleared mount token 0x{ours:08x}"));
        Ok(())
    }

    /// Deletes the mount token whatever it is (`--reset-mounted-flag`).
    pub fn reset_mount_token(&self) -> StoreResult<()> {
        if self.config.read_only {
            return Err(StoreError::ReadOnly);
        }
        self.backend.delete(&self.keys.mount_token_key())?;
        self.backend.sync()?;
        if let Some(l) = &*self.cache_file.lock().unwrap_or_else(|e| e.into_inner()) {
            let clean = l.header.clean_shutdown;
            l.file
                .write_header(0, clean)
                .and_then(|()| l.file.sync())
                .map_err(|e| {
                    StoreError::io(format!("cache file {}", l.file.path().display()), e)
                })?;
        }
        Ok(())
    }

    /// The bottom of the stack, without the top (tools such as `--erase` use it directly).
    pub fn object_blocks(&self) -> ObjectBlocks {
        ObjectBlocks::with_codec(
            self.backend.clone(),
            self.keys.clone(),
            self.geometry,
            self.codec.clone(),
            self.config.read_only,
        )
    }

    /// A block that exists, to check the encoding against: block 0 if the startup probe found
    /// it, else the first block a listing finds. `None` for an empty disk (nothing to check), or
    /// when the bucket cannot be listed (the check is then left to the first read).
    fn sample_block(&self, block0: Probe) -> StoreResult<Option<(BlockNum, Option<String>)>> {
        match block0 {
            Probe::Present(info) => return Ok(Some((0, info.content_encoding))),
            Probe::Absent | Probe::NotProbed if !self.backend.caps().metadata => return Ok(None),
            Probe::Absent | Probe::NotProbed => {}
        }
        let prefix = &self.keys.prefix;
        let page = match self.backend.list(prefix, "", 1000) {
            Ok(page) => page,
            Err(e) => {
                log::debug!("cannot list the bucket to check the block encoding: {e}");
                return Ok(None);
            }
        };
        let found = page.keys.iter().find_map(|k| {
            self.keys
                .parse_block_key(k, self.geometry.num_blocks)
                .map(|b| (b, k))
        });
        let Some((block, key)) = found else {
            return Ok(None);
        };
        let info = self.backend.head(key, true).map_err(startup_error)?;
        Ok(info.map(|i| (block, i.content_encoding)))
    }

    /// Refuses, before anything is written, a disk whose blocks this configuration cannot read:
    /// a wrong password (the HMAC of a stored block does not verify), `--encrypt` on a plain
    /// disk, an encrypted disk without `--encrypt`.
    fn check_encoding(&self, block0: Probe) -> StoreResult<()> {
        let Some((block, encoding)) = self.sample_block(block0)? else {
            return Ok(());
        };
        let encoding = encoding.unwrap_or_default();
        if !self.codec.encrypted() {
            if encoding.to_ascii_lowercase().contains("encrypt-") {
                return Err(StoreError::Startup(format!(
                    "the disk is encrypted (block {block:08x} has Content-Encoding \"{encoding}\"): \
                     give --encrypt (with the cipher it names) and the password"
                )));
            }
            return Ok(());
        }
        match self.object_blocks().fetch_raw(block)? {
            None => Ok(()),
            Some(Ok(_)) => Ok(()),
            Some(Err(e)) if e.is_wrong_password_symptom() => Err(StoreError::Startup(format!(
                "wrong password: block {block:08x} does not verify with the key derived from it \
                 (its HMAC does not match); nothing was written"
            ))),
            Some(Err(CodecError::NotEncrypted)) => Err(StoreError::Startup(format!(
                "--encrypt was given but the disk is not encrypted (block {block:08x} is stored as \
                 \"{encoding}\"); encryption cannot be added to an existing disk"
            ))),
            Some(Err(e)) => Err(StoreError::Startup(format!(
                "block {block:08x} cannot be read with this configuration: {e}"
            ))),
        }
    }

    /// Assembles the layer stack and the disk on top. Starts threads: call after any fork.
    pub fn build_disk(&self) -> StoreResult<Disk> {
        let objects: Arc<dyn BlockStore> = Arc::new(self.object_blocks());
        let bottom: Arc<dyn BlockStore> = match self.build_cache(objects.clone())? {
            Some(cache) => cache,
            None => objects,
        };
        let persist = self.backend.caps().metadata;
        let saved = if persist {
            self.take_saved_zero_map()
        } else {
            None
        };
        let saver = (persist && !self.config.read_only).then(|| self.zero_map_saver());
        let zero_map = Arc::new(ZeroMap::new(bottom, saved, saver));
        if self.config.survey.list_blocks {
            zero_map.start_survey(self.config.survey.threads)?;
        }
        let stack: Arc<dyn BlockStore> = Arc::new(Checked::new(zero_map));
        Disk::new(stack, self.config.io_threads, self.config.read_only)
    }

    /// The block cache over `below`, when `--blockCacheSize` is not 0; starts its workers.
    fn build_cache(&self, below: Arc<dyn BlockStore>) -> StoreResult<Option<Arc<dyn BlockStore>>> {
        let c = &self.config.cache;
        if c.size == 0 {
            return Ok(None);
        }
        let opts = CacheOptions {
            capacity: c.size,
            threads: c.threads,
            write_delay: c.write_delay,
            timeout: c.timeout,
            max_dirty: c.max_dirty,
            sync: c.sync,
            num_protected: c.num_protected,
            local_flush: c.local_flush,
            no_verify: c.no_verify,
            read_ahead: c.read_ahead,
            read_ahead_trigger: c.read_ahead_trigger,
        };
        let loaded = self
            .cache_file
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .take();
        let cache = match loaded {
            Some(l) => BlockCache::with_file(below, opts, l, c.file_advise),
            None => BlockCache::in_memory(below, opts),
        };
        cache.start()?;
        Ok(Some(Arc::new(cache)))
    }

    /// Loads the zero map saved at the last clean unmount, if it can be trusted, and deletes it
    /// (unless read-only) before anything is written, so that a crash or another mount never
    /// finds a map older than the bucket. Trusted only if block 0 is exactly as it was when the
    /// map was saved (the tripwire for other writers, see `format::zero_map`).
    fn take_saved_zero_map(&self) -> Option<AtomicBitmap> {
        let key = self.keys.zero_map_key();
        let limit = (self.geometry.num_blocks as usize).div_ceil(8) * 2 + 4096;
        let req = GetRequest {
            max_body: limit,
            ..Default::default()
        };
        let body = match self.backend.get(&key, &req) {
            Ok(GetOutcome::Found(data)) => data.body,
            Ok(_) => return None,
            Err(e) => {
                log::warn!("cannot read the saved zero map {key}: {e}");
                return None;
            }
        };
        let map = match zero_map_format::decode(&body, self.geometry) {
            Some((map, saved_block0))
                if Some(saved_block0) == self.block0_at_start
                    && saved_block0 != Block0::Unknown =>
            {
                Some(map)
            }
            Some(_) => {
                log::warn!(
                    "ignoring the saved zero map: block 0 changed since it was saved (the bucket was \
                     written by something else)"
                );
                None
            }
            None => {
                log::warn!(
                    "ignoring the saved zero map {key}: it does not match this disk or is damaged"
                );
                None
            }
        };
        if !self.config.read_only
            && let Err(e) = self.backend.delete(&key)
        {
            log::warn!("cannot delete the saved zero map {key}, not using it: {e}");
            return None;
        }
        if let Some(map) = &map
            && !self.config.quiet
        {
            log::info!(
                "loaded zero map: {} of {} blocks known to be empty",
                map.count_ones(),
                self.geometry.num_blocks
            );
        }
        map
    }

    /// Saves the zero map at a clean shutdown (after the flush), stamped with block 0's ETag.
    fn zero_map_saver(&self) -> MapSaver {
        let backend = self.backend.clone();
        let keys = self.keys.clone();
        let geometry = self.geometry;
        let quiet = self.config.quiet;
        Box::new(move |map: &AtomicBitmap| {
            let block0 = match backend.head(&keys.block_key(0), false)? {
                None => Block0::Absent,
                Some(info) => info.etag.map_or(Block0::Unknown, |e| Block0::Etag(e.0)),
            };
            let body = zero_map_format::encode(map, geometry, block0);
            let req = PutRequest {
                content_type: Some("application/octet-stream".into()),
                content_encoding: None,
                meta: Vec::new(),
                crc32: None,
            };
            backend.put(&keys.zero_map_key(), &body, &req)?;
            if !quiet {
                log::info!(
                    "saved zero map ({} blocks known to be empty)",
                    map.count_ones()
                );
            }
            Ok(())
        })
    }
}

/// The backend the configuration names.
pub fn connect(config: &Config) -> StoreResult<Arc<dyn ObjectBackend>> {
    if config.test_mode {
        let options = DirOptions {
            read_only: config.read_only,
            delays: config.test_delays,
            discard: config.test_discard,
        };
        return Ok(Arc::new(DirBackend::open(
            Path::new(&config.bucket),
            &config.prefix,
            options,
        )?));
    }
    let options = ClientOptions {
        // The pool's threads plus nbdkit's own (16 by default) each may hold a connection.
        max_connections: config.io_threads + 16,
        user_agent: format!("s3backer-rs/{}", env!("CARGO_PKG_VERSION")),
    };
    let client = S3Client::new(&config.s3, &config.bucket, options)
        .map_err(crate::backend::BackendError::from)?;
    Ok(Arc::new(S3Backend::new(client)))
}

/// s3backer's size auto-detection (§2.5) and the checks of the result.
fn detect_geometry(
    config: &Config,
    backend: &dyn ObjectBackend,
    keys: &KeyFormat,
) -> StoreResult<(Geometry, Probe)> {
    let mut probe = Probe::NotProbed;
    let detected = if config.no_auto_detect || !backend.caps().metadata {
        None
    } else {
        if !config.quiet {
            log::info!("auto-detecting block size and total file size...");
        }
        let key = keys.block_key(0);
        match backend.head(&key, true).map_err(startup_error)? {
            Some(info) => {
                let found = meta::parse_geometry(&info.meta);
                probe = Probe::Present(info);
                found
            }
            None => {
                probe = Probe::Absent;
                // HEAD has no body to say *why* it is 404: make sure it is "no such key" and not
                // "no such bucket" (the client turns NoSuchBucket into an error).
                let req = GetRequest {
                    max_body: 1 << 31,
                    ..Default::default()
                };
                match backend.get(&key, &req)? {
                    GetOutcome::Found(data) => meta::parse_geometry(&data.meta),
                    _ => None,
                }
            }
        }
    };
    if let Some((bs, size)) = detected
        && !config.quiet
    {
        log::info!(
            "auto-detected block size={} and total size={}",
            format_size(bs.into()),
            format_size(size)
        );
    }
    let block_size = match (config.block_size, detected) {
        (Some(given), Some((found, _))) if given != found => {
            let msg = format!(
                "configured block size {} does not match the block size {} recorded in the bucket",
                format_size(given.into()),
                format_size(found.into())
            );
            if !config.force {
                return Err(StoreError::Startup(format!(
                    "{msg} (use --force to override)"
                )));
            }
            log::warn!(
                "{msg}; using {} because of --force",
                format_size(given.into())
            );
            given
        }
        (Some(given), _) => given,
        (None, Some((found, _))) => found,
        (None, None) => DEFAULT_BLOCK_SIZE,
    };
    let size = match (config.size, detected) {
        (Some(given), Some((_, found))) if given != found => {
            let msg = format!(
                "configured size {} does not match the size {} recorded in the bucket",
                format_size(given),
                format_size(found)
            );
            if !config.force {
                return Err(StoreError::Startup(format!(
                    "{msg} (use --force to override)"
                )));
            }
            log::warn!("{msg}; using {} because of --force", format_size(given));
            given
        }
        (Some(given), _) => given,
        (None, Some((_, found))) => found,
        (None, None) if !backend.caps().metadata => {
            return Err(StoreError::Startup(
                "--size is required with --test (a directory has no size metadata)".into(),
            ));
        }
        (None, None) if config.no_auto_detect => {
            return Err(StoreError::Startup(
                "--size is required with --noAutoDetect".into(),
            ));
        }
        (None, None) => {
            return Err(StoreError::Startup(
                "auto-detection of filesystem size failed (block 0 has no size metadata); please specify --size".into(),
            ));
        }
    };
    if !block_size.is_power_of_two() {
        return Err(StoreError::Startup(format!(
            "block size {block_size} is not a power of two"
        )));
    }
    if size % u64::from(block_size) != 0 {
        return Err(StoreError::Startup(format!(
            "size {} is not a multiple of the block size {}",
            format_size(size),
            format_size(block_size.into())
        )));
    }
    let num_blocks = size / u64::from(block_size);
    if num_blocks == 0 || num_blocks >= 1 << 32 {
        return Err(StoreError::Startup(format!(
            "size {} with block size {} gives {num_blocks} blocks; it must be between 1 and 2^32-1",
            format_size(size),
            format_size(block_size.into())
        )));
    }
    if config.codec.encryption.is_some() && block_size % 16 != 0 {
        return Err(StoreError::Startup(format!(
            "block size {block_size} must be a multiple of 16 with encryption"
        )));
    }
    Ok((
        Geometry {
            block_size,
            num_blocks: num_blocks as u32,
        },
        probe,
    ))
}

/// Opens (or creates) the cache file and takes its lock; logs what it holds.
fn open_cache_file(
    path: &Path,
    config: &Config,
    geometry: Geometry,
) -> StoreResult<(Loaded, std::fs::File)> {
    if !config.quiet {
        log::info!("reading meta-data from cache file {}", path.display());
    }
    let want = FileHeader {
        block_size: geometry.block_size,
        slot_count: config.cache.size,
        num_blocks: geometry.num_blocks,
        identity: identity_of(&config.bucket, &config.prefix),
        mount_token: 0,
        clean_shutdown: true,
    };
    let loaded =
        CacheFile::open_or_create(path, &want).map_err(|e| StoreError::Startup(e.to_string()))?;
    let lock = std::fs::File::open(path)
        .map_err(|e| StoreError::io(format!("cache file {}", path.display()), e))?;
    // SAFETY: flock on a valid descriptor we own.
    if unsafe {
        libc::flock(
            std::os::fd::AsRawFd::as_raw_fd(&lock),
            libc::LOCK_EX | libc::LOCK_NB,
        )
    } != 0
    {
        return Err(StoreError::Startup(format!(
            "cache file {} is in use by another s3backer process",
            path.display()
        )));
    }
    if !config.quiet {
        let used = loaded.records.len();
        log::info!(
            "loaded cache file {} with {} free and {used} used blocks",
            path.display(),
            (config.cache.size as usize).saturating_sub(used)
        );
    }
    Ok((loaded, lock))
}

/// The process holds secrets (access key, encryption keys): no core dumps of it, and no
/// reading of its memory by other users (PR_SET_DUMPABLE 0 covers both).
fn forbid_core_dumps() {
    // SAFETY: prctl with constant arguments.
    if unsafe { libc::prctl(libc::PR_SET_DUMPABLE, 0, 0, 0, 0) } != 0 {
        log::debug!(
            "cannot turn core dumps off: {}",
            std::io::Error::last_os_error()
        );
    }
}

/// What the startup HEAD of block 0 found.
enum Probe {
    /// No HEAD was made (`--noAutoDetect`, or a backend without metadata).
    NotProbed,
    /// Block 0 has no object.
    Absent,
    /// Block 0's headers.
    Present(ObjectInfo),
}

/// The codec the configuration asks for (identity in `--test` mode, where the config crate
/// already dropped the codec flags).
fn build_codec(config: &Config, geometry: Geometry) -> StoreResult<BlockCodec> {
    let codec = &config.codec;
    let compression = codec.compression.map(|c| match c.algorithm {
        CompressionAlgorithm::Deflate => Compression::Deflate {
            level: c.level.unwrap_or(-1),
        },
        CompressionAlgorithm::Zstd => Compression::Zstd {
            level: c.level.unwrap_or(3),
        },
    });
    let encryption = match &codec.encryption {
        None => None,
        Some(e) => {
            let cipher =
                Cipher::from_name(&e.cipher).map_err(|e| StoreError::Startup(e.to_string()))?;
            let keys = Encryption::derive(
                cipher,
                e.password.expose().as_bytes(),
                &config.bucket,
                &config.prefix,
                e.key_length,
            )
            .map_err(|e| StoreError::Startup(e.to_string()))?;
            Some(keys)
        }
    };
    Ok(BlockCodec::new(
        geometry.block_size,
        compression,
        encryption,
        codec.default_content_encoding.clone(),
    ))
}

/// A startup request failed: say what to check when the server rejected the request itself.
fn startup_error(e: BackendError) -> StoreError {
    let rejected = matches!(&e, BackendError::S3(s3) if s3.status().is_some_and(|st| (400..500).contains(&st)));
    if rejected {
        StoreError::Startup(format!(
            "{e} (the server rejected the request: check the access key and secret, --region, --authVersion and --baseURL)"
        ))
    } else {
        e.into()
    }
}

fn hostname() -> String {
    let mut buf = [0u8; 256];
    // SAFETY: buf is valid for its length; gethostname NUL-terminates within it on success.
    let rc = unsafe { libc::gethostname(buf.as_mut_ptr().cast(), buf.len()) };
    if rc != 0 {
        return "localhost".into();
    }
    let end = buf.iter().position(|&b| b == 0).unwrap_or(buf.len());
    String::from_utf8_lossy(&buf[..end]).into_owned()
}
