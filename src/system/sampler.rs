//! The sampler thread: reads the sources every interval and hands the samples to the run's
//! buffer, which the flusher commits with the rows. It never runs on a log call's path.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex, PoisonError};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use super::Plan;
use super::reading::samples;
use crate::error::{Error, Result};

/// Samples as the run's buffer takes them: (metric id, time in ms, value).
pub(crate) type Samples = Vec<(u32, u64, f64)>;

/// CPU time all samplers of this process spent reading and handing over samples, in ns, and
/// the readings they took: the cost `examples/bench.rs` reports.
static CPU_NS: AtomicU64 = AtomicU64::new(0);
static READINGS: AtomicU64 = AtomicU64::new(0);

/// The CPU time samplers spent in this process and the readings they took.
pub(crate) fn cost() -> (Duration, u64) {
    (Duration::from_nanos(CPU_NS.load(Ordering::Relaxed)), READINGS.load(Ordering::Relaxed))
}

/// The stop flag, and the condvar the thread sleeps on between readings.
#[derive(Default)]
struct Stop {
    stopped: Mutex<bool>,
    wake: Condvar,
}

/// A running sampler; [`Sampler::stop`] (or dropping it) ends and joins its thread.
pub(crate) struct Sampler {
    stop: Arc<Stop>,
    thread: Option<JoinHandle<()>>,
    /// The process that started the thread: a forked child has no such thread to join.
    pid: u32,
}

impl Sampler {
    /// Starts the thread: a first reading now, then samples of every `plan.interval`, with
    /// `ids[position]` the metric id of `series_names(..)[position]`, given to `sink`.
    pub(crate) fn start(
        run_id: &str,
        plan: Plan,
        ids: Vec<u32>,
        sink: impl FnMut(&mut Samples) + Send + 'static,
    ) -> Result<Sampler> {
        let stop = Arc::new(Stop::default());
        let thread = {
            let stop = Arc::clone(&stop);
            std::thread::Builder::new()
                .name(format!("runstore-system-{run_id}"))
                .spawn(move || sample(&plan, &ids, &stop, sink))
                .map_err(|error| Error::io("(system metrics thread)", error))?
        };
        Ok(Sampler { stop, thread: Some(thread), pid: std::process::id() })
    }

    /// Stops the thread and waits for it: every sample it took is in the sink when this returns.
    pub(crate) fn stop(mut self) {
        self.halt();
    }

    fn halt(&mut self) {
        let Some(thread) = self.thread.take() else { return };
        if std::process::id() != self.pid {
            // A forked child: the thread exists only in the parent, which goes on sampling.
            std::mem::forget(thread);
            return;
        }
        *self.stop.stopped.lock().unwrap_or_else(PoisonError::into_inner) = true;
        self.stop.wake.notify_all();
        // The thread does not panic on anything it reads; a join error leaves nothing to do.
        let _ = thread.join();
    }
}

impl Drop for Sampler {
    fn drop(&mut self) {
        self.halt();
    }
}

/// The thread's loop: sleeps until the next tick (or the stop), reads, hands the samples over.
fn sample(plan: &Plan, ids: &[u32], stop: &Stop, mut sink: impl FnMut(&mut Samples)) {
    let measured = |work: &mut dyn FnMut()| {
        let start = super::native::thread_cpu_time();
        work();
        let spent = super::native::thread_cpu_time().saturating_sub(start);
        CPU_NS.fetch_add(u64::try_from(spent.as_nanos()).unwrap_or(u64::MAX), Ordering::Relaxed);
        READINGS.fetch_add(1, Ordering::Relaxed);
    };
    let mut before = None;
    measured(&mut || before = Some(plan.sources.read()));
    let Some(mut before) = before else { return };
    let mut next = before.at + plan.interval;
    let mut batch = Samples::new();
    loop {
        {
            let mut stopped = stop.stopped.lock().unwrap_or_else(PoisonError::into_inner);
            loop {
                if *stopped {
                    return;
                }
                let now = Instant::now();
                if now >= next {
                    break;
                }
                stopped = stop.wake.wait_timeout(stopped, next - now).unwrap_or_else(PoisonError::into_inner).0;
            }
        }
        // The next tick keeps to the schedule; after a stall (a suspended machine) it restarts.
        next = (next + plan.interval).max(Instant::now());
        measured(&mut || {
            let now = plan.sources.read();
            let time_ms = crate::sys::now_ms();
            for (position, value) in samples(&before, &now, plan.sources.ticks_per_second) {
                if let Some(&id) = ids.get(position) {
                    batch.push((id, time_ms, value));
                }
            }
            sink(&mut batch);
            batch.clear();
            before = now;
        });
    }
}
