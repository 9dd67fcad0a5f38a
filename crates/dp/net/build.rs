//! Compiles the XDP programs in `<repo>/bpf/` into libbpf-rs skeletons (feature `xdp`).
//!
//! Headers: kernel UAPI headers (`linux-libc-dev`) plus the libbpf headers that libbpf-cargo
//! extracts from its vendored copy; no generated vmlinux.h is needed because the programs only
//! touch packet headers. Debian keeps `asm/types.h` under the multiarch directory, which clang
//! does not search when targeting BPF, so it is added explicitly (ecosystem.md §1.1).

fn main() {
    println!("cargo:rerun-if-changed=build.rs");
    #[cfg(feature = "xdp")]
    xdp::build();
}

#[cfg(feature = "xdp")]
mod xdp {
    use libbpf_cargo::SkeletonBuilder;
    use std::path::PathBuf;

    /// Programs: (source file in bpf/, skeleton file name).
    const PROGRAMS: [(&str, &str); 2] = [
        ("redirect.bpf.c", "redirect.skel.rs"),
        ("loss.bpf.c", "loss.skel.rs"),
    ];

    fn multiarch() -> String {
        // x86_64-unknown-linux-gnu -> x86_64-linux-gnu
        let target = std::env::var("TARGET").unwrap_or_default();
        let arch = target.split('-').next().unwrap_or("x86_64");
        format!("/usr/include/{arch}-linux-gnu")
    }

    pub fn build() {
        let manifest = PathBuf::from(std::env::var_os("CARGO_MANIFEST_DIR").expect("manifest dir"));
        let bpf_dir = manifest.join("../../../bpf");
        let out = PathBuf::from(std::env::var_os("OUT_DIR").expect("OUT_DIR"));
        println!(
            "cargo:rerun-if-changed={}",
            bpf_dir.join("strahl_xdp.h").display()
        );
        for (src, skel) in PROGRAMS {
            let src = bpf_dir.join(src);
            println!("cargo:rerun-if-changed={}", src.display());
            SkeletonBuilder::new()
                .source(&src)
                .clang_args([
                    "-I".to_string(),
                    multiarch(),
                    "-I".to_string(),
                    bpf_dir.display().to_string(),
                    "-Wall".to_string(),
                ])
                .build_and_generate(out.join(skel))
                .unwrap_or_else(|e| panic!("building {}: {e:#}", src.display()));
        }
    }
}
