//! Command-line flags shared by several subcommands: the scene and
//! simulation flags of `run` and `grad` (one flattened group), `--threads`
//! (one flattened flag), the value types of `--backend`, `--precision` and
//! `--color`, the checks of `--param NAME=VALUE` (shared with the REPL's
//! `:set`), and [`grammar`], what every subcommand's flags accept. Each
//! subcommand's own flags live in its module (`run::RunArgs`,
//! `bench::BenchArgs`, ...).

use crate::{load, threads};
use clap::ValueEnum;
use joule_compiler::compiled::Backend;
use joule_compiler::model::{Model, ParamDecl, Precision, SurrogateMode};
use miette::{miette, Result};
use std::io::IsTerminal;
use std::path::PathBuf;

/// The rules every subcommand's flags share: a value may be a negative
/// number (`--target -100`, `--lr -1` reaches the flag's own check instead of
/// reading as an unknown flag `-1`).
pub fn grammar(cli: clap::Command) -> clap::Command {
    cli.mut_subcommands(|sub| {
        sub.mut_args(|a| {
            if a.get_action().takes_values() {
                a.allow_negative_numbers(true)
            } else {
                a
            }
        })
    })
}

/// The command line with a negative number in exponent form that follows a
/// long flag joined to it (`--lr -1e-3` as `--lr=-1e-3`): clap reads a
/// negative number as a value only without an exponent, and would take
/// `-1e-3` for the short flag `-1`.
pub fn negative_exponents(
    args: impl IntoIterator<Item = std::ffi::OsString>,
) -> Vec<std::ffi::OsString> {
    let mut out: Vec<std::ffi::OsString> = vec![];
    for arg in args {
        let joins = arg.to_str().is_some_and(|v| {
            v.starts_with('-') && v.contains(['e', 'E']) && v.parse::<f64>().is_ok()
        });
        let after_flag = out
            .last()
            .and_then(|f| f.to_str())
            .is_some_and(|f| f.starts_with("--") && f.len() > 2 && !f.contains('='));
        match out.last_mut() {
            Some(flag) if joins && after_flag => {
                flag.push("=");
                flag.push(&arg);
            }
            _ => out.push(arg),
        }
    }
    out
}

/// `--threads N`, for every command that simulates (`run`, `grad`,
/// `optimize`, `train`, `imitate`, `repl`).
#[derive(clap::Args, Clone, Copy)]
pub struct ThreadsArg {
    /// Worker threads, 1 to 1024 (default: all cores). Results do not depend on it.
    #[arg(long, value_name = "N")]
    pub threads: Option<usize>,
}

impl ThreadsArg {
    /// Checks `--threads` and sizes the global pool to it (see
    /// [`threads::global`]); returns the worker count a batch is split for.
    pub fn apply(self) -> Result<usize> {
        threads::global(self.threads)
    }
}

/// Checks a batch of `batch` environments of `scene`, given as `given`
/// (the flag and its value, e.g. `--batch 64`), against
/// [`joule_runtime::Scene::max_batch`] and this machine's memory
/// ([`memory_budget`]), before anything is allocated for it.
pub fn check_batch(scene: &joule_runtime::Scene, given: &str, batch: usize) -> Result<()> {
    let each = scene.lane_bytes();
    let budget = memory_budget();
    let most = scene
        .max_batch()
        .min((budget / each.max(1) as u64).max(1) as usize);
    if batch <= most {
        return Ok(());
    }
    Err(miette!(
        help = format!(
            "simulate at most {most} environments of this scene at once; a larger study runs as several batches"
        ),
        "`{given}`: {batch} environments would take {:.1} GiB of simulator storage ({each} bytes each), more than {:.1} GiB",
        batch as f64 * each as f64 / f64::from(1u32 << 30),
        budget as f64 / f64::from(1u32 << 30)
    ))
}

/// The most bytes a command may plan to hold: the simulator's bound
/// ([`joule_runtime::scene::MAX_BATCH_BYTES`]), or less where this machine
/// has less memory (its `MemTotal`, Linux).
pub fn memory_budget() -> u64 {
    let total = std::fs::read_to_string("/proc/meminfo").ok().and_then(|m| {
        let line = m.lines().find(|l| l.starts_with("MemTotal:"))?;
        let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
        Some(kib * 1024)
    });
    let most = joule_runtime::scene::MAX_BATCH_BYTES;
    total.map_or(most, |t| t.min(most))
}

