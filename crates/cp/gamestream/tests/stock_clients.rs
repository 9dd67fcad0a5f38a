//! What stock clients read and call beyond pairing and launching (issue 13 item 7), over the
//! real listeners on 127.0.0.1: `/serverinfo`'s `gputype`, `GsVersion` and display-mode list
//! (moonlight-embedded gives up without them; a client told to refuse unsupported modes checks
//! the list), `/unpair` (over HTTP as Moonlight sends it, and over HTTPS) really unpairing —
//! only the asker — and `/resume` reaching the host with the running app's id.

mod support;

use strahl_gamestream::HostEvent;
use strahl_gamestream::handlers::GS_VERSION;
use strahl_gamestream::paired::PairedStore;
use support::{http_get, https_get, seed_paired, start, test_client};

const ID: &str = "uniqueid=0123456789ABCDEF&uuid=0";

#[tokio::test]
async fn serverinfo_names_the_gpu_the_gamestream_version_and_the_display_modes() {
    let dir = tempfile::tempdir().unwrap();
    let client = test_client();
    seed_paired(dir.path(), &[&client]);
    let (server, _) = start(dir.path()).await;
    for r in [
        http_get(&server, &format!("/serverinfo?{ID}")).await,
        https_get(&server, &client, &format!("/serverinfo?{ID}")).await,
    ] {
        assert_eq!(r.xml_status(), 200);
        assert!(!r.tag("gputype").expect("gputype").is_empty(), "{}", r.body);
        assert_eq!(r.tag("GsVersion").as_deref(), Some(GS_VERSION));
        // Every mode is a complete <DisplayMode> inside <SupportedDisplayMode>, and 1080p60 is
        // one of them.
        let list = r
            .body
            .split_once("<SupportedDisplayMode>")
            .and_then(|(_, rest)| rest.split_once("</SupportedDisplayMode>"))
            .expect("a SupportedDisplayMode element")
            .0;
        let modes: Vec<&str> = list
            .split("</DisplayMode>")
            .filter(|m| !m.is_empty())
            .collect();
        assert!(modes.len() >= 4, "{list}");
        for m in &modes {
            assert!(m.starts_with("<DisplayMode><Width>"), "{m}");
            assert!(m.contains("<Height>") && m.contains("<RefreshRate>"), "{m}");
        }
        assert!(
            modes.contains(&"<DisplayMode><Width>1920</Width><Height>1080</Height><RefreshRate>60</RefreshRate>"),
            "{list}"
        );
    }
    server.shutdown().await;
}

#[tokio::test]
async fn unpair_over_https_removes_only_the_asking_client() {
    let dir = tempfile::tempdir().unwrap();
    let (a, b) = (test_client(), test_client());
    seed_paired(dir.path(), &[&a, &b]);
    let (server, _) = start(dir.path()).await;
    let r = https_get(&server, &a, &format!("/unpair?{ID}")).await;
    assert_eq!(
        (r.xml_status(), r.tag("unpaired").as_deref()),
        (200, Some("1"))
    );
    // A is gone (401 from now on), in memory and on disk; B is untouched.
    let r = https_get(&server, &a, &format!("/serverinfo?{ID}")).await;
    assert_eq!(r.xml_status(), 401);
    let r = https_get(&server, &b, &format!("/serverinfo?{ID}")).await;
    assert_eq!(r.tag("PairStatus").as_deref(), Some("1"));
    let on_disk = PairedStore::load(dir.path()).unwrap();
    assert!(!on_disk.is_paired(&a.cert_der) && on_disk.is_paired(&b.cert_der));
    server.shutdown().await;
}

#[tokio::test]
async fn unpair_over_http_removes_the_clients_last_seen_from_the_asking_address() {
    let dir = tempfile::tempdir().unwrap();
    let (a, b) = (test_client(), test_client());
    seed_paired(dir.path(), &[&a, &b]);
    let (server, _) = start(dir.path()).await;
    // Nobody has been seen yet: an HTTP /unpair (every Moonlight sends the same uniqueid)
    // cannot tell who asks and removes nobody.
    let r = http_get(&server, &format!("/unpair?{ID}")).await;
    assert_eq!(
        (r.xml_status(), r.tag("unpaired").as_deref()),
        (200, Some("0"))
    );
    assert_eq!(server.paired_clients().len(), 2);
    // A talks to the host over HTTPS from 127.0.0.1; B never does.
    assert_eq!(
        https_get(&server, &a, &format!("/serverinfo?{ID}"))
            .await
            .tag("PairStatus")
            .as_deref(),
        Some("1")
    );
    // Another uniqueid from the same address: not A.
    let r = http_get(&server, "/unpair?uniqueid=FEDCBA9876543210").await;
    assert_eq!(r.tag("unpaired").as_deref(), Some("0"));
    let r = http_get(&server, &format!("/unpair?{ID}")).await;
    assert_eq!(r.tag("unpaired").as_deref(), Some("1"));
    assert_eq!(
        https_get(&server, &a, &format!("/serverinfo?{ID}"))
            .await
            .xml_status(),
        401
    );
    let left = PairedStore::load(dir.path()).unwrap();
    assert!(!left.is_paired(&a.cert_der) && left.is_paired(&b.cert_der));
    server.shutdown().await;
}

#[tokio::test]
async fn resume_reaches_the_host_with_the_running_apps_id() {
    let dir = tempfile::tempdir().unwrap();
    let client = test_client();
    seed_paired(dir.path(), &[&client]);
    let (server, host) = start(dir.path()).await;
    let key = "rikey=00112233445566778899aabbccddeeff&rikeyid=7";
    let r = https_get(
        &server,
        &client,
        &format!("/launch?{ID}&appid=1&{key}&localAudioPlayMode=0&corever=1"),
    )
    .await;
    assert_eq!(r.xml_status(), 200, "{}", r.body);
    let r = https_get(&server, &client, &format!("/resume?{ID}&{key}&corever=1")).await;
    assert_eq!(r.tag("resume").as_deref(), Some("1"), "{}", r.body);
    let resumed: Vec<u32> = host
        .events()
        .iter()
        .filter_map(|e| match e {
            HostEvent::Resume(r) => Some(r.params.app_id),
            _ => None,
        })
        .collect();
    assert_eq!(resumed, [1]);
    server.shutdown().await;
}
