//! Integrators against numbers computed independently: closed forms,
//! analytic periods, conservation laws, and implicit against explicit.

// Mechanics over DOF rows and 4x4 mass blocks reads best with index loops.
#![allow(clippy::needless_range_loop)]

use joule_compiler::compiled::Backend;
use joule_runtime::{Event, Scene};
use std::path::Path;

fn scene(path: &str) -> Scene {
    Scene::from_path(Path::new(path), Backend::Jit).unwrap_or_else(|e| panic!("{e}"))
}

#[test]
fn projectile_matches_the_symplectic_euler_closed_form() {
    let s = scene("tests/physics/projectile.joule");
    let mut sim = s.batch(3);
    let (h, g) = (0.01, [0.0, 0.0, -9.81]);
    let (x0, v0) = ([0.0, 0.0, 1.0], [3.0, 1.0, 4.0]);
    for n in 1..=200usize {
        sim.step();
        let x = sim.positions(2);
        let v = sim.velocities(2);
        let nf = n as f64;
        for k in 0..3 {
            // v_n = v0 + n h g;  x_n = x0 + n h v0 + h^2 g n (n + 1) / 2
            let v_want = v0[k] + nf * h * g[k];
            let x_want = x0[k] + nf * h * v0[k] + h * h * g[k] * nf * (nf + 1.0) / 2.0;
            assert!(
                (v[k] - v_want).abs() <= 1e-12 * (1.0 + v_want.abs()),
                "step {n}: v {} vs {v_want}",
                v[k]
            );
            assert!(
                (x[k] - x_want).abs() <= 1e-12 * (1.0 + x_want.abs()),
                "step {n}: x {} vs {x_want}",
                x[k]
            );
        }
    }
}

/// Times of upward zero crossings of a sampled signal (linear interpolation).
fn crossings(samples: &[f64], dt: f64) -> Vec<f64> {
    samples
        .windows(2)
        .enumerate()
        .filter(|(_, w)| w[0] < 0.0 && w[1] >= 0.0)
        .map(|(i, w)| (i as f64 + w[0] / (w[0] - w[1])) * dt)
        .collect()
}

fn mean_period(c: &[f64]) -> f64 {
    (c[c.len() - 1] - c[0]) / (c.len() - 1) as f64
}

#[test]
fn spring_mass_frequency_and_bounded_energy() {
    let s = scene("tests/physics/oscillator.joule");
    let mut sim = s.batch(1);
    let (k, m, h) = (100.0f64, 0.25f64, 1e-3f64);
    let omega = (k / m).sqrt();
    let energy = |x: f64, v: f64| 0.5 * m * v * v + 0.5 * k * x * x;
    let mut xs = vec![];
    let mut es = vec![];
    let steps = 100_000;
    for _ in 0..steps {
        let out = sim.outputs();
        let (x, v) = (out[0][0], out[1][0]);
        xs.push(x);
        es.push(energy(x, v));
        sim.step();
    }
    // Symplectic Euler rotates phase space by theta per step with cos(theta) = 1 - (omega h)^2 / 2.
    let theta = (1.0 - (omega * h).powi(2) / 2.0).acos();
    let period = mean_period(&crossings(&xs, h));
    let discrete = 2.0 * std::f64::consts::PI / theta * h;
    let continuous = 2.0 * std::f64::consts::PI / omega;
    assert!(
        (period - discrete).abs() < 1e-7 * discrete,
        "period {period} vs discrete {discrete}"
    );
    assert!(
        (period - continuous).abs() < 1e-4 * continuous,
        "period {period} vs 2 pi sqrt(m/k) {continuous}"
    );
    // Energy oscillates (amplitude O(omega h)) but does not drift over 10^5 steps.
    let e0 = es[0];
    let swing = es.iter().map(|e| (e - e0).abs()).fold(0.0, f64::max) / e0;
    assert!(swing < omega * h, "energy swings by {swing}");
    // Averages over whole periods (so the O(omega h) oscillation cancels) agree at
    // the start and the end. Explicit Euler would grow E by (1 + (omega h)^2)^N = e^40.
    let window = (20.0 * discrete / h).round() as usize;
    let head: f64 = es[..window].iter().sum::<f64>() / window as f64;
    let tail: f64 = es[steps - window..].iter().sum::<f64>() / window as f64;
    assert!(
        (tail - head).abs() < 2e-6 * e0,
        "energy drifts: {head} -> {tail}"
    );
}

#[test]
fn pendulum_period_with_amplitude_correction() {
    let s = scene("tests/physics/pendulum.joule");
    let mut sim = s.batch(1);
    let (h, l, g, th) = (1e-4f64, 1.0f64, 9.81f64, 0.3f64);
    let mut angle = vec![];
    for _ in 0..45_000 {
        angle.push(sim.output("angle")[0][0]);
        sim.step();
    }
    let period = mean_period(&crossings(&angle, h));
    // T = 2 pi sqrt(L/g) (1 + th^2/16 + 11 th^4/3072 + 173 th^6/737280)
    let want = 2.0
        * std::f64::consts::PI
        * (l / g).sqrt()
        * (1.0 + th * th / 16.0 + 11.0 * th.powi(4) / 3072.0 + 173.0 * th.powi(6) / 737280.0);
    assert!(
        (period - want).abs() < 1e-4 * want,
        "period {period} vs {want}"
    );
}

#[test]
fn free_chain_conserves_linear_and_angular_momentum() {
    let s = scene("tests/physics/free_chain.joule");
    let masses: Vec<f64> = s.model().particles.iter().map(|p| p.mass).collect();
    let mut sim = s.batch(1);
    let momenta = |x: &[f64], v: &[f64]| {
        let (mut p, mut l) = ([0.0; 3], [0.0; 3]);
        for (i, m) in masses.iter().enumerate() {
            let (xi, vi) = (&x[3 * i..3 * i + 3], &v[3 * i..3 * i + 3]);
            for k in 0..3 {
                p[k] += m * vi[k];
            }
            l[0] += m * (xi[1] * vi[2] - xi[2] * vi[1]);
            l[1] += m * (xi[2] * vi[0] - xi[0] * vi[2]);
            l[2] += m * (xi[0] * vi[1] - xi[1] * vi[0]);
        }
        (p, l)
    };
    let (p0, l0) = momenta(&sim.positions(0), &sim.velocities(0));
    let mut worst = (0.0f64, 0.0f64);
    for _ in 0..2000 {
        sim.step();
        let (p, l) = momenta(&sim.positions(0), &sim.velocities(0));
        for k in 0..3 {
            worst.0 = worst.0.max((p[k] - p0[k]).abs());
            worst.1 = worst.1.max((l[k] - l0[k]).abs());
        }
    }
    assert!(worst.0 < 1e-12, "linear momentum drift {}", worst.0);
    assert!(worst.1 < 1e-11, "angular momentum drift {}", worst.1);
}

