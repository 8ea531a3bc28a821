//! The Joule scene language: the pest grammar (`joule.pest`), the AST with byte
//! spans, the parser (with item-level error recovery, so every syntax error of a
//! file is reported), and diagnostics rendered by miette.

pub mod ast;
pub mod diag;
mod parser;
pub mod print;

pub use diag::{Diagnostic, Label, Severity, SourceFile, SourceMap};
pub use parser::{parse, KEYWORDS};
