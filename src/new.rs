//! `joule new NAME`: a new scene file, `NAME.joule`, from a small, complete
//! and commented template (never overwriting an existing file).

use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;

/// Create a new scene file from a commented template.
#[derive(clap::Args)]
#[command(
    after_help = "Example:\n  joule new my_robot        # writes my_robot.joule\n  joule run my_robot.joule"
)]
pub struct NewArgs {
    /// Name of the scene (the file is NAME.joule).
    name: String,
}

/// The template `joule new` writes: small, complete, and commented.
const TEMPLATE: &str = r#"// NAME: a starting point. Check it with `joule check NAME.joule`,
// run it with `joule run NAME.joule --steps 200`, differentiate it with
// `joule grad NAME.joule --loss height --check`. The language: docs/LANGUAGE.md.
scene "NAME"

settings {
    dt = 1e-3                          // s
    gravity = vec3(0, 0, -9.81)        // m/s^2
    integrator = symplectic_euler      // or implicit_euler(iterations = 20, tolerance = 1e-8)
}

param stiffness = 200 in 1..1e4        // differentiable, one value per environment

// A chain of 5 particles hanging from a fixed first one.
particle bead[i in 0..5] { x = vec3(0.1 * i, 0, 1), mass = 0.05 }
fix bead[0]

energy spring(a: particle, b: particle, k: scalar) =
    0.5 * k * (norm(a.x - b.x) - rest(norm(a.x - b.x)))^2
spring(bead[i], bead[i + 1], stiffness) for i in 0..4

observe tip = bead[4].x
loss height = bead[4].x.z
"#;

/// Writes `NAME.joule`; exit 1 if the name is not a plain file name or the file exists.
pub fn new(a: NewArgs) -> ExitCode {
    let name = a.name;
    let valid = !name.is_empty()
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-');
    if !valid {
        eprintln!("error: `{name}` is not a plain file name (letters, digits, `_`, `-`)");
        return ExitCode::FAILURE;
    }
    let path = PathBuf::from(format!("{name}.joule"));
    // create_new: never overwrite a user's file.
    match std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(&path)
    {
        Ok(mut f) => {
            if let Err(e) = f.write_all(TEMPLATE.replace("NAME", &name).as_bytes()) {
                eprintln!("error: cannot write `{}`: {e}", path.display());
                return ExitCode::FAILURE;
            }
            println!(
                "wrote {} — next: joule run {} --steps 200",
                path.display(),
                path.display()
            );
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("error: cannot create `{}`: {e}", path.display());
            ExitCode::FAILURE
        }
    }
}
