//! `joule new NAME`: a new scene file, `NAME.joule`, from a small, complete
//! and commented template (never overwriting an existing file).

use miette::{miette, Result};
use std::io::Write;
use std::path::PathBuf;

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

/// Writes `NAME.joule`; an error with a hint if the name is not a plain
/// file name, the file exists or it cannot be written.
pub fn new(a: NewArgs) -> Result<()> {
    let name = a.name;
    let valid = !name.is_empty()
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-');
    if !valid {
        return Err(miette!(
            help = "give a name such as `my_robot`: `joule new` writes NAME.joule in the current folder",
            "`{name}` is not a plain file name (letters, digits, `_`, `-`)"
        ));
    }
    let path = PathBuf::from(format!("{name}.joule"));
    // create_new: never overwrite a user's file.
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(&path)
        .map_err(|e| {
            let help = if e.kind() == std::io::ErrorKind::AlreadyExists {
                "`joule new` never overwrites a file: choose another name, or edit the existing scene"
            } else {
                "write in a folder you can write to"
            };
            miette!(help = help, "cannot create `{}`: {e}", path.display())
        })?;
    let written = f
        .write_all(TEMPLATE.replace("NAME", &name).as_bytes())
        .and_then(|()| f.sync_all());
    if let Err(e) = written {
        drop(f);
        let _ = std::fs::remove_file(&path);
        return Err(miette!(
            help = "free space on the disk, or write in another folder",
            "cannot write `{}`: {e}",
            path.display()
        ));
    }
    println!(
        "wrote {} — next: joule run {} --steps 200",
        path.display(),
        path.display()
    );
    Ok(())
}
