//! The NVENC detection seam against stand-in driver libraries: small C shared objects built at
//! test time with the system C compiler (`cc`, installed by scripts/setup.sh with clang/gcc),
//! exporting `NvEncodeAPIGetMaxSupportedVersion` and `NvEncodeAPICreateInstance`. This checks
//! the dlopen path, the version words we pass and parse, and the function-table handling end to
//! end. It is not the real driver: NVENC itself is not verified on hardware.

use std::path::{Path, PathBuf};
use std::process::Command;

use strahl_encode::EncodeError;
use strahl_encode::nvenc::api::NvError;
use strahl_encode::nvenc::ffi::RealNvenc;
use strahl_encode::nvenc::{FUNCTION_LIST_VERSION, detect_library};

const STUB: &str = r#"
#include <stdint.h>
#include <stddef.h>
static void fake_fn(void) {}
int NvEncodeAPIGetMaxSupportedVersion(uint32_t *v) { *v = MAXVER; return 0; }
/* Mirrors the driver: refuse a struct version other than the expected one
   (NV_ENCODE_API_FUNCTION_LIST_VER for API 12.1), else fill FNS slots. */
int NvEncodeAPICreateInstance(uint32_t *list) {
    if (list[0] != EXPECTED) return 15; /* NV_ENC_ERR_INVALID_VERSION */
    void **slots = (void **)(list + 2);
    for (int i = 0; i < FNS; i++) slots[i] = (void *)fake_fn;
    return 0;
}
"#;

fn build_stub(dir: &Path, name: &str, maxver: u32, fns: u32) -> PathBuf {
    let src = dir.join(format!("{name}.c"));
    let lib = dir.join(format!("{name}.so"));
    std::fs::write(&src, STUB).unwrap();
    let status = Command::new("cc")
        .args(["-shared", "-fPIC", "-O1"])
        .arg(format!("-DMAXVER={maxver:#x}"))
        .arg(format!("-DEXPECTED={FUNCTION_LIST_VERSION:#x}u"))
        .arg(format!("-DFNS={fns}"))
        .arg("-o")
        .arg(&lib)
        .arg(&src)
        .status()
        .expect("a C compiler (`cc`) is required for this test");
    assert!(status.success(), "cc failed");
    lib
}

#[test]
fn detection_against_stub_libraries() {
    let dir = std::env::temp_dir().join(format!("strahl-nvenc-stub-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();

    // A 12.2 driver with 41 entry points: detected.
    let ok = build_stub(&dir, "libnvenc-ok", 0xc2, 41);
    let info = detect_library(ok.to_str().unwrap()).unwrap();
    assert_eq!(info.driver_api, (12, 2));
    assert_eq!(info.functions, 41);

    // An old driver (API 9.1): typed refusal naming both versions.
    let old = build_stub(&dir, "libnvenc-old", 0x91, 41);
    match detect_library(old.to_str().unwrap()) {
        Err(EncodeError::NotAvailable(m)) => {
            assert!(m.contains("9.1") && m.contains("12.1"), "{m}")
        }
        other => panic!("expected NotAvailable, got {other:?}"),
    }

    // The encoder's loader takes the same path: the table from a 12.2 driver loads; a 9.1
    // driver is refused as a missing (too old) driver, naming what is needed.
    assert!(RealNvenc::load_from(ok.to_str().unwrap()).is_ok());
    match RealNvenc::load_from(old.to_str().unwrap()) {
        Err(NvError::DriverMissing(m)) => {
            assert!(
                m.contains("9.1") && m.contains("12.1") && m.contains("newer driver"),
                "{m}"
            )
        }
        Err(e) => panic!("expected DriverMissing, got {e}"),
        Ok(_) => panic!("a 9.1 driver must be refused"),
    }

    // A driver that fills nothing: refused.
    let empty = build_stub(&dir, "libnvenc-empty", 0xc1, 0);
    assert!(matches!(
        detect_library(empty.to_str().unwrap()),
        Err(EncodeError::NotAvailable(_))
    ));

    std::fs::remove_dir_all(&dir).unwrap();
}
