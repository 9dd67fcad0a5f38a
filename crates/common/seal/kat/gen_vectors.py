#!/usr/bin/env python3
"""Known-answer vectors for strahl-seal, from an independent implementation.

Built only from the written rules in shared/reference/gamestream-host.md (§A8 RTSP rtspenc,
§A12 control V2, §A16 SS_ENC_VIDEO, §A17 audio CBC) and the strahl/1 key schedule documented in
crates/common/seal/src/native.rs, using Python `cryptography` (OpenSSL) for AES and HKDF. The Rust
tests read the committed output (vectors.txt) and never need Python.

Run: /tmp/mlvenv/bin/python crates/common/seal/kat/gen_vectors.py > crates/common/seal/kat/vectors.txt

Output: one vector per line, `kind field=hex field=hex ...`; '#' lines are comments.
"""
import hashlib
import struct

from cryptography.hazmat.primitives import hashes, padding
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF


def det(label, n):
    """Deterministic pseudo-random bytes (so the vectors are reproducible)."""
    out = b""
    i = 0
    while len(out) < n:
        out += hashlib.sha256(f"{label}/{i}".encode()).digest()
        i += 1
    return out[:n]


def gcm_detached(key, iv, pt, aad=b""):
    ct_tag = AESGCM(key).encrypt(iv, pt, aad if aad else None)
    return ct_tag[:-16], ct_tag[-16:]


def line(kind, **fields):
    parts = [kind]
    for k, v in fields.items():
        if isinstance(v, int):
            v = v.to_bytes(8, "big")
        parts.append(f"{k}={v.hex()}")
    print(" ".join(parts))


RIKEY = det("rikey", 16)

# ---- RTSP rtspenc (§A8): u32 BE 0x80000000|len, u32 BE seq, tag[16], ciphertext.
# IV = seq LE (bytes 0-3), zeros (4-9), 'H','R' host->client or 'C','R' client->host.
print("# rtsp: dir=h2c|c2h (as ASCII hex), seq, plaintext, frame = the full rtspenc frame")
RTSP_MSGS = [
    (b"H", 1, b"RTSP/1.0 200 OK\r\nCSeq: 1\r\n\r\n"),
    (b"H", 2, b"RTSP/1.0 200 OK\r\nCSeq: 2\r\nSession: DEADBEEFCAFE;timeout = 90\r\nTransport: server_port=48000\r\n\r\n"),
    (b"H", 7, b"RTSP/1.0 200 OK\r\nCSeq: 7\r\n\r\n" + det("sdp", 300)),
    (b"C", 1, b"OPTIONS rtsp://10.0.0.1:48010 RTSP/1.0\r\nCSeq: 1\r\nX-GS-ClientVersion: 14\r\nHost: 10.0.0.1\r\n\r\n"),
    (b"C", 3, b"SETUP streamid=video/0/0 RTSP/1.0\r\nCSeq: 3\r\nX-GS-ClientVersion: 14\r\n\r\n"),
    (b"C", 0xFFFFFFFF, b"PLAY / RTSP/1.0\r\nCSeq: 7\r\n\r\n"),
]
for side, seq, pt in RTSP_MSGS:
    iv = struct.pack("<I", seq) + bytes(6) + side + b"R"
    ct, tag = gcm_detached(RIKEY, iv, pt)
    frame = struct.pack(">II", 0x80000000 | len(pt), seq) + tag + ct
    line("rtsp", key=RIKEY, side=side, seq=seq, plaintext=pt, frame=frame)

# ---- Control V2 (§A12): u16 LE 0x0001, u16 LE (4+16+len(ct)), u32 LE seq, tag[16], ct.
# Plaintext = u16 LE type, u16 LE payload length, payload. IV = seq LE, zeros, 'H','C' / 'C','C'.
print("# control: side, seq, plaintext (V2 header + payload), packet")
CTRL_MSGS = [
    (b"H", 0, 0x0109, struct.pack(">I", 0x80030023)),                       # termination
    (b"H", 1, 0x010B, struct.pack("<IHHH", 0xC0FFEE, 0, 0x4000, 0x8000)),    # rumble
    (b"H", 2, 0x5500, struct.pack("<HHH", 1, 0xFFFF, 0x1234)),               # trigger rumble
    (b"C", 0, 0x0302, bytes(2)),                                             # request IDR
    (b"C", 1, 0x0200, struct.pack("<HI", 4, 0)),                             # ping
    (b"C", 2, 0x0206, struct.pack(">I", 14) + struct.pack("<I", 0x0A) + det("input", 10)),
]
for side, seq, mtype, payload in CTRL_MSGS:
    pt = struct.pack("<HH", mtype, len(payload)) + payload
    iv = struct.pack("<I", seq) + bytes(6) + side + b"C"
    ct, tag = gcm_detached(RIKEY, iv, pt)
    pkt = struct.pack("<HHI", 0x0001, 4 + 16 + len(ct), seq) + tag + ct
    line("control", key=RIKEY, side=side, seq=seq, msgtype=mtype, payload=payload, plaintext=pt, packet=pkt)

