"""The codecs a stream case may ask for, as the Moonlight core and PyAV name them, and the HDR
state the core learned from the host.

Contract: `CODECS[name]` is (supportedVideoFormats for the core's STREAM_CONFIGURATION, the
PyAV decoder that decodes what arrives). Each format set includes H.264, as every real client
does, so the codec the core picks is the host's choice through its DESCRIBE markers and SCM
bits (gamestream-host.md §A10): "hevc10"/"av1-10" add the 10-bit format (the core then asks
for dynamicRangeMode 1 when the host lists the SCM bit). "h264-only" and "hevc8-only" are
clients that cannot take what a 10-bit-only host makes (its refusal case). AV1 decodes with
libdav1d: FFmpeg's native "av1" decoder needs a hardware accelerator. `hdr_state()` reads
LiGetCurrentHostDisplayHdrMode and LiGetHdrMetadata (what the host's 0x010e message said) on a
second cffi handle of the core's library (the session's own state, §B8).
"""

H264, HEVC, HEVC_MAIN10 = 0x0001, 0x0100, 0x0200
AV1_MAIN8, AV1_MAIN10 = 0x1000, 0x2000

CODECS = {
    "h264": (H264, "h264"),
    "hevc": (H264 | HEVC, "hevc"),
    "hevc10": (H264 | HEVC | HEVC_MAIN10, "hevc"),
    "av1": (H264 | AV1_MAIN8, "libdav1d"),
    "av1-10": (H264 | AV1_MAIN8 | AV1_MAIN10, "libdav1d"),
    "h264-only": (H264, "h264"),
    "hevc8-only": (HEVC, "hevc"),
}

HDR_CDEF = """
typedef struct {
    struct { uint16_t x; uint16_t y; } displayPrimaries[3];
    struct { uint16_t x; uint16_t y; } whitePoint;
    uint16_t maxDisplayLuminance;
    uint16_t minDisplayLuminance;
    uint16_t maxContentLightLevel;
    uint16_t maxFrameAverageLightLevel;
    uint16_t maxFullFrameLuminance;
} SS_HDR_METADATA;
bool LiGetCurrentHostDisplayHdrMode(void);
bool LiGetHdrMetadata(SS_HDR_METADATA* metadata);
"""

_hdr = None


def formats(name):
    return CODECS[name][0]


def decoder(name):
    return CODECS[name][1]


def hdr_state():
    """{"host_hdr": bool, "metadata": {...} | None} as the core holds them now."""
    global _hdr
    if _hdr is None:
        import cffi
        from moonlight_python.stream import _find_shared_lib
        ffi = cffi.FFI()
        ffi.cdef(HDR_CDEF)
        _hdr = (ffi, ffi.dlopen(_find_shared_lib()))
    ffi, lib = _hdr
    m = ffi.new("SS_HDR_METADATA*")
    have = bool(lib.LiGetHdrMetadata(m))
    meta = None
    if have:
        meta = {"primaries": [[int(p.x), int(p.y)] for p in m.displayPrimaries],
                "white_point": [int(m.whitePoint.x), int(m.whitePoint.y)],
                "max_luminance": int(m.maxDisplayLuminance),
                "min_luminance": int(m.minDisplayLuminance),
                "max_cll": int(m.maxContentLightLevel),
                "max_fall": int(m.maxFrameAverageLightLevel)}
    return {"host_hdr": bool(lib.LiGetCurrentHostDisplayHdrMode()), "metadata": meta}
