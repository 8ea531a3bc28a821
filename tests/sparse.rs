//! The static-sparsity Cholesky of the implicit step against a dense Cholesky
//! of the same Hessian, assembled independently from the Hessian-block
//! kernels and the mass matrix, on shipped scenes (including a state whose
//! Hessian is indefinite, which both solve with the same diagonal shifts).

use joule_compiler::compiled::Backend;
use joule_compiler::kernels::KernelKind;
use joule_runtime::step::Part;
use joule_runtime::Scene;
use std::path::Path;

fn scene(path: &str) -> Scene {
    Scene::from_path(Path::new(path), Backend::Jit).expect("the scene compiles")
}

/// `M/h^2 + H_E + H_hD` of every environment as dense row-major matrices
/// (only the lower triangle is filled, as the solver reads it).
fn dense_hessians(scene: &Scene, p: &mut Part<f64>, surrogate: bool) -> Vec<Vec<f64>> {
    let (n, s, h) = (scene.dofs(), p.b.stride, scene.substep());
    let mut mats = vec![vec![0.0; n * n]; p.len];
    for (i, j, m) in scene.mass.entries() {
        if i >= j {
            for a in &mut mats {
                a[i * n + j] += m / (h * h);
            }
        }
    }
    let kinds = if surrogate {
        [
            KernelKind::SurrogateHessian,
            KernelKind::SurrogateDissipationHessian,
        ]
    } else {
        [KernelKind::Hessian, KernelKind::DissipationHessian]
    };
    for kind in kinds {
        scene
            .compiled
            .run(kind, &mut p.b, 0, p.len)
            .expect("kernel runs");
        for entry in scene.compiled.kernels.get(kind).block_entries() {
            // H[a, c] and, mirrored, H[c, a]: in the lower triangle, one
            // entry, or the diagonal twice when both DOFs are the same.
            let (a, c) = (entry.a.max(entry.c), entry.a.min(entry.c));
            let times = if entry.mirrored && a == c { 2.0 } else { 1.0 };
            if a < n {
                for (e, m) in mats.iter_mut().enumerate() {
                    m[a * n + c] += times * p.b.blocks[entry.row * s + e];
                }
            }
        }
    }
    mats
}

/// Dense Cholesky of the lower triangle; false if not positive definite.
fn cholesky(a: &mut [f64], n: usize) -> bool {
    for j in 0..n {
        let mut d = a[j * n + j];
        for k in 0..j {
            d -= a[j * n + k] * a[j * n + k];
        }
        if d.partial_cmp(&0.0) != Some(std::cmp::Ordering::Greater) {
            return false;
        }
        let d = d.sqrt();
        a[j * n + j] = d;
        for i in j + 1..n {
            let mut s = a[i * n + j];
            for k in 0..j {
                s -= a[i * n + k] * a[j * n + k];
            }
            a[i * n + j] = s / d;
        }
    }
    true
}

/// Solves `A x = b` densely, shifting the diagonal by `1e-8 mean|diag|`, times
/// 10 until it factors. Returns the solution and the shift used.
fn dense_solve(a: &[f64], n: usize, b: &[f64]) -> (Vec<f64>, f64) {
    let trace = (0..n).map(|r| a[r * n + r].abs()).sum::<f64>() / n as f64;
    let mut shift = 0.0;
    let mut l = a.to_vec();
    while !cholesky(&mut l, n) {
        shift = if shift == 0.0 {
            1e-8 * trace
        } else {
            shift * 10.0
        };
        assert!(shift <= 1e12 * trace, "no shift makes it positive definite");
        l.copy_from_slice(a);
        for r in 0..n {
            l[r * n + r] += shift;
        }
    }
    let mut x = b.to_vec();
    for i in 0..n {
        let s: f64 = (0..i).map(|k| l[i * n + k] * x[k]).sum();
        x[i] = (x[i] - s) / l[i * n + i];
    }
    for i in (0..n).rev() {
        let s: f64 = (i + 1..n).map(|k| l[k * n + i] * x[k]).sum();
        x[i] = (x[i] - s) / l[i * n + i];
    }
    (x, shift)
}