# ---- SS_ENC_VIDEO (§A16): iv[12] | frameNumber u32 LE | tag[16] | GCM(rikey, no AAD) ciphertext.
# IV = u64 LE counter in bytes 0-7, zeros (8-10), byte 11 = 'V'. Our counter starts at 0.
print("# video: counter (the shard's index in the stream), frame, shard plaintext, packet")
for counter, frame, n in [(0, 1, 1376), (1, 1, 1376), (2, 2, 100), (0x0102030405060708, 0xFFFFFFFF, 1376)]:
    shard = det(f"shard{counter}", n)
    iv = struct.pack("<Q", counter) + bytes(3) + b"V"
    ct, tag = gcm_detached(RIKEY, iv, shard)
    pkt = iv + struct.pack("<I", frame) + tag + ct
    line("video", key=RIKEY, counter=counter, frame=frame, plaintext=shard, packet=pkt)

# ---- Audio (§A17): AES-128-CBC(rikey), PKCS#7, IV = BE32(avRiKeyId + rtpSeq) || 12 zero bytes.
print("# audio: rikeyid, seq, plaintext, ciphertext")
for keyid, seq, n in [(0, 0, 60), (0x01020304, 1, 64), (0x7FFFFFFF, 65535, 320), (0xFFFFFFF0, 0x20, 0),
                      (12345678, 999, 15), (12345678, 1000, 1400)]:
    pt = det(f"opus{seq}", n)
    iv = struct.pack(">I", (keyid + seq) & 0xFFFFFFFF) + bytes(12)
    padder = padding.PKCS7(128).padder()
    padded = padder.update(pt) + padder.finalize()
    enc = Cipher(algorithms.AES(RIKEY), modes.CBC(iv)).encryptor()
    ct = enc.update(padded) + enc.finalize()
    line("audio", key=RIKEY, keyid=keyid, seq=seq, plaintext=pt, ciphertext=ct)

# ---- strahl/1 native (native.rs header): PRK = HKDF-Extract(salt "strahl/1 seal v1", secret);
# key_g = Expand(PRK, "strahl/1 " dir " key" || g u64 BE, 16); iv_g = Expand(..., " iv" ..., 12);
# g = pn >> 23; nonce = iv_g xor (0^4 || pn u64 BE).
print("# native: dir, secret, pn, aad, plaintext, key, iv, ciphertext, tag")
SECRET = det("secret", 32)
for d, pn in [(b"h2c", 0), (b"h2c", 1), (b"h2c", (1 << 23) - 1), (b"h2c", 1 << 23), (b"c2h", 0),
              (b"c2h", 5 * (1 << 23) + 3), (b"h2c", (1 << 62) - 1)]:
    g = pn >> 23

    def expand(label, n):
        # cryptography's HKDF does Extract+Expand in one call; salt and IKM are the same each time.
        return HKDF(algorithm=hashes.SHA256(), length=n, salt=b"strahl/1 seal v1",
                    info=b"strahl/1 " + d + label + struct.pack(">Q", g)).derive(SECRET)

    key = expand(b" key", 16)
    iv = expand(b" iv", 12)
    nonce = bytes(a ^ b for a, b in zip(iv, bytes(4) + struct.pack(">Q", pn)))
    aad = b"\x01" + struct.pack(">H", pn & 0xFFFF) + det(f"aad{pn}", 13)
    pt = det(f"native{pn}", 1400)
    ct, tag = gcm_detached(key, nonce, pt, aad)
    line("native", dir=d, secret=SECRET, pn=pn, aad=aad, plaintext=pt, key=key, iv=iv, ciphertext=ct, tag=tag)
