//! The `joule` command-line interface.

use clap::{Parser, Subcommand, ValueEnum};
use joule_compiler::{check_path, Emit};
use std::io::IsTerminal;
use std::path::PathBuf;
use std::process::ExitCode;

/// Joule: a differentiable physics compiler.
#[derive(Parser)]
#[command(name = "joule", version, about, long_about = None)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Parse and resolve scene files; report every error, or print an intermediate form.
    #[command(
        after_help = "Examples:\n  joule check scenes/hanging_cloth.joule\n  joule check scenes/*.joule\n  joule check scenes/pendulum.joule --emit model"
    )]
    Check {
        /// Scene files to check.
        #[arg(required = true)]
        files: Vec<PathBuf>,
        /// Print an intermediate form of each file to standard output.
        #[arg(long, value_enum)]
        emit: Option<EmitArg>,
        /// Colour in diagnostics.
        #[arg(long, value_enum, default_value_t = ColorArg::Auto)]
        color: ColorArg,
        /// Print compile time per pass to standard error.
        #[arg(long)]
        timings: bool,
    },
}

#[derive(Clone, Copy, ValueEnum)]
enum EmitArg {
    /// The parsed syntax tree.
    Ast,
    /// The resolved model: DOF layout, params, controls, templates and instances.
    Model,
}

#[derive(Clone, Copy, PartialEq, Eq, ValueEnum)]
enum ColorArg {
    Auto,
    Always,
    Never,
}

/// Stack for the compiler thread: deeply nested (but valid) input must not overflow.
const COMPILER_STACK: usize = 256 << 20;

fn main() -> ExitCode {
    let cli = Cli::parse();
    std::thread::Builder::new()
        .stack_size(COMPILER_STACK)
        .spawn(move || run(cli))
        .expect("spawning the compiler thread")
        .join()
        .unwrap_or(ExitCode::from(101))
}

fn run(cli: Cli) -> ExitCode {
    match cli.command {
        Command::Check {
            files,
            emit,
            color,
            timings,
        } => {
            let color = match color {
                ColorArg::Always => true,
                ColorArg::Never => false,
                ColorArg::Auto => std::io::stderr().is_terminal(),
            };
            let mut failed = false;
            for file in &files {
                let checked = match check_path(file) {
                    Ok(c) => c,
                    Err(e) => {
                        eprintln!("error: cannot read `{}`: {e}", file.display());
                        failed = true;
                        continue;
                    }
                };
                if !checked.diagnostics.is_empty() {
                    eprint!("{}", checked.render_diagnostics(color, 100));
                }
                if timings {
                    for (pass, t) in &checked.timings {
                        eprintln!("{pass:>10} {:>9.3} ms", t.as_secs_f64() * 1e3);
                    }
                }
                if !checked.ok() {
                    failed = true;
                    let errors = checked.diagnostics.iter().filter(|d| d.is_error()).count();
                    eprintln!(
                        "{}: {errors} error{}",
                        file.display(),
                        if errors == 1 { "" } else { "s" }
                    );
                    continue;
                }
                let what = emit.map(|e| match e {
                    EmitArg::Ast => Emit::Ast,
                    EmitArg::Model => Emit::Model,
                });
                match what.and_then(|w| checked.emit(w)) {
                    Some(text) => print!("{text}"),
                    None => eprintln!("{}: ok", file.display()),
                }
            }
            if failed {
                ExitCode::FAILURE
            } else {
                ExitCode::SUCCESS
            }
        }
    }
}
