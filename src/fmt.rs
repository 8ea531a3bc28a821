//! `joule fmt`: rewrites scene files in the canonical layout (see
//! `joule_grammar::format`), or checks that they already are.

use crate::args::ColorArg;
use crate::files::write_atomically;
use joule_grammar::{format::format_source, SourceMap};
use std::path::PathBuf;
use std::process::ExitCode;

/// Format scene files canonically (in place), or check that they are.
#[derive(clap::Args)]
#[command(
    after_help = "Examples:\n  joule fmt scenes/*.joule\n  joule fmt --check scenes/*.joule     # exit 1 if a file would change\n  joule fmt --stdout my_robot.joule"
)]
pub struct FmtArgs {
    /// Scene files to format.
    #[arg(required = true)]
    files: Vec<PathBuf>,
    /// Change nothing; list the files that are not formatted and exit 1 if any.
    #[arg(long, conflicts_with = "stdout")]
    check: bool,
    /// Print the formatted text instead of rewriting the files.
    #[arg(long)]
    stdout: bool,
    /// Colour in diagnostics.
    #[arg(long, value_enum, default_value_t = ColorArg::Auto)]
    color: ColorArg,
    /// Print nothing but errors.
    #[arg(long)]
    quiet: bool,
}

/// What `joule fmt` does with the formatted text.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Mode {
    /// Rewrite files that change (atomically).
    Write,
    /// Change nothing; exit 1 if a file is not formatted.
    Check,
    /// Print the formatted text to standard output.
    Stdout,
}

/// Formats each file; reports syntax errors as diagnostics and leaves those files untouched.
pub fn fmt(a: FmtArgs) -> ExitCode {
    let mode = match (a.check, a.stdout) {
        (true, _) => Mode::Check,
        (_, true) => Mode::Stdout,
        _ => Mode::Write,
    };
    let (color, quiet) = (a.color.enabled(), a.quiet);
    let mut failed = false;
    for path in &a.files {
        let text = match crate::files::read_text(path, "check the scene file's path") {
            Ok(t) => t,
            Err(e) => {
                eprintln!("{e:?}");
                failed = true;
                continue;
            }
        };
        let mut sources = SourceMap::new();
        let id = sources.add(path.display().to_string(), Some(path), &text);
        let formatted = match format_source(id, &text) {
            Ok(f) => f,
            Err(diags) => {
                eprint!(
                    "{}",
                    joule_grammar::diag::render_all(&diags, &sources, color, 100)
                );
                eprintln!("{}: not formatted", path.display());
                failed = true;
                continue;
            }
        };
        match mode {
            Mode::Stdout => print!("{formatted}"),
            Mode::Check if formatted != text => {
                println!(
                    "{}: not formatted (run `joule fmt {}`)",
                    path.display(),
                    path.display()
                );
                failed = true;
            }
            Mode::Check => {}
            Mode::Write if formatted != text => {
                match write_atomically(path, |w| {
                    use std::io::Write;
                    w.write_all(formatted.as_bytes())
                }) {
                    Ok(()) if !quiet => println!("formatted {}", path.display()),
                    Ok(()) => {}
                    Err(e) => {
                        eprintln!("{e:?}");
                        failed = true;
                    }
                }
            }
            Mode::Write => {}
        }
    }
    if failed {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    }
}
