//! Diagnostics: errors with labelled spans, a code and a hint, rendered by miette.
//!
//! Every stage of the compiler reports problems as [`Diagnostic`] values and keeps
//! going where it can, so a file's errors are all reported at once.

use crate::ast::{FileId, Span};
use miette::{GraphicalReportHandler, GraphicalTheme, LabeledSpan, NamedSource, SourceSpan};
use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// One source file of a compilation.
#[derive(Debug, Clone)]
pub struct SourceFile {
    /// The name shown in diagnostics (the path as given).
    pub name: String,
    /// The resolved path (used for `use` resolution), if the file came from disk.
    pub path: Option<PathBuf>,
    /// The text.
    pub text: Arc<str>,
}

/// All source files of a compilation, indexed by [`FileId`].
#[derive(Debug, Clone, Default)]
pub struct SourceMap {
    files: Vec<SourceFile>,
}

impl SourceMap {
    /// An empty map.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds a file and returns its id.
    pub fn add(&mut self, name: impl Into<String>, path: Option<&Path>, text: &str) -> FileId {
        self.files.push(SourceFile {
            name: name.into(),
            path: path.map(Path::to_path_buf),
            text: Arc::from(text),
        });
        (self.files.len() - 1) as FileId
    }

    /// The file with this id.
    pub fn get(&self, id: FileId) -> &SourceFile {
        &self.files[id as usize]
    }

    /// The source text under a span.
    pub fn snippet(&self, span: Span) -> &str {
        let text = &self.get(span.file).text;
        text.get(span.start as usize..span.end as usize)
            .unwrap_or("")
    }

    /// 1-based line and column of a span's start.
    pub fn line_col(&self, span: Span) -> (usize, usize) {
        let text = &self.get(span.file).text;
        let upto = &text[..(span.start as usize).min(text.len())];
        let line = upto.matches('\n').count() + 1;
        let col = upto.rsplit('\n').next().map_or(0, |l| l.chars().count()) + 1;
        (line, col)
    }
}

/// A labelled location in a diagnostic.
#[derive(Debug, Clone, PartialEq)]
pub struct Label {
    /// Where.
    pub span: Span,
    /// What to say there.
    pub message: String,
}

/// Error or warning.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Severity {
    /// Compilation fails.
    Error,
    /// Reported, compilation goes on.
    Warning,
}

/// A compiler message: code, text, labelled spans (the first is primary) and a hint.
#[derive(Debug, Clone, PartialEq)]
pub struct Diagnostic {
    /// Error or warning.
    pub severity: Severity,
    /// A stable code, e.g. `joule::unknown_name`.
    pub code: &'static str,
    /// The message, one sentence.
    pub message: String,
    /// Labelled spans; the first is the primary location.
    pub labels: Vec<Label>,
    /// What to do about it.
    pub help: Option<String>,
}

impl Diagnostic {
    /// A new error with a primary label.
    pub fn error(
        code: &'static str,
        message: impl Into<String>,
        span: Span,
        label: impl Into<String>,
    ) -> Self {
        Diagnostic {
            severity: Severity::Error,
            code,
            message: message.into(),
            labels: vec![Label {
                span,
                message: label.into(),
            }],
            help: None,
        }
    }

    /// A diagnostic about no place in the sources (a code generation
    /// failure, a constant of the compiled kernels): it has no labels, and
    /// its message and help say everything. [`Diagnostic::render`] shows it
    /// without a snippet; [`Diagnostic::render_plain`] needs no sources.
    pub fn without_span(
        severity: Severity,
        code: &'static str,
        message: impl Into<String>,
    ) -> Self {
        Diagnostic {
            severity,
            code,
            message: message.into(),
            labels: vec![],
            help: None,
        }
    }

    /// The same diagnostic as a warning.
    pub fn warning(mut self) -> Self {
        self.severity = Severity::Warning;
        self
    }

    /// Adds a hint.
    pub fn with_help(mut self, help: impl Into<String>) -> Self {
        self.help = Some(help.into());
        self
    }

