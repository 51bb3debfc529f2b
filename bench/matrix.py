"""The performance matrix of issue 8 (driven by bench/run.sh; stdlib only).

Every target runs against one in-memory S3 server (crates/benchkit s3-memory-server, which
hashes every PUT body as a real server does) on 127.0.0.1, 1 GiB disks of 256 KiB blocks, 16 connections to S3
(s3-load --conns 16; ours ioThreads=16 blockCacheThreads=16; s3backer 1.5.4 blockCacheThreads=16),
fio at queue depth 16. REPS repetitions; every figure is the median of its repetitions.
"""

import json
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request

ROOT = sys.argv[1]
REL = os.path.join(ROOT, "target", "release")
PLUGIN = os.path.join(REL, "libnbdkit_s3backer_plugin.so")
OURS = os.path.join(REL, "s3backer")
ORIG = "/usr/bin/s3backer"
REPS = int(os.environ.get("REPS", "3"))
SIZE_MB = int(os.environ.get("SIZE_MB", "512"))
RUNTIME = int(os.environ.get("RUNTIME", "10"))
WARM_MB = 32  # working set of the cached random jobs (fits the 64 MiB cache)
CACHE_BLOCKS = 256  # 64 MiB of 256 KiB blocks
CONNS = 16
ONLY = set(filter(None, os.environ.get("ONLY", "raw,memory,nocache,cache,signed,scache,rawtls,tls,codec,codecfast,fuse,orig").split(",")))
OUT = os.environ.get("OUT") or os.path.join(ROOT, "bench", "results", time.strftime("%Y-%m-%d") + "-matrix")
CLK = os.sysconf("SC_CLK_TCK")
WORK = tempfile.mkdtemp(prefix="s3b-matrix.")
PROCS = []
MOUNTS = []


def log(*a):
    print(*a, file=sys.stderr, flush=True)


def cleanup():
    for m in MOUNTS:
        subprocess.run(["fusermount", "-u", m], stderr=subprocess.DEVNULL)
    for p in PROCS:
        if p.poll() is None:
            p.send_signal(signal.SIGTERM)
            try:
                p.wait(60)
            except subprocess.TimeoutExpired:
                p.kill()
    subprocess.run(["rm", "-rf", WORK])


# ---------------------------------------------------------------- processes and metrics

def cpu_seconds(pid):
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLK  # utime, stime


def peak_rss_mib(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    return 0.0


def stop(p, timeout=300):
    p.send_signal(signal.SIGTERM)
    try:
        p.wait(timeout)
    except subprocess.TimeoutExpired:
        p.kill()
        p.wait()
    if p in PROCS:
        PROCS.remove(p)


def start_server():
    p = subprocess.Popen([os.path.join(REL, "s3-memory-server")],
                         stdout=subprocess.PIPE, text=True)
    PROCS.append(p)
    line = p.stdout.readline().strip()
    return p, "http://" + line.rsplit(" ", 1)[1] + "/"


def start_stunnel(name, conf_lines):
    conf = os.path.join(WORK, name + ".conf")
    with open(conf, "w") as f:
        f.write("foreground = yes\npid =\n" + "\n".join(conf_lines) + "\n")
    logf = open(os.path.join(WORK, name + ".log"), "w")
    p = subprocess.Popen(["stunnel", conf], stdin=subprocess.DEVNULL, stdout=logf, stderr=logf)
    PROCS.append(p)
    return p


def free_port():
    import socket
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_port(port):
    import socket
    for _ in range(200):
        try:
            socket.create_connection(("127.0.0.1", port), 0.2).close()
            return
        except OSError:
            time.sleep(0.05)
    raise SystemExit(f"nothing listens on {port}")


def start_tls(url):
    """HTTPS in front of the server: stunnel with a throw-away certificate for 127.0.0.1.
    Returns (https URL, CA file). Both s3-load and our plugin speak TLS themselves (OpenSSL)."""
    cert, key = os.path.join(WORK, "cert.pem"), os.path.join(WORK, "key.pem")
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2",
                    "-subj", "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1",
                    "-keyout", key, "-out", cert], check=True, capture_output=True)
    target = url[len("http://"):].rstrip("/")
    tls_port = free_port()
    start_stunnel("tls-front", ["[s3]", f"accept = 127.0.0.1:{tls_port}", f"connect = {target}",
                                f"cert = {cert}", f"key = {key}"])
    wait_port(tls_port)
    return f"https://127.0.0.1:{tls_port}/", cert


def stats(url, bucket):
    with urllib.request.urlopen(url + "__stats") as r:
        return json.load(r).get(bucket, {})


def delete_bucket(url, bucket):
    req = urllib.request.Request(url + bucket, method="DELETE")
    urllib.request.urlopen(req).read()


