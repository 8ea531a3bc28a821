//! Kernels on every shipped scene: the JIT agrees with the interpreter (bit for
//! bit, including lane tails), and every derivative kernel agrees with central
//! finite differences of the kernel it differentiates.

use joule_compiler::abi::{Buffers, Real};
use joule_compiler::compiled::{Backend, CompiledScene};
use joule_compiler::kernels::KernelKind;
use std::path::Path;

#[allow(dead_code)] // each test crate uses a different part of the shared helpers
mod common;
use common::{shipped, Rng};
#[macro_use]
#[path = "common/scene_list.rs"]
mod scene_list;

fn compile(path: &Path, backend: Backend) -> CompiledScene {
    let checked = joule::check_path(path).expect("readable");
    assert!(checked.ok(), "{}", checked.render_diagnostics(false, 100));
    let model = checked.model.expect("a model when ok");
    joule_compiler::compile(model, backend, vec![]).expect("codegen")
}

/// Random but physically sane inputs: rest positions plus small noise, small
/// velocities, default params perturbed by 10%, controls in their range.
fn randomize(scene: &CompiledScene, b: &mut Buffers, rng: &mut Rng) {
    let m = &scene.model;
    let s = b.stride;
    let scale = 1e-3; // small against every scene's element size, so no element inverts
    for p in &m.particles {
        if let Some(d) = p.dof {
            for k in 0..3 {
                let row = d as usize + k;
                for e in 0..s {
                    b.x[row * s + e] = p.x[k] + scale * rng.next();
                    b.prev_x[row * s + e] = p.x[k] + scale * rng.next();
                    b.v[row * s + e] = 0.1 * rng.next();
                    b.prev_v[row * s + e] = 0.1 * rng.next();
                }
            }
        }
    }
    for body in &m.bodies {
        if let Some(d) = body.dof {
            let r = joule_compiler::math::quat_to_mat(body.rotation);
            let init: Vec<f64> = body.x.iter().chain(r.iter()).copied().collect();
            for (k, x0) in init.iter().enumerate() {
                let row = d as usize + k;
                for e in 0..s {
                    b.x[row * s + e] = x0 + scale * rng.next();
                    b.prev_x[row * s + e] = x0 + scale * rng.next();
                    b.v[row * s + e] = 0.1 * rng.next();
                    b.prev_v[row * s + e] = 0.1 * rng.next();
                }
            }
        }
    }
    for (i, p) in m.params.iter().enumerate() {
        for e in 0..s {
            b.params[i * s + e] = p.value * (1.0 + 0.1 * rng.next());
        }
    }
    for (i, c) in m.controls.iter().enumerate() {
        let (lo, hi) = c.bounds.unwrap_or((-1.0, 1.0));
        for e in 0..s {
            b.controls[i * s + e] = lo + (hi - lo) * 0.5 * (1.0 + rng.next());
        }
    }
    for v in b.seed.iter_mut().chain(b.out_seed.iter_mut()) {
        *v = rng.next();
    }
}

fn outputs<T: Real>(b: &Buffers<T>) -> Vec<(&'static str, &[T])> {
    vec![
        ("energy", &b.energy),
        ("grad", &b.grad),
        ("hv", &b.hv),
        ("blocks", &b.blocks),
        ("d_x", &b.d_x),
        ("d_v", &b.d_v),
        ("d_prev_x", &b.d_prev_x),
        ("d_prev_v", &b.d_prev_v),
        ("d_params", &b.d_params),
        ("d_controls", &b.d_controls),
        ("outputs", &b.outputs),
    ]
}

/// Distance in units in the last place (0 for bit-identical values, NaN = NaN).
fn ulps(a: f64, b: f64) -> u64 {
    if a.is_nan() && b.is_nan() || a == b {
        return 0;
    }
    let key = |x: f64| {
        let i = x.to_bits() as i64;
        if i < 0 {
            i64::MIN - i
        } else {
            i
        }
    };
    key(a).abs_diff(key(b))
}

/// The largest [`ulps`] between two buffers' entries.
fn worst_ulps(x: &[f64], y: &[f64]) -> u64 {
    x.iter()
        .zip(y)
        .map(|(p, q)| ulps(*p, *q))
        .max()
        .unwrap_or(0)
}

