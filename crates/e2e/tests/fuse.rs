//! FUSE mode: our `s3backer` mounting a Garage bucket as one file, used through the kernel
//! (loop devices, ext4, fstrim, fallocate, sync) and shared with the nbdkit plugin. Runs as root
//! with /dev/fuse and loop devices. `umount` goes through our umount helper (installed by the
//! harness), so each test can check that the mount token is gone the moment `umount` returns.

use s3backer_e2e::fuse::*;
use s3backer_e2e::*;
use std::os::unix::fs::{FileExt, PermissionsExt};
use std::path::Path;
use std::process::Command;
use std::time::Duration;

const KB: usize = 1024;
const MB: usize = 1024 * KB;

fn flags(extra: &[&str]) -> Vec<String> {
    let mut f = Garage::shared().flags();
    f.extend(extra.iter().map(|s| s.to_string()));
    f
}

fn block_keys(bucket: &str) -> Vec<String> {
    Garage::shared()
        .keys(bucket, "")
        .into_iter()
        .filter(|k| !k.ends_with("s3backer-mounted"))
        .collect()
}

fn sha256(path: &Path) -> String {
    run_ok(Command::new("sha256sum").arg(path))
        .split_whitespace()
        .next()
        .unwrap_or_default()
        .to_string()
}

fn sys(cmd: &str, args: &[&str]) -> String {
    run_ok(Command::new(cmd).env("PATH", system_path()).args(args))
}

fn counter(stats: &str, name: &str) -> u64 {
    stats
        .lines()
        .find_map(|l| {
            let (n, v) = l.split_once(' ')?;
            (n == name).then(|| v.trim().parse().ok()).flatten()
        })
        .unwrap_or_else(|| panic!("no counter {name} in:\n{stats}"))
}

/// `s3backer FLAGS BUCKET MNT` as a user runs it (daemonized); returns the output.
fn s3backer(args: &[String]) -> std::process::Output {
    run(Command::new(s3backer_bin())
        .env("PATH", system_path())
        .args(args))
}

/// The `s3backer: ...` lines of an error output: exactly one, returned.
fn one_error_line(out: &std::process::Output) -> String {
    assert!(!out.status.success(), "expected a failure");
    let stderr = String::from_utf8_lossy(&out.stderr);
    let lines: Vec<&str> = stderr
        .lines()
        .filter(|l| l.starts_with("s3backer: "))
        .collect();
    assert_eq!(lines.len(), 1, "one error line expected:\n{stderr}");
    lines[0].to_string()
}

#[test]
fn ext4_in_the_file_survives_fstrim_and_remount() {
    let g = Garage::shared();
    let bucket = g.new_bucket("fext4");
    let m = FuseMount::start(&flags(&["--size=256m", "--blockSize=64k"]), &bucket).expect("mount");
    let lo = LoopDev::attach(&m.file());
    sys("mkfs.ext4", &["-q", &lo.dev]);
    let fs = Mounted::mount(&lo.dev, &[]);
    let (a, b, c) = (fs.dir.join("a"), fs.dir.join("b"), fs.dir.join("c"));
    std::fs::write(&a, random_bytes(12 * MB)).expect("write a");
    std::fs::write(&b, random_bytes(3 * MB + 12345)).expect("write b");
    std::fs::write(&c, b"small file\n").expect("write c");
    let (sum_b, sum_c) = (sha256(&b), sha256(&c));
    sys("sync", &[]);
    let before = block_keys(&bucket).len();
    std::fs::remove_file(&a).expect("rm a");
    // ext4 frees the blocks when the deletion commits; fstrim only sees them after that.
    sys("sync", &[]);
    sys("fstrim", &[&fs.dir.path().display().to_string()]);
    // With a write-back block cache the deletes are queued like writes: sync flushes them
    // (ext4 → loop device → fsync of the disk file → Disk::flush).
    sys("sync", &[]);
    let after = block_keys(&bucket).len();
    eprintln!("fstrim: {before} objects before, {after} after");
    // 12 MiB is 192 blocks of 64 KiB; a block only partly freed stays.
    assert!(
        after + 150 <= before,
        "fstrim freed too little: {before} objects before, {after} after"
    );
    drop(fs);
    drop(lo);
    let (status, log) = m.unmount();
    assert!(status.success(), "{log}");
    assert!(
        !g.has_token(&bucket, ""),
        "token released when umount returned"
    );

    // Remount: geometry auto-detected, filesystem clean, files intact.
    let m = FuseMount::start(&flags(&[]), &bucket).expect("remount");
    assert!(
        m.log()
            .contains("auto-detected block size=64k and total size=256m"),
        "{}",
        m.log()
    );
    let lo = LoopDev::attach(&m.file());
    sys("e2fsck", &["-fn", &lo.dev]);
    let fs = Mounted::mount(&lo.dev, &["-o", "ro"]);
    assert_eq!(sha256(&fs.dir.join("b")), sum_b);
    assert_eq!(sha256(&fs.dir.join("c")), sum_c);
    assert!(!fs.dir.join("a").exists());
    drop(fs);
    drop(lo);
    let (status, log) = m.unmount();
    assert!(status.success(), "{log}");
}