def start_nbdkit(name, args):
    sock = os.path.join(WORK, name + ".sock")
    if os.path.exists(sock):
        os.unlink(sock)
    logf = open(os.path.join(WORK, name + ".log"), "w")
    p = subprocess.Popen(["nbdkit", "-f", "-U", sock] + args, stdout=logf, stderr=logf)
    PROCS.append(p)
    for _ in range(600):
        if os.path.exists(sock):
            break
        if p.poll() is not None:
            break
        time.sleep(0.05)
    if not os.path.exists(sock):
        raise SystemExit(f"nbdkit {name} did not start: " + open(logf.name).read())
    return p, f"nbd+unix:///?socket={sock}"


def mounted(path):
    with open("/proc/mounts") as f:
        return any(line.split()[1] == path for line in f)


def start_fuse(binary, name, flags, bucket):
    mnt = os.path.join(WORK, name + ".mnt")
    os.makedirs(mnt, exist_ok=True)
    logf = open(os.path.join(WORK, name + ".log"), "w")
    p = subprocess.Popen([binary, "-f"] + flags + [bucket, mnt], stdout=logf, stderr=logf)
    PROCS.append(p)
    for _ in range(1200):
        if mounted(mnt) or p.poll() is not None:
            break
        time.sleep(0.05)
    if not mounted(mnt):
        raise SystemExit(f"{binary} did not mount: " + open(logf.name).read())
    MOUNTS.append(mnt)
    time.sleep(0.3)
    return p, mnt


def stop_fuse(p, mnt):
    """Unmount; the process does its final flush and exits."""
    subprocess.run(["fusermount", "-u", mnt], check=False)
    MOUNTS.remove(mnt)
    try:
        p.wait(300)
    except subprocess.TimeoutExpired:
        p.kill()
        p.wait()
    PROCS.remove(p)


def fio(target, name, rw, bs, iodepth=16, size_mb=SIZE_MB, timed=False, extra=()):
    out = os.path.join(WORK, f"fio-{name}.json")
    cmd = ["fio", f"--name={name}", f"--rw={rw}", f"--bs={bs}", f"--iodepth={iodepth}",
           f"--size={size_mb}m", "--output-format=json", f"--output={out}"]
    if timed:
        cmd += [f"--runtime={RUNTIME}", "--time_based=1"]
    if target.startswith("nbd"):
        cmd += ["--ioengine=nbd", f"--uri={target}"]
    else:
        cmd += [f"--filename={target}", "--ioengine=libaio", "--direct=1"]
    cmd += list(extra)
    subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL, timeout=1200)
    with open(out) as f:
        job = json.load(f)["jobs"][0]
    side = job["write" if "write" in rw else "read"]
    res = {"mibs": side["bw_bytes"] / 1048576, "iops": side["iops"],
           "bytes": side["io_bytes"], "secs": job["job_runtime"] / 1000,
           # fio's own CPU (its usr/sys percentages of the job's run time)
           "fio_cpu": (job.get("usr_cpu", 0) + job.get("sys_cpu", 0)) / 100 * job["job_runtime"] / 1000}
    sync = job.get("sync", {}).get("lat_ns")
    if sync and sync.get("N", 0):
        res["sync_lat_us"] = sync["mean"] / 1000
        p = sync.get("percentile", {})
        if "50.000000" in p:
            res["sync_p50_us"] = p["50.000000"] / 1000
    return res


SERVER_PID = None  # the S3 server's pid, set by main()


class Probe:
    """CPU seconds of one process (and of the S3 server) and server requests over one phase."""

    def __init__(self, pid, url, bucket):
        self.pid, self.url, self.bucket = pid, url, bucket
        self.cpu0 = cpu_seconds(pid)
        self.server0 = cpu_seconds(SERVER_PID)
        self.s0 = stats(url, bucket)
        self.t0 = time.monotonic()

    def end(self):
        s1 = stats(self.url, self.bucket)
        req = {k: s1.get(k, 0) - self.s0.get(k, 0) for k in ("get", "head", "put", "delete", "bulk_delete")}
        return {"cpu": cpu_seconds(self.pid) - self.cpu0, "server_cpu": cpu_seconds(SERVER_PID) - self.server0,
                "req": req, "wall": time.monotonic() - self.t0}


# ---------------------------------------------------------------- the targets

def plugin_args(url, bucket, extra):
    return [PLUGIN, f"bucket={bucket}", f"baseURL={url}", "accessId=bench", "accessKey=bench",
            "size=1g", "blockSize=256k", f"ioThreads={CONNS}", f"blockCacheThreads={CONNS}"] + extra


