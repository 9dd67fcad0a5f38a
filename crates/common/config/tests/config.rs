//! Parsing, error reporting (file, line, key), path rules and the derived plan.

use std::path::PathBuf;

use strahl_config::*;

fn err(src: &str) -> ConfigError {
    Config::parse(src, "test.toml").expect_err("must be rejected")
}

/// Asserts the error names the file, the 1-based line and the key.
fn assert_err(src: &str, line: usize, key: &str, needle: &str) {
    let e = err(src);
    let shown = e.to_string();
    assert_eq!(e.line(), Some(line), "{shown}");
    assert_eq!(e.key(), Some(key), "{shown}");
    assert!(
        shown.starts_with(&format!("test.toml:{line}: {key}: ")),
        "{shown}"
    );
    assert!(shown.contains(needle), "{shown} lacks {needle:?}");
}

#[test]
fn embedded_equals_default_and_empty_file() {
    let embedded = Config::parse(DEFAULT_TOML, DEFAULT_NAME).unwrap();
    assert_eq!(embedded, Config::default());
    assert_eq!(Config::parse("", "empty.toml").unwrap(), Config::default());
    assert_eq!(Config::embedded().network.gamestream_base_port, Port(47989));
    assert_eq!(Config::embedded().apps[0].name, "Desktop");
}

#[test]
fn appliance_file_on_disk_is_the_embedded_one() {
    let p = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../../appliance/strahl.toml");
    assert_eq!(std::fs::read_to_string(&p).unwrap(), DEFAULT_TOML);
    assert_eq!(Config::load(&p).unwrap(), Config::default());
}

#[test]
fn partial_file_overrides_only_what_it_names() {
    let c = Config::parse(
        "[video]\nencoder = \"nvenc\"\n[dataplane]\ncores = [2, 3]\n",
        "t",
    )
    .unwrap();
    assert_eq!(c.video.encoder, EncoderPref::Nvenc);
    assert_eq!(c.dataplane.cores, Cores::List(vec![2, 3]));
    assert_eq!(c.video.fec_percent_default, Percent(20));
    assert_eq!(c.host, Host::default());
}

#[test]
fn mdns_is_on_by_default_and_can_be_switched_off() {
    assert!(Config::embedded().network.mdns);
    let c = Config::parse("[network]\nmdns = false\n", "t").unwrap();
    assert!(!c.network.mdns);
    assert_err("[network]\nmdns = \"no\"\n", 2, "network.mdns", "");
}

#[test]
fn max_sessions_defaults_to_two_and_is_bounded_at_parse_time() {
    assert_eq!(Config::embedded().gamestream.max_sessions, SessionLimit(2));
    assert_eq!(
        Config::default().gamestream,
        Gamestream {
            max_sessions: SessionLimit(2),
            encryption: EncryptionMode::Preferred,
        }
    );
    for n in [1u8, 16] {
        let c = Config::parse(&format!("[gamestream]\nmax_sessions = {n}\n"), "t").unwrap();
        assert_eq!(c.gamestream.max_sessions, SessionLimit(n));
    }
    for bad in ["0", "17", "-1", "300", "\"2\""] {
        assert_err(
            &format!("[gamestream]\n\nmax_sessions = {bad}\n"),
            3,
            "gamestream.max_sessions",
            "",
        );
    }
    let e = err("[gamestream]\nmax_sessions = 0\n").to_string();
    assert!(e.contains("1..=16"), "{e}");
    assert_err(
        "[gamestream]\nmax_session = 2\n",
        2,
        "gamestream.max_session",
        "unknown field",
    );
}

#[test]
fn encryption_defaults_to_preferred_and_bad_values_name_the_key() {
    assert_eq!(
        Config::embedded().gamestream.encryption,
        EncryptionMode::Preferred
    );
    for (text, want) in [
        ("preferred", EncryptionMode::Preferred),
        ("required", EncryptionMode::Required),
        ("off", EncryptionMode::Off),
    ] {
        let c = Config::parse(&format!("[gamestream]\nencryption = \"{text}\"\n"), "t").unwrap();
        assert_eq!(c.gamestream.encryption, want);
    }
    for bad in ["\"mandatory\"", "\"\"", "true", "1"] {
        assert_err(
            &format!("[gamestream]\n\nencryption = {bad}\n"),
            3,
            "gamestream.encryption",
            "",
        );
    }
    let e = err("[gamestream]\nencryption = \"always\"\n").to_string();
    assert!(
        e.contains("preferred") && e.contains("required") && e.contains("off"),
        "{e}"
    );
}

