//! `joule check`: parse and resolve scene files, report every diagnostic (as
//! rendered reports or JSON), print an intermediate form or compile timings.

use crate::args::{BackendArg, ColorArg};
use clap::ValueEnum;
use joule_compiler::{check_path, Checked, Emit};
use serde_json::{json, Value};
use std::path::PathBuf;
use std::process::ExitCode;

/// Parse and resolve scene files; report every error, or print an intermediate form.
#[derive(clap::Args)]
#[command(
    after_help = "Examples:\n  joule check scenes/hanging_cloth.joule\n  joule check scenes/*.joule\n  joule check scenes/pendulum.joule --emit model"
)]
pub struct CheckArgs {
    /// Scene files to check.
    #[arg(required = true)]
    files: Vec<PathBuf>,
    /// Print an intermediate form of each file to standard output.
    #[arg(long, value_enum)]
    emit: Option<EmitArg>,
    /// Colour in diagnostics.
    #[arg(long, value_enum, default_value_t = ColorArg::Auto)]
    color: ColorArg,
    /// Print compile time per pass to standard error (compiles kernels too).
    #[arg(long)]
    timings: bool,
    /// Kernel backend used with `--timings`.
    #[arg(long, value_enum, default_value_t = BackendArg::Jit)]
    backend: BackendArg,
    /// One JSON object per file on standard output: `file`, `ok`, `diagnostics`
    /// (severity, code, message, line, column, labels, help).
    #[arg(long, conflicts_with = "emit")]
    json: bool,
    /// Print nothing but diagnostics.
    #[arg(long)]
    quiet: bool,
}

/// `--emit`: an intermediate form.
#[derive(Clone, Copy, ValueEnum)]
enum EmitArg {
    /// The parsed syntax tree.
    Ast,
    /// The resolved model: DOF layout, params, controls, templates and instances.
    Model,
    /// Scalar IR of the energy, dissipation and output kernels.
    Ir,
    /// Scalar IR of the derivative kernels (gradients, HVPs, Hessian blocks, VJPs).
    GradIr,
}

impl From<EmitArg> for Emit {
    fn from(e: EmitArg) -> Emit {
        match e {
            EmitArg::Ast => Emit::Ast,
            EmitArg::Model => Emit::Model,
            EmitArg::Ir => Emit::Ir,
            EmitArg::GradIr => Emit::GradIr,
        }
    }
}

/// Checks each file; exit 1 if any has an error (or cannot be read).
pub fn check(o: CheckArgs) -> ExitCode {
    let color = o.color.enabled();
    let mut failed = false;
    for file in &o.files {
        let checked = match check_path(file) {
            Ok(c) => c,
            Err(e) => {
                if o.json {
                    let d =
                        json!({"severity": "error", "code": "joule::io", "message": e.to_string()});
                    println!(
                        "{}",
                        json!({"scene": file, "ok": false, "diagnostics": [d]})
                    );
                } else {
                    let help = "check the scene file's path (relative to here)";
                    eprintln!("{:?}", crate::files::read_error(file, &e, help));
                }
                failed = true;
                continue;
            }
        };
        failed |= !checked.ok();
        if o.json {
            println!(
                "{}",
                json!({"scene": file, "ok": checked.ok(), "diagnostics": diagnostics_json(&checked)})
            );
            continue;
        }
        if !checked.diagnostics.is_empty() {
            eprint!("{}", checked.render_diagnostics(color, 100));
        }
        if !checked.ok() {
            let errors = checked.diagnostics.iter().filter(|d| d.is_error()).count();
            let s = if errors == 1 { "" } else { "s" };
            eprintln!("{}: {errors} error{s}", file.display());
            continue;
        }
        if o.timings {
            let backend = o.backend.into();
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
        match o.emit.and_then(|w| checked.emit(w.into())) {
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