    /// Adds a secondary label.
    pub fn with_label(mut self, span: Span, message: impl Into<String>) -> Self {
        self.labels.push(Label {
            span,
            message: message.into(),
        });
        self
    }

    /// The primary span (the default span when there is none, see
    /// [`Diagnostic::without_span`]).
    pub fn span(&self) -> Span {
        self.labels.first().map(|l| l.span).unwrap_or_default()
    }

    /// Whether this is an error (not a warning).
    pub fn is_error(&self) -> bool {
        self.severity == Severity::Error
    }

    /// Plain text without source snippets: `error: message` or `warning:
    /// message`, and the help on a line of its own. For diagnostics without
    /// a span where no [`SourceMap`] is at hand.
    pub fn render_plain(&self) -> String {
        let severity = match self.severity {
            Severity::Error => "error",
            Severity::Warning => "warning",
        };
        let mut out = format!("{severity}: {}", self.message);
        if let Some(help) = &self.help {
            out.push_str(&format!("\n  help: {help}"));
        }
        out
    }

    /// Renders with miette's graphical handler (`color` for terminals, `width`
    /// columns). A label on a source line longer than [`MAX_SNIPPET_LINE`]
    /// characters (a generated or minified file) is shown as `file:line:col`
    /// instead of a snippet: miette cannot lay such a line out.
    pub fn render(&self, sources: &SourceMap, color: bool, width: usize) -> String {
        if self
            .labels
            .iter()
            .any(|l| line_len(sources, l.span) > MAX_SNIPPET_LINE)
        {
            return self.render_located(sources);
        }
        let report = MietteView::new(self, sources);
        let theme = if color {
            GraphicalTheme::unicode()
        } else {
            GraphicalTheme::unicode_nocolor()
        };
        let handler = GraphicalReportHandler::new_themed(theme)
            .with_width(width)
            .with_links(false);
        let mut out = String::new();
        handler
            .render_report(&mut out, &report)
            .expect("rendering into a String cannot fail");
        out
    }
}

/// The longest source line a rendered diagnostic shows as a snippet.
pub const MAX_SNIPPET_LINE: usize = 1000;

/// Characters on the source line where `span` starts.
fn line_len(sources: &SourceMap, span: Span) -> usize {
    let text = &sources.get(span.file).text;
    let at = (span.start as usize).min(text.len());
    let start = text[..at].rfind('\n').map_or(0, |i| i + 1);
    let end = text[at..].find('\n').map_or(text.len(), |i| at + i);
    text[start..end].chars().count()
}

impl Diagnostic {
    /// The plain form with every label as `file:line:col: message` (for
    /// labels on lines too long for a snippet).
    fn render_located(&self, sources: &SourceMap) -> String {
        let severity = match self.severity {
            Severity::Error => "error",
            Severity::Warning => "warning",
        };
        let mut out = format!("{}\n  {severity}: {}", self.code, self.message);
        for l in &self.labels {
            let (line, col) = sources.line_col(l.span);
            let name = &sources.get(l.span.file).name;
            out.push_str(&format!("\n  at {name}:{line}:{col}: {}", l.message));
        }
        if let Some(help) = &self.help {
            out.push_str(&format!("\n  help: {help}"));
        }
        out.push('\n');
        out
    }
}

/// A diagnostic bound to its sources, in the shape miette renders.
struct MietteView {
    severity: Severity,
    code: &'static str,
    message: String,
    help: Option<String>,
    /// The primary file (none for a diagnostic without labels).
    source: Option<NamedSource<Arc<str>>>,
    labels: Vec<LabeledSpan>,
    related: Vec<MietteView>,
}

