//! Apollo's per-client permissions and clipboard (issue 13 item 5, frontier.md §1) over the real
//! listeners on 127.0.0.1: a paired-clients file from before permissions loads with the first
//! client allowed everything and the later one view + list; each HTTPS action checks its bit
//! (403 naming what is missing); `/serverinfo` tells a paired client its `Permission`; the
//! operator's grant applies at once and is on disk; `/actions/clipboard` round-trips text for a
//! client with the clipboard bits, refuses one without, and bounds the text.

mod support;

use strahl_gamestream::Permissions;
use strahl_gamestream::clipboard::MAX_CLIPBOARD_BYTES;
use strahl_gamestream::paired::PairedStore;
use support::{https, https_get, seed_paired, start, test_client};

const ID: &str = "uniqueid=0123456789ABCDEF&uuid=0";
const LAUNCH: &str =
    "appid=1&rikey=00112233445566778899aabbccddeeff&rikeyid=7&localAudioPlayMode=0&corever=1";

#[tokio::test]
async fn permissions_are_per_client_enforced_reported_and_granted() {
    let dir = tempfile::tempdir().unwrap();
    let (first, later) = (test_client(), test_client());
    seed_paired(dir.path(), &[&first, &later]);
    let (server, host) = start(dir.path()).await;

    let info = https_get(&server, &first, &format!("/serverinfo?{ID}")).await;
    assert_eq!(info.tag("Permission"), Some(Permissions::ALL.0.to_string()));
    let info = https_get(&server, &later, &format!("/serverinfo?{ID}")).await;
    assert_eq!(
        info.tag("Permission"),
        Some(Permissions::DEFAULT_LATER.0.to_string())
    );

    // view + list: the app list yes, a launch no (and the host never hears of it).
    let r = https_get(&server, &later, &format!("/applist?{ID}")).await;
    assert_eq!(r.xml_status(), 200);
    let r = https_get(&server, &later, &format!("/launch?{ID}&{LAUNCH}")).await;
    assert_eq!(r.xml_status(), 403, "{}", r.body);
    assert!(
        r.body.contains("Permission denied") && r.body.contains("launch"),
        "{}",
        r.body
    );
    assert!(host.events().is_empty());

    // The operator grants launch: at once, and on disk.
    let granted = Permissions(Permissions::DEFAULT_LATER.0 | Permissions::LAUNCH);
    assert!(server.set_permissions(&later.cert_pem, granted).unwrap());
    let r = https_get(&server, &later, &format!("/launch?{ID}&{LAUNCH}")).await;
    assert_eq!(r.xml_status(), 200, "{}", r.body);
    assert_eq!(host.events().len(), 1);
    let stored = PairedStore::load(dir.path()).unwrap();
    assert_eq!(stored.permissions_of(&later.cert_der), Some(granted));
    assert_eq!(
        stored.permissions_of(&first.cert_der),
        Some(Permissions::ALL)
    );

    // Without list, not even the app list.
    assert!(
        server
            .set_permissions(&later.cert_pem, Permissions::NONE)
            .unwrap()
    );
    let r = https_get(&server, &later, &format!("/applist?{ID}")).await;
    assert_eq!(r.xml_status(), 403);
    server.shutdown().await;
}

#[tokio::test]
async fn clipboard_round_trip_with_the_permission_refused_without() {
    let dir = tempfile::tempdir().unwrap();
    let (first, later) = (test_client(), test_client());
    seed_paired(dir.path(), &[&first, &later]);
    let (server, _) = start(dir.path()).await;
    let path = format!("/actions/clipboard?{ID}&type=text");

    // Nothing set yet.
    let r = https_get(&server, &first, &path).await;
    assert_eq!(r.xml_status(), 404, "{}", r.body);
    // The first client (every permission) sets it and reads it back.
    let text = "grüße aus dem Host\nline two";
    let r = https(&server, &first, "POST", &path, text.as_bytes()).await;
    assert_eq!(r.xml_status(), 200, "{}", r.body);
    assert_eq!(https_get(&server, &first, &path).await.body, text);
    assert_eq!(server.clipboard().get().as_deref(), Some(text));

    // The later client (view + list) may do neither; its POST changes nothing.
    let r = https_get(&server, &later, &path).await;
    assert_eq!(r.xml_status(), 403);
    assert!(r.body.contains("clipboard-read"), "{}", r.body);
    let r = https(&server, &later, "POST", &path, b"overwritten").await;
    assert_eq!(r.xml_status(), 403);
    assert!(r.body.contains("clipboard-set"), "{}", r.body);
    assert_eq!(server.clipboard().get().as_deref(), Some(text));

    // Granted read, it reads what the first client set.
    let read = Permissions(Permissions::DEFAULT_LATER.0 | Permissions::CLIPBOARD_READ);
    assert!(server.set_permissions(&later.cert_pem, read).unwrap());
    assert_eq!(https_get(&server, &later, &path).await.body, text);

    // Bounded, text only: refused, never cut, and the text stays.
    let big = vec![b'a'; MAX_CLIPBOARD_BYTES + 1];
    let r = https(&server, &first, "POST", &path, &big).await;
    assert!(matches!(r.xml_status(), 400 | 413), "{}", r.body);
    let r = https(&server, &first, "POST", &path, &[0xff, 0xfe, 0x00]).await;
    assert_eq!(r.xml_status(), 400);
    let r = https(
        &server,
        &first,
        "POST",
        &format!("/actions/clipboard?{ID}&type=file"),
        b"x",
    )
    .await;
    assert_eq!(r.xml_status(), 400);
    assert_eq!(server.clipboard().get().as_deref(), Some(text));
    let full = vec![b'b'; MAX_CLIPBOARD_BYTES];
    let r = https(&server, &first, "POST", &path, &full).await;
    assert_eq!(r.xml_status(), 200);
    assert_eq!(
        https_get(&server, &first, &path).await.body.len(),
        MAX_CLIPBOARD_BYTES
    );

    // Over plain HTTP the route does not exist.
    let r = support::http_get(&server, &path).await;
    assert_eq!(r.xml_status(), 404);
    server.shutdown().await;
}