#[test]
fn implicit_euler_is_stable_on_a_stiff_chain_and_converges() {
    let s = scene("tests/physics/stiff_chain.joule");
    let mut sim = s.batch(4);
    sim.rollout(120);
    assert!(sim.events.is_empty(), "{:?}", sim.events);
    for e in 0..4 {
        let x = sim.positions(e);
        assert!(x.iter().all(|v| v.is_finite()));
        // The chain hangs: every link keeps its length (stiff) and the tip is below the pin.
        assert!(x[x.len() - 1] < 0.0);
    }
}

#[test]
fn implicit_matches_explicit_at_a_tiny_step() {
    let src = std::fs::read_to_string("tests/physics/stiff_chain.joule").expect("scene");
    let soft = src
        .replace("param k = 1e5", "param k = 200")
        .replace("dt = 1 / 60", "dt = 2e-5");
    let explicit = soft.replace(
        "implicit_euler(iterations = 30, tolerance = 1e-9)",
        "symplectic_euler",
    );
    let a = Scene::compile(&soft).expect("implicit scene");
    let b = Scene::compile(&explicit).expect("explicit scene");
    let (mut sa, mut sb) = (a.batch(1), b.batch(1));
    sa.rollout(2500);
    sb.rollout(2500);
    let (xa, xb) = (sa.positions(0), sb.positions(0));
    let diff = xa
        .iter()
        .zip(&xb)
        .map(|(p, q)| (p - q).abs())
        .fold(0.0, f64::max);
    assert!(
        diff < 1e-4,
        "implicit and explicit differ by {diff} m after 0.05 s"
    );
    let moved = xa
        .iter()
        .zip(&sa_initial(&a))
        .map(|(p, q)| (p - q).abs())
        .fold(0.0, f64::max);
    assert!(
        moved > 100.0 * diff,
        "the chain moved {moved} m, enough to compare"
    );
}

fn sa_initial(s: &Scene) -> Vec<f64> {
    s.batch(1).positions(0)
}

#[test]
fn newton_converges_quadratically() {
    // A tighter tolerance than the scene's, so that Newton takes the
    // iteration its contraction would otherwise let it skip (the residual
    // stalls near 1e-11 at f64 resolution, after the tolerance is met).
    let src = std::fs::read_to_string("tests/physics/stiff_chain.joule").expect("test scene");
    let tight = src.replace("tolerance = 1e-9", "tolerance = 1e-12");
    assert_ne!(src, tight, "the test scene states its tolerance");
    let s = Scene::compile(&tight).expect("test scene compiles");
    let mut sim = s.batch(1);
    sim.rollout(4);
    let r: Vec<f64> = sim.newton_trace().into_iter().map(|t| t[0]).collect();
    // Quadratic: the number of correct digits (relative to the first residual)
    // nearly doubles on the last iteration. Linear convergence at rate q adds
    // only log10(1/q) digits, a ratio near 1 this far down.
    let n = r.len();
    assert!(n >= 4 && r[n - 1] < 1e-9 * r[0], "{r:?}");
    let digits = |x: f64| -(x / r[0]).log10();
    let order = digits(r[n - 1]) / digits(r[n - 2]);
    assert!(order > 1.6, "not quadratic (order {order}): {r:?}");
}

#[test]
fn newton_stops_within_its_tolerance_of_the_solution() {
    // Each step from the same state, once at the scene's tolerance (where
    // Newton may stop on its contraction's estimate of the error left) and
    // once at a far tighter one: the two solutions agree within the tolerance.
    for (path, tol, steps) in [
        ("tests/physics/stiff_chain.joule", "1e-9", 40),
        ("scenes/ant.joule", "1e-8", 60),
    ] {
        let src = std::fs::read_to_string(path).expect("scene");
        let tight = src.replace(&format!("tolerance = {tol}"), "tolerance = 1e-13");
        assert_ne!(src, tight, "{path} states its tolerance");
        let (loose, tight) = (
            Scene::compile(&src).expect("compiles"),
            Scene::compile(&tight).expect("compiles"),
        );
        let (mut a, mut b) = (loose.batch(1), tight.batch(1));
        let mut worst: f64 = 0.0;
        for _ in 0..steps {
            b.set_state(0, &a.positions(0), &a.velocities(0));
            a.step();
            b.step();
            let gap = a
                .positions(0)
                .iter()
                .zip(&b.positions(0))
                .map(|(p, q)| (p - q).abs())
                .fold(0.0, f64::max);
            worst = worst.max(gap);
        }
        assert!(a.events.is_empty() && b.events.is_empty(), "{path}");
        let tol: f64 = tol.parse().expect("a number");
        assert!(
            worst <= tol,
            "{path}: {worst:e} from the solution, tolerance {tol:e}"
        );
    }
}

#[test]
fn results_are_identical_for_any_thread_count_and_batch_split() {
    let s = scene("tests/physics/stiff_chain.joule");
    let runs: Vec<Vec<Vec<f64>>> = [1usize, 2, 3]
        .iter()
        .map(|&threads| {
            let mut sim = s.batch_threads(7, threads);
            for e in 0..7 {
                sim.set_param_env("k", e, 1e4 * (1.0 + e as f64))
                    .expect("param");
            }
            sim.rollout(30);
            (0..7).map(|e| sim.positions(e)).collect()
        })
        .collect();
    assert_eq!(runs[0], runs[1]);
    assert_eq!(runs[0], runs[2]);
}

#[test]
fn sparse_solves_are_identical_for_any_split_of_the_lanes() {
    // The soft walker is solved by the sparse Cholesky, whose numeric walk is
    // specialised to blocks of 8 lanes or to pairs: 40 environments split
    // in five blocks of 8 (one or two threads), 8 + 8 + 6 + 6 + 6 + 6
    // (three), 4 to 6 lanes (eight).
    let s = scene("scenes/soft_walker.joule");
    let split: Vec<usize> = [1, 3, 8]
        .iter()
        .map(|&t| s.batch_threads(40, t).partitions())
        .collect();
    assert_eq!(split, [5, 6, 8]);
    let runs: Vec<Vec<Vec<f64>>> = [1usize, 2, 3, 8]
        .iter()
        .map(|&threads| {
            let mut sim = s.batch_threads(40, threads);
            for e in 0..40 {
                sim.set_param_env("youngs", e, 3e4 * (1.0 + 0.02 * e as f64))
                    .expect("param");
                sim.set_control(e % 4, e, 0.5);
            }
            sim.rollout(4);
            (0..40).map(|e| sim.positions(e)).collect()
        })
        .collect();
    for r in &runs[1..] {
        assert_eq!(&runs[0], r);
    }
}

