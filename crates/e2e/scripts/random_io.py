#!/usr/bin/python3
"""Random unaligned writes, trims and zeroes through libnbd against a model; verifies every read.

usage: random_io.py URI SIZE SEED OPS OUT_MODEL
Writes the final model (the expected disk image) to OUT_MODEL and prints one JSON line with the
set of blocks that hold non-zero data for BLOCK_SIZE (env S3B_BLOCK_SIZE).
"""
import json, os, random, sys
import nbd

uri, size, seed, ops, out = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4]), sys.argv[5]
bs = int(os.environ.get("S3B_BLOCK_SIZE", "65536"))
rng = random.Random(seed)
h = nbd.NBD()
h.connect_uri(uri)
assert h.get_size() == size, (h.get_size(), size)
model = bytearray(size)
for i in range(ops):
    kind = rng.random()
    off = rng.randrange(size)
    n = min(rng.randrange(1, 3 * bs), size - off)
    if kind < 0.6:
        data = rng.randbytes(n)
        h.pwrite(data, off)
        model[off:off + n] = data
    elif kind < 0.7:
        h.trim(n, off)
        model[off:off + n] = bytes(n)
    elif kind < 0.8:
        h.zero(n, off)
        model[off:off + n] = bytes(n)
    else:
        got = h.pread(n, off)
        if got != model[off:off + n]:
            sys.exit("mismatch reading %d bytes at %d after op %d" % (n, off, i))
# Block 0 carries the size metadata that auto-detection reads: leave it non-zero.
h.pwrite(b"\xff" * 16, 10)
model[10:26] = b"\xff" * 16
h.flush()
got = h.pread(size, 0) if size <= 64 << 20 else None
if got is not None and got != model:
    sys.exit("final image mismatch")
h.shutdown()
with open(out, "wb") as f:
    f.write(model)
nonzero = [b for b in range(size // bs) if any(model[b * bs:(b + 1) * bs])]
print(json.dumps({"nonzero_blocks": nonzero}))