/// The JIT and the interpreter agree bit for bit on every kernel of a scene,
/// at batch sizes with lane tails.
fn jit_matches_interpreter(path: &Path) {
    let jit = compile(path, Backend::Jit);
    let interp = compile(path, Backend::Interp);
    // Lane tails (1, 3, 17) everywhere; a full batch of 1024 where the buffers stay small.
    let batches: &[usize] = if jit.layout().state_rows() <= 100 {
        &[1, 3, 17, 1024]
    } else {
        &[1, 3, 17]
    };
    for &batch in batches {
        let mut rng = Rng(0x9E37_79B9_7F4A_7C15 ^ batch as u64);
        let mut a = jit.buffers(batch);
        randomize(&jit, &mut a, &mut rng);
        let mut b = a.clone();
        for kind in KernelKind::ALL {
            a.clear_outputs();
            b.clear_outputs();
            jit.run(kind, &mut a, 0, batch).expect("run");
            interp.run(kind, &mut b, 0, batch).expect("run");
            for ((name, x), (_, y)) in outputs(&a).into_iter().zip(outputs(&b)) {
                let worst = worst_ulps(x, y);
                assert!(
                    // Bit-identical: the JIT calls the interpreter's own elementary
                    // functions, never fuses, and accumulates in the same order.
                    worst == 0,
                    "{}: kernel {} buffer {name} differs by {worst} ulp at batch {batch}",
                    path.display(),
                    kind.name()
                );
            }
        }
    }
}

/// Free-DOF rows to probe: up to `n`, spread over the DOF range.
fn sample_rows(dofs: usize, n: usize) -> Vec<usize> {
    if dofs <= n {
        return (0..dofs).collect();
    }
    (0..n).map(|k| k * (dofs - 1) / (n - 1)).collect()
}

/// Runs kernels on a copy of `b` (outputs cleared) and returns the copy.
fn run(scene: &CompiledScene, b: &Buffers, kinds: &[KernelKind]) -> Buffers {
    let mut c = b.clone();
    c.clear_outputs();
    for k in kinds {
        let batch = c.batch;
        scene.run(*k, &mut c, 0, batch).expect("run");
    }
    c
}

/// Which input a finite difference perturbs.
#[derive(Clone, Copy, Debug)]
enum Input {
    X,
    V,
    PrevX,
    PrevV,
    Param,
    Control,
}

fn input_mut(b: &mut Buffers, i: Input) -> &mut [f64] {
    match i {
        Input::X => &mut b.x,
        Input::V => &mut b.v,
        Input::PrevX => &mut b.prev_x,
        Input::PrevV => &mut b.prev_v,
        Input::Param => &mut b.params,
        Input::Control => &mut b.controls,
    }
}

/// Central differences of `f` with respect to `rows` of one input (environment 0),
/// checked against `analytic(row)`. Error budget (f64, h = 1e-6 relative):
/// truncation 1e-5 of the largest analytic value, plus rounding in `f` itself,
/// 1e-14 |f| / h (about 50 ulp of the sum, divided by the step).
fn check_fd(
    what: &str,
    b: &Buffers,
    input: Input,
    rows: &[usize],
    f: &dyn Fn(&Buffers) -> f64,
    analytic: &dyn Fn(usize) -> f64,
) {
    let s = b.stride;
    let mut pairs = vec![];
    for &r in rows {
        let x0 = input_mut(&mut b.clone(), input)[r * s];
        let h = 1e-6 * x0.abs().max(1.0);
        let mut p = b.clone();
        input_mut(&mut p, input)[r * s] = x0 + h;
        let mut m = b.clone();
        input_mut(&mut m, input)[r * s] = x0 - h;
        let (fp, fm) = (f(&p), f(&m));
        let rounding = 1e-14 * (fp.abs() + fm.abs()) / h;
        pairs.push((r, (fp - fm) / (2.0 * h), analytic(r), rounding));
    }
    let scale = pairs.iter().map(|(_, _, a, _)| a.abs()).fold(0.0, f64::max);
    for (r, fd, a, rounding) in pairs {
        let tol = 1e-5 * scale + rounding + 1e-12;
        assert!(
            (fd - a).abs() <= tol,
            "{what}: d/d{input:?}[{r}] analytic {a:e} vs finite difference {fd:e} (tolerance {tol:e})"
        );
    }
}

