//! `sys::set_affinity_current`: the kernel applies the set to the calling thread only, and a core
//! past `CPU_SETSIZE` is refused, not dropped.

use strahl_net::sys::set_affinity_current;

fn allowed_list() -> String {
    let status = std::fs::read_to_string("/proc/thread-self/status").expect("thread status");
    status
        .lines()
        .find_map(|l| l.strip_prefix("Cpus_allowed_list:"))
        .expect("Cpus_allowed_list line")
        .trim()
        .to_owned()
}

#[test]
fn affinity_applies_to_the_calling_thread_only() {
    let before = allowed_list();
    let inside = std::thread::spawn(|| {
        set_affinity_current(&[0]).expect("core 0 always exists");
        allowed_list()
    })
    .join()
    .unwrap();
    assert_eq!(inside, "0");
    assert_eq!(allowed_list(), before, "the spawning thread keeps its set");
}

#[test]
fn affinity_refuses_cores_past_the_set() {
    let e = std::thread::spawn(|| set_affinity_current(&[0, 1 << 20]))
        .join()
        .unwrap()
        .unwrap_err();
    assert_eq!(e.kind(), std::io::ErrorKind::InvalidInput);
}
