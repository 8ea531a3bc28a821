//! Simulate 256 pendulums of different lengths at once, from 0.25 m to 4 m,
//! and check each one's swing against the pendulum's law: released at rest
//! from theta0, a pendulum of length L first passes the vertical after a
//! quarter period, sqrt(L / g) K(sin(theta0 / 2)) with K the complete
//! elliptic integral of the first kind (computed here by the
//! arithmetic-geometric mean, independently of the simulation). Parameters
//! are per environment, environments run on all cores.
//!
//! Run: `cargo run --example batched_rollout`

use joule::{Backend, Scene};
use std::f64::consts::PI;
use std::path::Path;

/// The complete elliptic integral of the first kind, `K(k) = pi / (2 agm(1,
/// sqrt(1 - k^2)))`.
fn elliptic_k(k: f64) -> f64 {
    let (mut a, mut b) = (1.0, (1.0 - k * k).sqrt());
    while (a - b).abs() > 1e-15 * a {
        (a, b) = ((a + b) / 2.0, (a * b).sqrt());
    }
    PI / (2.0 * a)
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let scene = Scene::from_path(Path::new("scenes/pendulum.joule"), Backend::Jit)?;
    let (g, theta0, dt) = (9.81, 30f64.to_radians(), 1e-3); // as in the scene
    let batch = 256;
    let mut sim = scene.batch(batch);
    let length = |env: usize| 0.25 + (4.0 - 0.25) * env as f64 / (batch - 1) as f64;
    for env in 0..batch {
        sim.set_param_env("length", env, length(env))?;
    }
    // Released at +30 degrees, each bob first passes the vertical after a
    // quarter period: the time of the first sign change of its angle.
    let mut previous = sim.output("angle")[0].clone();
    let mut quarter = vec![f64::NAN; batch];
    for step in 1..=1200 {
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
    let law = |l: f64| (l / g).sqrt() * elliptic_k((theta0 / 2.0).sin());
    for env in [0, batch / 2, batch - 1] {
        println!(
            "length {:4.2} m: quarter period {:.5} s (pendulum law {:.5} s)",
            sim.param("length", env)?,
            quarter[env],
            law(length(env))
        );
    }
    // Every environment ran with its own length and swings by the law, to
    // 0.1% (the rod's stretch under the bob's weight, 1 mm at 1e4 N/m, and
    // the time step account for the rest): a 16-fold length, a 4-fold period.
    let mut worst = 0f64;
    for (env, t) in quarter.iter().enumerate() {
        let want = law(length(env));
        worst = worst.max((t - want).abs() / want);
        assert!(
            (t - want).abs() < 1e-3 * want,
            "environment {env}: quarter period {t} s, the law says {want} s"
        );
    }
    println!("largest relative deviation from the law: {worst:.1e}");
    Ok(())
}
