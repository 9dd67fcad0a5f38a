//! Fakes of the NVENC function table and CUDA ([`super::api`]), for tests only: built for this
//! crate's tests and, with the `fake-gpu` feature, for the data plane's (never in a release
//! binary — only dev-dependencies turn the feature on).
//!
//! Both share one [`FakeGpu`] state that:
//! - records every call in order ([`Call`]), with the parameters that matter (formats,
//!   modifiers, flags, bitrates, timestamps);
//! - tracks every live handle — contexts, sessions, bitstream buffers, imports, allocations,
//!   registrations, mappings, locks — and notes a *violation* for any call on a handle that is
//!   not live or in the wrong state (map of a mapped resource, lock without an encode, encode
//!   while locked, destroy with buffers still registered, double release...);
//! - returns Annex-B bitstreams shaped like an encoder's: an IDR is SPS, PPS, IDR slice, other
//!   pictures one non-IDR slice, sized by the configured bitrate and frame rate, carrying the
//!   input timestamp so tests can check which picture came out;
//! - injects failures: one call failing once, or the device lost from some call on (every
//!   later call fails with a device error, as a GPU that fell off the bus does).

use std::collections::{HashMap, HashSet};
use std::os::fd::{AsRawFd, BorrowedFd};
use std::sync::{Arc, Mutex, MutexGuard};

use super::api::{
    Bitstream, Cap, Codec, CudaApi, CudaContext, DevicePtr, ExternalMemory, Locked, Mapped,
    NvError, NvencApi, Picture, Registered, Resource, Session, SessionParams,
};

/// One recorded call.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Call {
    OpenContext(i32),
    CloseContext,
    Import { size: u64, modifier: u64 },
    ReleaseImport(ExternalMemory),
    Alloc(usize),
    Free(DevicePtr),
    Upload(usize),
    OpenSession,
    Codecs,
    Cap(Codec, Cap),
    Initialize(SessionParams),
    Reconfigure(SessionParams),
    CreateBitstream,
    DestroyBitstream(Bitstream),
    Register(Resource),
    Unregister(Registered),
    Map(Registered),
    Unmap(Mapped),
    Encode(Picture),
    Lock(Bitstream),
    Unlock(Bitstream),
    Invalidate(u64),
    Destroy(Session),
}

impl Call {
    /// The call's name, for order checks.
    pub fn name(&self) -> &'static str {
        match self {
            Call::OpenContext(_) => "open_context",
            Call::CloseContext => "close_context",
            Call::Import { .. } => "import",
            Call::ReleaseImport(_) => "release_import",
            Call::Alloc(_) => "alloc",
            Call::Free(_) => "free",
            Call::Upload(_) => "upload",
            Call::OpenSession => "open_session",
            Call::Codecs => "codecs",
            Call::Cap(..) => "cap",
            Call::Initialize(_) => "initialize",
            Call::Reconfigure(_) => "reconfigure",
            Call::CreateBitstream => "create_bitstream",
            Call::DestroyBitstream(_) => "destroy_bitstream",
            Call::Register(_) => "register",
            Call::Unregister(_) => "unregister",
            Call::Map(_) => "map",
            Call::Unmap(_) => "unmap",
            Call::Encode(_) => "encode",
            Call::Lock(_) => "lock",
            Call::Unlock(_) => "unlock",
            Call::Invalidate(_) => "invalidate",
            Call::Destroy(_) => "destroy",
        }
    }
}

/// What the fake GPU offers.
#[derive(Clone, Debug)]
pub struct Offer {
    pub codecs: Vec<Codec>,
    pub max: (i32, i32),
    pub ten_bit: bool,
    pub rfi: bool,
}

impl Default for Offer {
    fn default() -> Self {
        Self {
            codecs: vec![Codec::H264, Codec::Hevc, Codec::Av1],
            max: (4096, 4096),
            ten_bit: true,
            rfi: true,
        }
    }
}

