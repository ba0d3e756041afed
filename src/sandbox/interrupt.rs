//! Ctrl-C and SIGTERM for the runner process: the handler only counts and
//! remembers the signal (async-signal-safe); the scheduler polls it and
//! decides how to stop.

use std::sync::atomic::{AtomicI32, AtomicU32, Ordering};

use nix::sys::signal::{sigaction, SaFlags, SigAction, SigHandler, SigSet, Signal};

static COUNT: AtomicU32 = AtomicU32::new(0);
static LAST_SIGNAL: AtomicI32 = AtomicI32::new(0);

extern "C" fn on_signal(signal: libc::c_int) {
    LAST_SIGNAL.store(signal, Ordering::SeqCst);
    COUNT.fetch_add(1, Ordering::SeqCst);
}

/// Installs the handler for SIGINT and SIGTERM.
pub fn install() -> nix::Result<()> {
    let action = SigAction::new(
        SigHandler::Handler(on_signal),
        SaFlags::SA_RESTART,
        SigSet::empty(),
    );
    for signal in [Signal::SIGINT, Signal::SIGTERM] {
        // SAFETY: the handler only touches atomics.
        unsafe { sigaction(signal, &action) }?;
    }
    Ok(())
}

/// How many interrupts arrived, and the last signal's number (0 if none).
pub fn received() -> (u32, i32) {
    (
        COUNT.load(Ordering::SeqCst),
        LAST_SIGNAL.load(Ordering::SeqCst),
    )
}