#[test]
fn audio_source_defaults_to_auto_and_bad_values_are_refused_at_parse_time() {
    let a = Config::embedded().audio;
    assert_eq!(a.source, AudioSource::Auto);
    assert_eq!(a.pipewire_socket, AutoPath::Auto);
    for want in [
        AudioSource::Auto,
        AudioSource::Tone,
        AudioSource::Pipewire,
        AudioSource::None,
    ] {
        let c = Config::parse(&format!("[audio]\nsource = \"{}\"\n", want.name()), "t").unwrap();
        assert_eq!(c.audio.source, want);
    }
    let c = Config::parse(
        "[audio]\npipewire_socket = \"/run/user/1001/pipewire-0\"\n",
        "t",
    )
    .unwrap();
    assert_eq!(
        c.audio.pipewire_socket,
        AutoPath::Path("/run/user/1001/pipewire-0".into())
    );
    for bad in ["\"pulse\"", "\"Auto\"", "\"\"", "true"] {
        assert_err(
            &format!("[audio]\n\nsource = {bad}\n"),
            3,
            "audio.source",
            "",
        );
    }
    let e = err("[audio]\nsource = \"alsa\"\n").to_string();
    assert!(
        ["auto", "tone", "pipewire", "none"]
            .iter()
            .all(|v| e.contains(v)),
        "{e}"
    );
    // A relative socket path would depend on the data plane's working directory.
    assert_err(
        "[audio]\npipewire_socket = \"pipewire-0\"\n",
        2,
        "audio.pipewire_socket",
        "absolute path",
    );
}

#[test]
fn unknown_keys_name_file_line_and_key() {
    assert_err(
        "[video]\nsource = \"kms\"\nencoderr = \"nvenc\"\n",
        3,
        "video.encoderr",
        "unknown field",
    );
    assert_err("# c\n\n[videoo]\nx = 1\n", 3, "videoo", "unknown field");
    assert_err(
        "[[apps]]\nname = \"A\"\ncmd = []\n",
        3,
        "apps[0].cmd",
        "unknown field",
    );
}

#[test]
fn bad_values_name_file_line_and_key() {
    assert_err(
        "[video]\n\nencoder = \"x264\"\n",
        3,
        "video.encoder",
        "unknown variant",
    );
    assert_err(
        "[network]\nstatus_port = \"80\"\n",
        2,
        "network.status_port",
        "",
    );
    assert_err(
        "[network]\nnative_port = 0\n",
        2,
        "network.native_port",
        "1..=65535",
    );
    assert_err(
        "[network]\nnative_port = 70000\n",
        2,
        "network.native_port",
        "1..=65535",
    );
    assert_err(
        "[video]\nfec_percent_max = 101\n",
        2,
        "video.fec_percent_max",
        "0..=100",
    );
    assert_err(
        "[dataplane]\ncores = \"all\"\n",
        2,
        "dataplane.cores",
        "auto",
    );
    assert_err(
        "[dataplane]\ncores = [1, 1]\n",
        2,
        "dataplane.cores",
        "twice",
    );
    assert_err("[dataplane]\ncores = []\n", 2, "dataplane.cores", "empty");
    assert_err(
        "[dataplane]\nsocket = \"relative.sock\"\n",
        2,
        "dataplane.socket",
        "absolute",
    );
    assert_err(
        "[status]\nopen_reads = \"yes\"\n",
        2,
        "status.open_reads",
        "",
    );
}

/// The bitrate cap reaches 20 Gbit/s (native passthrough sessions at any rate), not beyond.
#[test]
fn the_bitrate_cap_goes_up_to_20_gbits() {
    let c = Config::parse("[video]\nmax_bitrate_kbps = 20000000\n", "test.toml").unwrap();
    assert_eq!(c.video.max_bitrate_kbps, 20_000_000);
    assert_err(
        "[video]\nmax_bitrate_kbps = 20000001\n",
        2,
        "video.max_bitrate_kbps",
        "outside 500..=20000000",
    );
}

#[test]
fn cross_field_rules_name_the_key_line() {
    assert_err(
        "[video]\nfec_percent_max = 10\nfec_percent_min = 30\n",
        3,
        "video.fec_percent_min",
        "above",
    );
    assert_err(
        "[video]\nfec_percent_default = 60\n",
        2,
        "video.fec_percent_default",
        "outside",
    );
    assert_err(
        "[[apps]]\nname = \"A\"\n[[apps]]\nname = \"A\"\n",
        4,
        "apps[1].name",
        "duplicate",
    );
    assert_err(
        "[network]\nstatus_port = 47998\n",
        2,
        "network.status_port",
        "video",
    );
    assert_err(
        "[video]\nsource = \"passthrough\"\n",
        1,
        "video.passthrough_file",
        "required",
    );
    assert_err(
        "[audio]\n\n\nchannels = 4\n",
        4,
        "audio.channels",
        "2, 6 or 8",
    );
    assert_err("apps = []\n", 1, "apps", "at least one");
}

