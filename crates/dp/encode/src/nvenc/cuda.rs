//! The real [`CudaApi`]: the CUDA driver API through `cudarc` with dynamic loading (no
//! link-time CUDA; `libcuda.so.1` is opened at first use).
//!
//! cudarc panics when it cannot load `libcuda` rather than returning an error, so
//! [`RealCuda::load`] probes the library first and turns its absence into
//! [`NvError::DriverMissing`].
//!
//! The dmabuf route: `cuImportExternalMemory` (handle type OPAQUE_FD, on a duplicate of the
//! capture's fd — CUDA owns the fd it imports) and `cuExternalMemoryGetMappedBuffer` over the
//! whole buffer, giving a linear device pointer NVENC registers as a CUDA device pointer.
//! That addresses the pixels correctly only for `DRM_FORMAT_MOD_LINEAR` buffers, so other
//! modifiers are refused with [`NvError::Unsupported`] naming the modifier (NVIDIA's tiled
//! scan-out needs the EGL/Vulkan de-tiling copy peers use; frontier.md §3 — not implemented).
//! **Not verified on hardware** (no NVIDIA GPU here).
#![allow(unsafe_code)]

use std::os::fd::{AsRawFd, BorrowedFd, IntoRawFd};

use cudarc::driver::result as cu;
use cudarc::driver::sys as cusys;

use super::api::{CudaApi, CudaContext, DevicePtr, ExternalMemory, NvError, fourcc};

/// Library names tried, in order.
pub const LIBRARIES: [&str; 2] = ["libcuda.so.1", "libcuda.so"];

/// CUresult codes that mean the device is gone or broken (cuda.h): DEINITIALIZED 4,
/// DEVICE_UNAVAILABLE 46, NO_DEVICE 100, ECC_UNCORRECTABLE 214, ILLEGAL_ADDRESS 700,
/// CONTEXT_IS_DESTROYED 709, LAUNCH_FAILED 719.
const DEVICE_LOST_CODES: [u32; 7] = [4, 46, 100, 214, 700, 709, 719];

fn cuda_err(call: &'static str) -> impl Fn(cu::DriverError) -> NvError {
    move |e| {
        let code = e.0 as u32;
        if DEVICE_LOST_CODES.contains(&code) {
            NvError::DeviceLost {
                call,
                detail: format!("{:?}", e.0),
            }
        } else {
            NvError::Call {
                call,
                status: code,
                detail: format!("{:?}", e.0),
            }
        }
    }
}

/// CUDA through cudarc.
pub struct RealCuda {
    device: Option<cusys::CUdevice>,
    /// The retained primary context, as an address (so the type stays `Send`).
    ctx: usize,
}

impl RealCuda {
    /// Probes `libcuda` so cudarc's loader cannot panic later.
    pub fn load() -> Result<Self, NvError> {
        Self::load_from(&LIBRARIES)
    }

    /// Probes the given names (tests pass a missing one).
    pub fn load_from(names: &[&str]) -> Result<Self, NvError> {
        let mut why = Vec::new();
        for name in names {
            // SAFETY: loading the CUDA driver library runs its initialisers — the vendor's,
            // the same ones cudarc runs when it loads it right after.
            match unsafe { libloading::Library::new(name) } {
                Ok(_) => {
                    return Ok(Self {
                        device: None,
                        ctx: 0,
                    });
                }
                Err(e) => why.push(format!("{name}: {e}")),
            }
        }
        Err(NvError::DriverMissing(format!(
            "CUDA driver library not found ({})",
            why.join("; ")
        )))
    }
}

impl RealCuda {
    /// Makes the session's context current on the calling thread: the encoder is opened on
    /// one thread and driven from the encode tile's, and CUDA contexts are per thread.
    fn bind(&self, call: &'static str) -> Result<(), NvError> {
        if self.ctx == 0 {
            return Err(NvError::Call {
                call,
                status: 0,
                detail: "no CUDA context".into(),
            });
        }
        // SAFETY: `ctx` is the primary context retained by open_context and not yet released.
        unsafe { cu::ctx::set_current(self.ctx as cusys::CUcontext) }
            .map_err(cuda_err("cuCtxSetCurrent"))
    }
}

impl CudaApi for RealCuda {
    fn open_context(&mut self, ordinal: i32) -> Result<CudaContext, NvError> {
        // cudarc resolves every entry point of its CUDA 12.2 bindings on first use and panics
        // when the driver lacks one (a driver older than the bindings): surface that typed.
        std::panic::catch_unwind(cu::init)
            .map_err(|_| {
                NvError::DriverMissing(
                    "libcuda lacks entry points of the CUDA 12.2 driver API (driver too old)"
                        .into(),
                )
            })?
            .map_err(cuda_err("cuInit"))?;
        let dev = cu::device::get(ordinal).map_err(cuda_err("cuDeviceGet"))?;
        // SAFETY: `dev` was returned by cuDeviceGet.
        let ctx = unsafe { cu::primary_ctx::retain(dev) }
            .map_err(cuda_err("cuDevicePrimaryCtxRetain"))?;
        // SAFETY: `ctx` is the primary context just retained, alive until close_context.
        if let Err(e) = unsafe { cu::ctx::set_current(ctx) } {
            // SAFETY: releases the reference retained above, once.
            let _ = unsafe { cu::primary_ctx::release(dev) };
            return Err(cuda_err("cuCtxSetCurrent")(e));
        }
        self.device = Some(dev);
        self.ctx = ctx as usize;
        Ok(CudaContext(ctx as usize))
    }

