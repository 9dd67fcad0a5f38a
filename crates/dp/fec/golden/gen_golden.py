#!/usr/bin/env python3
"""Generate GF(2^8) golden vectors from Moonlight's real nanors (test tool only, never linked).

How the committed vectors in crates/dp/fec/tests/golden/ were made:

    /tmp/mlvenv/bin/python crates/dp/fec/golden/gen_golden.py

Requirements: a venv with PyPI `moonlight-python` 0.3.0, which bundles moonlight-common-c's
`libmoonlight-common-c.so` including nanors built through its rswrapper (symbols with a `_def`
suffix are the portable build; `_ssse3`/`_avx2`/`_avx512` are the same code compiled per ISA).
The library is GPL: it is loaded here in cffi ABI mode to *produce test data*, nothing more.

C signatures (nanors rs.h; verified by experiment below: encode reproduces the A15 Cauchy formula,
decode rewrites erased shards in place, new(250, 6) returns NULL):

    void reed_solomon_init_def(void);                 /* builds the GF tables, call once */
    reed_solomon *reed_solomon_new_def(int data_shards, int parity_shards);
    void reed_solomon_release(reed_solomon *rs);      /* not exported by the wrapper: leaked */
    int reed_solomon_encode_def(reed_solomon *rs, uint8_t **shards, int nr_shards, int block_size);
    int reed_solomon_decode_def(reed_solomon *rs, uint8_t **shards, uint8_t *marks,
                                int nr_shards, int block_size);   /* marks[i] = 1: shard i missing */

Data shards come from splitmix64(seed): each 64-bit output gives 8 bytes little-endian, one
continuous stream cut into `d` shards of `len` bytes (the Rust test regenerates them the same way).

Output, per case: `d{d}_p{p}_l{len}.bin` = the p parity shards nanors computed, then the erased data
shards as nanors' decode rewrote them (in ascending index order); `cases.txt` lists
`d p len seed erased-indices`.
"""

import glob
import os
import random
import sys

import cffi

CASES = [
    # (d, p, len): the shapes the reference doc verified, plus edges of the d + p <= 255 range and
    # lengths that are not multiples of 16/32/64.
    (1, 2, 37),
    (4, 2, 1392),
    (10, 2, 100),
    (200, 50, 257),
    (212, 43, 1392),
    (3, 1, 64),
    (1, 1, 1),
    (2, 5, 33),
    (100, 100, 65),
    (127, 128, 17),
    (254, 1, 31),
    (50, 20, 1000),
]

MASK = (1 << 64) - 1


def splitmix64_bytes(seed, n):
    out = bytearray()
    x = seed & MASK
    while len(out) < n:
        x = (x + 0x9E3779B97F4A7C15) & MASK
        z = x
        z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & MASK
        z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & MASK
        z ^= z >> 31
        out += z.to_bytes(8, "little")
    return bytes(out[:n])


def main():
    here = os.path.dirname(os.path.abspath(__file__))
    outdir = os.path.join(here, "..", "tests", "golden")
    libs = glob.glob(os.path.join(sys.prefix, "lib", "python3*", "site-packages", "moonlight_python",
                                  "libmoonlight-common-c*.so"))
    if not libs:
        sys.exit("libmoonlight-common-c.so not found: run with the moonlight-python venv's python")
    ffi = cffi.FFI()
    ffi.cdef("""
        typedef struct reed_solomon reed_solomon;
        void reed_solomon_init_def(void);
        reed_solomon *reed_solomon_new_def(int data_shards, int parity_shards);
        int reed_solomon_encode_def(reed_solomon *rs, uint8_t **shards, int nr_shards, int block_size);
        int reed_solomon_decode_def(reed_solomon *rs, uint8_t **shards, uint8_t *marks,
                                    int nr_shards, int block_size);
    """)
    lib = ffi.dlopen(libs[0])
    lib.reed_solomon_init_def()
    assert lib.reed_solomon_new_def(250, 6) == ffi.NULL, "nanors should refuse d + p > 255"

    manifest = []
    for case_no, (d, p, ln) in enumerate(CASES):
        seed = 0x5EED0000 + case_no
        n = d + p
        stream = splitmix64_bytes(seed, d * ln)
        data = [stream[i * ln:(i + 1) * ln] for i in range(d)]
        bufs = [ffi.new("uint8_t[]", data[i]) if i < d else ffi.new("uint8_t[]", ln) for i in range(n)]
        ptrs = ffi.new("uint8_t *[]", bufs)
        rs = lib.reed_solomon_new_def(d, p)
        assert rs != ffi.NULL
        rc = lib.reed_solomon_encode_def(rs, ptrs, n, ln)
        assert rc == 0, f"encode rc {rc}"
        parity = [bytes(ffi.buffer(bufs[d + j], ln)) for j in range(p)]

        # Erase as many shards as the code can repair, always including data shards.
        rng = random.Random(seed)
        budget = p
        erased_data = sorted(rng.sample(range(d), min(d, max(1, budget // 2 + 1), budget)))
        rest = budget - len(erased_data)
        erased_par = sorted(rng.sample(range(d, n), min(rest, p)))
        erased = erased_data + erased_par
        marks = ffi.new("uint8_t[]", n)
        for i in erased:
            marks[i] = 1
            ffi.memmove(bufs[i], b"\x00" * ln, ln)
        rc = lib.reed_solomon_decode_def(rs, ptrs, marks, n, ln)
        assert rc == 0, f"decode rc {rc}"
        recovered = [bytes(ffi.buffer(bufs[i], ln)) for i in erased_data]
        for i, r in zip(erased_data, recovered):
            assert r == data[i], f"nanors failed to recover shard {i} of ({d},{p})"

        name = f"d{d}_p{p}_l{ln}.bin"
        with open(os.path.join(outdir, name), "wb") as f:
            f.write(b"".join(parity) + b"".join(recovered))
        manifest.append(f"{d} {p} {ln} {seed:#x} {','.join(map(str, erased))}")
        print(f"({d},{p}) len {ln}: parity ok, decode of {erased} ok")

    with open(os.path.join(outdir, "cases.txt"), "w") as f:
        f.write("# d p len seed erased (generated by crates/dp/fec/golden/gen_golden.py from nanors)\n")
        f.write("\n".join(manifest) + "\n")


if __name__ == "__main__":
    main()