/// Every derivative kernel of a scene agrees with central finite differences
/// of the kernel it differentiates.
fn derivative_kernels_match_finite_differences(path: &Path) {
    let name = path.display().to_string();
    let scene = compile(path, Backend::Interp);
    let implicit = scene.model.settings.integrator.is_implicit();
    // The adjoint differentiates `backward =` surrogates: finite differences of a
    // model whose bodies are the surrogates are its reference.
    let mut surrogate_model = scene.model.clone();
    for t in &mut surrogate_model.templates {
        if let Some(b) = t.backward.take() {
            t.body = b;
        }
    }
    let surrogate =
        joule_compiler::compile(surrogate_model, Backend::Interp, vec![]).expect("compile");
    let l = scene.layout().clone();
    let mut rng = Rng(0x0123_4567_89AB_CDEF);
    let mut b = scene.buffers(1);
    randomize(&scene, &mut b, &mut rng);
    let s = b.stride;
    // Seeds only on free rows (pinned rows are not unknowns).
    for row in l.dofs..l.state_rows() {
        b.seed[row * s..(row + 1) * s].fill(0.0);
    }
    let rows = sample_rows(l.dofs, 8);
    let scene = &scene;
    let e = |k: KernelKind| move |c: &Buffers| run(scene, c, &[k]).energy[0];

    // Gradients of the energy (w.r.t. x) and of the dissipation (w.r.t. v).
    let g = run(scene, &b, &[KernelKind::Gradient]);
    check_fd(&name, &b, Input::X, &rows, &e(KernelKind::Energy), &|r| {
        g.grad[r * s]
    });
    let gd = run(scene, &b, &[KernelKind::DissipationGradient]);

    // Implicit scenes differentiate h D((x - x_t)/h) in positions.
    let dissipation_input = if implicit { Input::X } else { Input::V };
    check_fd(
        &name,
        &b,
        dissipation_input,
        &rows,
        &e(KernelKind::Dissipation),
        &|r| gd.grad[r * s],
    );

    // Hessian-vector products and assembled Hessian blocks against differences of
    // the gradient along the seed direction.
    for (hvp, grad, hess, input) in [
        (
            KernelKind::GradHvp,
            KernelKind::Gradient,
            KernelKind::Hessian,
            Input::X,
        ),
        (
            KernelKind::DissipationGradHvp,
            KernelKind::DissipationGradient,
            KernelKind::DissipationHessian,
            dissipation_input,
        ),
    ] {
        let hv = run(scene, &b, &[hvp]);
        let blocks = run(scene, &b, &[hess]);
        let assembled = assemble(scene, hess, &blocks, &b);
        let h = 1e-6;
        let shifted = |sign: f64| {
            let mut c = b.clone();
            for r in 0..l.dofs {
                let w = b.seed[r * s];
                input_mut(&mut c, input)[r * s] += sign * h * w;
            }
            run(scene, &c, &[grad]).grad
        };
        let (gp, gm) = (shifted(1.0), shifted(-1.0));
        let fd: Vec<f64> = (0..l.dofs)
            .map(|r| (gp[r * s] - gm[r * s]) / (2.0 * h))
            .collect();
        let scale = fd.iter().map(|x| x.abs()).fold(0.0, f64::max).max(1e-8);
        for r in 0..l.dofs {
            let (a, m) = (hv.hv[r * s], assembled[r]);
            assert!(
                (a - fd[r]).abs() <= 1e-5 * scale,
                "{name}: {hvp:?} row {r}: {a:e} vs {:e}",
                fd[r]
            );
            assert!(
                (m - fd[r]).abs() <= 1e-5 * scale,
                "{name}: {hess:?} row {r}: {m:e} vs {:e}",
                fd[r]
            );
        }
    }

    // Adjoint VJPs: s = seed . (dE/dx + dD/dv) of the surrogate model.
    let adj = run(scene, &b, &[KernelKind::Adjoint]);
    let s_adj = |c: &Buffers| {
        let gx = run(&surrogate, c, &[KernelKind::Gradient]).grad;
        let gv = run(&surrogate, c, &[KernelKind::DissipationGradient]).grad;
        (0..l.dofs)
            .map(|r| c.seed[r * s] * (gx[r * s] + gv[r * s]))
            .sum::<f64>()
    };
    let params: Vec<usize> = (0..l.params).collect();
    let controls: Vec<usize> = (0..l.controls).collect();
    check_fd(&name, &b, Input::X, &rows, &s_adj, &|r| adj.d_x[r * s]);
    check_fd(&name, &b, Input::V, &rows, &s_adj, &|r| adj.d_v[r * s]);
    check_fd(&name, &b, Input::PrevX, &rows, &s_adj, &|r| {
        adj.d_prev_x[r * s]
    });
    check_fd(&name, &b, Input::PrevV, &rows, &s_adj, &|r| {
        adj.d_prev_v[r * s]
    });
    check_fd(&name, &b, Input::Param, &params, &s_adj, &|r| {
        adj.d_params[r * s]
    });
    check_fd(&name, &b, Input::Control, &controls, &s_adj, &|r| {
        adj.d_controls[r * s]
    });

    // Output VJPs: s = out_seed . outputs.
    let ov = run(scene, &b, &[KernelKind::OutputsVjp]);
    let s_out = |c: &Buffers| {
        let o = run(scene, c, &[KernelKind::Outputs]).outputs;
        (0..l.output_rows())
            .map(|k| c.out_seed[k * s] * o[k * s])
            .sum::<f64>()
    };
    check_fd(&name, &b, Input::X, &rows, &s_out, &|r| ov.d_x[r * s]);
    check_fd(&name, &b, Input::V, &rows, &s_out, &|r| ov.d_v[r * s]);
    check_fd(&name, &b, Input::Param, &params, &s_out, &|r| {
        ov.d_params[r * s]
    });
}

