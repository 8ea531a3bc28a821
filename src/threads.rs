//! Worker threads: what `--threads` means for a command. Results never
//! depend on the thread count; only the wall time does.

use miette::{miette, Result};

/// Most worker threads a command starts: far more than any machine's cores
/// (more threads than cores only add overhead), few enough that starting
/// them takes no noticeable time.
pub const MAX_THREADS: usize = 1024;

/// Checks a thread count given as `flag` (`--threads`): 1 to [`MAX_THREADS`].
pub fn check(flag: &str, threads: usize) -> Result<()> {
    if (1..=MAX_THREADS).contains(&threads) {
        return Ok(());
    }
    Err(miette!(
        help = format!(
            "give 1 to {MAX_THREADS} threads; more than this machine's {} cores only add overhead (leave `{flag}` out to use them all)",
            std::thread::available_parallelism().map_or(1, |n| n.get())
        ),
        "`{flag} {threads}` is not a thread count from 1 to {MAX_THREADS}"
    ))
}

/// The worker count a batch is split for: `--threads` if given, else rayon's
/// (all cores).
pub fn workers(flag: Option<usize>) -> usize {
    flag.unwrap_or_else(rayon::current_num_threads)
}

/// `joule run --threads N`: checks `N` ([`check`]), sizes rayon's global
/// pool to `N` workers (a warning if it cannot), before anything runs on
/// it, and returns [`workers`].
pub fn global(flag: Option<usize>) -> Result<usize> {
    if let Some(t) = flag {
        check("--threads", t)?;
        if let Err(e) = rayon::ThreadPoolBuilder::new()
            .num_threads(t)
            .build_global()
        {
            eprintln!("warning: cannot size the thread pool: {e}");
        }
    }
    Ok(workers(flag))
}

/// A pool of exactly `threads` workers (`joule bench` measures on one per
/// thread count).
pub fn pool(threads: usize) -> Result<rayon::ThreadPool> {
    rayon::ThreadPoolBuilder::new()
        .num_threads(threads)
        .build()
        .map_err(|e| miette!("cannot start {threads} worker threads: {e}"))
}
