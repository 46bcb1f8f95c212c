//! The library's only `unsafe` code: calls into the C library (`statvfs`, `sysconf`,
//! `clock_gettime`) and into NVIDIA's NVML, loaded at run time with `dlopen` so that a machine
//! without the driver builds and runs. Each call is wrapped in a safe function or type here;
//! nothing else in the crate may use `unsafe` (the workspace denies it).
#![allow(unsafe_code)]

use std::ffi::{CStr, CString, c_int, c_uint, c_ulonglong, c_void};
use std::os::unix::ffi::OsStrExt;
use std::path::Path;
use std::time::Duration;

/// Bytes an unprivileged user may still write on the filesystem holding `path`.
pub(crate) fn free_bytes(path: &Path) -> std::io::Result<u64> {
    let path = CString::new(path.as_os_str().as_bytes()).map_err(|_| std::io::ErrorKind::InvalidInput)?;
    let mut stats = std::mem::MaybeUninit::<libc::statvfs>::uninit();
    // SAFETY: `path` is NUL-terminated and outlives the call; `stats` is writable memory of the
    // type the call fills, read below only when the call succeeded.
    if unsafe { libc::statvfs(path.as_ptr(), stats.as_mut_ptr()) } != 0 {
        return Err(std::io::Error::last_os_error());
    }
    // SAFETY: statvfs returned 0, so it filled `stats`.
    let stats = unsafe { stats.assume_init() };
    // The field types are 32 bits wide on some targets.
    #[allow(clippy::useless_conversion)]
    Ok(u64::from(stats.f_bavail).saturating_mul(u64::from(stats.f_frsize)))
}

/// The clock ticks per second of `/proc`'s CPU times (`USER_HZ`, 100 on common targets).
pub(crate) fn clock_ticks_per_second() -> u64 {
    // SAFETY: sysconf only reads a configuration value.
    let ticks = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    u64::try_from(ticks).ok().filter(|&ticks| ticks > 0).unwrap_or(100)
}

/// The CPU time the calling thread has used.
pub(crate) fn thread_cpu_time() -> Duration {
    let mut time = libc::timespec { tv_sec: 0, tv_nsec: 0 };
    // SAFETY: `time` is a valid timespec for the call to fill; on failure it stays zero.
    unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &raw mut time) };
    Duration::new(u64::try_from(time.tv_sec).unwrap_or(0), u32::try_from(time.tv_nsec).unwrap_or(0))
}

/// NVML's status code; 0 is success.
type Status = c_int;
/// NVML's opaque device handle (`nvmlDevice_t`).
type Device = *mut c_void;
/// `NVML_TEMPERATURE_GPU`: the GPU die's sensor.
const TEMPERATURE_GPU: c_int = 0;

/// `nvmlUtilization_t`.
#[repr(C)]
#[derive(Default)]
struct Utilization {
    gpu: c_uint,
    memory: c_uint,
}

/// `nvmlMemory_t` (version 1).
#[repr(C)]
#[derive(Default)]
struct Memory {
    total: c_ulonglong,
    free: c_ulonglong,
    used: c_ulonglong,
}

/// The NVML functions used, with the signatures of `nvml.h`.
struct Functions {
    shutdown: unsafe extern "C" fn() -> Status,
    utilization: unsafe extern "C" fn(Device, *mut Utilization) -> Status,
    memory: unsafe extern "C" fn(Device, *mut Memory) -> Status,
    temperature: unsafe extern "C" fn(Device, c_int, *mut c_uint) -> Status,
    power: unsafe extern "C" fn(Device, *mut c_uint) -> Status,
}

/// A library opened with `dlopen`, closed when dropped.
struct Library(*mut c_void);

impl Library {
    fn open(name: &str) -> Result<Library, String> {
        let c_name = CString::new(name).map_err(|_| format!("{name:?} is not a library name"))?;
        // SAFETY: a NUL-terminated name. Loading runs the library's initialisers: NVML's are a
        // driver library's, made to be loaded this way.
        let handle = unsafe { libc::dlopen(c_name.as_ptr(), libc::RTLD_NOW | libc::RTLD_LOCAL) };
        if handle.is_null() { Err(format!("{name} not found")) } else { Ok(Library(handle)) }
    }

