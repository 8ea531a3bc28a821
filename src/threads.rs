//! Worker threads: what `--threads` means for a command. Results never
//! depend on the thread count; only the wall time does.

use miette::{miette, Result};

/// The worker count a batch is split for: `--threads` if given, else rayon's
/// (all cores).
pub fn workers(flag: Option<usize>) -> usize {
    flag.unwrap_or_else(rayon::current_num_threads)
}

/// `joule run --threads N`: sizes rayon's global pool to `N` workers (at
/// least one; a warning if it cannot), before anything runs on it, and
/// returns [`workers`].
pub fn global(flag: Option<usize>) -> usize {
    if let Some(t) = flag {
        if let Err(e) = rayon::ThreadPoolBuilder::new()
            .num_threads(t.max(1))
            .build_global()
        {
            eprintln!("warning: cannot size the thread pool: {e}");
        }
    }
    workers(flag)
}

/// A pool of exactly `threads` workers (`joule bench` measures on one per
/// thread count).
pub fn pool(threads: usize) -> Result<rayon::ThreadPool> {
    rayon::ThreadPoolBuilder::new()
        .num_threads(threads)
        .build()
        .map_err(|e| miette!("cannot start {threads} worker threads: {e}"))
}