impl MietteView {
    fn new(d: &Diagnostic, sources: &SourceMap) -> Self {
        let primary = d.span().file;
        let to_labeled = |l: &Label, first: bool| {
            let span = SourceSpan::new((l.span.start as usize).into(), l.span.len());
            if first {
                LabeledSpan::new_primary_with_span(Some(l.message.clone()), span)
            } else {
                LabeledSpan::new_with_span(Some(l.message.clone()), span)
            }
        };
        let labels = d
            .labels
            .iter()
            .enumerate()
            .filter(|(_, l)| l.span.file == primary)
            .map(|(i, l)| to_labeled(l, i == 0))
            .collect();
        let related = d
            .labels
            .iter()
            .filter(|l| l.span.file != primary)
            .map(|l| {
                let other = sources.get(l.span.file);
                MietteView {
                    severity: Severity::Warning,
                    code: "joule::note",
                    message: format!("see {}", other.name),
                    help: None,
                    source: Some(NamedSource::new(other.name.clone(), other.text.clone())),
                    labels: vec![to_labeled(l, true)],
                    related: vec![],
                }
            })
            .collect();
        MietteView {
            severity: d.severity,
            code: d.code,
            message: d.message.clone(),
            help: d.help.clone(),
            source: d.labels.first().map(|_| {
                let file = sources.get(primary);
                NamedSource::new(file.name.clone(), file.text.clone())
            }),
            labels,
            related,
        }
    }
}

impl fmt::Debug for MietteView {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl fmt::Display for MietteView {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for MietteView {}

impl miette::Diagnostic for MietteView {
    fn code<'a>(&'a self) -> Option<Box<dyn fmt::Display + 'a>> {
        Some(Box::new(self.code))
    }

    fn severity(&self) -> Option<miette::Severity> {
        Some(match self.severity {
            Severity::Error => miette::Severity::Error,
            Severity::Warning => miette::Severity::Warning,
        })
    }

    fn help<'a>(&'a self) -> Option<Box<dyn fmt::Display + 'a>> {
        self.help
            .as_ref()
            .map(|h| Box::new(h) as Box<dyn fmt::Display>)
    }

    fn source_code(&self) -> Option<&dyn miette::SourceCode> {
        self.source.as_ref().map(|s| s as &dyn miette::SourceCode)
    }

    fn labels(&self) -> Option<Box<dyn Iterator<Item = LabeledSpan> + '_>> {
        Some(Box::new(self.labels.iter().cloned()))
    }

    fn related<'a>(&'a self) -> Option<Box<dyn Iterator<Item = &'a dyn miette::Diagnostic> + 'a>> {
        if self.related.is_empty() {
            None
        } else {
            Some(Box::new(
                self.related.iter().map(|r| r as &dyn miette::Diagnostic),
            ))
        }
    }
}

/// Renders a list of diagnostics, one after another.
pub fn render_all(diags: &[Diagnostic], sources: &SourceMap, color: bool, width: usize) -> String {
    diags
        .iter()
        .map(|d| d.render(sources, color, width))
        .collect::<Vec<_>>()
        .join("\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_label_on_a_very_long_line_is_located_not_drawn() {
        // miette panicked ("Formatting argument out of range") past ~65,535 columns.
        let mut sources = SourceMap::new();
        let text = format!("const a = {}nosuch\n", "1 + ".repeat(30_000));
        let at = text.find("nosuch").expect("in the text");
        let file = sources.add("long.joule", None, &text);
        let d = Diagnostic::error(
            "joule::unknown_name",
            "unknown name `nosuch`",
            Span::new(file, at, at + 6),
            "not defined",
        )
        .with_help("declare it");
        let shown = d.render(&sources, false, 100);
        assert!(
            shown.contains(&format!("long.joule:1:{}: not defined", at + 1))
                && shown.contains("help: declare it")
                && shown.len() < 300,
            "{shown}"
        );
    }

    #[test]
    fn a_diagnostic_without_a_span_renders_without_sources() {
        let d = Diagnostic::without_span(Severity::Warning, "joule::test", "something")
            .with_help("do this");
        assert_eq!(d.render_plain(), "warning: something\n  help: do this");
        let shown = d.render(&SourceMap::new(), false, 80);
        assert!(
            shown.contains("something") && shown.contains("do this"),
            "{shown}"
        );
    }
}