#[test]
fn implicit_batches_are_split_into_partitions_that_stay_in_cache() {
    // The ant keeps ~170 kB per environment (mostly Hessian blocks): a large
    // batch on one thread is stepped in several partitions (the results do
    // not depend on the split, tested above); an explicit pendulum is not split.
    let ant = scene("scenes/ant.joule");
    let sim = ant.batch_threads(1024, 1);
    assert!(sim.partitions() >= 8, "{} partitions", sim.partitions());
    assert_eq!(ant.batch_threads(3, 1).partitions(), 1);
    // Always a multiple of the threads, so that they get equal shares.
    assert_eq!(ant.batch_threads(64, 2).partitions() % 2, 0);
    assert_eq!(ant.batch_threads(64, 4).partitions(), 8);
    let pendulum = scene("tests/physics/pendulum.joule");
    assert_eq!(pendulum.batch_threads(1024, 1).partitions(), 1);
}

#[test]
fn a_diverging_environment_is_reported_and_the_others_go_on() {
    let s = scene("tests/physics/free_chain.joule");
    let mut sim = s.batch(3);
    let mut x = sim.positions(1);
    x[4] = f64::NAN;
    let v = sim.velocities(1);
    sim.set_state(1, &x, &v);
    sim.rollout(5);
    let diverged: Vec<&Event> = sim
        .events
        .iter()
        .filter(|e| matches!(e, Event::Diverged { .. }))
        .collect();
    assert_eq!(diverged.len(), 1, "{:?}", sim.events);
    assert!(matches!(
        diverged[0],
        Event::Diverged {
            env: 1,
            step: 0,
            ..
        }
    ));
    for e in [0, 2] {
        assert!(sim.positions(e).iter().all(|v| v.is_finite()));
    }
}

/// `contact_soft_plane` on the plane z = 0 is `contact_soft`
/// (tests/physics/soft_plane_is_the_ground.joule: two balls thrown
/// spinning onto the ground, 2 m apart, one through each): the two
/// trajectories, bouncing, sliding and rolling over 1 s, agree to 1e-12 m.
#[test]
fn the_soft_contact_on_the_plane_z_0_is_the_ground_contact() {
    let s = scene("tests/physics/soft_plane_is_the_ground.joule");
    let mut sim = s.batch(1);
    let mut worst: f64 = 0.0;
    let mut lowest = f64::INFINITY;
    for _ in 0..500 {
        sim.rollout(1);
        let (a, b) = (sim.output("a_x"), sim.output("b_x"));
        lowest = lowest.min(a[2][0]);
        worst = worst
            .max((a[0][0] + 2.0 - b[0][0]).abs())
            .max((a[1][0] - b[1][0]).abs())
            .max((a[2][0] - b[2][0]).abs());
    }
    assert!(sim.events.is_empty(), "{:?}", sim.events);
    assert!(lowest < 0.1, "the balls reach the ground ({lowest})");
    assert!(worst < 1e-12, "{worst}");
}

/// A state that starts outside the potential's domain (below the ground
/// inside a contact barrier: tests/physics/start_inside_barrier.joule) is
/// reported, not silently frozen: environment 1's particle and environment
/// 2's free body (joint coordinates, the reduced step) each give an
/// `Inadmissible` event at every step and keep their state; environment 0
/// falls freely without events.
#[test]
fn a_start_outside_the_potentials_domain_is_reported() {
    let s = scene("tests/physics/start_inside_barrier.joule");
    let row = |name: &str| {
        (0..s.dofs())
            .find(|&d| s.dof_name(d) == name)
            .unwrap_or_else(|| panic!("no DOF {name}"))
    };
    // The free body's height is its coordinate (0 in the initial pose) and
    // its origin's row.
    let (pz, bx, bq) = (row("p.x.z"), row("b.x[2]"), row("b.free[2]"));
    let mut sim = s.batch(3);
    for (env, rows) in [(1, vec![(pz, -0.05)]), (2, vec![(bx, -0.05), (bq, -0.35)])] {
        let mut x = sim.positions(env);
        for (dof, value) in rows {
            x[dof] = value;
        }
        let v = sim.velocities(env);
        sim.set_state(env, &x, &v);
    }
    let before: Vec<Vec<f64>> = (0..3).map(|e| sim.positions(e)).collect();
    sim.rollout(3);
    let stuck: Vec<(usize, usize)> = sim
        .events
        .iter()
        .map(|e| match e {
            Event::Inadmissible { env, step } => (*env, *step),
            other => panic!("unexpected {other}: {:?}", sim.events),
        })
        .collect();
    let want: Vec<(usize, usize)> = (0..3).flat_map(|k| [(1, k), (2, k)]).collect();
    let mut got = stuck.clone();
    got.sort_by_key(|&(e, k)| (k, e));
    assert_eq!(got, want);
    assert_eq!(sim.positions(1), before[1]);
    assert_eq!(sim.positions(2), before[2]);
    assert!(sim.positions(0)[pz] < before[0][pz], "environment 0 falls");
}

/// Angular momentum, kinetic energy and body-frame angular velocity of an affine
/// body from its 12 DOFs (origin, then matrix columns a_j) and second moments S_j.
fn rigid_state(x: &[f64], v: &[f64], s: [f64; 3]) -> ([f64; 3], f64, [f64; 3]) {
    let col = |q: &[f64], j: usize| [q[3 + 3 * j], q[4 + 3 * j], q[5 + 3 * j]];
    let cross = |a: [f64; 3], b: [f64; 3]| {
        [
            a[1] * b[2] - a[2] * b[1],
            a[2] * b[0] - a[0] * b[2],
            a[0] * b[1] - a[1] * b[0],
        ]
    };
    let (mut l, mut ke, mut w) = ([0.0; 3], 0.0, [0.0; 3]);
    for j in 0..3 {
        let (a, ad) = (col(x, j), col(v, j));
        let c = cross(a, ad);
        for k in 0..3 {
            l[k] += s[j] * c[k];
            w[k] += 0.5 * c[k]; // omega = 1/2 sum_j a_j x adot_j for orthonormal columns
        }
        ke += 0.5 * s[j] * ad.iter().map(|d| d * d).sum::<f64>();
    }
    let body_w = [0, 1, 2].map(|j| col(x, j).iter().zip(&w).map(|(p, q)| p * q).sum::<f64>());
    (l, ke, body_w)
}

#[test]
fn torque_free_brick_keeps_momentum_and_energy_and_flips() {
    let s = scene("tests/physics/spinning_brick.joule");
    let body = &s.model().bodies[0];
    let moments = body.shape.second_moments(body.mass);
    let mut sim = s.batch(1);
    let (l0, e0, w0) = rigid_state(&sim.positions(0), &sim.velocities(0), moments);
    let norm = |v: [f64; 3]| v.iter().map(|c| c * c).sum::<f64>().sqrt();
    let (mut worst_l, mut worst_e) = (0.0f64, 0.0f64);
    let mut flipped = false;
    for _ in 0..12_000 {
        sim.step();
        let (l, e, w) = rigid_state(&sim.positions(0), &sim.velocities(0), moments);
        worst_l = worst_l.max((norm(l) - norm(l0)).abs() / norm(l0));
        worst_e = worst_e.max((e - e0).abs() / e0);
        flipped |= w[1] * w0[1] < 0.0;
    }
    // Measured: |L| to 5e-15 (symplectic Euler conserves it for this energy up to
    // round-off), kinetic energy to 4e-4 (the rigidity energy's O(h) exchange).
    assert!(worst_l < 1e-10, "|L| drifts by {worst_l}");
    assert!(worst_e < 2e-3, "kinetic energy drifts by {worst_e}");
    assert!(
        flipped,
        "the spin about the intermediate axis should flip within 6 s"
    );
}

