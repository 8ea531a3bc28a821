//! Command-line flags shared by several subcommands: the scene and
//! simulation flags of `run` and `grad` (one flattened group), and the value
//! types of `--backend`, `--precision` and `--color`. Each subcommand's own
//! flags live in its module (`run::RunArgs`, `bench::BenchArgs`, ...).

use crate::load;
use clap::ValueEnum;
use joule_compiler::compiled::Backend;
use joule_compiler::model::Precision;
use std::io::IsTerminal;
use std::path::PathBuf;

/// Simulation options shared by `run` and `grad`.
#[derive(clap::Args)]
pub struct SimArgs {
    /// The scene file.
    pub scene: PathBuf,
    /// Steps to simulate.
    #[arg(long, default_value_t = 100)]
    pub steps: usize,
    /// Override a parameter in every environment (repeatable).
    #[arg(long = "param", value_name = "NAME=VALUE")]
    pub params: Vec<String>,
    /// Kernel backend.
    #[arg(long, value_enum, default_value_t = BackendArg::Jit)]
    pub backend: BackendArg,
    /// Kernel precision, overriding the scene's `precision` setting.
    #[arg(long, value_enum)]
    pub precision: Option<PrecisionArg>,
}

impl SimArgs {
    /// How the scene compiles: `--backend` and `--precision`; `tight` solves
    /// implicit steps to round-off (`joule grad --check`).
    pub fn options(&self, tight: bool) -> load::Options {
        load::Options {
            backend: self.backend.into(),
            precision: self.precision.map(Into::into),
            tight,
            surrogates: true,
        }
    }
}

/// `--precision`: the kernels' floating-point type.
#[derive(Clone, Copy, ValueEnum)]
pub enum PrecisionArg {
    /// f64 kernels, two environments per SIMD vector.
    F64,
    /// f32 kernels, four environments per SIMD vector (the solves stay f64).
    F32,
}

impl From<PrecisionArg> for Precision {
    fn from(p: PrecisionArg) -> Precision {
        match p {
            PrecisionArg::F64 => Precision::F64,
            PrecisionArg::F32 => Precision::F32,
        }
    }
}

/// `--backend`: what runs the kernels.
#[derive(Clone, Copy, ValueEnum)]
pub enum BackendArg {
    /// Cranelift machine code.
    Jit,
    /// The reference interpreter.
    Interp,
}

impl From<BackendArg> for Backend {
    fn from(b: BackendArg) -> Backend {
        match b {
            BackendArg::Jit => Backend::Jit,
            BackendArg::Interp => Backend::Interp,
        }
    }
}

/// `--color`: colour in diagnostics on standard error, `auto` (when it is a
/// terminal), `always` or `never`. (The variants carry no doc comments: clap
/// would show them in `--help`.)
#[derive(Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum ColorArg {
    Auto,
    Always,
    Never,
}

impl ColorArg {
    /// Whether diagnostics on standard error are coloured.
    pub fn enabled(self) -> bool {
        match self {
            ColorArg::Always => true,
            ColorArg::Never => false,
            ColorArg::Auto => std::io::stderr().is_terminal(),
        }
    }
}
