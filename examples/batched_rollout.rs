//! Simulate 256 pendulums under different gravities at once, from the Moon's
//! (1.62 m/s^2) to Jupiter's (24.8 m/s^2), and check each one's swing against
//! the pendulum's law: a quarter period of (pi / 2) sqrt(L / g), lengthened by
//! the amplitude correction 1 + theta0^2 / 16. Parameters are per
//! environment, environments run on all cores.
//!
//! Run: `cargo run --example batched_rollout`

use joule::{Backend, Scene};
use std::f64::consts::PI;
use std::path::Path;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let scene = Scene::from_path(Path::new("scenes/pendulum.joule"), Backend::Jit)?;
    let (length, theta0, dt) = (1.0, 30f64.to_radians(), 1e-3); // as in the scene
    let batch = 256;
    let mut sim = scene.batch(batch);
    let gravity = |env: usize| 1.62 + (24.8 - 1.62) * env as f64 / (batch - 1) as f64;
    for env in 0..batch {
        sim.set_param_env("g", env, gravity(env))?;
    }
    // Released at +30 degrees, each bob first passes the vertical after a
    // quarter period: the time of the first sign change of its angle.
    let mut previous = sim.output("angle")[0].clone();
    let mut quarter = vec![f64::NAN; batch];
    for step in 1..=1400 {
        sim.step();
        let angle = &sim.output("angle")[0];
        for env in 0..batch {
            if quarter[env].is_nan() && angle[env] <= 0.0 {
                // Linear interpolation between the two steps.
                let (a, b) = (previous[env], angle[env]);
                quarter[env] = dt * ((step - 1) as f64 + a / (a - b));
            }
        }
        previous.clone_from(angle);
    }
    assert!(sim.events.is_empty(), "{:?}", sim.events);
    let law = |g: f64| PI / 2.0 * (length / g).sqrt() * (1.0 + theta0 * theta0 / 16.0);
    for env in [0, batch / 2, batch - 1] {
        println!(
            "g {:5.2} m/s^2: quarter period {:.4} s (pendulum law {:.4} s)",
            sim.param("g", env)?,
            quarter[env],
            law(gravity(env))
        );
    }
    // Every environment ran with its own g and swings by the law, to 0.5%
    // (the rod's stretch and the time step account for the rest).
    for (env, t) in quarter.iter().enumerate() {
        let want = law(gravity(env));
        assert!(
            (t - want).abs() < 5e-3 * want,
            "environment {env}: quarter period {t} s, the law says {want} s"
        );
    }
    Ok(())
}
