//! `joule fmt`: rewrites scene files in the canonical layout (see
//! `joule_grammar::format`), or checks that they already are.

use joule_grammar::{format::format_source, SourceMap};
use std::path::PathBuf;
use std::process::ExitCode;

/// What `joule fmt` does with the formatted text.
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// Rewrite files that change (atomically).
    Write,
    /// Change nothing; exit 1 if a file is not formatted.
    Check,
    /// Print the formatted text to standard output.
    Stdout,
}

/// Formats each file; reports syntax errors as diagnostics and leaves those files untouched.
pub fn fmt(files: &[PathBuf], mode: Mode, color: bool, quiet: bool) -> ExitCode {
    let mut failed = false;
    for path in files {
        let text = match std::fs::read(path).map(String::from_utf8) {
            Ok(Ok(t)) => t,
            Ok(Err(_)) => {
                eprintln!("error: `{}` is not UTF-8 text", path.display());
                failed = true;
                continue;
            }
            Err(e) => {
                eprintln!("error: cannot read `{}`: {e}", path.display());
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
                match crate::run::write_atomically(path, |w| {
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
