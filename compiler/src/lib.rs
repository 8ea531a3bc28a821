//! The Joule compiler: scene text to a resolved [`Model`] (this crate's front
//! end), then expression IR, symbolic differentiation and Cranelift kernels.
//!
//! The pass list lives in [`passes`]; each pass is a module of its own.
//! Downstream crates name the grammar's diagnostics and spans through this
//! crate ([`Diagnostic`], [`SourceMap`], [`Span`]), never the grammar itself.

pub mod emit;
pub mod mass;
pub mod math;
pub mod mjcf;
pub mod model;
pub mod names;
pub mod passes;
pub mod resolve;

pub use joule_grammar::ast::Span;
pub use joule_grammar::{Diagnostic, Severity, SourceMap};
pub use model::Model;
pub use passes::{check_path, check_source, check_source_at, compile, Checked, Emit, Timings};

/// Decodes a source file: UTF-8 text without NUL bytes. On failure, the byte
/// offset and a reason.
pub fn decode_source(bytes: &[u8]) -> Result<String, (usize, String)> {
    match std::str::from_utf8(bytes) {
        Ok(s) => match s.find('\0') {
            Some(at) => Err((at, "it contains a NUL byte (is it a binary file?)".into())),
            None => Ok(s.to_string()),
        },
        Err(e) => Err((e.valid_up_to(), "invalid UTF-8".into())),
    }
}
pub mod abi;
pub mod codegen;
pub mod compiled;
pub mod diff;
pub mod interp;
pub mod ir;
pub mod kernels;