#[test]
fn hinge_keeps_its_anchor_and_axis_under_load() {
    let s = scene("tests/physics/hinged_plate.joule");
    let mut sim = s.batch(1);
    let anchor_body = |x: &[f64]| {
        // The hinge point in the plate's frame, from the initial state: r = R^T (at - origin).
        let col = |j: usize| [x[3 + 3 * j], x[4 + 3 * j], x[5 + 3 * j]];
        let d = [0.0 - x[0], 0.0 - x[1], 1.0 - x[2]];
        [0, 1, 2].map(|j| col(j).iter().zip(&d).map(|(a, b)| a * b).sum::<f64>())
    };
    let r = anchor_body(&sim.positions(0));
    let mut worst: (f64, f64) = (0.0, 0.0);
    for _ in 0..1500 {
        sim.step();
        let x = sim.positions(0);
        // World position of the plate's hinge point, and its hinge axis (column y).
        let p: Vec<f64> = (0..3)
            .map(|k| x[k] + (0..3).map(|j| x[3 + 3 * j + k] * r[j]).sum::<f64>())
            .collect();
        let sep = (p[0].powi(2) + p[1].powi(2) + (p[2] - 1.0).powi(2)).sqrt();
        let axis = [x[6], x[7], x[8]];
        let tilt = (axis[0].powi(2) + axis[2].powi(2)).sqrt() / axis[1].abs();
        worst = (worst.0.max(sep), worst.1.max(tilt));
    }
    assert!(sim.events.is_empty(), "{:?}", sim.events);
    // k = 1e6 N/m against a 2 kg plate: separation ~ m g / k plus swing loads.
    assert!(worst.0 < 1e-4, "anchor separation {} m", worst.0);
    assert!(worst.1 < 1e-4, "axis misalignment {} rad", worst.1);
}

/// A slope scene (`const THETA = 20deg` in the file) compiled at `theta_deg`.
fn tilted(path: &str, theta_deg: f64) -> Scene {
    let src = std::fs::read_to_string(path).expect("scene");
    Scene::compile(&src.replace("THETA = 20deg", &format!("THETA = {theta_deg}deg")))
        .expect("scene")
}

#[test]
fn block_on_a_slope_sticks_below_and_slides_above_the_friction_angle() {
    let (mu, g, eps) = (0.5f64, 9.81f64, 1e-4f64);
    for theta_deg in [20.0f64, 35.0] {
        let theta = theta_deg.to_radians();
        let s = tilted("tests/physics/slope.joule", theta_deg);
        let mut sim = s.batch(1);
        sim.rollout(1000);
        assert!(sim.events.is_empty(), "{:?}", sim.events);
        let v = sim.velocities(0);
        let speed = (v[0] * v[0] + v[1] * v[1] + v[2] * v[2]).sqrt();
        if theta.tan() < mu {
            // Smoothed static friction: a creep at eps r / sqrt(1 - r^2), r = tan(theta) / mu.
            let r = theta.tan() / mu;
            let creep = eps * r / (1.0 - r * r).sqrt();
            assert!(
                (speed - creep).abs() < 0.05 * creep,
                "{theta_deg} deg: creeps at {speed}, expected {creep}"
            );
        } else {
            // Kinetic friction: v = g (sin theta - mu cos theta) t.
            let want = g * (theta.sin() - mu * theta.cos()) * 1.0;
            assert!(
                (speed - want).abs() < 0.01 * want,
                "{theta_deg} deg: slides at {speed}, expected {want}"
            );
        }
    }
}

#[test]
fn a_box_settles_on_the_ground_within_dhat() {
    let s = scene("tests/physics/resting_box.joule");
    let mut sim = s.batch(1);
    sim.rollout(500);
    assert!(sim.events.is_empty(), "{:?}", sim.events);
    let (x, v) = (sim.positions(0), sim.velocities(0));
    let (size, dhat) = ([0.2, 0.2, 0.1], 1e-3);
    for sx in [-1.0, 1.0] {
        for sy in [-1.0, 1.0] {
            let r = [sx * size[0] / 2.0, sy * size[1] / 2.0, -size[2] / 2.0];
            let z = x[2] + (0..3).map(|j| x[3 + 3 * j + 2] * r[j]).sum::<f64>();
            assert!(z > 0.0 && z < dhat, "corner height {z}");
        }
    }
    assert!(v.iter().all(|c| c.abs() < 1e-3), "still moving: {v:?}");
}

#[test]
fn a_motor_spins_a_wheel_at_torque_over_inertia() {
    let s = scene("tests/physics/motor.joule");
    let mut sim = s.batch(2);
    sim.set_control(0, 0, 1.0);
    sim.set_control(0, 1, 7.0); // clamped to the range 1
    sim.rollout(1000);
    // tau = gear * u = 0.004 N m on a 1 kg ball of radius 0.1: I = 2/5 m r^2 = 0.004.
    let want = 0.004 / 0.004 * 1.0;
    for env in 0..2 {
        let spin = sim.output("spin")[2][env];
        assert!(
            (spin - want).abs() < 0.01 * want,
            "environment {env}: spin {spin}, expected {want}"
        );
    }
}

#[test]
fn cartpole_swings_up_under_an_energy_pumping_policy() {
    let s = scene("scenes/cartpole.joule");
    let best_height = |pump: bool| {
        let mut sim = s.batch(1);
        let mut best = f64::NEG_INFINITY;
        for _ in 0..800 {
            let tip = sim.output("pole_tip");
            let spin = sim.output("pole_spin")[0][0];
            let tz = tip[2][0];
            // dE/dt of the pole = -a * (horizontal tip velocity relative to the cart),
            // and that velocity is spin * tz: push against it to pump energy in.
            let u = if pump { -(spin * tz).signum() } else { 0.0 };
            sim.set_control(0, 0, u);
            sim.step();
            best = best.max(tz);
        }
        assert!(sim.events.is_empty(), "{:?}", sim.events);
        best
    };
    let (passive, pumped) = (best_height(false), best_height(true));
    assert!(passive < -0.9, "without control the pole hangs: {passive}");
    assert!(
        pumped > 0.5,
        "pumping swings the tip above the cart: {pumped}"
    );
}