#[test]
fn sync_then_sigkill_loses_nothing() {
    let g = Garage::shared();
    let bucket = g.new_bucket("fkill");
    let m = FuseMount::start(&flags(&["--size=128m", "--blockSize=64k"]), &bucket).expect("mount");
    let lo = LoopDev::attach(&m.file());
    sys("mkfs.ext4", &["-q", &lo.dev]);
    let fs = Mounted::mount(&lo.dev, &[]);
    let file = fs.dir.join("data");
    std::fs::write(&file, random_bytes(5 * MB + 777)).expect("write");
    let sum = sha256(&file);
    sys("sync", &[]);
    // A crash right after sync returned: no shutdown, no flush, the token stays.
    m.kill9();
    drop(fs); // ext4 on a dead disk: unmounted lazily if it must be
    drop(lo);
    assert!(g.has_token(&bucket, ""), "a crash leaves the token");

    let err = FuseMount::start(&flags(&[]), &bucket)
        .err()
        .expect("refused while the token is there");
    assert!(err.contains("appears to be already mounted"), "{err}");
    let m = FuseMount::start(&flags(&["--force"]), &bucket).expect("forced remount");
    let lo = LoopDev::attach(&m.file());
    {
        // Mounting replays the journal; then the file must be what sync saw.
        let fs = Mounted::mount(&lo.dev, &[]);
        assert_eq!(sha256(&fs.dir.join("data")), sum);
    }
    sys("e2fsck", &["-fn", &lo.dev]);
    drop(lo);
    let (status, log) = m.unmount();
    assert!(status.success(), "{log}");
    assert!(!g.has_token(&bucket, ""));
}

#[test]
fn fuse_and_nbdkit_share_the_disk_and_umount_releases_the_token_at_once() {
    let g = Garage::shared();
    let bucket = g.new_bucket("fnbd");
    let size = 4 * MB;
    let mut expected = vec![0u8; size];
    let data = random_bytes(2 * MB + 1000);
    expected[123..123 + data.len()].copy_from_slice(&data);

    let m = FuseMount::start(&flags(&["--size=4m", "--blockSize=64k"]), &bucket).expect("mount");
    {
        let f = std::fs::OpenOptions::new()
            .write(true)
            .open(m.file())
            .expect("open");
        f.write_all_at(&data, 123).expect("write");
    }
    let (status, log) = m.unmount();
    assert!(status.success(), "{log}");
    // Right after umount returned: the token is gone, so nbdkit opens the bucket.
    let mut params = g.params();
    params.push(format!("bucket={bucket}"));
    let nbd = Nbdkit::start(&params).expect("nbdkit opens the bucket right after umount");
    assert!(
        nbd_image(&nbd.uri()) == expected,
        "nbdkit sees another disk"
    );
    qemu_io(&nbd.uri(), &["write -P 0x5a 1m 512k"]);
    expected[MB..MB + 512 * KB].fill(0x5a);
    let (status, log) = nbd.stop();
    assert!(status.success(), "{log}");

    let m = FuseMount::start(&flags(&[]), &bucket).expect("mount after nbdkit");
    assert!(
        std::fs::read(m.file()).expect("read") == expected,
        "FUSE sees another disk"
    );
    let (status, log) = m.unmount();
    assert!(status.success(), "{log}");

    // Unmount and mount again in a tight loop: never "already mounted".
    for i in 0..3u8 {
        let m = FuseMount::start(&flags(&[]), &bucket).expect("immediate remount");
        let f = std::fs::OpenOptions::new()
            .write(true)
            .open(m.file())
            .expect("open");
        f.write_all_at(&[i; 4096], 3 * MB as u64).expect("write");
        drop(f);
        let (status, log) = m.unmount();
        assert!(status.success(), "{log}");
    }
}

