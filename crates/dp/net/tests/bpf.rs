//! XDP programs under BPF_PROG_TEST_RUN against the stored fixtures in `<repo>/bpf/fixtures/`.
//! Loading BPF needs root (CAP_BPF + CAP_NET_ADMIN); without it every test prints `SKIPPED: ...`.
#![cfg(feature = "xdp")]

use std::path::PathBuf;
use strahl_net::bpf::{LossConfig, LossProgram, LossStats, RedirectProgram, RedirectStats, action};
use strahl_net::testbed;

const PORT: u16 = 47_998;

fn fixture(name: &str) -> Vec<u8> {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../../../bpf/fixtures")
        .join(format!("{name}.hex"));
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    text.lines()
        .map(|l| l.split('#').next().unwrap_or(""))
        .flat_map(|l| l.split_whitespace().map(str::to_owned).collect::<Vec<_>>())
        .map(|h| u8::from_str_radix(&h, 16).expect("hex byte"))
        .collect()
}

fn privileged(test: &str) -> bool {
    match testbed::check_privileges() {
        Ok(()) => true,
        Err(reason) => {
            testbed::skip(test, &format!("loading BPF programs: {reason}"));
            false
        }
    }
}

#[test]
fn fixtures_parse_as_documented() {
    // Cross-check of our parser against independently generated frames (no privileges needed).
    use strahl_net::xdp::headers::{Ipv4, Ipv6, ParseError, parse_udp};
    let parse_udp_ipv4 = |f: &[u8]| parse_udp::<Ipv4>(f, true);
    let v = parse_udp_ipv4(&fixture("udp_redirected")).expect("valid IPv4/UDP");
    assert_eq!(v.dst.port(), PORT);
    assert_eq!(v.payload.1 - v.payload.0, 32);
    assert_eq!(
        parse_udp_ipv4(&fixture("udp_other_port"))
            .unwrap()
            .dst
            .port(),
        53
    );
    assert_eq!(parse_udp_ipv4(&fixture("tcp")), Err(ParseError::NotUdp));
    assert_eq!(
        parse_udp_ipv4(&fixture("ipv6_udp")),
        Err(ParseError::WrongFamily)
    );
    assert!(parse_udp_ipv4(&fixture("truncated_udp")).is_err());
    assert_eq!(
        parse_udp_ipv4(&fixture("ipv4_fragment")),
        Err(ParseError::Fragment)
    );
    assert_eq!(
        parse_udp_ipv4(&fixture("arp")),
        Err(ParseError::WrongFamily)
    );
    // IPv6: checksums in the fixtures were computed in Python, so this cross-checks ours.
    let v6 = parse_udp::<Ipv6>(&fixture("ipv6_udp"), true).expect("valid IPv6/UDP");
    assert_eq!(v6.dst.port(), PORT);
    let other = parse_udp::<Ipv6>(&fixture("ipv6_udp_other_port"), true).expect("valid IPv6/UDP");
    assert_eq!(other.dst.port(), 53);
}

#[test]
fn redirect_program_steers_only_configured_udp() {
    if !privileged("redirect_program_steers_only_configured_udp") {
        return;
    }
    let prog = RedirectProgram::load().expect("load redirect program");
    prog.add_port(PORT).unwrap();
    // (fixture, field of RedirectStats that must grow by exactly one)
    type Field = fn(&RedirectStats) -> u64;
    let cases: [(&str, Field); 8] = [
        ("udp_redirected", |s| s.redirected),
        ("udp_other_port", |s| s.passed),
        ("tcp", |s| s.passed),
        ("ipv6_udp", |s| s.redirected),
        ("ipv6_udp_other_port", |s| s.passed),
        ("truncated_udp", |s| s.malformed),
        ("ipv4_fragment", |s| s.passed),
        ("arp", |s| s.passed),
    ];
    for (name, field) in cases {
        let before = prog.stats().unwrap();
        let act = prog.test_run(&fixture(name), 0).unwrap();
        let after = prog.stats().unwrap();
        // No socket is registered, so even a steered frame falls back to PASS.
        assert_eq!(act, action::PASS, "{name}");
        assert_eq!(
            field(&after),
            field(&before) + 1,
            "{name}: {before:?} -> {after:?}"
        );
        let total = |s: &RedirectStats| s.redirected + s.passed + s.malformed;
        assert_eq!(
            total(&after),
            total(&before) + 1,
            "{name}: exactly one decision"
        );
    }
    prog.remove_port(PORT).unwrap();
    let before = prog.stats().unwrap();
    prog.test_run(&fixture("udp_redirected"), 0).unwrap();
    assert_eq!(
        prog.stats().unwrap().passed,
        before.passed + 1,
        "removed port passes"
    );
}