#[test]
fn the_ant_stands_and_walks_under_a_periodic_gait() {
    let s = scene("scenes/ant.joule");
    let mut sim = s.batch(2);
    let start = sim.output("position");
    for step in 0..300 {
        let t = step as f64 * 0.01;
        for k in 0..4 {
            // Environment 1: a wave gait (each leg a quarter period after the
            // previous one, ankles leading hips); environment 0 stands still.
            let phase = k as f64 * std::f64::consts::FRAC_PI_2;
            sim.set_control(k, 1, (2.0 * std::f64::consts::PI * 2.0 * t + phase).sin());
            sim.set_control(
                k + 4,
                1,
                (2.0 * std::f64::consts::PI * 2.0 * t + phase).cos(),
            );
        }
        sim.step();
    }
    assert!(sim.events.is_empty(), "{:?}", sim.events);
    let end = sim.output("position");
    // Standing: the torso stays up, near where it started.
    assert!(end[2][0] > 0.4, "the idle ant sank to {}", end[2][0]);
    let moved =
        |e: usize| ((end[0][e] - start[0][e]).powi(2) + (end[1][e] - start[1][e]).powi(2)).sqrt();
    assert!(moved(0) < 1e-3, "the idle ant drifted {}", moved(0));
    // Walking: an open-loop wave gait moves the torso (measured 4.5 cm in 3 s; a
    // learned policy does far better) and the ant stays up.
    assert!(moved(1) > 0.02, "the gait moved the ant only {}", moved(1));
    assert!(end[2][1] > 0.2, "the walking ant fell to {}", end[2][1]);
}

/// Linear and angular momentum and kinetic energy of a set of affine bodies:
/// the origin carries the mass, matrix column j the second moment S_j.
fn body_momenta(x: &[f64], v: &[f64], bodies: &[(f64, [f64; 3])]) -> ([f64; 3], [f64; 3], f64) {
    let cross = |a: &[f64], b: &[f64]| {
        [
            a[1] * b[2] - a[2] * b[1],
            a[2] * b[0] - a[0] * b[2],
            a[0] * b[1] - a[1] * b[0],
        ]
    };
    let (mut p, mut l, mut ke) = ([0.0; 3], [0.0; 3], 0.0);
    for (b, (m, s)) in bodies.iter().enumerate() {
        let q = &x[12 * b..12 * b + 12];
        let qd = &v[12 * b..12 * b + 12];
        let weights = [*m, s[0], s[1], s[2]];
        for (k, w) in weights.iter().enumerate() {
            let (pos, vel) = (&q[3 * k..3 * k + 3], &qd[3 * k..3 * k + 3]);
            let c = cross(pos, vel);
            for d in 0..3 {
                l[d] += w * c[d];
                if k == 0 {
                    p[d] += w * vel[d];
                }
            }
            ke += 0.5 * w * vel.iter().map(|c| c * c).sum::<f64>();
        }
    }
    (p, l, ke)
}

#[test]
fn astronaut_conserves_momentum_under_random_actuation_and_energy_after_kicks() {
    let s = scene("tests/physics/astronaut.joule");
    let bodies: Vec<(f64, [f64; 3])> = s
        .model()
        .bodies
        .iter()
        .map(|b| (b.mass, b.shape.second_moments(b.mass)))
        .collect();
    let seeds = 128;
    let mut rng = 0x2545_F491_4F6C_DD1Du64;
    let mut next = || {
        rng ^= rng << 13;
        rng ^= rng >> 7;
        rng ^= rng << 17;
        (rng >> 11) as f64 / (1u64 << 53) as f64 * 2.0 - 1.0
    };

    // Random actuation for 1 s (new random controls every 0.05 s), 128 seeds at once.
    let mut sim = s.batch(seeds);
    let before: Vec<_> = (0..seeds)
        .map(|e| body_momenta(&sim.positions(e), &sim.velocities(e), &bodies))
        .collect();
    for step in 0..1000 {
        if step % 50 == 0 {
            for e in 0..seeds {
                for k in 0..2 {
                    sim.set_control(k, e, next());
                }
            }
        }
        sim.step();
    }
    assert!(sim.events.is_empty(), "{:?}", sim.events);
    let (mut dp, mut dl) = (0.0f64, 0.0f64);
    for (e, (p0, l0, _)) in before.iter().enumerate() {
        let (p, l, _) = body_momenta(&sim.positions(e), &sim.velocities(e), &bodies);
        assert!(p.iter().chain(&l).all(|c| c.is_finite()));
        for k in 0..3 {
            dp = dp.max((p[k] - p0[k]).abs());
            dl = dl.max((l[k] - l0[k]).abs());
        }
    }
    // Internal forces only: symplectic Euler conserves both to round-off.
    assert!(dp < 1e-12, "linear momentum drift {dp}");
    assert!(dl < 1e-12, "angular momentum drift {dl}");

    // Random kicks (initial velocities), no actuation: total energy bounded.
    let mut sim = s.batch(seeds);
    for e in 0..seeds {
        let x = sim.positions(e);
        // A rigid-body kick: a random linear and angular velocity of the whole chain.
        let (lin, ang) = ([next(), next(), next()], [next(), next(), next()]);
        let mut v = vec![0.0; x.len()];
        for b in 0..bodies.len() {
            for k in 0..4 {
                let q = &x[12 * b + 3 * k..12 * b + 3 * k + 3];
                // Origins move with v + w x p; matrix columns rotate with w x a.
                let w_cross = [
                    ang[1] * q[2] - ang[2] * q[1],
                    ang[2] * q[0] - ang[0] * q[2],
                    ang[0] * q[1] - ang[1] * q[0],
                ];
                for d in 0..3 {
                    v[12 * b + 3 * k + d] = w_cross[d] + if k == 0 { lin[d] } else { 0.0 };
                }
            }
        }
        sim.set_state(e, &x, &v);
    }
    let pe0 = sim.potential_energy();
    let e0: Vec<f64> = (0..seeds)
        .map(|e| body_momenta(&sim.positions(e), &sim.velocities(e), &bodies).2 + pe0[e])
        .collect();
    let mut worst = 0.0f64;
    for _ in 0..1000 {
        sim.step();
    }
    let pe = sim.potential_energy();
    for e in 0..seeds {
        let total = body_momenta(&sim.positions(e), &sim.velocities(e), &bodies).2 + pe[e];
        assert!(total.is_finite());
        worst = worst.max((total - e0[e]).abs() / e0[e]);
    }
    assert!(sim.events.is_empty(), "{:?}", sim.events);
    assert!(worst < 1e-3, "energy drifts by {worst} after a rigid kick");
}

#[test]
fn cloth_drapes_over_the_ball_without_passing_through() {
    let s = scene("scenes/cloth_drape.joule");
    let mut sim = s.batch(1);
    sim.rollout(100);
    assert!(sim.events.is_empty(), "{:?}", sim.events);
    let (r, dhat, centre) = (0.25, 4e-3, [0.0, 0.0, 0.5]);
    let x = sim.positions(0);
    let gap = |p: &[f64]| {
        ((p[0] - centre[0]).powi(2) + (p[1] - centre[1]).powi(2) + (p[2] - centre[2]).powi(2))
            .sqrt()
            - r
    };
    // Every vertex stays outside the ball; the middle rests on it within dhat.
    assert!(
        x.chunks(3).all(|p| gap(p) > 0.0),
        "a vertex went into the ball"
    );
    let mid = sim.output("centre");
    let mid = [mid[0][0], mid[1][0], mid[2][0]];
    assert!(
        gap(&mid) < dhat,
        "the middle hovers {} above the ball",
        gap(&mid)
    );
    // The free corners hang well below the top of the ball.
    let corner = sim.output("corner")[2][0];
    assert!(corner < 0.75 - 0.1, "corner at {corner}");
}

