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
pub mod reset;
pub mod resolve;
pub mod start;

pub use joule_grammar::ast::Span;
pub use joule_grammar::{Diagnostic, Severity, SourceMap};
pub use model::Model;
pub use passes::{check_path, check_source, check_source_at, compile, Checked, Emit, Timings};

/// The most bytes a scene, an included file, a mesh or an MJCF model may
/// have (64 MiB): [`read_input`]'s limit for text inputs.
pub const MAX_INPUT_BYTES: u64 = 64 << 20;

/// Why [`read_input`] refused a file that exists (the payload of its
/// `io::Error`; [`read_help`] gives the hint).
#[derive(Debug)]
enum Refused {
    /// Not a regular file: a directory, device, FIFO or socket.
    NotAFile(&'static str),
    /// More bytes than the limit.
    TooLarge(u64),
}

impl std::fmt::Display for Refused {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Refused::NotAFile(kind) => write!(f, "it is {kind}, not a regular file"),
            Refused::TooLarge(limit) => write!(f, "it is larger than {} MiB", limit >> 20),
        }
    }
}

impl std::error::Error for Refused {}

/// Reads an input file whole, if it is a regular file (symbolic links
/// followed) of at most `limit` bytes. The type is checked before the file is
/// opened (opening a FIFO would block) and again on the open file; the limit
/// is enforced while reading, so a file that grows (or lies about its size,
/// as files under `/proc` do) is never read past `limit + 1` bytes. Every
/// reader of scene text, meshes, MJCF models and the command line's input
/// files goes through here.
pub fn read_input(path: &std::path::Path, limit: u64) -> std::io::Result<Vec<u8>> {
    use std::io::Read;
    fn kind(t: std::fs::FileType) -> Option<&'static str> {
        use std::os::unix::fs::FileTypeExt;
        Some(if t.is_file() {
            return None;
        } else if t.is_dir() {
            "a directory"
        } else if t.is_fifo() {
            "a named pipe (FIFO)"
        } else if t.is_char_device() || t.is_block_device() {
            "a device"
        } else if t.is_socket() {
            "a socket"
        } else {
            "not a file"
        })
    }
    let refuse = |r: Refused| std::io::Error::new(std::io::ErrorKind::InvalidInput, r);
    if let Some(k) = kind(std::fs::metadata(path)?.file_type()) {
        return Err(refuse(Refused::NotAFile(k)));
    }
    let file = std::fs::File::open(path)?;
    let meta = file.metadata()?;
    if let Some(k) = kind(meta.file_type()) {
        return Err(refuse(Refused::NotAFile(k)));
    }
    if meta.len() > limit {
        return Err(refuse(Refused::TooLarge(limit)));
    }
    let mut bytes = Vec::with_capacity(meta.len() as usize);
    file.take(limit + 1).read_to_end(&mut bytes)?;
    if bytes.len() as u64 > limit {
        return Err(refuse(Refused::TooLarge(limit)));
    }
    Ok(bytes)
}

/// The hint for an error of [`read_input`] that refused the file (not a
/// regular file, too large); `None` for other I/O errors.
pub fn read_help(e: &std::io::Error) -> Option<String> {
    match e.get_ref()?.downcast_ref::<Refused>()? {
        Refused::NotAFile(_) => {
            Some("only regular files are read: name a file, not a folder, device or pipe".into())
        }
        Refused::TooLarge(limit) => Some(format!(
            "input files are limited to {} MiB; is this the file you meant?",
            limit >> 20
        )),
    }
}

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
