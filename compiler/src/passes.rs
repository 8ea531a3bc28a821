//! The pass list. Each pass is a call into the module named for it; this
//! file is the whole pipeline, from bytes to kernels, in order:
//!
//! | pass      | module                              | from -> to                           |
//! |-----------|-------------------------------------|--------------------------------------|
//! | `decode`  | [`crate::decode_source`]            | bytes -> UTF-8 text                  |
//! | `parse`   | [`joule_grammar::parse`]            | text -> AST, all syntax errors       |
//! | `resolve` | [`crate::resolve`]                  | AST -> [`Model`], semantic errors    |
//! | `ir`      | [`crate::kernels::lower()`]         | model -> buffer layout, scalar IR    |
//! | `diff`    | [`crate::kernels::differentiate()`] | IR -> derivative kernels' IR, guards |
//! | `codegen` | [`crate::codegen`]                  | kernel IR -> machine code            |
//!
//! The front end (decode, parse, resolve: [`check_path`], [`check_source`],
//! [`check_source_at`]) ends in a [`Checked`]; `resolve` runs only when the
//! file parsed (syntax errors are reported first). Callers may edit the model
//! (a precision override, tighter tolerances) before the back end ([`compile`]:
//! ir, diff, codegen; the [`crate::interp`] reference interpreter instead of
//! codegen for [`Backend::Interp`]) makes a [`CompiledScene`], with warnings
//! about the kernels ([`crate::kernels::Kernels::precision_warnings`]).
//!
//! Every pass is timed into one [`Timings`] list, in this order, under the
//! names in the table (`joule check --timings` and `joule bench` print them).
//! Every error and warning is a [`Diagnostic`]. Each pass's output has a
//! text dump (`--emit ast|model|ir|grad-ir`) used by the snapshot tests.

use crate::codegen;
use crate::compiled::{Backend, CompiledScene};
use crate::kernels;
use crate::model::Model;
use crate::resolve;
use joule_grammar::ast::{FileId, SceneFile, Span};
use joule_grammar::{Diagnostic, SourceMap};
use std::path::Path;
use std::time::{Duration, Instant};

/// Wall time per pass, in the order the passes ran.
pub type Timings = Vec<(&'static str, Duration)>;

/// Runs one pass, appending its wall time to `timings` under `pass`.
fn timed<R>(timings: &mut Timings, pass: &'static str, run: impl FnOnce() -> R) -> R {
    let t = Instant::now();
    let out = run();
    timings.push((pass, t.elapsed()));
    out
}

/// Intermediate forms that can be printed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Emit {
    /// The parsed AST (S-expressions).
    Ast,
    /// The resolved model.
    Model,
    /// The IR of the value kernels (energy, dissipation, outputs).
    Ir,
    /// The IR of the derivative kernels.
    GradIr,
}

/// The result of the front end on one scene.
pub struct Checked {
    /// All source files read (the scene and its `use`s).
    pub sources: SourceMap,
    /// The scene file's id.
    pub main: FileId,
    /// The AST of the scene file, if it decoded.
    pub ast: Option<SceneFile>,
    /// The model, if there were no errors.
    pub model: Option<Model>,
    /// Errors and warnings, in the order found.
    pub diagnostics: Vec<Diagnostic>,
    /// Wall time of the front end's passes.
    pub timings: Timings,
}

impl Checked {
    /// Whether the scene compiled without errors.
    pub fn ok(&self) -> bool {
        self.model.is_some() && !self.diagnostics.iter().any(Diagnostic::is_error)
    }

    /// The text form of an intermediate result, if that pass ran.
    pub fn emit(&self, what: Emit) -> Option<String> {
        self.emit_template(what, None)
    }

    /// Like [`Checked::emit`], with the IR forms narrowed to the loops of one
    /// template (energy, dissipation, or `outputs`) when `template` is given.
    pub fn emit_template(&self, what: Emit, template: Option<&str>) -> Option<String> {
        match what {
            Emit::Ast => self.ast.as_ref().map(|a| a.to_string()),
            Emit::Model => self.model.as_ref().map(crate::emit::model_text),
            Emit::Ir | Emit::GradIr => self.model.as_ref().map(|m| {
                use crate::kernels::KernelKind::*;
                let k = crate::kernels::build(m);
                match what {
                    Emit::Ir => crate::kernels::dump(&k, &[Energy, Dissipation, Outputs], template),
                    _ => crate::kernels::dump(
                        &k,
                        &[
                            Gradient,
                            GradHvp,
                            Hessian,
                            DissipationGradient,
                            DissipationGradHvp,
                            DissipationHessian,
                            Adjoint,
                            OutputsVjp,
                        ],
                        template,
                    ),
                }
            }),
        }
    }

    /// All diagnostics, rendered.
    pub fn render_diagnostics(&self, color: bool, width: usize) -> String {
        joule_grammar::diag::render_all(&self.diagnostics, &self.sources, color, width)
    }
}