#[test]
fn reacher_learns_to_reach_by_gradient_descent_on_its_controls() {
    // Open-loop trajectory optimisation: a constant torque pair, improved by the
    // exact gradient of the final squared distance (summed over the steps).
    let s = scene("scenes/reacher.joule");
    let objective = joule_runtime::Objective::loss("distance");
    let steps = 60;
    let mut u = [0.0f64, 0.0];
    let loss = |u: [f64; 2]| {
        let mut sim = s.batch(1);
        for (k, v) in u.iter().enumerate() {
            sim.set_control(k, 0, *v);
        }
        let g = sim.gradient(&objective, steps).expect("gradient");
        assert!(sim.events.is_empty(), "{:?}", sim.events);
        let du = [0, 1].map(|k| (0..steps).map(|t| g.controls[t][k][0]).sum::<f64>());
        (g.value[0], du)
    };
    let (first, _) = loss(u);
    let mut best = first;
    for _ in 0..40 {
        let (value, du) = loss(u);
        best = best.min(value);
        let norm = (du[0] * du[0] + du[1] * du[1]).sqrt().max(1e-300);
        for k in 0..2 {
            u[k] = (u[k] - 0.05 * du[k] / norm).clamp(-1.0, 1.0);
        }
    }
    assert!(
        best < 0.1 * first,
        "distance^2 only went from {first} to {best}"
    );
}

#[test]
fn soft_walker_crawls_under_a_travelling_muscle_wave() {
    let s = scene("scenes/soft_walker.joule");
    let mut sim = s.batch(2);
    let start = sim.output("centre");
    for step in 0..300 {
        let t = step as f64 * 0.01;
        for k in 0..6 {
            // Environment 1: a contraction wave running from front to back, 2 Hz.
            let phase = 2.0 * std::f64::consts::PI * (2.0 * t + k as f64 / 6.0);
            sim.set_control(k, 1, phase.sin());
        }
        sim.step();
    }
    assert!(sim.events.is_empty(), "{:?}", sim.events);
    let end = sim.output("centre");
    let dx = |e: usize| end[0][e] - start[0][e];
    assert!(dx(0).abs() < 1e-4, "the idle walker drifted {}", dx(0));
    assert!(
        dx(1).abs() > 5e-3,
        "the muscle wave moved the walker only {}",
        dx(1)
    );
    assert!(
        end[2].iter().all(|z| *z > 0.05),
        "the walker stays up: {:?}",
        end[2]
    );
}

#[test]
fn a_hinge_limit_stops_the_swing() {
    let s = scene("tests/physics/limited_hinge.joule");
    let mut sim = s.batch(1);
    let (mut lo, mut hi) = (f64::INFINITY, f64::NEG_INFINITY);
    for _ in 0..2000 {
        sim.step();
        let a = sim.output("angle")[0][0];
        lo = lo.min(a);
        hi = hi.max(a);
    }
    assert!(sim.events.is_empty(), "{:?}", sim.events);
    // Free, the plate (centre at 53 deg from the vertical) would swing down
    // through 0.93 rad and beyond; the upper limit (10 deg) stops it with a
    // small overshoot (stiffness 200 N m/rad) and it comes to rest there.
    let last = sim.output("angle")[0][0];
    let limit = 10f64.to_radians();
    assert!(hi < limit + 0.1, "swung to {hi} rad, past the upper limit");
    assert!(lo > -1e-3, "went backwards to {lo}");
    assert!(
        last > limit - 0.02 && last < limit + 0.1,
        "rests at {last} rad, not at the limit"
    );
}

#[test]
fn balls_collide_without_interpenetrating_and_keep_their_momentum() {
    let s = scene("tests/physics/colliding_balls.joule");
    // One contact template instance: the pair (a, b), generated once.
    let touch = s
        .model()
        .templates
        .iter()
        .find(|t| t.name == "touch")
        .expect("touch instances");
    assert_eq!(touch.count, 1);
    let mut sim = s.batch(1);
    let momentum = |v: &[f64]| [0, 1, 2].map(|k| 1.0 * v[k] + 2.0 * v[12 + k]);
    let p0 = momentum(&sim.velocities(0));
    let mut closest = f64::INFINITY;
    for _ in 0..600 {
        sim.step();
        closest = closest.min(sim.output("gap")[0][0]);
    }
    assert!(sim.events.is_empty(), "{:?}", sim.events);
    let p = momentum(&sim.velocities(0));
    assert!(
        closest > 0.0 && closest < 2e-3,
        "closest approach {closest}"
    );
    for k in 0..3 {
        assert!((p[k] - p0[k]).abs() < 1e-9, "momentum {p:?} vs {p0:?}");
    }
    // They have bounced: a now moves back (its x velocity turned negative).
    assert!(sim.velocities(0)[0] < 0.0, "a did not bounce");
}

#[test]
fn half_cheetah_lands_upright_and_moves_under_a_gait() {
    let s = scene("scenes/half_cheetah.joule");
    let mut sim = s.batch(2);
    let start = sim.output("position");
    for step in 0..300 {
        let t = step as f64 * 0.01;
        for k in 0..6 {
            // Environment 1: the back and front legs in anti-phase, 2 Hz.
            let phase = 2.0 * std::f64::consts::PI * (2.0 * t)
                + if k < 3 { 0.0 } else { std::f64::consts::PI }
                + k as f64 * 0.5;
            sim.set_control(k, 1, phase.sin());
        }
        sim.step();
    }
    assert!(sim.events.is_empty(), "{:?}", sim.events);
    let end = sim.output("position");
    // Planar: no sideways motion at all.
    assert!(
        end[1].iter().all(|y| y.abs() < 1e-6),
        "left the plane: {:?}",
        end[1]
    );
    // Idle: it lands on its feet and stands (torso above 0.45 m, where it started).
    assert!(end[2][0] > 0.45, "the idle cheetah sank to {}", end[2][0]);
    assert!(
        (end[0][0] - start[0][0]).abs() < 0.05,
        "the idle cheetah wandered"
    );
    // Driven: it moves and stays up.
    assert!(
        (end[0][1] - start[0][1]).abs() > 0.05,
        "the gait moved it only {}",
        end[0][1] - start[0][1]
    );
    assert!(end[2][1] > 0.2, "the driven cheetah fell to {}", end[2][1]);
}