def run_raw(url, rep):
    """The server's ceiling, with PUTs shaped three ways (the server verifies what is sent and
    always hashes the body for its MD5 ETag, as real servers do): Content-MD5 (s3backer
    1.5.4's PUTs, and ours with --contentMD5), x-amz-checksum-crc32 (ours by default: the
    reference for our write goals), and no checksum at all."""
    load = [os.path.join(REL, "s3-load"), "--url", url, "--conns", str(CONNS),
            "--size", str(256 * 1024), "--count", str(SIZE_MB * 4), "--lat-count", "200"]
    load += ["--server-pid", str(SERVER_PID)]
    out = subprocess.run(load + ["--bucket", f"raw{rep}", "--rand-secs", str(RUNTIME)],
                         check=True, capture_output=True, text=True, timeout=600)
    r = json.loads(out.stdout)
    r["put_md5_mibs"], r["put_md5_qd1_us"] = r["put_mibs"], r["put_qd1_us"]
    for name, flag in (("crc", "--crc32"), ("sha", "--no-content-md5")):
        out = subprocess.run(load + ["--bucket", f"raw{name}{rep}", "--rand-secs", "0", flag],
                             check=True, capture_output=True, text=True, timeout=600)
        r2 = json.loads(out.stdout)
        r[f"put_{name}_mibs"] = r2["put_mibs"]
        r[f"put_{name}_qd1_us"] = r2["put_qd1_us"]
        r[f"put_{name}_server_cpu_per_gib"] = r2["put_server_cpu_per_gib"]
    return r


def put_round_trip(url, bucket, load_url=None, cacert=None):
    """The median round trip of one raw 256 KiB PUT (CRC-32, queue depth 1), measured right
    after a FLUSH job: the FLUSH goal's reference, taken under the same machine load."""
    load = [os.path.join(REL, "s3-load"), "--url", load_url or url, "--conns", "1", "--size", str(256 * 1024),
            "--count", "8", "--lat-count", "200", "--rand-secs", "0", "--crc32", "--bucket", bucket]
    if cacert:
        load += ["--cacert", cacert]
    out = subprocess.run(load, check=True, capture_output=True, text=True, timeout=300)
    us = json.loads(out.stdout)["put_qd1_us"]
    delete_bucket(url, bucket)
    return us


def run_raw_tls(https, cacert, rep):
    """The server's ceiling through TLS (s3-load speaking TLS itself): CRC-32 PUTs like ours,
    and random 4 KiB ranged GETs (what our cold partial reads send over HTTPS)."""
    load = [os.path.join(REL, "s3-load"), "--url", https, "--cacert", cacert, "--conns", str(CONNS),
            "--size", str(256 * 1024), "--count", str(SIZE_MB * 4), "--lat-count", "200",
            "--bucket", f"rawtls{rep}", "--rand-secs", str(RUNTIME), "--rand-range", "4096", "--crc32"]
    out = subprocess.run(load, check=True, capture_output=True, text=True, timeout=900)
    return json.loads(out.stdout)


def run_tls(url, https, cacert, rep):
    """Ours over HTTPS with the defaults that come with it (UNSIGNED-PAYLOAD + CRC-32, ranged
    GETs for partial reads): no cache (seq write, cold seq read, cold 4k random reads), then the
    64 MiB cache (FLUSH at queue depth 1)."""
    bucket = f"tls{rep}"

    def args(extra):
        return plugin_args(https, bucket, extra + [f"cacert={cacert}"])
    p, uri = start_nbdkit("tls", args(["blockCacheSize=0"]))
    pr = Probe(p.pid, url, bucket)
    w = fio(uri, "tls-w", "write", "1m")
    wp = pr.end()
    r = {"write": w["mibs"], "cpu_per_gib": wp["cpu"] / (w["bytes"] / 2**30)}
    r["read"] = fio(uri, "tls-r", "read", "1m")["mibs"]
    pr = Probe(p.pid, url, bucket)
    rr = fio(uri, "tls-rr", "randread", "4k", timed=True)
    rrp = pr.end()
    r["randread"] = rr["iops"]
    r["randread_get_kib"] = (rr["bytes"] / 1024) / max(rrp["req"]["get"], 1)
    stop(p)
    p, uri = start_nbdkit("tls", args([f"blockCacheSize={CACHE_BLOCKS}"]))
    fl = fio(uri, "tls-flush", "randwrite", "4k", iodepth=1, size_mb=WARM_MB, timed=True,
             extra=["--fsync=1"])
    r["flush_us"] = fl.get("sync_lat_us", 0.0)
    r["flush_p50_us"] = fl.get("sync_p50_us", r["flush_us"])
    stop(p)
    r["put_rtt_us"] = put_round_trip(url, f"tlsrtt{rep}", https, cacert)
    delete_bucket(url, bucket)
    return r


def run_memory(rep):
    p, uri = start_nbdkit("memory", ["memory", "1G"])
    r = {"write": fio(uri, "mem-w", "write", "1m")["mibs"],
         "read": fio(uri, "mem-r", "read", "1m")["mibs"],
         "randread": fio(uri, "mem-rr", "randread", "4k", size_mb=WARM_MB, timed=True)["iops"],
         "randwrite": fio(uri, "mem-rw", "randwrite", "4k", size_mb=WARM_MB, timed=True)["iops"]}
    stop(p)
    return r


