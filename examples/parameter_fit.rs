//! Parameter identification: recover a pendulum's length from where its bob
//! is after 1 s, by Gauss-Newton with exact gradients through the simulation
//! (the adjoint of 1000 steps, not finite differences).
//!
//! Run: `cargo run --example parameter_fit`

use joule::{Objective, Scene};

/// A pendulum whose loss compares the bob with a measured position given as parameters.
const SCENE: &str = r#"
scene "pendulum to fit"
settings { dt = 1e-3, gravity = vec3(0, 0, -9.81), integrator = symplectic_euler }
param length = 1 in 0.2..3
param seen_x = 0
param seen_z = 0
particle pivot { x = vec3(0, 0, 0), mass = 1 }
particle bob { x = vec3(sin(30deg), 0, -cos(30deg)), mass = 1 }
fix pivot
energy rod(a: particle, b: particle, L: scalar) = 0.5 * 1e6 * (norm(a.x - b.x) - L)^2
rod(pivot, bob, length)
observe position = bob.x
loss miss = (bob.x.x - seen_x)^2 + (bob.x.z - seen_z)^2
"#;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let scene = Scene::compile(SCENE)?;
    let steps = 1000;
    // The "measurement": where a 1.2 m pendulum's bob is after 1 s.
    let (seen_x, seen_z) = {
        let mut sim = scene.batch(1);
        sim.set_param("length", 1.2)?;
        sim.rollout(steps);
        let p = sim.output("position");
        (p[0][0], p[2][0])
    };
    let objective = Objective::loss("miss");
    let mut length = 0.9;
    for iteration in 0..50 {
        let mut sim = scene.batch(1);
        sim.set_param("length", length)?;
        sim.set_param("seen_x", seen_x)?;
        sim.set_param("seen_z", seen_z)?;
        let g = sim.gradient(&objective, steps)?;
        let (miss, slope) = (g.value[0], g.params[0][0]); // params in declaration order: length first
        if iteration % 5 == 0 {
            println!("iteration {iteration:2}: length {length:.6} m, squared miss {miss:.3e} m^2");
        }
        if miss < 1e-16 {
            break;
        }
        // Gauss-Newton on miss = r^2: step = miss / slope (a Newton step on r).
        length = (length - 2.0 * miss / slope).clamp(0.2, 3.0);
    }
    println!("fitted length {length:.6} m (true 1.2 m)");
    assert!(
        (length - 1.2).abs() < 1e-4,
        "did not recover the length: {length}"
    );
    Ok(())
}
