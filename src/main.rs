//! The `joule` command-line interface: the subcommands, each dispatched to
//! the module that owns its flags and does its work, and the exit code.
//!
//! Shared pieces: `args` (flag groups used by several subcommands), `load`
//! (compiling a scene for a command), `files` (reading and writing files),
//! `threads` (`--threads`), `progress` (progress bars).

mod args;
mod bench;
mod check;
mod files;
mod fmt;
mod import;
mod load;
mod new;
mod optimize;
mod plot;
mod progress;
mod repl;
mod run;
mod threads;
mod train;
mod viewer;

use clap::{Parser, Subcommand};
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

fn main() -> ExitCode {
    let cli = Cli::parse();
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
            use clap::CommandFactory;
            clap_complete::generate(shell, &mut Cli::command(), "joule", &mut std::io::stdout());
            ExitCode::SUCCESS
        }
        Command::Fmt(a) => fmt::fmt(a),
        Command::Repl(a) => repl::repl(a),
        Command::New(a) => new::new(a),
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