#[test]
fn stats_file_reset_and_mirror() {
    let g = Garage::shared();
    let bucket = g.new_bucket("fstats");
    let dir = TempDir::new("mirror");
    let mirror = dir.join("stats.txt");
    let m = FuseMount::start(
        &flags(&[
            "--size=2m",
            "--blockSize=64k",
            &format!("--statsFileMirror={}", mirror.display()),
            "--statsFileMirrorInterval=100",
        ]),
        &bucket,
    )
    .expect("mount");
    let mut names: Vec<String> = std::fs::read_dir(m.mountpoint.path())
        .expect("readdir")
        .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    assert_eq!(names, ["file", "stats"]);
    let meta = std::fs::metadata(m.stats()).expect("stat stats");
    assert_eq!(meta.permissions().mode() & 0o777, 0o444);

    std::fs::OpenOptions::new()
        .write(true)
        .open(m.file())
        .expect("open")
        .write_all_at(&vec![7u8; 256 * KB], 0)
        .expect("write");
    let text = std::fs::read_to_string(m.stats()).expect("read stats");
    assert_eq!(counter(&text, "http_normal_blocks_written"), 4, "{text}");
    assert!(counter(&text, "http_puts") >= 4, "{text}");
    assert!(text.ends_with("out_of_memory_errors         0\n"), "{text}");
    let mirrored = |n: u64| {
        wait_until(Duration::from_secs(10), || {
            std::fs::read_to_string(&mirror)
                .is_ok_and(|t| counter(&t, "http_normal_blocks_written") == n)
        })
    };
    assert!(mirrored(4), "mirror never showed the writes");

    // Unlinking the stats file resets the counters; the file stays.
    std::fs::remove_file(m.stats()).expect("unlink stats");
    let text = std::fs::read_to_string(m.stats()).expect("read stats");
    assert_eq!(counter(&text, "http_normal_blocks_written"), 0, "{text}");
    assert!(mirrored(0), "mirror did not follow the reset");

    // Removing the mirror file resets them too.
    std::fs::OpenOptions::new()
        .write(true)
        .open(m.file())
        .expect("open")
        .write_all_at(&[1u8; 64 * KB], 64 * KB as u64)
        .expect("write");
    assert!(mirrored(1));
    std::fs::remove_file(&mirror).expect("rm mirror");
    assert!(mirrored(0), "removing the mirror did not reset");
    let text = std::fs::read_to_string(m.stats()).expect("read stats");
    assert_eq!(counter(&text, "http_normal_blocks_written"), 0, "{text}");
    let (status, log) = m.unmount();
    assert!(status.success(), "{log}");

    // --statsFilename= (empty): no stats file.
    let m = FuseMount::start(&flags(&["--statsFilename="]), &bucket).expect("mount");
    let names: Vec<String> = std::fs::read_dir(m.mountpoint.path())
        .expect("readdir")
        .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
        .collect();
    assert_eq!(names, ["file"]);
    let (status, log) = m.unmount();
    assert!(status.success(), "{log}");
}