#[test]
fn a_box_on_a_slope_sticks_below_and_slides_above_the_friction_angle() {
    let (mu, g) = (0.5f64, 9.81f64);
    for theta_deg in [20.0f64, 35.0] {
        let theta = theta_deg.to_radians();
        let s = tilted("tests/physics/box_slope.joule", theta_deg);
        let mut sim = s.batch(1);
        sim.rollout(500);
        assert!(sim.events.is_empty(), "{:?}", sim.events);
        let vx = sim.output("velocity")[0][0];
        if theta.tan() < mu {
            assert!(
                vx.abs() < 1e-3,
                "{theta_deg} deg: the box creeps at {vx} m/s"
            );
        } else {
            let want = -g * (theta.sin() - mu * theta.cos()) * 1.0;
            assert!(
                (vx - want).abs() < 0.02 * want.abs(),
                "{theta_deg} deg: slides at {vx}, expected {want}"
            );
        }
    }
}

/// The box of [`a_box_on_a_slope_sticks_below_and_slides_above_the_friction_angle`]
/// on a real tilted plane that does not pass through the origin
/// (`tests/physics/box_plane.joule`: `ground_plane_point` and
/// `friction_plane_point`, gravity vertical): it sticks below the friction
/// angle and slides at `g (sin - mu cos)` above it, resting on the plane
/// (within the barrier's `dhat`, not through it).
#[test]
fn a_box_on_a_tilted_plane_moves_as_on_the_slope() {
    let (mu, g, dhat) = (0.5f64, 9.81f64, 1e-3);
    for theta_deg in [20.0f64, 35.0] {
        let theta = theta_deg.to_radians();
        let s = tilted("tests/physics/box_plane.joule", theta_deg);
        let mut sim = s.batch(1);
        sim.rollout(500);
        assert!(sim.events.is_empty(), "{:?}", sim.events);
        let v = sim.output("velocity")[0][0];
        let height = sim.output("height")[0][0];
        assert!(
            height > 0.05 && height < 0.05 + dhat,
            "{theta_deg} deg: the box's centre is {height} m above the plane"
        );
        if theta.tan() < mu {
            assert!(v.abs() < 1e-3, "{theta_deg} deg: the box creeps at {v} m/s");
        } else {
            let want = g * (theta.sin() - mu * theta.cos());
            assert!(
                (v - want).abs() < 0.02 * want,
                "{theta_deg} deg: slides at {v}, expected {want}"
            );
        }
    }
}

#[test]
fn the_cartpole_track_ends_stop_the_cart() {
    let s = scene("scenes/cartpole.joule");
    let mut sim = s.batch(1);
    sim.set_control(0, 0, 1.0);
    let mut furthest = 0.0f64;
    for _ in 0..500 {
        sim.step();
        furthest = furthest.max(sim.output("cart_x")[0][0]);
    }
    assert!(sim.events.is_empty(), "{:?}", sim.events);
    // Pushed at full force for 5 s it would be far away; the limit at 2.4 m holds it.
    assert!(
        furthest > 2.3 && furthest < 2.45,
        "the cart reached {furthest} m"
    );
}

#[test]
fn a_compound_body_keeps_its_momenta_and_its_centre_moves_straight() {
    let s = scene("tests/physics/compound_spin.joule");
    let w = s.model().bodies[0]
        .shape
        .mass_matrix(s.model().bodies[0].mass);
    let mut sim = s.batch(1);
    // Generalised momenta of the affine body: P = sum_b W[0][b] qdot_b,
    // L = sum_ab W[a][b] q_a x qdot_b; centre of mass = sum_a W[0][a] q_a / m.
    let measure = |x: &[f64], v: &[f64]| {
        let q = |a: usize| [x[3 * a], x[3 * a + 1], x[3 * a + 2]];
        let qd = |a: usize| [v[3 * a], v[3 * a + 1], v[3 * a + 2]];
        let (mut p, mut l, mut c) = ([0.0; 3], [0.0; 3], [0.0; 3]);
        for a in 0..4 {
            for b in 0..4 {
                let (qa, qdb) = (q(a), qd(b));
                let cr = [
                    qa[1] * qdb[2] - qa[2] * qdb[1],
                    qa[2] * qdb[0] - qa[0] * qdb[2],
                    qa[0] * qdb[1] - qa[1] * qdb[0],
                ];
                for k in 0..3 {
                    l[k] += w[a][b] * cr[k];
                }
            }
            for k in 0..3 {
                p[k] += w[0][a] * qd(a)[k];
                c[k] += w[0][a] * q(a)[k] / w[0][0];
            }
        }
        (p, l, c)
    };
    let (p0, l0, c0) = measure(&sim.positions(0), &sim.velocities(0));
    let steps = 4000;
    let mut worst = (0.0f64, 0.0f64);
    for _ in 0..steps {
        sim.step();
        let (p, l, _) = measure(&sim.positions(0), &sim.velocities(0));
        for k in 0..3 {
            worst.0 = worst.0.max((p[k] - p0[k]).abs());
            worst.1 = worst.1.max((l[k] - l0[k]).abs());
        }
    }
    assert!(sim.events.is_empty(), "{:?}", sim.events);
    let (_, _, c) = measure(&sim.positions(0), &sim.velocities(0));
    let t = steps as f64 * 5e-4;
    assert!(worst.0 < 1e-12, "linear momentum drift {}", worst.0);
    assert!(worst.1 < 1e-12, "angular momentum drift {}", worst.1);
    for k in 0..3 {
        let straight = c0[k] + p0[k] / w[0][0] * t;
        assert!(
            (c[k] - straight).abs() < 1e-9,
            "centre of mass off its straight line by {}",
            c[k] - straight
        );
    }
    // It really tumbles about an off-origin centre: the origin itself does not move straight.
    let origin = sim.output("origin");
    let origin_straight = 0.5 * t;
    assert!(
        (origin[0][0] - origin_straight).abs() > 1e-3,
        "the origin moved straight"
    );
}