/// Solves the Newton system at the partition's current state with the
/// scene's sparse solver and densely; returns the largest relative
/// difference over environments and the dense shifts used.
fn compare(scene: &Scene, p: &mut Part<f64>, surrogate: bool) -> (f64, Vec<f64>) {
    let (n, s) = (scene.dofs(), p.b.stride);
    assert!(scene.direct_solver().is_some(), "solved directly");
    let rhs: Vec<f64> = (0..n * s)
        .map(|i| ((i * 37 % 101) as f64 / 50.0 - 1.0) * (1.0 + (i / s) as f64 * 0.01))
        .collect();
    let mut dx = vec![0.0; n * s];
    let active: Vec<bool> = (0..s).map(|e| e < p.len).collect();
    p.solve(scene, scene.substep(), &rhs, &mut dx, &active, surrogate);
    let mats = dense_hessians(scene, p, surrogate);
    let mut worst: f64 = 0.0;
    let mut shifts = vec![];
    for (e, a) in mats.iter().enumerate() {
        let b: Vec<f64> = (0..n).map(|r| rhs[r * s + e]).collect();
        let (x, shift) = dense_solve(a, n, &b);
        shifts.push(shift);
        let scale = x.iter().fold(0.0f64, |m, v| m.max(v.abs()));
        for r in 0..n {
            let d = (dx[r * s + e] - x[r]).abs() / scale;
            assert!(
                d.is_finite(),
                "environment {e} row {r}: {} vs {}",
                dx[r * s + e],
                x[r]
            );
            worst = worst.max(d);
        }
    }
    (worst, shifts)
}

/// A partition of `len` environments stepped `steps` times (a state with
/// motion, contact and joint loads), environments set apart by their controls.
fn stepped(scene: &Scene, len: usize, steps: usize) -> Part<f64> {
    let mut p = Part::<f64>::new(scene, 0, len);
    let s = p.b.stride;
    for c in 0..scene.model().controls.len() {
        for e in 0..len {
            p.b.controls[c * s + e] = 0.3 * ((c + 2 * e) as f64).sin();
        }
    }
    for t in 0..steps {
        p.step(scene, t);
    }
    p
}

#[test]
fn sparse_solves_match_dense_cholesky_on_shipped_scenes() {
    for (path, len, steps) in [
        ("scenes/ant.joule", 3, 20),
        // 70 environments: two blocks of lanes (64 + 6).
        ("scenes/spring_chain.joule", 70, 30),
        ("scenes/cloth_sheet.joule", 1, 3),
        ("scenes/quadruped_surrogate.joule", 2, 10),
    ] {
        let scene = scene(path);
        let mut p = stepped(&scene, len, steps);
        for surrogate in [false, true] {
            let (err, shifts) = compare(&scene, &mut p, surrogate);
            assert!(
                err < 1e-10,
                "{path} (surrogate {surrogate}): relative difference {err:e}"
            );
            assert!(
                shifts.iter().all(|s| *s == 0.0),
                "{path}: positive definite"
            );
        }
    }
}

#[test]
fn an_indefinite_hessian_gets_the_same_shift_as_the_dense_solve() {
    // The chain compressed to a tenth of its length with a stiff cord: its
    // springs' transverse stiffness k (1 - l0/l) is hugely negative.
    let scene = scene("scenes/spring_chain.joule");
    let mut p = Part::<f64>::new(&scene, 0, 3);
    let (n, s) = (scene.dofs(), p.b.stride);
    let ea = scene
        .model()
        .params
        .iter()
        .position(|q| q.name == "EA")
        .expect("EA");
    for e in 0..3 {
        p.b.params[ea * s + e] = [1e5, 3e5, 1e3][e];
    }
    for r in 0..n {
        for e in 0..s {
            p.b.x[r * s + e] *= 0.1;
            p.b.prev_x[r * s + e] = p.b.x[r * s + e];
        }
    }
    let (err, shifts) = compare(&scene, &mut p, false);
    assert!(err < 1e-10, "relative difference {err:e}");
    // Every lane needs a shift, the stiffer cord a larger one.
    assert!(shifts.iter().all(|s| *s > 0.0), "shifts {shifts:?}");
    assert!(
        shifts[1] > shifts[0] && shifts[0] > shifts[2],
        "shifts {shifts:?}"
    );
}