/// The Hessian blocks of a kernel applied to the seed, assembled into rows (environment 0).
fn assemble(scene: &CompiledScene, kind: KernelKind, blocks: &Buffers, b: &Buffers) -> Vec<f64> {
    let s = b.stride;
    let ir = scene.kernels.get(kind);
    let mut out = vec![0.0; scene.layout().state_rows()];
    for e in ir.block_entries() {
        let h = blocks.blocks[e.row * s];
        out[e.a] += h * b.seed[e.c * s];
        if e.mirrored {
            out[e.c] += h * b.seed[e.a * s];
        }
    }
    out
}

/// The scene at `precision = f32`, on both backends.
fn compile_f32(path: &Path, backend: Backend) -> CompiledScene {
    let checked = joule::check_path(path).expect("readable");
    let mut model = checked.model.expect("a model");
    model.settings.precision = joule::model::Precision::F32;
    joule_compiler::compile(model, backend, vec![]).expect("codegen")
}

/// f32 buffers from f64 ones.
fn narrow(b: &Buffers, layout_scene: &CompiledScene) -> Buffers<f32> {
    let mut n = layout_scene.buffers_of::<f32>(b.batch);
    let copy = |dst: &mut [f32], src: &[f64], s64: usize, s32: usize| {
        for (r, row) in src.chunks(s64).enumerate() {
            for (e, v) in row.iter().enumerate().take(s32.min(s64)) {
                dst[r * s32 + e] = *v as f32;
            }
        }
    };
    let (s64, s32) = (b.stride, n.stride);
    copy(&mut n.x, &b.x, s64, s32);
    copy(&mut n.v, &b.v, s64, s32);
    copy(&mut n.prev_x, &b.prev_x, s64, s32);
    copy(&mut n.prev_v, &b.prev_v, s64, s32);
    copy(&mut n.params, &b.params, s64, s32);
    copy(&mut n.controls, &b.controls, s64, s32);
    copy(&mut n.seed, &b.seed, s64, s32);
    copy(&mut n.out_seed, &b.out_seed, s64, s32);
    n
}