#[test]
fn the_pendulum_scenes_swing() {
    // pendulum: released at 30 deg, it swings to -30 deg and back with the
    // period of the pendulum's law, 4 sqrt(L / g) K(sin(theta0 / 2)) (K by the
    // series K(k) = pi / 2 (1 + k^2 / 4 + 9 k^4 / 64 + 25 k^6 / 256 + ...)),
    // for the default rod under the Earth's gravity, and for the parameters
    // length and g changed: a 1.3 m rod under Mars's gravity, a 0.4 m one
    // under the Earth's.
    let s = scene("scenes/pendulum.joule");
    let k2 = (15f64.to_radians().sin()).powi(2);
    let elliptic_k = std::f64::consts::PI / 2.0
        * (1.0
            + k2 / 4.0
            + 9.0 * k2 * k2 / 64.0
            + 25.0 * k2.powi(3) / 256.0
            + 1225.0 * k2.powi(4) / 16384.0);
    for (length, g) in [(1.0, 9.81), (1.3, 3.71), (0.4, 9.81)] {
        let mut sim = s.batch(1);
        sim.set_param("length", length).expect("length");
        sim.set_param("g", g).expect("g");
        let mut angles = vec![];
        for _ in 0..9000 {
            sim.step();
            angles.push(sim.output("angle")[0][0]);
        }
        assert!(sim.events.is_empty(), "{:?}", sim.events);
        let (lo, hi) = angles
            .iter()
            .fold((f64::MAX, f64::MIN), |(a, b), x| (a.min(*x), b.max(*x)));
        // The amplitude stays 30 degrees (symplectic Euler's energy error is
        // bounded) and the rod stays within 2% of its length.
        assert!(
            (lo + 30f64.to_radians()).abs() < 2e-3 && (hi - 30f64.to_radians()).abs() < 2e-3,
            "length {length}, g {g}: swing {lo}..{hi}"
        );
        let rod = sim.output("position")[0..3]
            .iter()
            .zip([-length * 0.5, 0.0, 1.0 + length * 3f64.sqrt() / 2.0])
            .map(|(x, pivot)| (x[0] - pivot).powi(2))
            .sum::<f64>()
            .sqrt();
        assert!((rod - length).abs() < 0.02 * length, "rod {rod} m");
        // The rod is a spring of k = 1e4 N/m: under the 1 kg bob's weight it
        // is m g / k longer (1 mm on the Earth), which lengthens the period
        // of a short rod measurably (1.2e-3 at 0.4 m).
        let period = mean_period(&crossings(&angles, 1e-3));
        let want = 4.0 * ((length + g / 1e4) / g).sqrt() * elliptic_k;
        assert!(
            (period - want).abs() < 1e-3 * want,
            "length {length}, g {g}: period {period} vs {want}"
        );
    }

    // double_pendulum: both arms swing and it stays finite for 4 s.
    let s = scene("scenes/double_pendulum.joule");
    let mut sim = s.batch(1);
    let mut moved = (0.0f64, 0.0f64);
    for _ in 0..2000 {
        sim.step();
        moved.0 = moved.0.max(sim.output("theta1")[0][0].abs());
        moved.1 = moved.1.max(sim.output("theta2")[0][0].abs());
    }
    assert!(sim.events.is_empty(), "{:?}", sim.events);
    assert!(sim.positions(0).iter().all(|x| x.is_finite()));
    assert!(moved.0 > 0.1 && moved.1 > 0.1, "arms swung {moved:?}");
}

/// The environment-major bulk reads and writes (`Sim::read_*`, `write_*`,
/// what the Python package uses) agree with the per-environment accessors
/// across partitions, f64 and f32 alike.
#[test]
fn bulk_reads_and_writes_agree_with_the_per_environment_accessors() {
    for (path, precision) in [
        ("scenes/cartpole.joule", "f64"),
        ("scenes/cartpole.joule", "f32"),
    ] {
        let mut model = joule::check_path(Path::new(path))
            .expect("reads")
            .model
            .expect("compiles");
        if precision == "f32" {
            model.settings.precision = joule_compiler::model::Precision::F32;
        }
        let s = Scene::from_model(model, Backend::Jit).unwrap_or_else(|e| panic!("{e}"));
        let batch = 13;
        let mut sim = s.batch_threads(batch, 3);
        assert!(sim.partitions() > 1);
        let (nc, np, nd) = (1, s.model().params.len(), s.dofs());
        // Controls: clamped to [-1, 1] like set_control.
        let u: Vec<f64> = (0..batch * nc).map(|e| e as f64 * 0.2 - 1.1).collect();
        sim.write_controls(&u);
        let mut back = vec![0.0; batch * nc];
        sim.read_controls(&mut back);
        for e in 0..batch {
            let mut one = s.batch(batch);
            one.set_control(0, e, u[e]);
            let mut want = vec![0.0; batch];
            one.read_controls(&mut want);
            assert_eq!(back[e], want[e], "control of env {e}");
        }
        let p: Vec<f64> = (0..batch * np).map(|i| 5.0 + i as f64).collect();
        sim.write_params(&p).expect("params");
        for e in 0..batch {
            assert_eq!(sim.param("force_gain", e).unwrap(), p[e * np]);
        }
        let mut pb = vec![0.0; batch * np];
        sim.read_params(&mut pb);
        assert_eq!(pb, p);
        sim.rollout(5);
        let (mut x, mut v) = (vec![0.0; batch * nd], vec![0.0; batch * nd]);
        sim.read_state(&mut x, &mut v);
        for e in [0, 6, 12] {
            assert_eq!(x[e * nd..(e + 1) * nd], sim.positions(e)[..]);
            assert_eq!(v[e * nd..(e + 1) * nd], sim.velocities(e)[..]);
        }
        let rows = s.compiled.layout().output_rows();
        let mut out = vec![0.0; batch * rows];
        sim.read_outputs(&mut out);
        let by_row = sim.outputs();
        for e in 0..batch {
            for r in 0..rows {
                assert_eq!(out[e * rows + r], by_row[r][e]);
            }
        }
        // Writing the state back reproduces the same next step.
        let mut other = s.batch_threads(batch, 2);
        other.write_params(&p).expect("params");
        other.write_controls(&u);
        other.write_state(&x, &v);
        sim.step();
        other.step();
        let (mut x1, mut v1) = (vec![0.0; batch * nd], vec![0.0; batch * nd]);
        let (mut x2, mut v2) = (vec![0.0; batch * nd], vec![0.0; batch * nd]);
        sim.read_state(&mut x1, &mut v1);
        other.read_state(&mut x2, &mut v2);
        assert_eq!(x1, x2);
        assert_eq!(v1, v2);
    }
}

/// An energy that names a particle, a body or a joint coordinate directly
/// (not through an argument) exerts its force like the same energy given
/// it as an argument, or like the joint's own options: its DOFs are the
/// last of its DOF table, differentiated by the gradient and Hessian
/// kernels (they were read as constants there, so such an energy moved
/// nothing in symplectic Euler and stalled Newton in implicit steps).
#[test]
fn energies_by_name_act_like_arguments_and_joint_options() {
    let s = scene("tests/physics/energy_by_name.joule");
    let mut sim = s.batch_threads(1, 1);
    sim.rollout(500);
    let (named, argument) = (sim.output("named"), sim.output("argument"));
    assert_eq!(named, argument);
    assert!((named[0][0] - 1.0).abs() > 0.1, "pulled: {named:?}");

    let s = scene("tests/physics/joint_energy_by_name.joule");
    let mut sim = s.batch_threads(1, 1);
    for _ in 0..500 {
        sim.step();
        let (own, named) = (sim.output("own_q")[0][0], sim.output("named_q")[0][0]);
        assert!((own - named).abs() < 1e-10, "{own} vs {named}");
    }
    assert!(sim.output("own_q")[0][0].abs() > 0.1, "it swings");
    assert!(sim.events.is_empty(), "{:?}", sim.events);
    assert_eq!(sim.newton_iterations(), 2 * 500, "Newton converges in 2");
}
