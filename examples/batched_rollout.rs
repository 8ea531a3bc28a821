//! Simulate 256 pendulums with different lengths at once and print how far
//! each swings: parameters are per environment, environments run on all cores.
//!
//! Run: `cargo run --example batched_rollout`

use joule::{Backend, Scene};
use std::path::Path;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let scene = Scene::from_path(Path::new("scenes/pendulum.joule"), Backend::Jit)?;
    let batch = 256;
    let mut sim = scene.batch(batch);
    for env in 0..batch {
        // Lengths from 0.5 m to 1.5 m.
        sim.set_param_env("length", env, 0.5 + env as f64 / (batch - 1) as f64)?;
    }
    sim.rollout(500);
    let angle = sim.output("angle");
    for env in [0, batch / 2, batch - 1] {
        println!(
            "length {:.3} m: angle after 0.5 s = {:+.4} rad",
            sim.param("length", env)?,
            angle[0][env]
        );
    }
    assert!(sim.events.is_empty(), "{:?}", sim.events);
    // Every environment ran with its own length: their angles differ.
    assert!(angle[0].iter().all(|a| a.is_finite()));
    assert!((angle[0][0] - angle[0][batch - 1]).abs() > 0.1);
    Ok(())
}