#[test]
fn stats_mirror_in_the_nbdkit_plugin() {
    let g = Garage::shared();
    let bucket = g.new_bucket("pmirror");
    let dir = TempDir::new("pmirror");
    let mirror = dir.join("stats");
    let mut params = g.params();
    params.extend([
        format!("bucket={bucket}"),
        "size=1m".into(),
        "blockSize=64k".into(),
        format!("statsFileMirror={}", mirror.display()),
        "statsFileMirrorInterval=100".into(),
    ]);
    let nbd = Nbdkit::start(&params).expect("nbdkit");
    qemu_io(&nbd.uri(), &["write -P 1 0 192k"]);
    let shows = |n: u64| {
        wait_until(Duration::from_secs(10), || {
            std::fs::read_to_string(&mirror)
                .is_ok_and(|t| counter(&t, "http_normal_blocks_written") == n)
        })
    };
    assert!(shows(3), "mirror never showed the writes");
    std::fs::remove_file(&mirror).expect("rm mirror");
    assert!(shows(0), "removing the mirror did not reset the counters");
    let (status, log) = nbd.stop();
    assert!(status.success(), "{log}");
    // The last copy is written at shutdown.
    assert!(mirror.exists());
}

#[test]
fn fsync_close_and_punch_hole() {
    let g = Garage::shared();
    let bucket = g.new_bucket("fsync");
    let m = FuseMount::start(
        &flags(&["--size=1m", "--blockSize=64k", "--debug"]),
        &bucket,
    )
    .expect("mount");
    let pattern = random_bytes(MB);
    {
        let f = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .open(m.file())
            .expect("open");
        f.write_all_at(&pattern, 0).expect("write");
        f.sync_data().expect("fdatasync");
        f.sync_all().expect("fsync");
    } // close: FUSE flush
    let log = m.log();
    for want in ["DEBUG: fdatasync", "DEBUG: fsync", "DEBUG: flush (close)"] {
        assert!(log.contains(want), "{want} not reached the disk:\n{log}");
    }
    assert_eq!(block_keys(&bucket).len(), 16);

    let file = m.file().display().to_string();
    let fallocate = |args: &[&str]| {
        run(Command::new("fallocate")
            .env("PATH", system_path())
            .args(args)
            .arg(&file))
    };
    let mut expected = pattern.clone();
    // Whole blocks 1 and 2: deleted.
    assert!(
        fallocate(&["-p", "-o", "64KiB", "-l", "128KiB"])
            .status
            .success()
    );
    expected[64 * KB..192 * KB].fill(0);
    // Partial: block 0 stays, with zeros in it.
    assert!(
        fallocate(&["-p", "-o", "4096", "-l", "1000"])
            .status
            .success()
    );
    expected[4096..5096].fill(0);
    // Zero range over an unaligned span covering block 4 whole: block 4 deleted, 3 and 5 kept.
    assert!(
        fallocate(&["-z", "-o", "250000", "-l", "100000"])
            .status
            .success()
    );
    expected[250_000..350_000].fill(0);
    let keys = block_keys(&bucket);
    for gone in ["00000001", "00000002", "00000004"] {
        assert!(!keys.iter().any(|k| k == gone), "{gone} still in {keys:?}");
    }
    for kept in ["00000000", "00000003", "00000005"] {
        assert!(
            keys.iter().any(|k| k == kept),
            "{kept} missing from {keys:?}"
        );
    }
    // Allocation inside the file is a no-op; growing it, or shifting data, is refused.
    assert!(fallocate(&["-o", "0", "-l", "1MiB"]).status.success());
    assert!(!fallocate(&["-o", "1MiB", "-l", "64KiB"]).status.success());
    assert!(
        !fallocate(&["-c", "-o", "0", "-l", "64KiB"])
            .status
            .success()
    );
    assert!(std::fs::read(m.file()).expect("read") == expected);
    let (status, log) = m.unmount();
    assert!(status.success(), "{log}");
}

