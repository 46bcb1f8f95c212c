//! Taking a mutex from Python code without holding the GIL while waiting: the holder may be
//! waiting for the GIL itself (it releases it around library calls).

use std::sync::{Mutex, MutexGuard, PoisonError, TryLockError};

use pyo3::Python;

/// Locks `mutex`; when another thread holds it, waits with the GIL released. A poisoned lock
/// (a panic in a call) yields its data: the state is plain and the library's calls are atomic.
pub(crate) fn lock<'a, T: Send>(py: Python<'_>, mutex: &'a Mutex<T>) -> MutexGuard<'a, T> {
    loop {
        match mutex.try_lock() {
            Ok(guard) => return guard,
            Err(TryLockError::Poisoned(poisoned)) => return poisoned.into_inner(),
            Err(TryLockError::WouldBlock) => {
                py.detach(|| drop(mutex.lock().unwrap_or_else(PoisonError::into_inner)));
            }
        }
    }
}
