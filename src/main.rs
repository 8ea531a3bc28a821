//! The `joule` command-line interface: the subcommands, each dispatched to
//! the module that owns its flags and does its work, and the exit code.
//!
//! Shared pieces: `args` (flag groups used by several subcommands), `load`
//! (compiling a scene for a command), `files` (reading and writing files),
//! `threads` (`--threads`), `progress` (progress bars).

mod args;
mod bench;
mod check;
mod fmt;
mod import;
mod load;
mod new;
mod optimize;
mod planner;
mod plot;
mod progress;
mod repl;
mod run;
mod threads;
mod train;

use clap::{CommandFactory, FromArgMatches, Parser, Subcommand};
use joule::{files, viewer};
use std::process::ExitCode;

/// Joule: a differentiable physics compiler.
#[derive(Parser)]
#[command(name = "joule", version, about, long_about = None)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

// The subcommands, in the order `joule --help` lists them. Each one's
// description, examples and flags are on its `...Args` struct.
#[derive(Subcommand)]
enum Command {
    Check(check::CheckArgs),
    Import(import::ImportArgs),
    /// Print a shell completion script (bash, zsh, fish, elvish, powershell).
    #[command(
        after_help = "Example:\n  joule completions bash > ~/.local/share/bash-completion/completions/joule"
    )]
    Completions {
        /// The shell.
        shell: clap_complete::Shell,
    },
    Fmt(fmt::FmtArgs),
    Repl(repl::ReplArgs),
    New(new::NewArgs),
    Run(run::RunArgs),
    Plot(plot::PlotArgs),
    Optimize(optimize::OptimizeArgs),
    Train(train::TrainArgs),
    Imitate(train::ImitateArgs),
    Grad(run::GradArgs),
    Bench(bench::BenchArgs),
}

/// Stack for the compiler thread: deeply nested (but valid) input must not overflow.
const COMPILER_STACK: usize = 256 << 20;

/// The command line's grammar: the derived subcommands and flags, with the
/// rules they all share (`args::grammar`).
fn grammar() -> clap::Command {
    args::grammar(Cli::command())
}

/// A closed standard output (`joule run --json | head`) ends the process
/// quietly, as it ends other Unix filters: by SIGPIPE's default action (the
/// shell reports exit status 141). Rust's runtime ignores SIGPIPE, which
/// would turn the next write to the closed pipe into a panic (exit 101).
#[cfg(unix)]
fn quiet_on_broken_pipe() {
    // SAFETY: called first in `main`, before any other thread exists;
    // restoring a signal's default disposition touches no Rust state.
    unsafe {
        libc::signal(libc::SIGPIPE, libc::SIG_DFL);
    }
}

fn main() -> ExitCode {
    #[cfg(unix)]
    quiet_on_broken_pipe();
    let argv = args::negative_exponents(std::env::args_os());
    let cli = Cli::from_arg_matches(&grammar().get_matches_from(argv))
        .unwrap_or_else(|e| e.format(&mut grammar()).exit());
    std::thread::Builder::new()
        .stack_size(COMPILER_STACK)
        .spawn(move || dispatch(cli.command))
        .expect("spawning the compiler thread")
        .join()
        .unwrap_or(ExitCode::from(101))
}

/// Runs a subcommand.
fn dispatch(command: Command) -> ExitCode {
    match command {
        Command::Check(a) => check::check(a),
        Command::Import(a) => import::import(a),
        Command::Completions { shell } => {
            clap_complete::generate(shell, &mut grammar(), "joule", &mut std::io::stdout());
            ExitCode::SUCCESS
        }
        Command::Fmt(a) => fmt::fmt(a),
        Command::Repl(a) => repl::repl(a),
        Command::New(a) => finish(new::new(a)),
        Command::Run(a) => finish(run::run(a)),
        Command::Plot(a) => finish(plot::plot(&a)),
        Command::Optimize(a) => finish(optimize::optimize(a)),
        Command::Train(a) => finish(train::train(a)),
        Command::Imitate(a) => finish(train::imitate(a)),
        Command::Grad(a) => finish(run::grad(a)),
        Command::Bench(a) => finish(bench::bench(a)),
    }
}

/// Reports an error as a miette diagnostic; the exit code is 1.
fn finish(result: miette::Result<()>) -> ExitCode {
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("{e:?}");
            ExitCode::FAILURE
        }
    }
}