#[test]
fn syntax_error_has_a_line() {
    let e = err("[host]\nname = \"x\"\nbroken = \n");
    assert_eq!(e.line(), Some(3), "{e}");
    assert!(e.to_string().starts_with("test.toml:3: "), "{e}");
}

#[test]
fn missing_file_names_it() {
    let e = Config::load(std::path::Path::new("/nonexistent/strahl.toml")).unwrap_err();
    assert!(
        e.to_string().starts_with("/nonexistent/strahl.toml: "),
        "{e}"
    );
}

#[test]
fn socket_path_rules() {
    let auto = AutoPath::Auto;
    let mut env = Env {
        uid: 1000,
        ..Env::default()
    };
    assert_eq!(
        resolve_socket(&auto, &env).path,
        PathBuf::from("/tmp/strahl-1000/dataplane.sock")
    );
    env.xdg_runtime_dir = Some("/run/user/1000".into());
    assert_eq!(
        resolve_socket(&auto, &env).path,
        PathBuf::from("/run/user/1000/strahl/dataplane.sock")
    );
    env.runtime_directory = Some("/run/strahl:/run/other".into());
    let r = resolve_socket(&auto, &env);
    assert_eq!(r.path, PathBuf::from("/run/strahl/dataplane.sock"));
    assert!(r.why.contains("RUNTIME_DIRECTORY"));
    let fixed = AutoPath::Path("/x/y.sock".into());
    assert_eq!(
        resolve_socket(&fixed, &env).path,
        PathBuf::from("/x/y.sock")
    );
}

#[test]
fn systemd_runtime_dir_only_under_systemd() {
    let mut env = Env {
        uid: 1000,
        xdg_runtime_dir: Some("/run/user/1000".into()),
        ..Env::default()
    };
    assert_eq!(systemd_runtime_dir(&env), None);
    env.runtime_directory = Some("/run/strahl:/run/other".into());
    assert_eq!(
        systemd_runtime_dir(&env),
        Some(PathBuf::from("/run/strahl"))
    );
    env.runtime_directory = Some(":/run/other".into());
    assert_eq!(systemd_runtime_dir(&env), None);
}

#[test]
fn state_dir_rules() {
    let mut env = Env {
        uid: 7,
        ..Env::default()
    };
    assert_eq!(
        resolve_state_dir(&AutoPath::Auto, &env).path,
        PathBuf::from("/tmp/strahl-7/state")
    );
    env.home = Some("/home/u".into());
    assert_eq!(
        resolve_state_dir(&AutoPath::Auto, &env).path,
        PathBuf::from("/home/u/.local/state/strahl")
    );
    env.state_directory = Some("/var/lib/strahl".into());
    assert_eq!(
        resolve_state_dir(&AutoPath::Auto, &env).path,
        PathBuf::from("/var/lib/strahl")
    );
}

#[test]
fn plan_small_machine_shares_cores() {
    let p = Plan::derive(&Config::default(), 2).unwrap();
    assert!(p.shared);
    // Two cores: tx alone on the last one, every other tile on core 0.
    assert!(p.tx_dedicated);
    assert_eq!(p.core_of(Tile::Tx), 1);
    assert_eq!(p.core_of(Tile::Frame), 0);
    assert_eq!(p.placement.iter().filter(|(_, c)| *c == 1).count(), 1);
    assert_eq!(p.worker_cores(), vec![0]);
    assert!(p.placement.iter().all(|(_, c)| *c < 2));
    assert_eq!(p.placement.len(), Tile::ALL.len());
    assert_eq!(p.shard_payload, 1400);
    assert_eq!(p.rings.frame_size, 2048);
    assert!(!p.needs_multibuffer);
}

#[test]
fn plan_big_machine_keeps_core0_and_gives_tx_its_own() {
    let p = Plan::derive(&Config::default(), 8).unwrap();
    assert!(!p.shared);
    assert!(p.tx_dedicated);
    assert!(p.placement.iter().all(|(_, c)| *c != 0));
    let tx = p.core_of(Tile::Tx);
    assert_eq!(p.placement.iter().filter(|(_, c)| *c == tx).count(), 1);
    assert!(!p.worker_cores().contains(&tx));
}

