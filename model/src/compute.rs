//! An explicit pool of compute threads.
//!
//! Inference never uses rayon's global pool: the caller says how many threads a model may use
//! (the worker pins it), and every burn-ndarray op and hand-written kernel runs inside
//! [`Compute::install`]. A [`Compute`] is cheap to share (`Arc` inside) and safe to use from
//! many threads at once.

use std::sync::Arc;

/// The device every model of this crate runs on: burn-ndarray on the CPU.
///
/// burn 0.22 deprecates burn-ndarray in favour of its new `flex` CPU backend; the product fixes
/// burn-ndarray for now, and the production hot paths (fused encoder, VAD kernels) do not go
/// through burn ops anyway. Moving the reference modules to `Device::flex()` is a one-line change.
#[allow(deprecated)]
pub fn device() -> burn::tensor::Device {
    burn::tensor::Device::ndarray()
}

/// A fixed-size pool of compute threads.
#[derive(Debug, Clone)]
pub struct Compute {
    pool: Arc<rayon::ThreadPool>,
}

/// The pool could not be created.
#[derive(Debug, thiserror::Error)]
#[error("cannot start {threads} compute threads: {source}")]
pub struct ComputeError {
    threads: usize,
    source: rayon::ThreadPoolBuildError,
}

impl Compute {
    /// A pool with exactly `threads` threads (at least 1).
    pub fn new(threads: usize) -> Result<Self, ComputeError> {
        let threads = threads.max(1);
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(threads)
            .thread_name(|i| format!("diglett-compute-{i}"))
            .build()
            .map_err(|source| ComputeError { threads, source })?;
        Ok(Self {
            pool: Arc::new(pool),
        })
    }

    /// Number of threads in the pool.
    pub fn threads(&self) -> usize {
        self.pool.current_num_threads()
    }

    /// Runs `f` on the pool; any rayon parallelism inside `f` stays on these threads.
    pub fn install<R: Send>(&self, f: impl FnOnce() -> R + Send) -> R {
        self.pool.install(f)
    }
}