def run_nocache(url, rep, name="nocache", extra=()):
    bucket = f"{name}{rep}"
    p, uri = start_nbdkit(name, plugin_args(url, bucket, ["blockCacheSize=0"] + list(extra)))
    pr = Probe(p.pid, url, bucket)
    w = fio(uri, f"{name}-w", "write", "1m")
    wp = pr.end()
    gib = w["bytes"] / 2**30
    r = {"write": w["mibs"], "cpu_per_gib": wp["cpu"] / gib,
         "server_cpu_per_gib": wp["server_cpu"] / gib, "fio_cpu_per_gib": w["fio_cpu"] / gib,
         "put_per_block": wp["req"]["put"] / (w["bytes"] / 262144)}
    if name in ("nocache", "signed"):
        pr = Probe(p.pid, url, bucket)
        rd = fio(uri, f"{name}-r", "read", "1m")
        rp = pr.end()
        gib = rd["bytes"] / 2**30
        r["read"] = rd["mibs"]
        r["read_cpu_per_gib"] = rp["cpu"] / gib
        r["read_server_cpu_per_gib"] = rp["server_cpu"] / gib
        r["read_fio_cpu_per_gib"] = rd["fio_cpu"] / gib
        r["randread"] = fio(uri, f"{name}-rr", "randread", "4k", timed=True)["iops"]
        # One aligned 256 KiB write at queue depth 1 without a cache is exactly one PUT through
        # the whole stack (NBD, plugin, our S3 client): the round trip a FLUSH cannot beat.
        one = fio(uri, f"{name}-put1", "write", "256k", iodepth=1, size_mb=16, extra=["--offset=600m"])
        r["put1_us"] = 1e6 / one["iops"] if one["iops"] else None
    r["rss"] = peak_rss_mib(p.pid)
    stop(p)
    delete_bucket(url, bucket)
    return r


def run_cache(url, rep, name="cache", extra=()):
    bucket = f"{name}{rep}"
    args = plugin_args(url, bucket, [f"blockCacheSize={CACHE_BLOCKS}"] + list(extra))
    p, uri = start_nbdkit(name, args)
    pr = Probe(p.pid, url, bucket)
    w = fio(uri, "cache-w", "write", "1m", extra=["--end_fsync=1"])
    wp = pr.end()
    r = {"write": w["mibs"], "cpu_per_gib": wp["cpu"] / (w["bytes"] / 2**30)}
    stop(p)
    # cold: a new process, an empty cache
    p, uri = start_nbdkit(name, args)
    r["read"] = fio(uri, "cache-r", "read", "1m")["mibs"]
    fio(uri, "cache-warm", "read", "1m", size_mb=WARM_MB)
    r["randread_warm"] = fio(uri, "cache-rr", "randread", "4k", size_mb=WARM_MB, timed=True)["iops"]
    pr = Probe(p.pid, url, bucket)
    rw = fio(uri, "cache-rw", "randwrite", "4k", size_mb=WARM_MB, timed=True, extra=["--end_fsync=1"])
    rwp = pr.end()
    r["randwrite"] = rw["iops"]
    r["randwrite_gets"] = rwp["req"]["get"]
    r["randwrite_put_per_gib"] = rwp["req"]["put"] / (rw["bytes"] / 2**30)
    r["randwrite_put_per_s"] = rwp["req"]["put"] / rwp["wall"]
    r["randwrite_secs"] = rwp["wall"]
    fl = fio(uri, "cache-flush", "randwrite", "4k", iodepth=1, size_mb=WARM_MB, timed=True,
             extra=["--fsync=1"])
    r["flush_us"] = fl.get("sync_lat_us", 0.0)
    r["flush_p50_us"] = fl.get("sync_p50_us", r["flush_us"])
    r["rss"] = peak_rss_mib(p.pid)
    stop(p)
    r["put_rtt_us"] = put_round_trip(url, f"{name}rtt{rep}")
    if name == "cache":
        # Absorption alone: the same random writes with write-back held off past the run
        # (blockCacheWriteDelay 10 min), so no upload shares the CPU while they are measured.
        p, uri = start_nbdkit(name, args + ["blockCacheWriteDelay=600000"])
        fio(uri, "cache-warm2", "read", "1m", size_mb=WARM_MB)
        pr = Probe(p.pid, url, bucket)
        r["randwrite_absorbed"] = fio(uri, "cache-rw2", "randwrite", "4k", size_mb=WARM_MB, timed=True)["iops"]
        r["randwrite_absorbed_puts"] = pr.end()["req"]["put"]
        stop(p)
    delete_bucket(url, bucket)
    return r


def fuse_flags(url, binary):
    f = [f"--baseURL={url}", "--accessId=bench", "--accessKey=bench", "--size=1g",
         "--blockSize=256k", f"--blockCacheSize={CACHE_BLOCKS}", f"--blockCacheThreads={CONNS}"]
    if binary == OURS:
        f.append(f"--ioThreads={CONNS}")
    return f