/// Checks that what a command would keep in memory, `bytes` for `what`
/// (e.g. "`--out` over 1000 steps"), fits [`memory_budget`], before it starts.
pub fn check_memory(what: &str, bytes: u64, hint: &str) -> Result<()> {
    let budget = memory_budget();
    if bytes <= budget {
        return Ok(());
    }
    let gib = |b: u64| b as f64 / f64::from(1u32 << 30);
    Err(miette!(
        help = hint.to_string(),
        "{what} would hold {:.1} GiB in memory, more than this machine's {:.1} GiB",
        gib(bytes),
        gib(budget)
    ))
}

/// Checks a number flag's value (`flag`: its name with the dashes): finite
/// and positive, else an error naming the flag with `hint`.
pub fn positive(flag: &str, v: f64, hint: &str) -> Result<()> {
    if v.is_finite() && v > 0.0 {
        return Ok(());
    }
    Err(miette!(
        help = hint.to_string(),
        "`{flag} {v}` must be finite and positive"
    ))
}

/// Checks a number flag's value (`flag`: its name with the dashes): finite
/// and not negative, else an error naming the flag with `hint`.
pub fn not_negative(flag: &str, v: f64, hint: &str) -> Result<()> {
    if v.is_finite() && v >= 0.0 {
        return Ok(());
    }
    Err(miette!(
        help = hint.to_string(),
        "`{flag} {v}` must be finite and not negative"
    ))
}

/// Why a parameter value is refused: the message and its hint.
#[derive(Debug)]
pub struct Refused {
    /// What is wrong.
    pub message: String,
    /// What to do about it.
    pub help: String,
}

/// A number typed for a parameter or control: finite.
pub fn number(text: &str) -> Result<f64, Refused> {
    let v: f64 = text.trim().parse().map_err(|_| Refused {
        message: format!("`{}` is not a number", text.trim()),
        help: "values are numbers such as `2000`, `-0.5` or `1e-3`".into(),
    })?;
    if !v.is_finite() {
        return Err(Refused {
            message: format!("`{}` is not a finite number", text.trim()),
            help: "give a finite value such as `2000` or `1e-3`".into(),
        });
    }
    Ok(v)
}

/// A value typed for a declared parameter (`--param`, the REPL's `:set`):
/// a finite number inside its declared range.
pub fn param_value(decl: &ParamDecl, text: &str) -> Result<f64, Refused> {
    let v = number(text)?;
    if let Some((lo, hi)) = decl.bounds {
        if !(lo..=hi).contains(&v) {
            return Err(Refused {
                message: format!("{} = {v} is outside its range {lo}..{hi}", decl.name),
                help: format!(
                    "the scene declares `param {} in {lo}..{hi}`; give a value from {lo} to {hi}",
                    decl.name
                ),
            });
        }
    }
    Ok(v)
}

/// Checks `--param NAME=VALUE` overrides against the scene's declarations
/// (known name, finite value inside the declared range) before anything
/// runs, and returns them as (name, value); `load::apply_params` sets them.
pub fn check_params(model: &Model, params: &[String]) -> Result<Vec<(String, f64)>> {
    let mut checked = vec![];
    for p in params {
        let (name, value) = p.split_once('=').ok_or_else(|| {
            miette!(
                help = "write `--param NAME=VALUE`, e.g. `--param stretch=2000`",
                "`{p}` is not NAME=VALUE"
            )
        })?;
        let Some(decl) = model.params.iter().find(|d| d.name == name.trim()) else {
            return Err(miette!(
                help = known_params(model),
                "unknown parameter `{}` in `--param {p}`",
                name.trim()
            ));
        };
        let v = param_value(decl, value)
            .map_err(|r| miette!(help = r.help, "{} (in `--param {p}`)", r.message))?;
        checked.push((decl.name.clone(), v));
    }
    Ok(checked)
}

