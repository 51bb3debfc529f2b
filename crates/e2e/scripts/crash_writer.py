#!/usr/bin/python3
"""A writer for crash tests: random 4 KiB block writes in epochs separated by FLUSH, logged.

usage: crash_writer.py URI BLOCKS SEED FIRST_EPOCH LOG

Each write's data names itself (epoch, sequence number, block), so a reader can tell which write
a block holds. The log gets "W epoch seq block" BEFORE each write is sent and "F epoch" after
each FLUSH returns; the writer stops at the first error (the server was killed).
"""
import os, random, struct, sys
import nbd

uri, blocks, seed, epoch, logpath = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4]), sys.argv[5]
rng = random.Random(seed)
log = open(logpath, "a", buffering=1)
h = nbd.NBD()
try:
    h.connect_uri(uri)
except nbd.Error:
    sys.exit(0)
seq = epoch * 1000000
try:
    while True:
        for _ in range(rng.randrange(1, 24)):
            b = rng.randrange(blocks)
            seq += 1
            head = struct.pack("<8sIII", b"S3BCRASH", epoch, seq % (1 << 32), b)
            data = head + bytes([seq % 251]) * (4096 - len(head))
            log.write("W %d %d %d\n" % (epoch, seq, b))
            h.pwrite(data, b * 4096)
        h.flush()
        log.write("F %d\n" % epoch)
        epoch += 1
except nbd.Error:
    pass
log.close()