#[test]
fn daemonized_start_returns_once_the_mount_works() {
    let g = Garage::shared();
    let bucket = g.new_bucket("fdaemon");
    install_umount_helper();
    let mnt = TempDir::new("fdaemon");
    let mut args = flags(&["--size=8m", "--blockSize=64k"]);
    args.extend([bucket.clone(), mnt.path().display().to_string()]);
    let out = s3backer(&args);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // No polling: the command returned, so the mount is there and serves.
    let meta = std::fs::metadata(mnt.join("file")).expect("stat right after start");
    assert_eq!(meta.len(), 8 * MB as u64);
    assert_eq!(meta.permissions().mode() & 0o777, 0o600);
    assert!(std::fs::read_to_string(mnt.join("stats")).is_ok());
    std::fs::write(mnt.join("file"), vec![9u8; 128 * KB]).expect("write (O_TRUNC accepted)");
    assert_eq!(
        std::fs::metadata(mnt.join("file")).expect("stat").len(),
        8 * MB as u64
    );
    assert!(g.has_token(&bucket, ""));

    // A second mount of the same bucket: refused, one line.
    let mnt2 = TempDir::new("fdaemon2");
    let mut args2 = flags(&[]);
    args2.extend([bucket.clone(), mnt2.path().display().to_string()]);
    let line = one_error_line(&s3backer(&args2));
    assert!(line.contains("appears to be already mounted"), "{line}");
    // The same mount point again: busy.
    let mut args3 = flags(&[]);
    args3.extend([g.new_bucket("fbusy"), mnt.path().display().to_string()]);
    let line = one_error_line(&s3backer(&args3));
    assert!(line.contains("is busy"), "{line}");

    let out = umount(mnt.path());
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(!is_mounted(mnt.path()));
    assert!(
        !g.has_token(&bucket, ""),
        "token released when umount returned"
    );
}

#[test]
fn bad_mount_points_fail_with_one_clear_line() {
    let g = Garage::shared();
    let bucket = g.new_bucket("fbad");
    let dir = TempDir::new("fbad");
    let file = dir.join("a-file");
    std::fs::write(&file, b"x").expect("file");
    let cases = [
        (dir.join("missing"), "does not exist"),
        (file, "is not a directory"),
    ];
    for (mp, want) in cases {
        for fg in [false, true] {
            let mut args = flags(&["--size=1m"]);
            if fg {
                args.push("-f".into());
            }
            args.extend([bucket.clone(), mp.display().to_string()]);
            let line = one_error_line(&s3backer(&args));
            assert!(line.contains(want), "{line}");
        }
    }
    assert!(!g.has_token(&bucket, ""), "nothing written");
    // Not root, and no fusermount3 on PATH.
    let mut args = vec![
        "--reuid=65534".to_string(),
        "--regid=65534".into(),
        "--clear-groups".into(),
        "--".into(),
        s3backer_bin().display().to_string(),
    ];
    args.extend(flags(&["--size=1m"]));
    args.extend([bucket.clone(), dir.path().display().to_string()]);
    let out = run(Command::new("/usr/bin/setpriv")
        .env("PATH", "/nonexistent")
        .args(&args));
    let line = one_error_line(&out);
    assert!(line.contains("not running as root"), "{line}");
    // Unknown FUSE option: refused before anything happens.
    let mut args = flags(&["--size=1m", "-o", "nosuchoption"]);
    args.extend([bucket.clone(), dir.path().display().to_string()]);
    let line = one_error_line(&s3backer(&args));
    assert!(
        line.contains("unknown FUSE option \"-o nosuchoption\""),
        "{line}"
    );
    assert!(!g.has_token(&bucket, ""), "nothing written");
}

#[test]
fn read_only_mount() {
    let g = Garage::shared();
    let bucket = g.new_bucket("fro");
    let m = FuseMount::start(&flags(&["--size=1m", "--blockSize=64k"]), &bucket).expect("mount");
    let data = random_bytes(100_000);
    std::fs::OpenOptions::new()
        .write(true)
        .open(m.file())
        .expect("open")
        .write_all_at(&data, 0)
        .expect("write");
    let (status, log) = m.unmount();
    assert!(status.success(), "{log}");

    let m = FuseMount::start(&flags(&["--readOnly"]), &bucket).expect("read-only mount");
    assert!(!g.has_token(&bucket, ""), "--readOnly writes no token");
    let meta = std::fs::metadata(m.file()).expect("stat");
    assert_eq!(meta.permissions().mode() & 0o777, 0o400);
    let err = std::fs::OpenOptions::new()
        .write(true)
        .open(m.file())
        .expect_err("no writing");
    assert_eq!(err.raw_os_error(), Some(libc::EROFS), "{err}");
    let mut head = vec![0u8; data.len()];
    std::fs::File::open(m.file())
        .expect("open")
        .read_exact_at(&mut head, 0)
        .expect("read");
    assert!(head == data);
    let (status, log) = m.unmount();
    assert!(status.success(), "{log}");
}