#[derive(Default)]
struct State {
    calls: Vec<Call>,
    violations: Vec<String>,
    offer: Offer,
    next: usize,
    contexts: HashSet<usize>,
    sessions: HashSet<usize>,
    initialized: HashMap<usize, SessionParams>,
    bitstreams: HashSet<usize>,
    /// Bitstream buffer → the picture submitted to it and not yet locked.
    pending: HashMap<usize, Picture>,
    locked: HashSet<usize>,
    imports: HashMap<usize, DevicePtr>,
    allocs: HashMap<u64, usize>,
    registered: HashMap<usize, Resource>,
    mapped: HashMap<usize, usize>,
    /// Fail the `nth` (0-based) future call named `name` once with `err`.
    fail_once: Vec<(&'static str, usize, NvError)>,
    /// Every call from this call name on fails with a device error.
    lose_at: Option<(&'static str, usize)>,
    lost: bool,
    encodes: u64,
}

impl State {
    fn mint(&mut self) -> usize {
        self.next += 1;
        self.next * 0x1000
    }

    fn violation(&mut self, v: String) {
        self.violations.push(v);
    }

    /// Records the call and decides whether it fails.
    fn enter(&mut self, call: Call) -> Result<(), NvError> {
        let name = call.name();
        self.calls.push(call);
        if let Some((at, n)) = self.lose_at
            && at == name
        {
            if n == 0 {
                self.lost = true;
            } else {
                self.lose_at = Some((at, n - 1));
            }
        }
        if self.lost {
            return Err(NvError::DeviceLost {
                call: name,
                detail: "fake: GPU fell off the bus".into(),
            });
        }
        for i in 0..self.fail_once.len() {
            if self.fail_once[i].0 == name {
                if self.fail_once[i].1 == 0 {
                    let (_, _, e) = self.fail_once.remove(i);
                    return Err(e);
                }
                self.fail_once[i].1 -= 1;
            }
        }
        Ok(())
    }
}

/// The shared fake GPU; [`FakeGpu::nvenc`] and [`FakeGpu::cuda`] hand out the two seams.
#[derive(Clone, Default)]
pub struct FakeGpu(Arc<Mutex<State>>);

pub struct FakeNvenc(FakeGpu);
pub struct FakeCuda(FakeGpu);

impl FakeGpu {
    pub fn new(offer: Offer) -> Self {
        let g = Self::default();
        g.st().offer = offer;
        g
    }

    fn st(&self) -> MutexGuard<'_, State> {
        self.0.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub fn nvenc(&self) -> FakeNvenc {
        FakeNvenc(self.clone())
    }

    pub fn cuda(&self) -> FakeCuda {
        FakeCuda(self.clone())
    }

    /// Makes the `nth` (0-based) next call named `name` fail once with `err`.
    pub fn fail_once(&self, name: &'static str, nth: usize, err: NvError) {
        self.st().fail_once.push((name, nth, err));
    }

    /// From the `nth` (0-based) next call named `name` on, every call fails: device lost.
    pub fn lose_device_at(&self, name: &'static str, nth: usize) {
        self.st().lose_at = Some((name, nth));
    }

    pub fn calls(&self) -> Vec<Call> {
        self.st().calls.clone()
    }

    pub fn names(&self) -> Vec<&'static str> {
        self.st().calls.iter().map(Call::name).collect()
    }

    pub fn clear_calls(&self) {
        self.st().calls.clear();
    }

    pub fn violations(&self) -> Vec<String> {
        self.st().violations.clone()
    }

    /// Everything the fake handed out that is still live (empty once released).
    pub fn live(&self) -> Vec<String> {
        let st = self.st();
        let mut v = Vec::new();
        let mut add = |what: &str, n: usize| {
            if n > 0 {
                v.push(format!("{n} {what}"));
            }
        };
        add("contexts", st.contexts.len());
        add("sessions", st.sessions.len());
        add("bitstreams", st.bitstreams.len());
        add("locks", st.locked.len());
        add("imports", st.imports.len());
        add("allocations", st.allocs.len());
        add("registrations", st.registered.len());
        add("mappings", st.mapped.len());
        v
    }

    /// Live registrations (to check what is registered mid-stream).
    pub fn registered(&self) -> Vec<Resource> {
        self.st().registered.values().copied().collect()
    }
}

impl CudaApi for FakeCuda {
    fn open_context(&mut self, ordinal: i32) -> Result<CudaContext, NvError> {
        let mut st = self.0.st();
        st.enter(Call::OpenContext(ordinal))?;
        let h = st.mint();
        st.contexts.insert(h);
        Ok(CudaContext(h))
    }

