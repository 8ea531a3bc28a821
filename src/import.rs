//! `joule import`: an MJCF model to a Joule scene file, checked by the
//! compiler before anything is written.

use crate::args::ColorArg;
use crate::files::write_atomically;
use joule_compiler::{check_source, mjcf};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

/// Convert a MuJoCo MJCF model (XML) into a Joule scene (printed, or written to -o).
#[derive(clap::Args)]
#[command(
    after_help = "Examples:\n  joule import ant.xml -o ant.joule\n  joule import humanoid.xml --lenient > humanoid.joule\n  joule import ant.xml --friction coulomb -o ant_coulomb.joule\n\nA scene can also load a model directly: use \"ant.xml\""
)]
pub struct ImportArgs {
    /// The MJCF file.
    model: PathBuf,
    /// Write the scene here instead of standard output.
    #[arg(short, long)]
    out: Option<PathBuf>,
    /// Skip unsupported elements and attributes with a warning instead of failing.
    #[arg(long)]
    lenient: bool,
    /// The ground contact's friction: MuJoCo's cone (`contact_soft`, whose
    /// sliding contacts push out of the ground), or Coulomb's bound by the
    /// same step's normal force (`contact_coulomb`: not dilatant, about three
    /// times the Newton iterations), or MuJoCo's own contact law
    /// (`contact_mujoco`: its soft constraint with each pair's `solref`,
    /// `solimp` and `margin`, and its pyramidal cone).
    #[arg(long, value_enum, default_value_t = FrictionArg::Cone)]
    friction: FrictionArg,
    /// With `--friction mujoco`: gradients through the cone contact's smooth step (`cone`): the ground contacts carry `contact_soft`'s cone as their surrogate, and the surrogate model steps implicit Euler on the trees' configurations from each of MuJoCo's states
    #[arg(long, value_enum)]
    surrogate: Option<SurrogateConeArg>,
    /// Colour in diagnostics.
    #[arg(long, value_enum, default_value_t = ColorArg::Auto)]
    color: ColorArg,
}

/// `--friction`.
#[derive(Clone, Copy, clap::ValueEnum)]
enum FrictionArg {
    Cone,
    Coulomb,
    Mujoco,
}

/// `--surrogate`.
#[derive(Clone, Copy, clap::ValueEnum)]
enum SurrogateConeArg {
    Cone,
}

/// Imports the model, compiles the result, and prints it or writes it to
/// `--out` (atomically: a temporary file renamed into place).
pub fn import(a: ImportArgs) -> ExitCode {
    let (model, out, color) = (&a.model, a.out.as_deref(), a.color.enabled());
    let options = mjcf::Options {
        lenient: a.lenient,
        friction: match a.friction {
            FrictionArg::Cone => mjcf::Friction::Cone,
            FrictionArg::Coulomb => mjcf::Friction::Coulomb,
            FrictionArg::Mujoco => mjcf::Friction::Mujoco,
        },
        surrogate_cone: a.surrogate.is_some(),
    };
    if a.surrogate.is_some() && !matches!(a.friction, FrictionArg::Mujoco) {
        let e = miette::miette!(
            help = "write `--friction mujoco --surrogate cone`: MuJoCo's laws forward, the cone's smooth step in the gradients (the default import, `--friction cone`, already steps the cone)",
            "`--surrogate cone` needs `--friction mujoco`"
        );
        eprintln!("{e:?}");
        return ExitCode::FAILURE;
    }
    let (sources, imported) = match mjcf::import_path(model, options) {
        Ok(r) => r,
        Err(e) => {
            let help = "give a MuJoCo MJCF model: an XML text file";
            eprintln!("{:?}", crate::files::read_error(model, &e, help));
            return ExitCode::FAILURE;
        }
    };
    if !imported.diagnostics.is_empty() {
        eprint!(
            "{}",
            joule_grammar::diag::render_all(&imported.diagnostics, &sources, color, 100)
        );
    }
    let Some(text) = imported.text else {
        let errors = imported.diagnostics.iter().filter(|d| d.is_error()).count();
        eprintln!(
            "{}: {errors} error{}",
            model.display(),
            if errors == 1 { "" } else { "s" }
        );
        return ExitCode::FAILURE;
    };
    // The generated scene must compile; a failure here is an importer bug, reported as such.
    let name = out.map_or_else(|| model.with_extension("joule"), Path::to_path_buf);
    let checked = check_source(&name.display().to_string(), &text);
    if !checked.ok() {
        eprint!("{}", checked.render_diagnostics(color, 100));
        eprintln!("error: the imported scene does not compile (an importer bug; please report it)");
        return ExitCode::FAILURE;
    }
    // In the canonical layout of `joule fmt` (the text is known to parse).
    let text = joule_grammar::format::format_source(0, &text).unwrap_or(text);
    match out {
        None => {
            print!("{text}");
            ExitCode::SUCCESS
        }
        Some(path) => {
            let written = write_atomically(path, |w| {
                use std::io::Write;
                w.write_all(text.as_bytes())
            });
            match written {
                Ok(()) => {
                    eprintln!("wrote {}", path.display());
                    ExitCode::SUCCESS
                }
                Err(e) => {
                    eprintln!("{e:?}");
                    ExitCode::FAILURE
                }
            }
        }
    }
}
