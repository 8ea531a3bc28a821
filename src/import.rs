//! `joule import`: an MJCF model to a Joule scene file, checked by the
//! compiler before anything is written.

use joule_compiler::{check_source, mjcf};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

/// Imports `model`, compiles the result, and prints it or writes it to `out`
/// (atomically: a temporary file renamed into place).
pub fn run(model: &Path, out: Option<&Path>, lenient: bool, color: bool) -> ExitCode {
    let (sources, imported) = match mjcf::import_path(model, lenient) {
        Ok(r) => r,
        Err(e) => {
            eprintln!("error: cannot read `{}`: {e}", model.display());
            return ExitCode::FAILURE;
        }
    };
    if !imported.diagnostics.is_empty() {
        eprint!(
            "{}",
            joule_grammar::diag::render_all(&imported.diagnostics, &sources, color, 100)
        );
    }
    let Some(text) = imported.text else {
        let errors = imported.diagnostics.iter().filter(|d| d.is_error()).count();
        eprintln!(
            "{}: {errors} error{}",
            model.display(),
            if errors == 1 { "" } else { "s" }
        );
        return ExitCode::FAILURE;
    };
    // The generated scene must compile; a failure here is an importer bug, reported as such.
    let name = out.map_or_else(|| model.with_extension("joule"), Path::to_path_buf);
    let checked = check_source(&name.display().to_string(), &text);
    if !checked.ok() {
        eprint!("{}", checked.render_diagnostics(color, 100));
        eprintln!("error: the imported scene does not compile (an importer bug; please report it)");
        return ExitCode::FAILURE;
    }
    match out {
        None => {
            print!("{text}");
            ExitCode::SUCCESS
        }
        Some(path) => match write_atomically(path, &text) {
            Ok(()) => {
                eprintln!("wrote {}", path.display());
                ExitCode::SUCCESS
            }
            Err(e) => {
                eprintln!("error: cannot write `{}`: {e}", path.display());
                ExitCode::FAILURE
            }
        },
    }
}

fn write_atomically(path: &Path, text: &str) -> std::io::Result<()> {
    let mut tmp = PathBuf::from(path);
    tmp.set_file_name(format!(
        ".{}.tmp",
        path.file_name()
            .map_or("out".into(), |f| f.to_string_lossy())
    ));
    std::fs::write(&tmp, text)?;
    std::fs::rename(&tmp, path).inspect_err(|_| {
        let _ = std::fs::remove_file(&tmp);
    })
}