#[test]
fn the_ant_factor_has_little_fill() {
    let d = scene("scenes/ant.joule");
    let d = d.direct_solver().expect("the ant is solved directly");
    assert!(
        d.nnz() < 2 * d.lower_nnz(),
        "nnz(L) {} against {} in the lower triangle",
        d.nnz(),
        d.lower_nnz()
    );
    // A dense 108 x 108 factorisation is 108^3 / 6 = 210k multiply-adds.
    assert!(d.flops() < 50_000, "{} multiply-adds", d.flops());
}

/// A cloth of `n x n` particles with structural and shear springs, large
/// enough that its systems are solved by CG, one Newton iteration per step.
fn cg_cloth(n: usize) -> Scene {
    let src = format!(
        "scene \"cloth\"\nconst N = {n}\nconst h = 1.0 / (N - 1)\n\
         settings {{\n dt = 1 / 60\n gravity = vec3(0, 0, -9.81)\n integrator = implicit_euler(iterations = 1, tolerance = 1e-6)\n}}\n\
         particle cloth[i in 0..N, j in 0..N] {{ x = vec3(i * h, j * h, 1), mass = 0.2 / (N * N) }}\n\
         energy spring(a: particle, b: particle, k: scalar) {{\n let l0 = rest(norm(a.x - b.x))\n 0.5 * k * (norm(a.x - b.x) - l0)^2\n}}\n\
         spring(cloth[i, j], cloth[i + 1, j], 1000) for i in 0..N - 1, j in 0..N\n\
         spring(cloth[i, j], cloth[i, j + 1], 1000) for i in 0..N, j in 0..N - 1\n\
         spring(cloth[i, j], cloth[i + 1, j + 1], 1000) for i in 0..N - 1, j in 0..N - 1\n"
    );
    Scene::compile(&src).expect("the cloth compiles")
}

#[test]
fn cg_stopping_on_negative_curvature_is_an_event_of_the_step_and_the_adjoint() {
    use joule_runtime::step::Adjoint;
    use joule_runtime::{Event, SolveStop};
    let scene = cg_cloth(40);
    assert!(scene.direct_solver().is_none(), "large enough for CG");
    let mut p = Part::<f64>::new(&scene, 0, 1);
    let (n, s) = (scene.dofs(), p.b.stride);
    // Every spring compressed to half its rest length: an indefinite Hessian.
    for v in &mut p.b.x[..n * s] {
        *v *= 0.5;
    }
    let start = p.snapshot(n);
    p.step(&scene, 7);
    let end = p.snapshot(n);
    let stopped = |events: &[Event], adjoint: bool| {
        events.iter().any(|e| {
            matches!(e, Event::SolveStopped { env: 0, step: 7, reason: SolveStop::NegativeCurvature, residual, adjoint: a }
                if *a == adjoint && *residual > 0.0)
        })
    };
    assert!(stopped(&p.events, false), "events {:?}", p.events);
    p.events.clear();
    let mut adj = Adjoint::new(n, s, p.b.params.len(), p.b.controls.len());
    adj.x.fill(1.0);
    p.substep_adjoint(&scene, &start, &end, &mut adj, 7);
    assert!(stopped(&p.events, true), "events {:?}", p.events);
    assert!(
        !stopped(&p.events, false),
        "the forward solve is not reported twice"
    );
}
