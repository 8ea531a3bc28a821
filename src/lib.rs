//! Joule: a differentiable physics compiler.
//!
//! Scene text goes in; a resolved [`Model`] (and, with later passes, compiled
//! kernels) comes out. See `docs/` for the language and the architecture.

pub use joule_compiler::model;
pub use joule_compiler::{check_path, check_source, Checked, Emit, Model};
pub use joule_grammar::{Diagnostic, SourceMap};
