//! The file readers never panic: damaged control plans (`.npy`, `.csv`),
//! trajectories to match (`.npz`) and policy checkpoints (safetensors),
//! made from valid files by truncation, byte flips and insertions, are
//! refused with an error (exit 1) or read, never a crash. Each case runs the
//! CLI on the damaged file; `PROPTEST_CASES` sets the cases per reader (24
//! by default: the test suite's budget; 2,000 for a long run).

#[allow(dead_code)] // each test crate uses a different part of the shared helpers
mod common;

use common::{joule, temp};
#[path = "common/damage.rs"]
mod damage;

use damage::{apply, damage};
use proptest::prelude::*;
use std::path::PathBuf;
use std::sync::OnceLock;

/// The valid files the damage starts from, written once by the CLI itself:
/// a control plan and a trajectory of the cart-pole, and a policy trained
/// for one iteration.
struct Seeds {
    npy: Vec<u8>,
    csv: Vec<u8>,
    npz: Vec<u8>,
    policy: Vec<u8>,
}

fn seeds() -> &'static Seeds {
    static SEEDS: OnceLock<Seeds> = OnceLock::new();
    SEEDS.get_or_init(|| {
        let out = |name: &str| temp(name).to_str().unwrap().to_string();
        let ok = |args: &[&str]| {
            let o = joule(args);
            assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
        };
        for ext in ["npy", "csv"] {
            ok(&[
                "optimize",
                "scenes/cartpole.joule",
                "--wrt",
                "controls",
                "--loss",
                "final_height",
                "--iters",
                "1",
                "--steps",
                "8",
                "--out",
                &out(&format!("plan.{ext}")),
            ]);
        }
        ok(&[
            "run",
            "scenes/cartpole.joule",
            "--steps",
            "8",
            "--out",
            &out("traj.npz"),
        ]);
        ok(&[
            "train",
            "scenes/cartpole.joule",
            "--reward",
            "height",
            "--iters",
            "1",
            "--batch",
            "2",
            "--horizon",
            "4",
            "--episode",
            "8",
            "--threads",
            "1",
            "--out",
            &out("policy.st"),
        ]);
        let read = |name: &str| std::fs::read(temp(name)).expect("written");
        Seeds {
            npy: read("plan.npy"),
            csv: read("plan.csv"),
            npz: read("traj.npz"),
            policy: read("policy.st"),
        }
    })
}

/// Writes the damaged file as `name` and runs `args` (with `{}` standing for
/// its path): the run reads it or refuses it, never panics.
fn survives(name: &str, bytes: &[u8], args: &[&str]) -> Result<(), TestCaseError> {
    let path: PathBuf = temp(name);
    std::fs::write(&path, bytes).expect("write");
    let p = path.to_str().unwrap();
    let args: Vec<&str> = args
        .iter()
        .map(|a| if *a == "{}" { p } else { a })
        .collect();
    let o = joule(&args);
    let err = String::from_utf8_lossy(&o.stderr);
    prop_assert!(
        matches!(o.status.code(), Some(0 | 1)) && !err.contains("panicked"),
        "{args:?}: exit {:?}\n{err}",
        o.status.code()
    );
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 24, ..ProptestConfig::default() })]

    #[test]
    fn a_damaged_control_plan_is_refused_or_read(d in damage(), csv in any::<bool>()) {
        let (name, seed) = if csv { ("bad_plan.csv", &seeds().csv) } else { ("bad_plan.npy", &seeds().npy) };
        survives(name, &apply(seed, &d), &["run", "scenes/cartpole.joule", "--steps", "8", "--controls", "{}"])?;
    }

    #[test]
    fn a_damaged_trajectory_to_match_is_refused_or_read(d in damage()) {
        survives(
            "bad_traj.npz",
            &apply(&seeds().npz, &d),
            &["optimize", "scenes/cartpole.joule", "--wrt", "controls", "--iters", "1", "--steps", "8",
              "--out", "{out}", "--match", "cart_x={}"],
        )?;
    }

    #[test]
    fn a_damaged_policy_is_refused_or_read(d in damage()) {
        survives(
            "bad_policy.st",
            &apply(&seeds().policy, &d),
            &["run", "scenes/cartpole.joule", "--steps", "8", "--policy", "{}"],
        )?;
    }
}
