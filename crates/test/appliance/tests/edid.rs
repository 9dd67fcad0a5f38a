//! strahl's headless EDID (kernel-config/firmware/edid/strahl.bin): the shipped file is the
//! generator's output byte for byte, its checksums and modes read back independently, and
//! Debian's edid-decode finds it conformant with no warning.

use std::process::Command;

use strahl_appliance::edid::{self, Mode};
use strahl_appliance::{repo, tools};

const SHIPPED: &str = "kernel-config/firmware/edid/strahl.bin";

fn shipped() -> Vec<u8> {
    std::fs::read(repo::root().join(SHIPPED)).expect("shipped EDID")
}

#[test]
fn shipped_edid_is_the_generators_output() {
    assert!(
        shipped() == edid::generate(),
        "{SHIPPED} differs from the generator: run kernel-config/firmware/edid/generate.sh"
    );
}

#[test]
fn shipped_edid_lists_the_common_client_modes_with_valid_checksums() {
    let s = edid::check(&shipped()).expect("valid EDID");
    assert_eq!(s.name, "strahl");
    // The preferred mode comes first.
    assert_eq!(s.detailed[0], (1920, 1080, 60));
    let mut modes: Vec<Mode> = s.detailed.clone();
    modes.extend(
        s.vics
            .iter()
            .map(|v| edid::vic_mode(*v).expect("known VIC")),
    );
    for want in [
        (1280, 720, 60),
        (1920, 1080, 60),
        (1920, 1080, 120),
        (2560, 1440, 60),
        (2560, 1440, 120),
        (3840, 2160, 60),
    ] {
        assert!(modes.contains(&want), "{want:?} missing from {modes:?}");
    }
}

#[test]
fn checker_rejects_a_wrong_checksum_in_either_block() {
    for at in [60, 128 + 40] {
        let mut e = shipped();
        e[at] ^= 0x01;
        let err = edid::check(&e).unwrap_err();
        assert!(err.contains("checksum"), "{err}");
    }
}

#[test]
fn cvt_reduced_blanking_matches_the_published_1440p_timings() {
    // VESA CVT-RB for 2560×1440: 241.50 MHz at 60 Hz (as in the DMT list), 497.75 MHz at 120 Hz.
    let t60 = edid::cvt_rb(2560, 1440, 60);
    assert_eq!(
        (t60.pixel_clock_khz, t60.h_total(), t60.v_total()),
        (241_500, 2720, 1481)
    );
    let t120 = edid::cvt_rb(2560, 1440, 120);
    assert_eq!(
        (t120.pixel_clock_khz, t120.h_total(), t120.v_total()),
        (497_750, 2720, 1525)
    );
}

#[test]
fn edid_decode_finds_it_conformant_without_warnings() {
    let o = tools::run(
        Command::new(tools::find("edid-decode"))
            .arg("--check")
            .arg(repo::root().join(SHIPPED)),
    );
    let out = tools::text(&o);
    assert!(o.status.success(), "edid-decode --check failed:\n{out}");
    assert!(out.contains("EDID conformity: PASS"), "{out}");
    assert!(
        !out.contains("Warnings:") && !out.contains("Failures:"),
        "{out}"
    );
}