    fn close_context(&mut self, ctx: CudaContext) {
        let mut st = self.0.st();
        let _ = st.enter(Call::CloseContext);
        if !st.contexts.remove(&ctx.0) {
            st.violation(format!("close of unknown context {ctx:?}"));
        }
        let left = st.sessions.len() + st.imports.len() + st.allocs.len();
        if left > 0 {
            st.violation(format!("context closed with {left} sessions/buffers live"));
        }
    }

    fn import_dmabuf(
        &mut self,
        ctx: CudaContext,
        fd: BorrowedFd<'_>,
        size: u64,
        modifier: u64,
    ) -> Result<(ExternalMemory, DevicePtr), NvError> {
        let mut st = self.0.st();
        st.enter(Call::Import { size, modifier })?;
        if !st.contexts.contains(&ctx.0) {
            st.violation(format!("import on unknown context {ctx:?}"));
        }
        if fd.as_raw_fd() < 0 {
            st.violation("import of a negative fd".into());
        }
        let h = st.mint();
        let ptr = DevicePtr(0x7f00_0000_0000 + h as u64);
        st.imports.insert(h, ptr);
        Ok((ExternalMemory(h), ptr))
    }

    fn release_import(&mut self, mem: ExternalMemory, ptr: DevicePtr) {
        let mut st = self.0.st();
        let _ = st.enter(Call::ReleaseImport(mem));
        match st.imports.remove(&mem.0) {
            Some(p) if p == ptr => {}
            other => st.violation(format!("release_import({mem:?}, {ptr:?}): {other:?}")),
        }
        let base = ptr.0;
        if st
            .registered
            .values()
            .any(|r| r.ptr.0 >= base && r.ptr.0 < base + 0x1000)
        {
            st.violation(format!("import {mem:?} released while registered"));
        }
    }

    fn alloc(&mut self, ctx: CudaContext, bytes: usize) -> Result<DevicePtr, NvError> {
        let mut st = self.0.st();
        st.enter(Call::Alloc(bytes))?;
        if !st.contexts.contains(&ctx.0) {
            st.violation(format!("alloc on unknown context {ctx:?}"));
        }
        let p = 0x5000_0000_0000 + st.mint() as u64;
        st.allocs.insert(p, bytes);
        Ok(DevicePtr(p))
    }

    fn free(&mut self, ptr: DevicePtr) {
        let mut st = self.0.st();
        let _ = st.enter(Call::Free(ptr));
        if st.allocs.remove(&ptr.0).is_none() {
            st.violation(format!("free of unknown {ptr:?}"));
        }
        if st.registered.values().any(|r| r.ptr == ptr) {
            st.violation(format!("{ptr:?} freed while registered"));
        }
    }

    fn upload(&mut self, dst: DevicePtr, src: &[u8]) -> Result<(), NvError> {
        let mut st = self.0.st();
        st.enter(Call::Upload(src.len()))?;
        let have = st.allocs.get(&dst.0).copied();
        if have.is_none_or(|n| n < src.len()) {
            st.violation(format!(
                "upload of {} bytes to {dst:?}: {have:?}",
                src.len()
            ));
        }
        Ok(())
    }
}

/// An Annex-B AU: SPS, PPS, IDR slice for an IDR; one non-IDR slice otherwise. The slice
/// payload is the timestamp (8 bytes LE) padded to the frame budget of the bitrate.
fn bitstream(pic: &Picture, p: &SessionParams, idr: bool, out: &mut Vec<u8>) {
    if idr {
        out.extend_from_slice(&[0, 0, 0, 1, 0x67, 0x64, 0x00, 0x1f]);
        out.extend_from_slice(&[0, 0, 0, 1, 0x68, 0xee, 0x3c, 0x80]);
        out.extend_from_slice(&[0, 0, 0, 1, 0x65]);
    } else {
        out.extend_from_slice(&[0, 0, 0, 1, 0x41]);
    }
    out.extend_from_slice(&pic.timestamp.to_le_bytes());
    let budget = (p.bitrate_bps / p.fps / 8) as usize;
    let body = if idr { budget * 3 } else { budget };
    out.resize(out.len() + body.saturating_sub(8).max(1), 0xa5);
}

impl NvencApi for FakeNvenc {
    fn open_session(&mut self, ctx: CudaContext) -> Result<Session, NvError> {
        let mut st = self.0.st();
        st.enter(Call::OpenSession)?;
        if !st.contexts.contains(&ctx.0) {
            st.violation(format!("session on unknown context {ctx:?}"));
        }
        let h = st.mint();
        st.sessions.insert(h);
        Ok(Session(h))
    }

