//! The pass list. Each pass is a module; this file is the whole pipeline:
//!
//! 1. decode   bytes to UTF-8 text (binary input is a diagnostic)
//! 2. parse    `joule_grammar::parse`: text to AST, all syntax errors
//! 3. resolve  [`crate::resolve`]: AST to [`Model`], all semantic errors
//!    (only when the file parsed: syntax errors are reported first)
//! 4. ir       [`crate::ir`] via [`crate::kernels`]: terms lowered to scalar IR
//! 5. diff     [`crate::diff`]: derivative kernels as IR
//! 6. codegen  [`crate::codegen`]: Cranelift machine code (or the
//!    [`crate::interp`] reference interpreter)
//!
//! Passes 4-6 run in [`crate::compiled::CompiledScene::new`]. Each pass's
//! output has a text dump (`--emit ast|model|ir|grad-ir`) used by the
//! snapshot tests.

use crate::model::Model;
use crate::resolve;
use joule_grammar::ast::{FileId, SceneFile, Span};
use joule_grammar::{Diagnostic, SourceMap};
use std::path::Path;
use std::time::{Duration, Instant};

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
    /// Wall time per pass.
    pub timings: Vec<(&'static str, Duration)>,
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

/// Runs the front end on a file. I/O errors (missing file) are returned as such.
pub fn check_path(path: &Path) -> std::io::Result<Checked> {
    let bytes = std::fs::read(path)?;
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

fn check_bytes(name: &str, path: Option<&Path>, bytes: &[u8]) -> Checked {
    let mut sources = SourceMap::new();
    let mut timings = vec![];
    let t = Instant::now();
    let text = crate::decode_source(bytes);
    timings.push(("decode", t.elapsed()));
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
    let t = Instant::now();
    let (ast, mut diagnostics) = joule_grammar::parse(main, &text);
    timings.push(("parse", t.elapsed()));
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
    let t = Instant::now();
    let (model, resolve_diags) = resolve::resolve(&mut sources, main, &ast);
    timings.push(("resolve", t.elapsed()));
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