def run_fuse(url, rep, binary, name):
    bucket = f"{name}{rep}"
    flags = fuse_flags(url, binary)
    p, mnt = start_fuse(binary, name, flags, bucket)
    pr = Probe(p.pid, url, bucket)
    w = fio(os.path.join(mnt, "file"), f"{name}-w", "write", "1m", extra=["--end_fsync=1"])
    wp = pr.end()
    r = {"write": w["mibs"], "cpu_per_gib": wp["cpu"] / (w["bytes"] / 2**30),
         "rss": peak_rss_mib(p.pid)}
    stop_fuse(p, mnt)
    p, mnt = start_fuse(binary, name, flags, bucket)
    f = os.path.join(mnt, "file")
    r["read"] = fio(f, f"{name}-r", "read", "1m")["mibs"]
    fio(f, f"{name}-warm", "read", "1m", size_mb=WARM_MB)
    r["randread_warm"] = fio(f, f"{name}-rr", "randread", "4k", size_mb=WARM_MB, timed=True)["iops"]
    r["rss"] = max(r["rss"], peak_rss_mib(p.pid))
    stop_fuse(p, mnt)
    delete_bucket(url, bucket)
    return r


# ---------------------------------------------------------------- the table

def med(runs, *path):
    vals = []
    for run in runs:
        v = run
        for k in path:
            v = v.get(k) if isinstance(v, dict) else None
        if v is not None:
            vals.append(v)
    return statistics.median(vals) if vals else None


def fmt(v, unit=""):
    if v is None:
        return "-"
    if abs(v) >= 100:
        s = f"{v:.0f}"
    elif abs(v) >= 10:
        s = f"{v:.1f}"
    else:
        s = f"{v:.2f}"
    return s + (" " + unit if unit else "")