    /// The function `symbol`, as the function pointer type `F` the caller declares for it.
    ///
    /// # Safety
    ///
    /// `F` must be an `unsafe extern "C" fn` type matching the C declaration of `symbol`.
    unsafe fn function<F: Copy>(&self, symbol: &CStr) -> Result<F, String> {
        // SAFETY: the handle is live (closed only on drop) and the name NUL-terminated.
        let pointer = unsafe { libc::dlsym(self.0, symbol.as_ptr()) };
        if pointer.is_null() || size_of::<F>() != size_of::<*mut c_void>() {
            return Err(format!("it has no {}", symbol.to_string_lossy()));
        }
        // SAFETY: `F` is a function pointer type of this symbol (the caller's promise), of a
        // pointer's size (checked).
        Ok(unsafe { std::mem::transmute_copy::<*mut c_void, F>(&pointer) })
    }
}

impl Drop for Library {
    fn drop(&mut self) {
        // SAFETY: the handle came from dlopen and is closed once; no function of it is called
        // after (they live in `Nvml`, which drops its `Library` last).
        unsafe { libc::dlclose(self.0) };
    }
}

/// One GPU's reading; a field NVML would not give is `None`.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub(crate) struct GpuReading {
    pub(crate) utilization_percent: Option<f64>,
    pub(crate) memory_used_mib: Option<f64>,
    pub(crate) temperature_c: Option<f64>,
    pub(crate) power_w: Option<f64>,
}

/// NVML, initialised, with the handles of the machine's GPUs. Shut down when dropped.
pub(crate) struct Nvml {
    functions: Functions,
    /// By NVML index; a GPU whose handle NVML refused is `None` (it has no readings).
    devices: Vec<Option<Device>>,
    #[allow(dead_code, reason = "held so that NVML stays loaded until its shutdown; closed after it")]
    library: Library,
}

// SAFETY: NVML's functions are thread-safe (NVML API reference, "Thread safety"), and the device
// handles stay valid until `nvmlShutdown`, which only `drop` calls; the value moves to the
// sampler thread and is used there alone.
unsafe impl Send for Nvml {}

impl Nvml {
    /// Loads `library` (`libnvidia-ml.so.1`), initialises NVML and takes each GPU's handle.
    /// The error says why not, in words for the run's note.
    pub(crate) fn open(library: &str) -> Result<Nvml, String> {
        let loaded = Library::open(library)?;
        let why = |reason: String| format!("{library}: {reason}");
        // SAFETY (each `function` call): the types are those of nvml.h's declarations.
        let init: unsafe extern "C" fn() -> Status = unsafe { loaded.function(c"nvmlInit_v2") }.map_err(why)?;
        let count: unsafe extern "C" fn(*mut c_uint) -> Status =
            unsafe { loaded.function(c"nvmlDeviceGetCount_v2") }.map_err(why)?;
        let handle: unsafe extern "C" fn(c_uint, *mut Device) -> Status =
            unsafe { loaded.function(c"nvmlDeviceGetHandleByIndex_v2") }.map_err(why)?;
        let functions = Functions {
            shutdown: unsafe { loaded.function(c"nvmlShutdown") }.map_err(why)?,
            utilization: unsafe { loaded.function(c"nvmlDeviceGetUtilizationRates") }.map_err(why)?,
            memory: unsafe { loaded.function(c"nvmlDeviceGetMemoryInfo") }.map_err(why)?,
            temperature: unsafe { loaded.function(c"nvmlDeviceGetTemperature") }.map_err(why)?,
            power: unsafe { loaded.function(c"nvmlDeviceGetPowerUsage") }.map_err(why)?,
        };
        // SAFETY: nvmlInit_v2 takes no argument; a success is matched by the shutdown in `drop`.
        let status = unsafe { init() };
        if status != 0 {
            return Err(format!("NVML did not start: {}", describe(status)));
        }
        // From here on, dropping `nvml` shuts NVML down.
        let mut nvml = Nvml { functions, devices: Vec::new(), library: loaded };
        let mut gpus: c_uint = 0;
        // SAFETY: NVML is initialised; `gpus` is a valid out-pointer.
        let status = unsafe { count(&raw mut gpus) };
        if status != 0 {
            return Err(format!("NVML could not count the GPUs: {}", describe(status)));
        }
        for index in 0..gpus {
            let mut device: Device = std::ptr::null_mut();
            // SAFETY: NVML is initialised, `index` is below its count, `device` a valid out-pointer.
            let status = unsafe { handle(index, &raw mut device) };
            nvml.devices.push((status == 0 && !device.is_null()).then_some(device));
        }
        if nvml.devices.is_empty() {
            return Err("NVML reports no GPU".into());
        }
        Ok(nvml)
    }