/// Under `precision = f32`, the JIT equals the interpreter bit for bit, and the
/// gradient follows the f64 one.
fn f32_kernels_match_the_interpreter_and_f64(path: &Path) {
    let name = path.display().to_string();
    let jit = compile_f32(path, Backend::Jit);
    let interp = compile_f32(path, Backend::Interp);
    let wide = compile(path, Backend::Jit);
    for batch in [1usize, 5, 17] {
        let mut rng = Rng(0xD1B5_4A32_D192_ED03 ^ batch as u64);
        let mut b64 = wide.buffers(batch);
        randomize(&wide, &mut b64, &mut rng);
        let mut a = narrow(&b64, &jit);
        let mut b = a.clone();
        for kind in KernelKind::ALL {
            a.clear_outputs();
            b.clear_outputs();
            jit.run(kind, &mut a, 0, batch).expect("run");
            interp.run(kind, &mut b, 0, batch).expect("run");
            let same = |x: &[f32], y: &[f32]| {
                x.iter()
                    .zip(y)
                    .all(|(p, q)| p == q || p.is_nan() && q.is_nan())
            };
            for ((buffer, x), (_, y)) in outputs(&a).into_iter().zip(outputs(&b)) {
                assert!(
                    same(x, y),
                    "{name}: f32 kernel {} buffer {buffer} differs between JIT and interpreter",
                    kind.name()
                );
            }
        }
        // f32 against f64: the gradient within 1e-3 of its largest component
        // (f32 has 24 bits; spring forces lose a few to the length difference).
        a.clear_outputs();
        jit.run(KernelKind::Gradient, &mut a, 0, batch)
            .expect("run");
        let g = run(&wide, &b64, &[KernelKind::Gradient]);
        let dofs = wide.layout().dofs;
        let scale = (0..dofs)
            .map(|r| g.grad[r * b64.stride].abs())
            .fold(0.0, f64::max);
        for r in 0..dofs {
            let (x64, x32) = (g.grad[r * b64.stride], a.grad[r * a.stride] as f64);
            assert!(
                (x64 - x32).abs() <= 1e-3 * scale + 1e-6,
                "{name}: f32 gradient row {r}: {x32} vs f64 {x64}"
            );
        }
    }
}

/// Per environment of [`guarded_contact_kernels`]: the contacts engaged
/// (within `dhat`) or a metre apart. With two lanes a vector (f64) the
/// vectors hold two, one and no engaged environment; with four (f32) one
/// vector has none.
const ENGAGED: [bool; 11] = [
    true, true, true, false, false, false, false, false, true, false, false,
];

/// Places tests/kernels/guarded_contact.joule's particle and upper sphere
/// per [`ENGAGED`] (positions and the step's start alike).
fn place_contacts(scene: &CompiledScene, b: &mut Buffers) {
    let m = &scene.model;
    let s = b.stride;
    let p = m.particles[0].dof.expect("a free particle") as usize;
    let dof = |name: &str| {
        m.bodies
            .iter()
            .find(|b| b.name == name)
            .and_then(|b| b.dof)
            .expect("a free body") as usize
    };
    let (low, high) = (dof("low"), dof("high"));
    for (e, on) in ENGAGED.iter().enumerate() {
        let (z, above) = if *on { (0.001, 0.201) } else { (1.0, 1.2) };
        for x in [&mut b.x, &mut b.prev_x] {
            x[(p + 2) * s + e] = z;
            for k in 0..3 {
                x[(high + k) * s + e] = x[(low + k) * s + e];
            }
            x[(high + 2) * s + e] += above;
        }
    }
}