def build_rows(runs):
    m = lambda *p: med(runs, *p)  # noqa: E731
    # Ours sends x-amz-checksum-crc32 on every PUT and signs the body's SHA-256 (no
    # Content-MD5 under SigV4): the comparable raw PUT carries the CRC too, which the server
    # verifies.
    raw_put, raw_get = m("raw", "put_crc_mibs"), m("raw", "get_mibs")
    raw_put_md5, raw_put_sha = m("raw", "put_md5_mibs"), m("raw", "put_sha_mibs")
    raw_rget, raw_put_us = m("raw", "randget_rps"), m("raw", "put_crc_qd1_us")
    raw_put_us_md5 = m("raw", "put_md5_qd1_us")
    mem_rr, mem_rw = m("memory", "randread"), m("memory", "randwrite")
    rows = []

    def row(what, ours, ref, ref_name, unit, goal=None, higher=True, ratio=None):
        if ratio is None and ours is not None and ref:
            ratio = ours / ref
        met = None
        if goal is not None and ratio is not None:
            met = ratio >= goal if higher else ratio <= goal
        rows.append({"what": what, "ours": ours, "ref": ref, "ref_name": ref_name, "unit": unit,
                     "ratio": ratio, "goal": goal, "higher": higher, "met": met})

    row("server ceiling: raw PUT 256 KiB x16, CRC-32 like ours (server verifies it)", raw_put, None, "",
        "MiB/s")
    row("server ceiling: raw PUT 256 KiB x16, Content-MD5 like s3backer 1.5.4", raw_put_md5, None, "",
        "MiB/s")
    row("server ceiling: raw PUT 256 KiB x16, no checksum", raw_put_sha, None, "", "MiB/s")
    row("server ceiling: raw GET 256 KiB x16 conns", raw_get, None, "", "MiB/s")
    row("server ceiling: raw random GET 256 KiB x16 conns", raw_rget, None, "", "req/s")
    row("server: one PUT round trip (qd1), CRC-32 / Content-MD5", raw_put_us, raw_put_us_md5,
        "Content-MD5", "us")
    row("nbdkit memory: 1m seq write / read qd16", m("memory", "write"), m("memory", "read"),
        "read", "MiB/s")
    row("ours, no cache: 1m seq write", m("nocache", "write"), raw_put, "raw PUT", "MiB/s", 0.9)
    row("ours, 64 MiB cache: 1m seq write + fsync", m("cache", "write"), raw_put, "raw PUT", "MiB/s", 0.9)
    row("ours, no cache: 1m cold seq read", m("nocache", "read"), raw_get, "raw GET", "MiB/s", 0.9)
    row("ours, 64 MiB cache: 1m cold seq read", m("cache", "read"), raw_get, "raw GET", "MiB/s", 0.9)
    row("ours: 4k randread qd16, cached working set", m("cache", "randread_warm"), mem_rr,
        "nbdkit memory", "IOPS", 0.8)
    row("ours, no cache: 4k randread qd16, cold", m("nocache", "randread"), raw_rget,
        "raw random GET", "IOPS", 0.9)
    row("ours, cache: 4k randwrite qd16 (+fsync)", m("cache", "randwrite"), mem_rw, "nbdkit memory", "IOPS")
    row("  GETs during it (read-modify-write)", m("cache", "randwrite_gets"), None, "", "")
    row("  PUTs per GiB of 4k random writes", m("cache", "randwrite_put_per_gib"), None, "", "")
    row("  PUT/s vs one per dirty block per write delay", m("cache", "randwrite_put_per_s"),
        WARM_MB * 4 / 0.25, "128 blocks / 250 ms", "/s", 1.0, higher=False)
    row("  4k randwrite qd16 with write-back held off (absorption alone)", m("cache", "randwrite_absorbed"), mem_rw,
        "nbdkit memory", "IOPS", 0.8)
    row("  PUTs while absorbing (held off)", m("cache", "randwrite_absorbed_puts"), None, "", "")
    row("ours: FLUSH latency qd1 (median) vs one raw PUT (median, measured right after)",
        m("cache", "flush_p50_us"), m("cache", "put_rtt_us"), "PUT round trip",
        "us", 1.2, higher=False)
    row("  the same vs one 256 KiB write qd1 without cache (one PUT via our stack)", m("cache", "flush_us"),
        m("nocache", "put1_us"), "our PUT", "us")
    row("ours, no cache: CPU s per GiB written", m("nocache", "cpu_per_gib"), 1.7, "goal 1.7", "s",
        1.0, higher=False)
    row("ours, cache: CPU s per GiB written", m("cache", "cpu_per_gib"), 1.7, "goal 1.7", "s", 1.0,
        higher=False)
    row("ours, zstd+AES: CPU s per GiB written", m("codec", "cpu_per_gib"), m("orig", "cpu_per_gib"),
        "s3backer 1.5.4 plain", "s", 1.0, higher=False)
    row("ours, zstd level -3 (fast) + AES: CPU s per GiB written", m("codecfast", "cpu_per_gib"),
        m("orig", "cpu_per_gib"), "s3backer 1.5.4 plain", "s", 1.0, higher=False)
    row("ours, no cache: CPU s per GiB read", m("nocache", "read_cpu_per_gib"), None, "", "s")
    row("payloadHash=sha256 (body signed, as s3backer), no cache: 1m seq write", m("signed", "write"), raw_put,
        "raw PUT", "MiB/s", 0.9)
    row("payloadHash=sha256, 64 MiB cache: 1m seq write + fsync", m("scache", "write"), raw_put,
        "raw PUT", "MiB/s", 0.9)
    row("payloadHash=sha256, no cache: 1m cold seq read", m("signed", "read"), raw_get, "raw GET",
        "MiB/s", 0.9)
    row("payloadHash=sha256, no cache: 4k randread qd16, cold", m("signed", "randread"), raw_rget,
        "raw random GET", "IOPS", 0.9)
    row("payloadHash=sha256: FLUSH latency qd1 vs one PUT (medians)", m("scache", "flush_p50_us"),
        m("scache", "put_rtt_us"),
        "PUT round trip", "us", 1.2, higher=False)
    row("payloadHash=sha256, no cache: CPU s per GiB written", m("signed", "cpu_per_gib"), 1.7,
        "goal 1.7", "s", 1.0, higher=False)
    row("payloadHash=sha256, cache: CPU s per GiB written", m("scache", "cpu_per_gib"), 1.7,
        "goal 1.7", "s", 1.0, higher=False)
    # On one 2-core machine the disk, fio and the server share the CPU: a transfer cannot go
    # faster than 2 CPU seconds per second over everyone's CPU seconds per GiB.
    def bound(target, ours_key, server_key, fio_key):
        parts = [m(target, ours_key) if ours_key else 0.0, m(target, server_key), m(target, fio_key)]
        if any(v is None for v in parts) or sum(parts) <= 0:
            return None
        return (os.cpu_count() or 2) / sum(parts) * 1024
    row("CPU s per GiB, no cache seq write: ours / server / fio", m("nocache", "cpu_per_gib"),
        m("nocache", "server_cpu_per_gib"), "server", "s")
    row("  fio's", m("nocache", "fio_cpu_per_gib"), None, "", "s")
    row("  server's for raw PUTs (CRC-32) / GETs", m("raw", "put_crc_server_cpu_per_gib"),
        m("raw", "get_server_cpu_per_gib"), "GETs", "s")
    row("ours, no cache: seq write vs its CPU-share bound", m("nocache", "write"),
        bound("nocache", "cpu_per_gib", "server_cpu_per_gib", "fio_cpu_per_gib"), "2 cores / CPU s per GiB",
        "MiB/s")
    row("ours, no cache: cold seq read vs its CPU-share bound", m("nocache", "read"),
        bound("nocache", "read_cpu_per_gib", "read_server_cpu_per_gib", "read_fio_cpu_per_gib"),
        "2 cores / CPU s per GiB", "MiB/s")
    row("payloadHash=sha256, no cache: seq write vs its CPU-share bound", m("signed", "write"),
        bound("signed", "cpu_per_gib", "server_cpu_per_gib", "fio_cpu_per_gib"), "2 cores / CPU s per GiB",
        "MiB/s")
    # The same bound for a disk that cost no CPU at all, against the raw ceilings: how close to
    # the 0.9x goals any disk could get while sharing this machine with the server and fio.
    row("a disk costing no CPU: seq write bound vs raw PUT", bound("nocache", None, "server_cpu_per_gib",
        "fio_cpu_per_gib"), raw_put, "raw PUT", "MiB/s")
    row("a disk costing no CPU: cold seq read bound vs raw GET", bound("nocache", None, "read_server_cpu_per_gib",
        "read_fio_cpu_per_gib"), raw_get, "raw GET", "MiB/s")
    tls_put, tls_get = m("rawtls", "put_mibs"), m("rawtls", "get_mibs")
    row("over HTTPS (stunnel in front of the server): raw PUT (CRC-32) / GET 256 KiB x16", tls_put, tls_get, "GET", "MiB/s")
    row("over HTTPS: raw random GET 256 KiB / 4 KiB ranged x16", m("rawtls", "randget_rps"),
        m("rawtls", "randrange_rps"), "4 KiB ranged", "req/s")
    row("ours over HTTPS, no cache: 1m seq write", m("tls", "write"), tls_put, "raw PUT over HTTPS",
        "MiB/s", 0.9)
    row("ours over HTTPS, no cache: 1m cold seq read", m("tls", "read"), tls_get, "raw GET over HTTPS",
        "MiB/s", 0.9)
    row("ours over HTTPS, no cache: 4k randread qd16, cold", m("tls", "randread"), m("rawtls", "randget_rps"),
        "raw random GET (256 KiB)", "IOPS", 0.9)
    row("  the same vs raw random 4 KiB ranged GETs", m("tls", "randread"), m("rawtls", "randrange_rps"),
        "raw ranged GET", "IOPS")
    row("  KiB per GET during it", m("tls", "randread_get_kib"), None, "", "KiB")
    row("ours over HTTPS: FLUSH latency qd1 vs one PUT (medians)", m("tls", "flush_p50_us"), m("tls", "put_rtt_us"),
        "PUT round trip over HTTPS", "us", 1.2, higher=False)
    row("ours over HTTPS, no cache: CPU s per GiB written (TLS included)", m("tls", "cpu_per_gib"), 1.7,
        "goal 1.7", "s", 1.0, higher=False)
    row("ours, zstd+AES, no cache: 1m seq write", m("codec", "write"), raw_put, "raw PUT", "MiB/s")
    row("ours FUSE file: 1m seq write + fsync", m("fuse", "write"), m("orig", "write"),
        "s3backer 1.5.4", "MiB/s")
    row("ours FUSE file: 1m cold seq read", m("fuse", "read"), m("orig", "read"), "s3backer 1.5.4", "MiB/s")
    row("ours FUSE file: 4k randread warm", m("fuse", "randread_warm"), m("orig", "randread_warm"),
        "s3backer 1.5.4", "IOPS")
    row("ours FUSE CPU s/GiB written", m("fuse", "cpu_per_gib"), m("orig", "cpu_per_gib"),
        "s3backer 1.5.4", "s")
    row("s3backer 1.5.4 (cache 64 MiB): seq write / raw PUT", m("orig", "write"), raw_put, "raw PUT", "MiB/s")
    row("s3backer 1.5.4: cold seq read / raw GET", m("orig", "read"), raw_get, "raw GET", "MiB/s")
    row("s3backer 1.5.4: 4k randread warm / nbdkit memory", m("orig", "randread_warm"), mem_rr,
        "nbdkit memory", "IOPS")
    row("peak RSS: ours no cache / 64 MiB cache", m("nocache", "rss"), m("cache", "rss"), "cache", "MiB")
    row("peak RSS: ours FUSE / s3backer 1.5.4 (64 MiB cache)", m("fuse", "rss"), m("orig", "rss"),
        "1.5.4", "MiB")
    return rows


