//! The Joule scene language: the pest grammar (`joule.pest`), the AST with byte
//! spans, the parser (with item-level error recovery, so every syntax error of a
//! file is reported), and diagnostics rendered by miette.

pub mod ast;
pub mod diag;
pub mod format;
mod parser;
pub mod print;
pub mod trivia;

pub use diag::{Diagnostic, Label, Severity, SourceFile, SourceMap};
pub use parser::{parse, KEYWORDS, MAX_SOURCE_BYTES};
