//! Real-time priority of the media threads (`[dataplane] realtime_priority`).
//!
//! Contract:
//! - [`decide`] (no IO) turns the setting and the plan into a priority: `auto` is
//!   [`AUTO_PRIORITY`] only where the tx tile has a core of its own — a real-time tile that
//!   busy-waits for its next release would otherwise take the core the rest shares with it —
//!   and 0 (normal priority) elsewhere; a number is taken as configured (0 = off).
//! - [`prepare`] runs at start, before capabilities are dropped, and makes that priority usable
//!   by threads started later: RLIMIT_RTPRIO raised to it (the appliance's unit sets
//!   `LimitRTPRIO=` instead), or else, where only CAP_SYS_NICE allows it (root without
//!   CAP_SYS_RESOURCE), that one capability is kept; refused → 0, with the reason and the fix
//!   in its line. Never fatal: the media flows either way, only its tail latency differs.
//! - [`enter`] is what a media thread calls first: SCHED_FIFO with SCHED_RESET_ON_FORK, so the
//!   threads it starts (an encoder library's workers) run at normal priority. Which threads:
//!   the tx tile, the audio thread, and the video encode thread when its work per frame is
//!   small (not the software encoder — a real-time thread that encodes for as long as the
//!   picture takes would starve the control plane on the cores it shares).
//!
//! Measurement behind it: docs/measurements.md §media path, "Real-time media threads".

use strahl_config::Realtime;

/// The priority `auto` gives: above every normal thread, below the kernel's own real-time
/// threads (which run at 50 and up), and what the appliance's unit allows (`LimitRTPRIO=10`).
pub const AUTO_PRIORITY: u8 = 10;

/// The priority the media threads take (0: normal priority) and why.
pub fn decide(setting: Realtime, tx_dedicated: bool) -> (u8, &'static str) {
    match setting {
        Realtime::Priority(0) => (0, "[dataplane] realtime_priority = 0"),
        Realtime::Priority(p) => (p, "[dataplane] realtime_priority"),
        Realtime::Auto if tx_dedicated => {
            (AUTO_PRIORITY, "auto: the tx tile has a core of its own")
        }
        Realtime::Auto => (
            0,
            "auto: the tx tile shares its core (a real-time tile there would starve the rest; \
             set realtime_priority to force it)",
        ),
    }
}

/// What [`prepare`] found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Prepared {
    /// The priority media threads take (0: normal).
    pub priority: u8,
    /// CAP_SYS_NICE must survive the capability drop (RLIMIT_RTPRIO could not be raised).
    pub keep_sys_nice: bool,
    /// The start-up line.
    pub line: String,
}

/// Makes `priority` usable after the capability drop (see the module contract).
pub fn prepare(priority: u8, why: &str) -> Prepared {
    if priority == 0 {
        return Prepared {
            priority: 0,
            keep_sys_nice: false,
            line: format!("realtime: media threads at normal priority ({why})"),
        };
    }
    let limit = strahl_net::sys::allow_realtime(priority);
    if limit.is_ok() {
        return Prepared {
            priority,
            keep_sys_nice: false,
            line: format!(
                "realtime: media threads at SCHED_FIFO {priority} ({why}; RLIMIT_RTPRIO allows it)"
            ),
        };
    }
    // A thread of its own tries, so this one's scheduling is untouched either way.
    let probe = std::thread::spawn(move || strahl_net::sys::set_realtime_current(priority))
        .join()
        .unwrap_or_else(|_| Err(std::io::Error::other("probe thread panicked")));
    match probe {
        Ok(()) => Prepared {
            priority,
            keep_sys_nice: true,
            line: format!(
                "realtime: media threads at SCHED_FIFO {priority} ({why}; CAP_SYS_NICE kept: \
                 RLIMIT_RTPRIO could not be raised: {})",
                limit.err().map(|e| e.to_string()).unwrap_or_default()
            ),
        },
        Err(e) => Prepared {
            priority: 0,
            keep_sys_nice: false,
            line: format!(
                "realtime: SCHED_FIFO {priority} refused ({e}); media threads at normal priority \
                 — the appliance's unit sets LimitRTPRIO={AUTO_PRIORITY}; elsewhere raise \
                 `ulimit -r` or run the data plane as root ({why})"
            ),
        },
    }
}

/// A media thread's first step: SCHED_FIFO at `priority` (0: nothing). A refusal (a limit
/// lowered since start) is logged and the thread runs at normal priority.
pub fn enter(priority: u8, thread: &str) {
    if priority == 0 {
        return;
    }
    if let Err(e) = strahl_net::sys::set_realtime_current(priority) {
        log::warn!("{thread}: SCHED_FIFO {priority} refused ({e}); normal priority");
    }
}

/// Back to normal priority if this thread runs at real time (an encode thread whose encoder
/// fell back to software).
pub fn leave(thread: &str) {
    let fifo = strahl_net::sys::current_scheduler().is_ok_and(|(policy, _)| policy != 0);
    if fifo {
        match strahl_net::sys::set_realtime_current(0) {
            Ok(()) => log::info!("{thread}: normal priority from now on (software encoding)"),
            Err(e) => log::warn!("{thread}: could not return to normal priority: {e}"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn auto_is_real_time_only_with_a_core_of_its_own() {
        assert_eq!(decide(Realtime::Auto, true).0, AUTO_PRIORITY);
        let (p, why) = decide(Realtime::Auto, false);
        assert_eq!(p, 0);
        assert!(why.contains("shares its core"), "{why}");
        assert_eq!(decide(Realtime::Priority(0), true).0, 0);
        assert_eq!(decide(Realtime::Priority(30), false).0, 30);
    }

    #[test]
    fn off_prepares_nothing() {
        let p = prepare(0, "test");
        assert_eq!((p.priority, p.keep_sys_nice), (0, false));
        assert!(p.line.contains("normal priority (test)"), "{}", p.line);
    }

    #[test]
    fn a_priority_is_made_usable_or_refused_with_the_fix() {
        let p = prepare(3, "test");
        // Whatever this machine allows, the line says which and a refusal falls back to 0.
        if p.priority == 0 {
            assert!(p.line.contains("LimitRTPRIO=10"), "{}", p.line);
            assert!(!p.keep_sys_nice);
        } else {
            assert_eq!(p.priority, 3);
            assert!(p.line.contains("SCHED_FIFO 3"), "{}", p.line);
            // Usable from a fresh thread, as a media thread will be.
            let got = std::thread::spawn(|| {
                enter(3, "test");
                strahl_net::sys::current_scheduler().unwrap()
            })
            .join()
            .unwrap();
            assert_eq!(got, (libc_fifo(), 3));
        }
    }

    fn libc_fifo() -> i32 {
        1 // SCHED_FIFO on Linux
    }
}