def table(rows):
    lines = ["| measurement | ours | reference | ratio | goal | met |",
             "| --- | --- | --- | --- | --- | --- |"]
    for r in rows:
        ref = fmt(r["ref"], r["unit"]) + (f" ({r['ref_name']})" if r["ref_name"] and r["ref"] is not None else "")
        goal = "" if r["goal"] is None else ("≥ " if r["higher"] else "≤ ") + f"{r['goal']}x"
        met = "" if r["met"] is None else ("yes" if r["met"] else "**no**")
        ratio = "" if r["ratio"] is None else f"{r['ratio']:.2f}x"
        lines.append(f"| {r['what']} | {fmt(r['ours'], r['unit'])} | {ref if r['ref'] is not None else ''} "
                     f"| {ratio} | {goal} | {met} |")
    return "\n".join(lines)


def svg_plot(rows, path):
    """A horizontal bar chart of the ratios that have a goal (goal marked)."""
    data = [r for r in rows if r["goal"] is not None and r["ratio"] is not None]
    w, bar, gap, left = 900, 22, 10, 380
    h = 60 + len(data) * (bar + gap)
    scale = (w - left - 40) / max(2.0, max(max(r["ratio"], r["goal"]) for r in data) if data else 2.0)
    out = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{w}" height="{h}" font-family="sans-serif" font-size="12">',
           f'<rect width="{w}" height="{h}" fill="white"/>',
           f'<text x="10" y="20" font-size="14">s3backer-rs / reference (medians of {REPS} runs); '
           'black tick = goal; green = met, red = missed</text>']
    for i, r in enumerate(data):
        y = 40 + i * (bar + gap)
        color = "#4a4" if r["met"] else "#c44"
        out.append(f'<text x="{left - 8}" y="{y + 15}" text-anchor="end">{r["what"].strip()}</text>')
        out.append(f'<rect x="{left}" y="{y}" width="{r["ratio"] * scale:.1f}" height="{bar}" fill="{color}"/>')
        gx = left + r["goal"] * scale
        out.append(f'<line x1="{gx:.1f}" y1="{y - 3}" x2="{gx:.1f}" y2="{y + bar + 3}" stroke="black" stroke-width="2"/>')
        out.append(f'<text x="{left + r["ratio"] * scale + 4:.1f}" y="{y + 15}">{r["ratio"]:.2f}x</text>')
    out.append(f'<line x1="{left}" y1="30" x2="{left}" y2="{h - 10}" stroke="#888"/>')
    out.append("</svg>")
    with open(path, "w") as f:
        f.write("\n".join(out) + "\n")