    fn close_context(&mut self, _ctx: CudaContext) {
        if let Some(dev) = self.device.take() {
            // SAFETY: releases the one reference open_context retained on `dev`.
            let _ = unsafe { cu::primary_ctx::release(dev) };
        }
        self.ctx = 0;
    }

    fn import_dmabuf(
        &mut self,
        _ctx: CudaContext,
        fd: BorrowedFd<'_>,
        size: u64,
        modifier: u64,
    ) -> Result<(ExternalMemory, DevicePtr), NvError> {
        if modifier != fourcc::MOD_LINEAR {
            return Err(NvError::Unsupported(format!(
                "DRM modifier {modifier:#018x}: CUDA maps imported memory linearly, only \
                 LINEAR buffers can be encoded without a de-tiling copy"
            )));
        }
        self.bind("cuImportExternalMemory")?;
        let dup = fd.try_clone_to_owned().map_err(|e| NvError::Call {
            call: "dup(dmabuf)",
            status: e.raw_os_error().unwrap_or(0) as u32,
            detail: e.to_string(),
        })?;
        // SAFETY: `dup` is an open dmabuf fd of `size` bytes (the capture side's export);
        // on success CUDA owns it (released below with into_raw_fd), on failure we close it.
        let mem =
            unsafe { cu::external_memory::import_external_memory_opaque_fd(dup.as_raw_fd(), size) }
                .map_err(cuda_err("cuImportExternalMemory"))?;
        let _owned_by_cuda = dup.into_raw_fd();
        // SAFETY: `mem` was just imported with `size` bytes; one mapping over all of it.
        match unsafe { cu::external_memory::get_mapped_buffer(mem, 0, size) } {
            Ok(ptr) => Ok((ExternalMemory(mem as usize), DevicePtr(ptr))),
            Err(e) => {
                // SAFETY: no mapping exists on `mem`; destroyed once.
                let _ = unsafe { cu::external_memory::destroy_external_memory(mem) };
                Err(cuda_err("cuExternalMemoryGetMappedBuffer")(e))
            }
        }
    }

    fn release_import(&mut self, mem: ExternalMemory, ptr: DevicePtr) {
        let _ = self.bind("cuDestroyExternalMemory");
        // SAFETY: `ptr` is the one mapping of `mem` (import_dmabuf), NVENC has unregistered
        // it; both are released once, the mapping first as CUDA requires.
        unsafe {
            let _ = cu::memory_free(ptr.0);
            let _ = cu::external_memory::destroy_external_memory(mem.0 as cusys::CUexternalMemory);
        }
    }

    fn alloc(&mut self, _ctx: CudaContext, bytes: usize) -> Result<DevicePtr, NvError> {
        self.bind("cuMemAlloc")?;
        // SAFETY: the session's context is current on this thread (bind above).
        let p = unsafe { cu::malloc_sync(bytes) }.map_err(cuda_err("cuMemAlloc"))?;
        Ok(DevicePtr(p))
    }

    fn free(&mut self, ptr: DevicePtr) {
        let _ = self.bind("cuMemFree");
        // SAFETY: `ptr` came from alloc, NVENC has unregistered it; freed once.
        let _ = unsafe { cu::free_sync(ptr.0) };
    }

    fn upload(&mut self, dst: DevicePtr, src: &[u8]) -> Result<(), NvError> {
        self.bind("cuMemcpyHtoD")?;
        // SAFETY: `dst` is a device allocation of at least `src.len()` bytes (the session
        // allocates the staging buffer for exactly one frame of this size).
        unsafe { cu::memcpy_htod_sync(dst.0, src) }.map_err(cuda_err("cuMemcpyHtoD"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tiled_modifier_is_refused_before_cuda_is_touched() {
        // No libcuda here: the check must come before any CUDA call (cudarc would panic).
        let mut cuda = RealCuda {
            device: None,
            ctx: 0,
        };
        let null = std::fs::File::open("/dev/null").unwrap();
        let nv_block_linear = 0x0300_0000_0060_6014;
        let err = cuda
            .import_dmabuf(
                CudaContext(1),
                std::os::fd::AsFd::as_fd(&null),
                4096,
                nv_block_linear,
            )
            .unwrap_err();
        assert!(
            matches!(err, NvError::Unsupported(ref m) if m.contains("0x0300000000606014")),
            "{err}"
        );
        // A LINEAR buffer gets past the check and fails typed without a context.
        let err = cuda
            .import_dmabuf(
                CudaContext(1),
                std::os::fd::AsFd::as_fd(&null),
                4096,
                fourcc::MOD_LINEAR,
            )
            .unwrap_err();
        assert!(
            matches!(
                err,
                NvError::Call {
                    call: "cuImportExternalMemory",
                    ..
                }
            ),
            "{err}"
        );
    }

    #[test]
    fn device_errors_are_classified_lost() {
        let lost =
            cuda_err("cuMemcpyHtoD")(cu::DriverError(cusys::CUresult::CUDA_ERROR_ILLEGAL_ADDRESS));
        assert!(matches!(
            lost,
            NvError::DeviceLost {
                call: "cuMemcpyHtoD",
                ..
            }
        ));
        let other =
            cuda_err("cuMemAlloc")(cu::DriverError(cusys::CUresult::CUDA_ERROR_OUT_OF_MEMORY));
        assert!(matches!(other, NvError::Call { status: 2, .. }));
    }
}