#[test]
fn redirect_program_redirects_into_a_registered_socket() {
    let test = "redirect_program_redirects_into_a_registered_socket";
    let pair = match testbed::VethPair::create("rdr") {
        Ok(p) => p,
        Err(reason) => return testbed::skip(test, &reason),
    };
    let ifb = pair.if_b.clone();
    let outcome = testbed::in_netns(&pair.ns_b, move || {
        let prog = RedirectProgram::load().expect("load");
        prog.add_port(PORT).unwrap();
        let rx = strahl_net::xdp::XdpRx::new(&ifb, 0, 64, 64).expect("AF_XDP socket");
        prog.register_xsk(0, rx.fd()).unwrap();
        (
            prog.test_run(&fixture("udp_redirected"), 0).unwrap(),
            prog.test_run(&fixture("udp_other_port"), 0).unwrap(),
        )
    })
    .expect("netns");
    assert_eq!(outcome, (action::REDIRECT, action::PASS));
}

#[test]
fn loss_program_burst_pattern_is_exact() {
    if !privileged("loss_program_burst_pattern_is_exact") {
        return;
    }
    let prog = LossProgram::load().expect("load loss program");
    let cfg = LossConfig {
        burst_period: 10,
        burst_offset: 2,
        burst_len: 3,
        udp_port: PORT,
        ..Default::default()
    };
    prog.configure(&cfg).unwrap();
    let hit = fixture("udp_redirected");
    let other = fixture("udp_other_port");
    let mut dropped = Vec::new();
    for i in 0..30u32 {
        if prog.test_run(&hit).unwrap() == action::DROP {
            dropped.push(i);
        }
        // Non-matching traffic always passes and does not advance the pattern.
        assert_eq!(prog.test_run(&other).unwrap(), action::PASS);
        assert_eq!(prog.test_run(&fixture("arp")).unwrap(), action::PASS);
    }
    assert_eq!(dropped, vec![2, 3, 4, 12, 13, 14, 22, 23, 24]);
    let s = prog.stats().unwrap();
    assert_eq!(
        s,
        LossStats {
            passed: 21,
            dropped_random: 0,
            dropped_burst: 9,
            ignored: 60
        }
    );
    // IPv6 UDP to the port is matched too; reconfiguring restarts the pattern.
    prog.configure(&LossConfig {
        burst_period: 2,
        burst_offset: 0,
        burst_len: 1,
        udp_port: PORT,
        ..Default::default()
    })
    .unwrap();
    let v6 = fixture("ipv6_udp");
    let acts: Vec<u32> = (0..4).map(|_| prog.test_run(&v6).unwrap()).collect();
    assert_eq!(
        acts,
        vec![action::DROP, action::PASS, action::DROP, action::PASS]
    );
    // Truncated frames are never touched.
    assert_eq!(
        prog.test_run(&fixture("truncated_udp")).unwrap(),
        action::PASS
    );
}

#[test]
fn loss_program_probability_matches_configuration() {
    if !privileged("loss_program_probability_matches_configuration") {
        return;
    }
    let prog = LossProgram::load().expect("load loss program");
    let hit = fixture("udp_redirected");
    const RUNS: u32 = 20_000;
    for p in [0.0, 0.05, 0.25, 1.0] {
        prog.configure(&LossConfig {
            probability: p,
            ..Default::default()
        })
        .unwrap();
        prog.test_run_repeat(&hit, RUNS).unwrap();
        let s = prog.stats().unwrap();
        // Signal-interrupted attempts are retried, so there may be more runs than asked for.
        let runs = s.passed + s.dropped_random;
        assert!(runs >= RUNS as u64, "p={p}: {s:?}");
        assert_eq!(s.dropped_burst + s.ignored, 0);
        let expect = p * runs as f64;
        let sigma = (runs as f64 * p * (1.0 - p)).sqrt();
        let got = s.dropped_random as f64;
        // 6 sigma (+1 for p = 0/1) keeps a false failure below 1e-8 per run.
        assert!(
            (got - expect).abs() <= 6.0 * sigma + 1.0,
            "p={p}: dropped {got}, expected {expect}±{sigma}"
        );
    }
    assert!(
        prog.configure(&LossConfig {
            probability: 1.5,
            ..Default::default()
        })
        .is_err()
    );
}