def main():
    t0 = time.monotonic()
    load0 = open("/proc/loadavg").read().split()[:3]
    global SERVER_PID
    server, url = start_server()
    SERVER_PID = server.pid
    https = cacert = None
    if ONLY & {"rawtls", "tls"}:
        https, cacert = start_tls(url)
    log(f"server {url}  reps={REPS} size={SIZE_MB} MiB runtime={RUNTIME} s  load {' '.join(load0)}")
    runs = []
    for rep in range(REPS):
        run = {}
        steps = [("raw", lambda: run_raw(url, rep)),
                 ("memory", lambda: run_memory(rep)),
                 ("nocache", lambda: run_nocache(url, rep)),
                 ("cache", lambda: run_cache(url, rep)),
                 # The body's SHA-256 signed on every PUT, as s3backer does (the default signs it
                 # over plain HTTP only until the server returns our CRC-32, which this one does).
                 ("signed", lambda: run_nocache(url, rep, "signed", ["payloadHash=sha256"])),
                 ("scache", lambda: run_cache(url, rep, "scache", ["payloadHash=sha256"])),
                 ("rawtls", lambda: run_raw_tls(https, cacert, rep)),
                 ("tls", lambda: run_tls(url, https, cacert, rep)),
                 ("codec", lambda: run_nocache(url, rep, "codec",
                                               ["compress=zstd", "encrypt=AES-128-CBC", "password=benchpass"])),
                 # zstd's fast mode: on fio's data (x1.12 per block) level 3 runs at ~78 MB/s
                 ("codecfast", lambda: run_nocache(url, rep, "codecfast",
                                                   ["compress=zstd", "compress-level=-3", "encrypt=AES-128-CBC",
                                                    "password=benchpass"])),
                 ("fuse", lambda: run_fuse(url, rep, OURS, "fuse")),
                 ("orig", lambda: run_fuse(url, rep, ORIG, "orig"))]
        for name, fn in steps:
            if name not in ONLY:
                continue
            t = time.monotonic()
            run[name] = fn()
            log(f"rep {rep + 1}/{REPS} {name:8s} {time.monotonic() - t:5.1f} s  "
                + json.dumps({k: round(v, 2) if isinstance(v, float) else v for k, v in run[name].items()}))
        runs.append(run)
    load1 = open("/proc/loadavg").read().split()[:3]
    stop(server)
    rows = build_rows(runs)
    os.makedirs(OUT, exist_ok=True)
    tbl = table(rows)
    elapsed = time.monotonic() - t0
    header = (f"bench/run.sh — {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}, {REPS} repetitions "
              f"(medians), {SIZE_MB} MiB sequential transfers, {RUNTIME} s random jobs, "
              f"load average {' '.join(load0)} before / {' '.join(load1)} after, "
              f"{elapsed / 60:.1f} min, {os.cpu_count()} CPUs")
    with open(os.path.join(OUT, "table.md"), "w") as f:
        f.write(header + "\n\n" + tbl + "\n")
    with open(os.path.join(OUT, "runs.json"), "w") as f:
        json.dump({"reps": REPS, "size_mb": SIZE_MB, "runtime": RUNTIME, "load_before": load0,
                   "load_after": load1, "runs": runs, "rows": rows}, f, indent=1)
    svg_plot(rows, os.path.join(OUT, "ratios.svg"))
    print(header + "\n")
    print(tbl)
    print(f"\nwritten: {OUT}/table.md, runs.json, ratios.svg")


try:
    main()
finally:
    cleanup()