#[test]
fn sigterm_unmounts_cleanly_even_when_busy() {
    let g = Garage::shared();
    let bucket = g.new_bucket("fterm");
    let m = FuseMount::start(&flags(&["--size=4m", "--blockSize=64k"]), &bucket).expect("mount");
    let mp = m.mountpoint.path().to_path_buf();
    std::fs::write(m.file(), vec![3u8; 64 * KB]).expect("write");
    m.send(libc::SIGTERM);
    let (status, log) = m.wait_exit(Duration::from_secs(60));
    assert!(status.success(), "{log}");
    assert!(log.contains("received SIGTERM"), "{log}");
    assert!(log.contains("shutdown complete"), "{log}");
    assert!(!is_mounted(&mp));
    assert!(!g.has_token(&bucket, ""));

    // Busy (a loop device holds the file): detached at once, served until the loop goes.
    let mut m = FuseMount::start(&flags(&[]), &bucket).expect("mount");
    let mp = m.mountpoint.path().to_path_buf();
    let lo = LoopDev::attach(&m.file());
    m.send(libc::SIGINT);
    assert!(wait_until(Duration::from_secs(30), || !is_mounted(&mp)));
    assert!(m.running(), "still serving the loop device");
    let mut first = vec![0u8; 64 * KB];
    std::fs::File::open(&lo.dev)
        .expect("open loop")
        .read_exact_at(&mut first, 0)
        .expect("read through the detached mount");
    assert!(first.iter().all(|&b| b == 3));
    drop(lo);
    let (status, log) = m.wait_exit(Duration::from_secs(60));
    assert!(status.success(), "{log}");
    assert!(log.contains("is busy"), "{log}");
    assert!(!g.has_token(&bucket, ""));
}

#[test]
fn fstab_form_through_mount_fuse() {
    let g = Garage::shared();
    let bucket = g.new_bucket("ffstab");
    install_umount_helper();
    let mnt = TempDir::new("ffstab");
    // As an fstab line would give it (mount.fuse3 runs "PROGRAM SOURCE MOUNTPOINT -o OPTIONS"):
    // the s3backer flags as -o items, mixed with mount(8)'s and FUSE's own options.
    let options = format!(
        "baseURL={},accessId={},accessKey={},size=2m,blockSize=64k,noatime,_netdev,defaults,uid=4321",
        g.endpoint,
        s3backer_e2e::garage::KEY_ID,
        s3backer_e2e::garage::SECRET
    );
    let source = format!("{}#{bucket}", s3backer_bin().display());
    sys(
        "mount",
        &[
            "-t",
            "fuse",
            &source,
            &mnt.path().display().to_string(),
            "-o",
            &options,
        ],
    );
    let mountinfo = std::fs::read_to_string("/proc/self/mountinfo").expect("mountinfo");
    let line = mountinfo
        .lines()
        .find(|l| l.contains(&mnt.path().display().to_string()))
        .expect("mounted")
        .to_string();
    assert!(line.contains(" - fuse.s3backer "), "{line}");
    assert!(line.contains("noatime"), "{line}");
    let meta = std::fs::metadata(mnt.join("file")).expect("stat");
    assert_eq!(meta.len(), 2 * MB as u64);
    assert_eq!(
        std::os::unix::fs::MetadataExt::uid(&meta),
        4321,
        "-o uid= sets the owner"
    );
    let out = umount(mnt.path());
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(!g.has_token(&bucket, ""));
}