/// Runs the front end on a file (an MJCF model, `.xml`, as the scene that
/// `use`s it). I/O errors (missing file) are returned as
/// such, and so are files that [`crate::read_input`] refuses (not a regular
/// file, larger than [`crate::MAX_INPUT_BYTES`]; [`crate::read_help`] has
/// the hint).
pub fn check_path(path: &Path) -> std::io::Result<Checked> {
    if crate::mjcf::is_mjcf_path(path) {
        // An MJCF model is the scene that `use`s it from its own folder.
        std::fs::metadata(path)?;
        let file = path
            .file_name()
            .map_or(String::new(), |f| f.to_string_lossy().into_owned());
        if file.contains(['"', '\n']) {
            return Err(std::io::Error::new(
                std::io::ErrorKind::InvalidInput,
                "an MJCF file name with a quote or a line break cannot be `use`d: rename the file",
            ));
        }
        // The scene's own name beside the model (not the model's: a file
        // that `use`s itself would be a cycle).
        let scene = path.with_file_name(format!("{file}.joule"));
        return Ok(check_source_at(&scene, &format!("use \"{file}\"\n")));
    }
    let bytes = crate::read_input(path, crate::MAX_INPUT_BYTES)?;
    let canonical = std::fs::canonicalize(path)?;
    Ok(check_bytes(
        &path.display().to_string(),
        Some(&canonical),
        &bytes,
    ))
}

/// Runs the front end on scene text (`use` paths resolve against the working directory).
pub fn check_source(name: &str, text: &str) -> Checked {
    check_bytes(name, None, text.as_bytes())
}

/// Runs the front end on scene text as if it were the file at `path` (its
/// `use` paths resolve against that file's folder): edited or extended text
/// of a file, as the REPL has.
pub fn check_source_at(path: &Path, text: &str) -> Checked {
    let canonical = std::fs::canonicalize(path).ok();
    check_bytes(
        &path.display().to_string(),
        canonical.as_deref().or(Some(path)),
        text.as_bytes(),
    )
}

/// Passes 1-3 (decode, parse, resolve) on a file's bytes.
fn check_bytes(name: &str, path: Option<&Path>, bytes: &[u8]) -> Checked {
    let mut sources = SourceMap::new();
    let mut timings = vec![];
    let text = timed(&mut timings, "decode", || crate::decode_source(bytes));
    let text = match text {
        Ok(text) => text,
        Err((at, why)) => {
            // Offsets stay valid: the prefix up to `at` is unchanged, NUL becomes one byte.
            let lossy = String::from_utf8_lossy(bytes).replace('\0', " ");
            let at = lossy.len().min(at);
            let main = sources.add(name, path, &lossy);
            let end = lossy[at..].chars().next().map_or(at, |c| at + c.len_utf8());
            let d = Diagnostic::error(
                "joule::invalid_utf8",
                format!("this is not a scene file: {why} at byte {at}"),
                Span::new(main, at, end),
                "here",
            )
            .with_help("scene files are UTF-8 text");
            return Checked {
                sources,
                main,
                ast: None,
                model: None,
                diagnostics: vec![d],
                timings,
            };
        }
    };
    let main = sources.add(name, path, &text);
    let (ast, mut diagnostics) = timed(&mut timings, "parse", || joule_grammar::parse(main, &text));
    if !diagnostics.is_empty() {
        // Items with syntax errors are missing from the AST; resolving the rest
        // would report every use of them as unknown. Syntax errors come first.
        return Checked {
            sources,
            main,
            ast: Some(ast),
            model: None,
            diagnostics,
            timings,
        };
    }
    let (model, resolve_diags) = timed(&mut timings, "resolve", || {
        resolve::resolve(&mut sources, main, &ast)
    });
    diagnostics.extend(resolve_diags);
    let model = model.filter(|_| !diagnostics.iter().any(Diagnostic::is_error));
    Checked {
        sources,
        main,
        ast: Some(ast),
        model,
        diagnostics,
        timings,
    }
}

/// Passes 4-6 (ir, diff, and codegen for [`Backend::Jit`]) on a resolved
/// model. `timings` are those of the passes that made the model (a
/// [`Checked`]'s, or empty), to which these passes' are appended. A code
/// generation failure is an error [`Diagnostic`] without a span (a bug in
/// Joule, not in the scene).
pub fn compile(
    model: Model,
    backend: Backend,
    mut timings: Timings,
) -> Result<CompiledScene, Diagnostic> {
    let lowered = timed(&mut timings, "ir", || kernels::lower(&model));
    let kernels = timed(&mut timings, "diff", || {
        kernels::differentiate(&model, lowered)
    });
    let jit = match backend {
        Backend::Interp => None,
        Backend::Jit => Some(timed(&mut timings, "codegen", || {
            codegen::compile(&kernels.kernels, model.settings.precision)
        })?),
    };
    let warnings = kernels.precision_warnings(model.settings.precision);
    Ok(CompiledScene::from_passes(
        model, kernels, jit, timings, warnings,
    ))
}
