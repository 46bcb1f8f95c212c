//! The opt-in SIGTERM/SIGINT helper: a signal marks the runs that asked preempting, flushes
//! them, and raises their stop flag, so that the training loop can save a checkpoint and exit.
//!
//! Handlers are installed once per process, on the first [`crate::Run::stop_on_signals`], and
//! stay: signal-hook cannot restore a default disposition. While no run listens, and from the
//! second signal on, a signal does what it would without runstore (terminate the process), so
//! a stuck shutdown can still be interrupted with a second Ctrl-C.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, OnceLock, PoisonError, Weak};

use signal_hook::consts::{SIGINT, SIGTERM};

use crate::error::{Error, Result};

/// What a listening run exposes to the signal thread.
pub(crate) trait Listener: Send + Sync {
    /// Called on the signal thread when SIGTERM or SIGINT arrives.
    fn on_signal(&self);
}

struct Installed {
    /// When true, a signal runs the default action (terminates) before anything else sees it.
    terminate: Arc<AtomicBool>,
    listeners: Mutex<Vec<Weak<dyn Listener>>>,
}

static INSTALLED: OnceLock<std::result::Result<Installed, String>> = OnceLock::new();

fn installed() -> Result<&'static Installed> {
    let installed = INSTALLED.get_or_init(|| {
        let terminate = Arc::new(AtomicBool::new(true));
        for signal in [SIGTERM, SIGINT] {
            // Registered first, so that it runs before the iterator's action.
            signal_hook::flag::register_conditional_default(signal, Arc::clone(&terminate))
                .map_err(|error| error.to_string())?;
        }
        let mut signals = signal_hook::iterator::Signals::new([SIGTERM, SIGINT]).map_err(|error| error.to_string())?;
        std::thread::Builder::new()
            .name("runstore-signals".into())
            .spawn(move || {
                for _ in signals.forever() {
                    if let Some(Ok(installed)) = INSTALLED.get() {
                        installed.deliver();
                    }
                }
            })
            .map_err(|error| error.to_string())?;
        Ok(Installed { terminate, listeners: Mutex::new(Vec::new()) })
    });
    installed.as_ref().map_err(|reason| Error::io("(signal handlers)", std::io::Error::other(reason.clone())))
}

impl Installed {
    fn deliver(&self) {
        let listeners: Vec<Arc<dyn Listener>> = {
            let mut listeners = self.listeners.lock().unwrap_or_else(PoisonError::into_inner);
            listeners.retain(|listener| listener.strong_count() > 0);
            listeners.iter().filter_map(Weak::upgrade).collect()
        };
        // The next signal terminates: a shutdown that hangs can still be interrupted.
        self.terminate.store(true, Ordering::SeqCst);
        for listener in listeners {
            listener.on_signal();
        }
    }
}

/// Makes `listener` hear SIGTERM and SIGINT until it is dropped or [`unlisten`] is called.
pub(crate) fn listen(listener: &Arc<dyn Listener>) -> Result<()> {
    let installed = installed()?;
    let mut listeners = installed.listeners.lock().unwrap_or_else(PoisonError::into_inner);
    listeners.retain(|listener| listener.strong_count() > 0);
    listeners.push(Arc::downgrade(listener));
    installed.terminate.store(false, Ordering::SeqCst);
    Ok(())
}

/// Stops `listener` hearing signals; with no listener left, signals terminate again.
pub(crate) fn unlisten(listener: &Arc<dyn Listener>) {
    let Some(Ok(installed)) = INSTALLED.get() else { return };
    let mut listeners = installed.listeners.lock().unwrap_or_else(PoisonError::into_inner);
    listeners.retain(|other| other.strong_count() > 0 && !std::ptr::addr_eq(other.as_ptr(), Arc::as_ptr(listener)));
    if listeners.is_empty() {
        installed.terminate.store(true, Ordering::SeqCst);
    }
}