/// Contact and lagged friction loops carry a guard, and the JIT, which
/// skips a vector of lanes whose contacts are all disengaged, still equals
/// the interpreter (which computes every lane) bit for bit on vectors with
/// every, some and no lane engaged, in f64 and f32; a skipped instance's
/// Hessian block is stored as zeros, not left as it was (the blocks start
/// as NaN).
#[test]
fn guarded_contact_kernels() {
    let path = Path::new("tests/kernels/guarded_contact.joule");
    let jit = compile(path, Backend::Jit);
    for name in ["ground", "touch", "friction"] {
        let loops: Vec<_> = KernelKind::ALL
            .iter()
            .flat_map(|k| &jit.kernels.get(*k).loops)
            .filter(|lp| lp.name == name)
            .collect();
        assert!(!loops.is_empty(), "no {name} loop");
        assert!(
            loops.iter().all(|lp| lp.guard.is_some()),
            "{name}: a loop without a guard"
        );
    }
    let batch = ENGAGED.len();
    let mut base = jit.buffers(batch);
    randomize(&jit, &mut base, &mut Rng(7));
    place_contacts(&jit, &mut base);
    let same = |x: &[f64], y: &[f64], what: &str| {
        let worst = worst_ulps(x, y);
        assert_eq!(
            worst, 0,
            "{what}: JIT and interpreter differ by {worst} ulp"
        );
    };
    let interp = compile(path, Backend::Interp);
    let (jit32, interp32) = (
        compile_f32(path, Backend::Jit),
        compile_f32(path, Backend::Interp),
    );
    let mut flagged = vec![];
    for kind in KernelKind::ALL {
        let (mut a, mut b) = (base.clone(), base.clone());
        let (mut a32, mut b32) = (narrow(&base, &jit32), narrow(&base, &jit32));
        for buf in [&mut a, &mut b] {
            buf.clear_outputs();
            buf.blocks.fill(f64::NAN);
        }
        for buf in [&mut a32, &mut b32] {
            buf.clear_outputs();
            buf.blocks.fill(f32::NAN);
        }
        jit.run(kind, &mut a, 0, batch).expect("run");
        interp.run(kind, &mut b, 0, batch).expect("run");
        jit32.run(kind, &mut a32, 0, batch).expect("run");
        interp32.run(kind, &mut b32, 0, batch).expect("run");
        for ((name, x), (_, y)) in outputs(&a).into_iter().zip(outputs(&b)) {
            same(x, y, &format!("f64 {} {name}", kind.name()));
        }
        // The flags follow the contacts' placement, and where an instance's
        // flag says disengaged, the interpreter's full computation of its
        // block is zero (the guard is sound).
        let s = b.stride;
        let ir = interp.kernels.get(kind);
        flagged.extend(
            ir.loops
                .iter()
                .filter(|lp| lp.engaged_row(0).is_some())
                .map(|lp| lp.name.clone()),
        );
        for entry in ir.block_entries() {
            let Some(flag) = entry.engaged else {
                continue;
            };
            for (e, on) in ENGAGED.iter().enumerate() {
                let engaged = b.blocks[flag * s + e];
                assert_eq!(
                    engaged,
                    f64::from(u8::from(*on)),
                    "flag row {flag}, lane {e}"
                );
                if engaged == 0.0 {
                    let v = b.blocks[entry.row * s + e];
                    assert_eq!(v, 0.0, "block row {}, lane {e}", entry.row);
                }
            }
        }
        for ((name, x), (_, y)) in outputs(&a32).into_iter().zip(outputs(&b32)) {
            let widen = |v: &[f32]| v.iter().map(|x| f64::from(*x)).collect::<Vec<_>>();
            same(&widen(x), &widen(y), &format!("f32 {} {name}", kind.name()));
        }
    }
    for name in ["ground", "touch", "friction"] {
        assert!(
            flagged.iter().any(|n| n == name),
            "{name}: no engagement flags"
        );
    }
}

macro_rules! per_scene {
    ($($scene:ident)*) => {
        /// [`jit_matches_interpreter`] on each shipped scene.
        mod jit_matches_interpreter_on_every_batch_size {
            $(
                #[test]
                fn $scene() {
                    super::jit_matches_interpreter(&super::shipped(stringify!($scene)));
                }
            )*
        }
        /// [`derivative_kernels_match_finite_differences`] on each shipped scene.
        mod derivative_kernels_match_finite_differences {
            $(
                #[test]
                fn $scene() {
                    super::derivative_kernels_match_finite_differences(&super::shipped(stringify!($scene)));
                }
            )*
        }
        /// [`f32_kernels_match_the_interpreter_and_f64`] on each shipped scene.
        mod f32_kernels_match_the_interpreter_and_f64 {
            $(
                #[test]
                fn $scene() {
                    super::f32_kernels_match_the_interpreter_and_f64(&super::shipped(stringify!($scene)));
                }
            )*
        }
    };
}
shipped_scenes!(per_scene);