/// The hint naming a scene's params (an array's elements as `w[..]`).
pub fn known_params(model: &Model) -> String {
    let mut known: Vec<&str> = vec![];
    for d in &model.params {
        let name = d.name.split_once('[').map_or(d.name.as_str(), |(n, _)| n);
        if !known.contains(&name) {
            known.push(name);
        }
    }
    if known.is_empty() {
        return "the scene declares no parameters".into();
    }
    let arrays: Vec<String> = known
        .iter()
        .map(|n| {
            if model
                .params
                .iter()
                .any(|d| d.name.starts_with(&format!("{n}[")))
            {
                format!("{n}[..]")
            } else {
                n.to_string()
            }
        })
        .collect();
    format!("the scene's parameters: {}", arrays.join(", "))
}

/// The params a `--wrt A,B,...` list names, in its order: a param's name
/// (`w[1, 2]` for an element: commas inside brackets do not separate), or
/// a param array's name for all its elements; `other` takes names that are
/// not params (`controls`) and says whether it used them (`also`: what the
/// hint adds for them).
pub fn wrt_params(
    model: &Model,
    list: &str,
    also: &str,
    mut other: impl FnMut(&str) -> Result<bool>,
) -> Result<Vec<usize>> {
    let mut names = vec![];
    let (mut depth, mut start) = (0i32, 0);
    for (i, c) in list.char_indices() {
        match c {
            '[' => depth += 1,
            ']' => depth -= 1,
            ',' if depth == 0 => {
                names.push(&list[start..i]);
                start = i + 1;
            }
            _ => {}
        }
    }
    names.push(&list[start..]);
    let mut out = vec![];
    for name in names.into_iter().map(str::trim).filter(|n| !n.is_empty()) {
        let found: Vec<usize> = match model.params.iter().position(|p| p.name == name) {
            Some(i) => vec![i],
            None => (0..model.params.len())
                .filter(|&i| model.params[i].name.starts_with(&format!("{name}[")))
                .collect(),
        };
        if found.is_empty() && !other(name)? {
            return Err(miette!(
                help = format!("{}{also}", known_params(model)),
                "unknown parameter `{name}` in `--wrt`"
            ));
        }
        out.extend(found);
    }
    Ok(out)
}

/// Simulation options shared by `run` and `grad`.
#[derive(clap::Args)]
pub struct SimArgs {
    /// The scene file.
    pub scene: PathBuf,
    /// Steps to simulate.
    #[arg(long, default_value_t = 100)]
    pub steps: usize,
    /// Override a parameter in every environment (repeatable): a finite value
    /// inside the parameter's declared range.
    #[arg(long = "param", value_name = "NAME=VALUE")]
    pub params: Vec<String>,
    /// Kernel backend.
    #[arg(long, value_enum, default_value_t = BackendArg::Jit)]
    pub backend: BackendArg,
    /// Kernel precision, overriding the scene's `precision` setting.
    #[arg(long, value_enum)]
    pub precision: Option<PrecisionArg>,
    #[command(flatten)]
    pub threads: ThreadsArg,
}

impl SimArgs {
    /// How the scene compiles: `--backend` and `--precision`; `tight` solves
    /// implicit steps to round-off (`joule grad --check`).
    pub fn options(&self, tight: bool) -> load::Options {
        load::Options {
            backend: self.backend.into(),
            precision: self.precision.map(Into::into),
            tight,
            surrogates: load::Surrogates::Scene,
        }
    }
}

/// `--surrogate`: what gradients make of `backward =` surrogates, overriding
/// the scene's `surrogate` setting. (The variants carry no doc comments:
/// clap would show them in `--help`.)
#[derive(Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum SurrogateArg {
    Energy,
    Model,
    Off,
}

impl SurrogateArg {
    /// The load option for `--surrogate` given or not.
    pub fn option(arg: Option<SurrogateArg>) -> load::Surrogates {
        match arg {
            None => load::Surrogates::Scene,
            Some(SurrogateArg::Off) => load::Surrogates::Off,
            Some(SurrogateArg::Energy) => load::Surrogates::Mode(SurrogateMode::Energy),
            Some(SurrogateArg::Model) => load::Surrogates::Mode(SurrogateMode::Model),
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
