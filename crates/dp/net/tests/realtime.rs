//! `sys::set_realtime_current` / `allow_realtime`: SCHED_FIFO applies to the calling thread
//! only, threads it creates start at normal priority (SCHED_RESET_ON_FORK), 0 returns to
//! SCHED_OTHER, and a priority past 99 is refused. Needs CAP_SYS_NICE or RLIMIT_RTPRIO (root in
//! CI); without either the refusal itself is what is checked.

use strahl_net::sys::{allow_realtime, current_scheduler, set_realtime_current};

fn may_realtime() -> bool {
    // A raised RLIMIT_RTPRIO (allow_realtime: CAP_SYS_RESOURCE or a limit already there) or
    // CAP_SYS_NICE (root): either lets a thread take FIFO 5.
    allow_realtime(5).is_ok() || has_sys_nice()
}

fn has_sys_nice() -> bool {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("CapEff:"))
        .and_then(|hex| u64::from_str_radix(hex.trim(), 16).ok())
        .is_some_and(|caps| caps & (1 << 23) != 0) // CAP_SYS_NICE
}

#[test]
fn fifo_applies_to_the_calling_thread_and_not_to_threads_it_creates() {
    if !may_realtime() {
        let e = std::thread::spawn(|| set_realtime_current(5))
            .join()
            .unwrap()
            .unwrap_err();
        assert_eq!(e.kind(), std::io::ErrorKind::PermissionDenied, "{e}");
        return;
    }
    let before = current_scheduler().unwrap();
    let (inside, child, back) = std::thread::spawn(|| {
        set_realtime_current(5).expect("FIFO 5 allowed");
        let inside = current_scheduler().unwrap();
        let child = std::thread::spawn(|| current_scheduler().unwrap())
            .join()
            .unwrap();
        set_realtime_current(0).expect("back to normal");
        (inside, child, current_scheduler().unwrap())
    })
    .join()
    .unwrap();
    assert_eq!(inside, (libc::SCHED_FIFO, 5));
    assert_eq!(child, (libc::SCHED_OTHER, 0), "reset on fork");
    assert_eq!(back, (libc::SCHED_OTHER, 0));
    assert_eq!(
        current_scheduler().unwrap(),
        before,
        "the spawning thread is untouched"
    );
}

#[test]
fn priorities_past_99_are_refused() {
    let e = std::thread::spawn(|| set_realtime_current(100))
        .join()
        .unwrap()
        .unwrap_err();
    assert_eq!(e.kind(), std::io::ErrorKind::InvalidInput, "{e}");
}