#[test]
fn plan_puts_tx_on_the_kernels_isolated_cpu() {
    let cfg = Config::default();
    // The shipped profile isolates CPU 1: tx goes there, alone, on every machine size.
    let p = Plan::derive_isolated(&cfg, 2, &[1]).unwrap();
    assert_eq!(p.core_of(Tile::Tx), 1);
    assert_eq!(p.worker_cores(), vec![0]);
    assert!(p.tx_dedicated);
    let p = Plan::derive_isolated(&cfg, 8, &[1]).unwrap();
    assert_eq!(p.core_of(Tile::Tx), 1);
    assert_eq!(p.worker_cores(), vec![2, 3, 4, 5, 6]);
    assert!(p.placement.iter().all(|(_, c)| *c != 0));
    // Several isolated: the lowest takes tx; no other tile on any isolated CPU.
    let p = Plan::derive_isolated(&cfg, 8, &[5, 3]).unwrap();
    assert_eq!(p.core_of(Tile::Tx), 3);
    assert!(p.worker_cores().iter().all(|c| ![0, 3, 5].contains(c)));
    // An isolated CPU this machine does not have changes nothing.
    assert_eq!(
        Plan::derive_isolated(&cfg, 2, &[9]).unwrap(),
        Plan::derive(&cfg, 2).unwrap()
    );
    // An explicit list is the operator's, as written.
    let c = Config::parse("[dataplane]\ncores = [2, 3]\n", "t").unwrap();
    assert_eq!(
        Plan::derive_isolated(&c, 4, &[1])
            .unwrap()
            .core_of(Tile::Tx),
        3
    );
}

#[test]
fn plan_one_core_shares_it_with_tx() {
    let p = Plan::derive(&Config::default(), 1).unwrap();
    assert!(p.shared);
    assert!(!p.tx_dedicated);
    assert!(p.placement.iter().all(|(_, c)| *c == 0));
    assert_eq!(p.worker_cores(), vec![0]);
}

#[test]
fn plan_explicit_cores_must_exist_and_jumbo_sizes() {
    let c = Config::parse("[dataplane]\ncores = [3]\nmtu = 9000\n", "t").unwrap();
    let e = Plan::derive(&c, 2).unwrap_err();
    assert_eq!(e.key, "dataplane.cores");
    let p = Plan::derive(&c, 4).unwrap();
    assert!(p.placement.iter().all(|(_, core)| *core == 3));
    assert_eq!(p.shard_payload, 8900);
    assert!(p.needs_multibuffer);
    assert_eq!(p.rings.frame_size, 4096);
}

#[test]
fn gamestream_ports_follow_the_base() {
    let c = Config::parse("[network]\ngamestream_base_port = 50000\n", "t").unwrap();
    let g = c.network.gamestream_ports();
    assert_eq!(
        (g.https, g.http, g.video, g.control, g.audio, g.rtsp),
        (49995, 50000, 50009, 50010, 50011, 50021)
    );
}

#[test]
fn testing_knobs_parse_and_are_bounded() {
    let c = Config::parse(
        "[testing]\nvideo_drop_fraction = 0.03\nvideo_drop_seed = 9\n",
        "t",
    )
    .unwrap();
    assert_eq!(c.testing.video_drop_fraction, DropFraction(0.03));
    assert_eq!(c.testing.video_drop_seed, 9);
    assert_eq!(Config::default().testing.video_drop_fraction.0, 0.0);
    let c = Config::parse("[testing]\nvideo_drop_fraction = 0\n", "t").unwrap();
    assert_eq!(c.testing.video_drop_fraction.0, 0.0);
    assert_err(
        "[testing]\nvideo_drop_fraction = 0.6\n",
        2,
        "testing.video_drop_fraction",
        "0.0..=0.5",
    );
    assert_err(
        "[testing]\nvideo_drop_fraction = -0.1\n",
        2,
        "testing.video_drop_fraction",
        "0.0..=0.5",
    );
}

#[test]
fn realtime_priority_is_auto_off_or_a_fifo_priority() {
    use strahl_config::Realtime;
    assert_eq!(
        Config::default().dataplane.realtime_priority,
        Realtime::Auto
    );
    for (text, want) in [
        ("\"auto\"", Realtime::Auto),
        ("0", Realtime::Priority(0)),
        ("10", Realtime::Priority(10)),
        ("99", Realtime::Priority(99)),
    ] {
        let c = Config::parse(&format!("[dataplane]\nrealtime_priority = {text}\n"), "t").unwrap();
        assert_eq!(c.dataplane.realtime_priority, want, "{text}");
    }
    for bad in ["100", "-1", "\"fast\"", "1.5"] {
        let e = Config::parse(&format!("[dataplane]\nrealtime_priority = {bad}\n"), "t")
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("realtime_priority") || e.contains("priority"),
            "{bad}: {e}"
        );
    }
}