    /// How many GPUs NVML reports (named `gpu0`, `gpu1`, … by NVML index).
    pub(crate) fn gpus(&self) -> usize {
        self.devices.len()
    }

    /// GPU `index`'s utilisation, memory used, temperature and power draw.
    pub(crate) fn read(&self, index: usize) -> GpuReading {
        let Some(Some(device)) = self.devices.get(index).copied() else { return GpuReading::default() };
        let functions = &self.functions;
        let mut utilization = Utilization::default();
        let mut memory = Memory::default();
        let (mut celsius, mut milliwatts): (c_uint, c_uint) = (0, 0);
        // SAFETY (each call): NVML is initialised (until drop), `device` is one of its handles,
        // and every out-pointer is valid for the call; a value is used only when the call succeeded.
        let ok = |status: Status| status == 0;
        #[allow(clippy::cast_precision_loss)]
        GpuReading {
            utilization_percent: ok(unsafe { (functions.utilization)(device, &raw mut utilization) })
                .then(|| f64::from(utilization.gpu)),
            memory_used_mib: ok(unsafe { (functions.memory)(device, &raw mut memory) })
                .then(|| memory.used as f64 / super::MIB),
            temperature_c: ok(unsafe { (functions.temperature)(device, TEMPERATURE_GPU, &raw mut celsius) })
                .then(|| f64::from(celsius)),
            power_w: ok(unsafe { (functions.power)(device, &raw mut milliwatts) })
                .then(|| f64::from(milliwatts) / 1000.0),
        }
    }
}

/// An NVML status in words, for the run's note: the causes seen on machines without a usable
/// GPU by name (values of `nvmlReturn_t`), the others by number.
fn describe(status: Status) -> String {
    let cause = match status {
        4 => "no permission",
        9 => "the NVIDIA driver is not loaded",
        15 => "the GPU is lost",
        18 => "the driver and libnvidia-ml versions differ",
        _ => return format!("NVML error {status}"),
    };
    format!("{cause} (NVML error {status})")
}

impl Drop for Nvml {
    fn drop(&mut self) {
        // SAFETY: NVML was initialised by `open`; its handles are not used after this.
        unsafe { (self.functions.shutdown)() };
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_library_that_is_not_nvml_is_refused_with_the_reason() {
        // dlopen and dlsym for real, on a library every Linux machine has.
        let error = Nvml::open("libc.so.6").err().expect("libc is not NVML");
        assert_eq!(error, "libc.so.6: it has no nvmlInit_v2");
        let error = Nvml::open("libnvidia-ml-absent.so.9").err().expect("no such library");
        assert_eq!(error, "libnvidia-ml-absent.so.9 not found");
    }

    #[test]
    fn nvml_statuses_read_as_causes() {
        assert_eq!(describe(9), "the NVIDIA driver is not loaded (NVML error 9)");
        assert_eq!(describe(999), "NVML error 999");
    }

    #[test]
    fn free_space_and_cpu_clocks_are_read() {
        assert!(free_bytes(Path::new("/")).is_ok());
        assert!(free_bytes(Path::new("/no/such/dir")).is_err());
        assert!(clock_ticks_per_second() > 0);
        let start = thread_cpu_time();
        let mut x = 0u64;
        for i in 0..2_000_000u64 {
            x = std::hint::black_box(x.wrapping_add(i));
        }
        assert!(thread_cpu_time() > start, "{x}");
    }
}