    fn codecs(&mut self, s: Session) -> Result<Vec<Codec>, NvError> {
        let mut st = self.0.st();
        st.enter(Call::Codecs)?;
        if !st.sessions.contains(&s.0) {
            st.violation(format!("codecs on unknown {s:?}"));
        }
        Ok(st.offer.codecs.clone())
    }

    fn cap(&mut self, s: Session, codec: Codec, cap: Cap) -> Result<i32, NvError> {
        let mut st = self.0.st();
        st.enter(Call::Cap(codec, cap))?;
        if !st.sessions.contains(&s.0) {
            st.violation(format!("cap on unknown {s:?}"));
        }
        let o = &st.offer;
        Ok(match cap {
            Cap::WidthMax => o.max.0,
            Cap::HeightMax => o.max.1,
            Cap::TenBit => i32::from(o.ten_bit && codec != Codec::H264),
            Cap::RefPicInvalidation => i32::from(o.rfi),
        })
    }

    fn initialize(&mut self, s: Session, p: &SessionParams) -> Result<(), NvError> {
        let mut st = self.0.st();
        st.enter(Call::Initialize(*p))?;
        if !st.sessions.contains(&s.0) || st.initialized.insert(s.0, *p).is_some() {
            st.violation(format!("initialize of unknown or initialized {s:?}"));
        }
        Ok(())
    }

    fn reconfigure(&mut self, s: Session, p: &SessionParams) -> Result<(), NvError> {
        let mut st = self.0.st();
        st.enter(Call::Reconfigure(*p))?;
        match st.initialized.get_mut(&s.0) {
            Some(q) => *q = *p,
            None => st.violation(format!("reconfigure of uninitialized {s:?}")),
        }
        Ok(())
    }

    fn create_bitstream(&mut self, s: Session) -> Result<Bitstream, NvError> {
        let mut st = self.0.st();
        st.enter(Call::CreateBitstream)?;
        if !st.initialized.contains_key(&s.0) {
            st.violation(format!("bitstream on uninitialized {s:?}"));
        }
        let h = st.mint();
        st.bitstreams.insert(h);
        Ok(Bitstream(h))
    }

    fn destroy_bitstream(&mut self, _s: Session, b: Bitstream) {
        let mut st = self.0.st();
        let _ = st.enter(Call::DestroyBitstream(b));
        if !st.bitstreams.remove(&b.0) || st.locked.contains(&b.0) {
            st.violation(format!("destroy of unknown or locked {b:?}"));
        }
        st.pending.remove(&b.0);
    }

    fn register(&mut self, s: Session, r: &Resource) -> Result<Registered, NvError> {
        let mut st = self.0.st();
        st.enter(Call::Register(*r))?;
        if !st.initialized.contains_key(&s.0) {
            st.violation(format!("register on uninitialized {s:?}"));
        }
        let backed = st.allocs.contains_key(&r.ptr.0)
            || st
                .imports
                .values()
                .any(|p| r.ptr.0 >= p.0 && r.ptr.0 < p.0 + 0x1000);
        if !backed {
            st.violation(format!("register of unbacked {:?}", r.ptr));
        }
        let h = st.mint();
        st.registered.insert(h, *r);
        Ok(Registered(h))
    }

    fn unregister(&mut self, _s: Session, r: Registered) {
        let mut st = self.0.st();
        let _ = st.enter(Call::Unregister(r));
        if st.registered.remove(&r.0).is_none() {
            st.violation(format!("unregister of unknown {r:?}"));
        }
        if st.mapped.values().any(|&reg| reg == r.0) {
            st.violation(format!("unregister of mapped {r:?}"));
        }
    }

    fn map(&mut self, _s: Session, r: Registered) -> Result<Mapped, NvError> {
        let mut st = self.0.st();
        st.enter(Call::Map(r))?;
        if !st.registered.contains_key(&r.0) || st.mapped.values().any(|&reg| reg == r.0) {
            st.violation(format!("map of unknown or mapped {r:?}"));
        }
        let h = st.mint();
        st.mapped.insert(h, r.0);
        Ok(Mapped(h))
    }

