//! `joule check`: parse and resolve scene files, report every diagnostic (as
//! rendered reports or JSON), print an intermediate form or compile timings.

use joule_compiler::compiled::Backend;
use joule_compiler::{check_path, Checked, Emit};
use serde_json::{json, Value};
use std::path::PathBuf;
use std::process::ExitCode;

/// What `joule check` prints besides diagnostics.
pub struct Options {
    /// An intermediate form to print.
    pub emit: Option<Emit>,
    /// Colour in rendered diagnostics.
    pub color: bool,
    /// Compile the kernels with this backend and print time per pass.
    pub timings: Option<Backend>,
    /// Diagnostics as JSON, one object per file.
    pub json: bool,
    /// No "ok" lines.
    pub quiet: bool,
}

/// Checks each file; exit 1 if any has an error (or cannot be read).
pub fn check(files: &[PathBuf], o: &Options) -> ExitCode {
    let mut failed = false;
    for file in files {
        let checked = match check_path(file) {
            Ok(c) => c,
            Err(e) => {
                if o.json {
                    let d =
                        json!({"severity": "error", "code": "joule::io", "message": e.to_string()});
                    println!("{}", json!({"file": file, "ok": false, "diagnostics": [d]}));
                } else {
                    eprintln!("error: cannot read `{}`: {e}", file.display());
                }
                failed = true;
                continue;
            }
        };
        failed |= !checked.ok();
        if o.json {
            println!(
                "{}",
                json!({"file": file, "ok": checked.ok(), "diagnostics": diagnostics_json(&checked)})
            );
            continue;
        }
        if !checked.diagnostics.is_empty() {
            eprint!("{}", checked.render_diagnostics(o.color, 100));
        }
        if !checked.ok() {
            let errors = checked.diagnostics.iter().filter(|d| d.is_error()).count();
            let s = if errors == 1 { "" } else { "s" };
            eprintln!("{}: {errors} error{s}", file.display());
            continue;
        }
        if let Some(backend) = o.timings {
            let model = checked.model.clone().expect("ok implies a model");
            let all = match joule_compiler::compile(model, backend, checked.timings.clone()) {
                Ok(c) => c.timings,
                Err(e) => {
                    eprintln!("{}", e.render_plain());
                    failed = true;
                    checked.timings.clone()
                }
            };
            let total: f64 = all.iter().map(|(_, t)| t.as_secs_f64()).sum();
            for (pass, t) in &all {
                eprintln!("{pass:>10} {:>9.3} ms", t.as_secs_f64() * 1e3);
            }
            eprintln!("{:>10} {:>9.3} ms", "total", total * 1e3);
        }
        match o.emit.and_then(|w| checked.emit(w)) {
            Some(text) => print!("{text}"),
            None if !o.quiet => eprintln!("{}: ok", file.display()),
            None => {}
        }
    }
    if failed {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    }
}

/// Every diagnostic of a check as JSON: 1-based lines and columns of each label.
fn diagnostics_json(checked: &Checked) -> Vec<Value> {
    checked
        .diagnostics
        .iter()
        .map(|d| {
            let labels: Vec<Value> = d
                .labels
                .iter()
                .map(|l| {
                    let (line, column) = checked.sources.line_col(l.span);
                    json!({
                        "file": checked.sources.get(l.span.file).name,
                        "line": line,
                        "column": column,
                        "length": l.span.len(),
                        "message": l.message,
                    })
                })
                .collect();
            json!({
                "severity": if d.is_error() { "error" } else { "warning" },
                "code": d.code,
                "message": d.message,
                "labels": labels,
                "help": d.help,
            })
        })
        .collect()
}
