#!/usr/bin/env python3
"""Time Moonlight's real nanors (GF(2^8) Reed-Solomon) for `strahl-bench fec` (bench tool only).

nanors is reached the way crates/dp/fec/golden/gen_golden.py reaches it: moonlight-python's bundled
libmoonlight-common-c.so (GPL) loaded in cffi ABI mode in this separate process, never linked into
strahl. The library carries one build of nanors per ISA (`_def` portable, `_ssse3`, `_avx2`,
`_avx512`); each one this CPU can run is timed, so the bench can compare our kernels with the one
a Moonlight client's dispatcher would pick.

Usage: nanors_fec.py CASES_JSON, where CASES_JSON is a list of
    {"op": "encode" | "decode", "d": D, "p": P, "len": L, "iters": N}
(decode: P data shards erased, a fresh random pattern per call: max loss, as the Rust side does).
Prints one JSON object: {"variants": [...], "timer_overhead_us": ..., "results": [...]} with per
case and variant the median/p99/min of the per-call times in microseconds (perf_counter_ns around
the one cffi call; `timer_overhead_us` is the median of an empty timed interval).
"""

import glob
import json
import os
import random
import sys
import time

import cffi


def find_lib():
    libs = glob.glob(os.path.join(sys.prefix, "lib", "python3*", "site-packages", "moonlight_python",
                                  "libmoonlight-common-c*.so"))
    if not libs:
        sys.exit("libmoonlight-common-c.so not found: run with the moonlight-python venv's python")
    return libs[0]


def cpu_flags():
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("flags"):
                    return set(line.split(":", 1)[1].split())
    except OSError:
        pass
    return set()


def stats(samples_ns):
    us = sorted(s / 1000.0 for s in samples_ns)
    pick = lambda q: us[int(round((len(us) - 1) * q))]
    return {"median_us": pick(0.5), "p99_us": pick(0.99), "min_us": us[0], "samples": len(us)}


def main():
    cases = json.loads(sys.argv[1])
    ffi = cffi.FFI()
    variants = ["def", "ssse3", "avx2", "avx512"]
    decl = "typedef struct reed_solomon reed_solomon;\n"
    for v in variants:
        decl += f"""
        void reed_solomon_init_{v}(void);
        reed_solomon *reed_solomon_new_{v}(int data_shards, int parity_shards);
        int reed_solomon_encode_{v}(reed_solomon *rs, uint8_t **shards, int nr_shards, int block_size);
        int reed_solomon_decode_{v}(reed_solomon *rs, uint8_t **shards, uint8_t *marks,
                                    int nr_shards, int block_size);
        """
    ffi.cdef(decl)
    lib = ffi.dlopen(find_lib())
    flags = cpu_flags()
    need = {"def": set(), "ssse3": {"ssse3"}, "avx2": {"avx2"}, "avx512": {"avx512f", "avx512bw"}}
    usable = [v for v in variants if need[v] <= flags]
    for v in usable:
        getattr(lib, f"reed_solomon_init_{v}")()

    empty = []
    for _ in range(1000):
        t0 = time.perf_counter_ns()
        empty.append(time.perf_counter_ns() - t0)
    overhead = stats(empty)["median_us"]

    rng = random.Random(0xFEC8)
    results = []
    for case in cases:
        op, d, p, ln, iters = case["op"], case["d"], case["p"], case["len"], case["iters"]
        n = d + p
        data = os.urandom(d * ln)
        bufs = [ffi.new("uint8_t[]", data[i * ln:(i + 1) * ln]) if i < d else ffi.new("uint8_t[]", ln)
                for i in range(n)]
        ptrs = ffi.new("uint8_t *[]", bufs)
        marks = ffi.new("uint8_t[]", n)
        for v in usable:
            rs = getattr(lib, f"reed_solomon_new_{v}")(d, p)
            if rs == ffi.NULL:
                sys.exit(f"nanors refused ({d},{p})")
            enc = getattr(lib, f"reed_solomon_encode_{v}")
            dec = getattr(lib, f"reed_solomon_decode_{v}")
            assert enc(rs, ptrs, n, ln) == 0
            samples = []
            for it in range(iters + 2):
                if op == "encode":
                    t0 = time.perf_counter_ns()
                    rc = enc(rs, ptrs, n, ln)
                    dt = time.perf_counter_ns() - t0
                else:
                    ffi.memmove(marks, b"\x00" * n, n)
                    for i in rng.sample(range(d), min(p, d)):
                        marks[i] = 1
                    t0 = time.perf_counter_ns()
                    rc = dec(rs, ptrs, marks, n, ln)
                    dt = time.perf_counter_ns() - t0
                if rc != 0:
                    sys.exit(f"nanors {op} rc {rc}")
                if it >= 2:  # two warm-up calls
                    samples.append(dt)
            if op == "decode":
                got = b"".join(bytes(ffi.buffer(bufs[i], ln)) for i in range(d))
                if got != data:
                    sys.exit(f"nanors {v} decode did not restore the data ({d},{p})")
            r = {"op": op, "d": d, "p": p, "len": ln, "variant": v}
            r.update(stats(samples))
            results.append(r)
    print(json.dumps({"variants": usable, "timer_overhead_us": overhead, "results": results}))


if __name__ == "__main__":
    main()