    fn unmap(&mut self, _s: Session, m: Mapped) {
        let mut st = self.0.st();
        let _ = st.enter(Call::Unmap(m));
        if st.mapped.remove(&m.0).is_none() {
            st.violation(format!("unmap of unknown {m:?}"));
        }
    }

    fn encode(&mut self, s: Session, pic: &Picture) -> Result<(), NvError> {
        let mut st = self.0.st();
        st.enter(Call::Encode(*pic))?;
        let reg = st.mapped.get(&pic.input.0).copied();
        let input = reg.and_then(|r| st.registered.get(&r)).copied();
        if !input.is_some_and(|r| r.format == pic.format && r.pitch == pic.pitch) {
            st.violation(format!("encode of {pic:?} with input {input:?}"));
        }
        if !st.bitstreams.contains(&pic.output.0) || st.locked.contains(&pic.output.0) {
            st.violation(format!("encode into unknown or locked {:?}", pic.output));
        }
        if !st.initialized.contains_key(&s.0) {
            st.violation(format!("encode on uninitialized {s:?}"));
        }
        st.pending.insert(pic.output.0, *pic);
        Ok(())
    }

    fn lock_bitstream(
        &mut self,
        s: Session,
        b: Bitstream,
        out: &mut Vec<u8>,
    ) -> Result<Locked, NvError> {
        let mut st = self.0.st();
        st.enter(Call::Lock(b))?;
        let Some(pic) = st.pending.remove(&b.0) else {
            st.violation(format!("lock of {b:?} with nothing encoded"));
            return Err(NvError::Call {
                call: "lock",
                status: 9,
                detail: "nothing encoded".into(),
            });
        };
        let Some(p) = st.initialized.get(&s.0).copied() else {
            st.violation(format!("lock on uninitialized {s:?}"));
            return Err(NvError::Call {
                call: "lock",
                status: 11,
                detail: "not initialized".into(),
            });
        };
        // NVENC's first picture is an IDR whether asked or not.
        let idr = pic.force_idr || st.encodes == 0;
        st.encodes += 1;
        bitstream(&pic, &p, idr, out);
        st.locked.insert(b.0);
        Ok(Locked {
            idr,
            timestamp: pic.timestamp,
        })
    }

    fn unlock_bitstream(&mut self, _s: Session, b: Bitstream) {
        let mut st = self.0.st();
        let _ = st.enter(Call::Unlock(b));
        if !st.locked.remove(&b.0) {
            st.violation(format!("unlock of unlocked {b:?}"));
        }
    }

    fn invalidate_ref_frame(&mut self, s: Session, timestamp: u64) -> Result<(), NvError> {
        let mut st = self.0.st();
        st.enter(Call::Invalidate(timestamp))?;
        if !st.initialized.contains_key(&s.0) {
            st.violation(format!("invalidate on uninitialized {s:?}"));
        }
        Ok(())
    }

    fn destroy(&mut self, s: Session) {
        let mut st = self.0.st();
        let _ = st.enter(Call::Destroy(s));
        if !st.sessions.remove(&s.0) {
            st.violation(format!("destroy of unknown {s:?}"));
        }
        st.initialized.remove(&s.0);
        let left = st.bitstreams.len() + st.registered.len() + st.mapped.len();
        if left > 0 {
            st.violation(format!("session destroyed with {left} buffers live"));
        }
    }
}

/// The fake GPU as the selection seam sees it: a driver that is present (API 12.2), whose
/// sessions are [`super::session::NvencEncoder`]s over this fake — so a caller that builds its
/// encoders through [`crate::select::Selection`] runs the real session logic against it.
impl crate::select::NvencOpen for FakeGpu {
    fn detect(&self) -> Result<super::NvencInfo, crate::EncodeError> {
        Ok(super::NvencInfo {
            driver_api: (12, 2),
            functions: 40,
        })
    }

    fn open(
        &self,
        cfg: super::session::NvencConfig,
    ) -> Result<Box<dyn crate::Encoder + Send>, crate::EncodeError> {
        let enc = super::session::NvencEncoder::open(self.nvenc(), self.cuda(), cfg)?;
        Ok(Box::new(enc))
    }

    fn capability(&self) -> Result<crate::Capability, crate::EncodeError> {
        let cfg = super::session::NvencConfig::h264(640, 480, 60, 1_000_000);
        Ok(super::session::NvencEncoder::open(self.nvenc(), self.cuda(), cfg)?.capability())
    }
}
