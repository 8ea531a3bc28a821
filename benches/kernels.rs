//! Kernel and compiler benchmarks.
//!
//! * `gradient_throughput`: the Gradient kernel of `hanging_cloth` (springs) and
//!   `soft_block` (neo-Hookean tets and a floor barrier), JIT and interpreter,
//!   at batch 1, 64 and 1024. Throughput is instance-environments per second.
//! * `rust_reference_spring`: a hand-written Rust spring gradient over the same
//!   structure-of-arrays buffers and instance tables as `hanging_cloth`, checked
//!   once against the JIT, as the yardstick for the generated code.
//! * `compile_time`: parse + resolve + IR + differentiation + Cranelift for a
//!   generated N x N cloth, N = 8..64 (instances are data, so this should grow
//!   far slower than the instance count).
//!
//! Kernels accumulate into `grad`; the timed loops do not clear it (neither for
//! the JIT, the interpreter nor the reference), so every case measures the
//! kernel alone.

use criterion::{
    criterion_group, criterion_main, BenchmarkId, Criterion, SamplingMode, Throughput,
};
use joule_compiler::abi::Buffers;
use joule_compiler::compiled::{Backend, CompiledScene};
use joule_compiler::ir::{Leaf, Op};
use joule_compiler::kernels::{KernelKind, LoopIr};
use std::hint::black_box;
use std::path::Path;
use std::time::{Duration, Instant};

const BATCHES: [usize; 3] = [1, 64, 1024];

/// A small deterministic generator (xorshift64*), values in [-1, 1).
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

fn scene_path(name: &str) -> String {
    format!("{}/scenes/{name}", env!("CARGO_MANIFEST_DIR"))
}

fn compile(name: &str, backend: Backend) -> CompiledScene {
    let checked = joule::check_path(Path::new(&scene_path(name))).expect("scene readable");
    assert!(checked.ok(), "{}", checked.render_diagnostics(false, 100));
    let model = checked.model.expect("a model when ok");
    joule_compiler::compile(model, backend, vec![]).expect("codegen")
}

/// The Gradient kernel's loops.
fn gradient_loops(scene: &CompiledScene) -> &[LoopIr] {
    &scene.kernels.get(KernelKind::Gradient).loops
}

/// Template instances the Gradient kernel runs per environment.
fn gradient_instances(scene: &CompiledScene) -> usize {
    gradient_loops(scene).iter().map(|lp| lp.count).sum()
}

/// Buffers for a batch: free positions at the particles' rest positions plus
/// 1e-3 noise (small against every element), params at their declared values.
fn inputs(scene: &CompiledScene, batch: usize) -> Buffers {
    let mut b = scene.buffers(batch);
    let mut rng = Rng(0x9E37_79B9_7F4A_7C15);
    let s = b.stride;
    for p in &scene.model.particles {
        if let Some(d) = p.dof {
            for (k, x0) in p.x.iter().enumerate() {
                let row = &mut b.x[(d as usize + k) * s..][..s];
                for x in row {
                    *x = x0 + 1e-3 * rng.next();
                }
            }
        }
    }
    for (i, p) in scene.model.params.iter().enumerate() {
        b.params[i * s..][..s].fill(p.value);
    }
    b.clear_outputs();
    b
}

fn gradient_throughput(c: &mut Criterion) {
    let mut group = c.benchmark_group("gradient_throughput");
    group.sampling_mode(SamplingMode::Flat);
    for name in ["hanging_cloth", "soft_block"] {
        let file = format!("{name}.joule");
        let jit = compile(&file, Backend::Jit);
        let interp = compile(&file, Backend::Interp);
        let instances = gradient_instances(&jit);
        println!("{name}: {instances} gradient instances per environment");
        for batch in BATCHES {
            let mut buf = inputs(&jit, batch);
            group.throughput(Throughput::Elements((instances * batch) as u64));
            for (label, scene) in [("jit", &jit), ("interp", &interp)] {
                group.bench_function(BenchmarkId::new(format!("{name}/{label}"), batch), |bch| {
                    bch.iter(|| {
                        scene
                            .run(KernelKind::Gradient, black_box(&mut buf), 0, batch)
                            .expect("buffers fit");
                    })
                });
            }
        }
    }
    group.finish();
}

/// One spring loop of `hanging_cloth`, read from the kernel's instance table.
struct Springs {
    /// Parameter row of the stiffness `k`.
    k_param: usize,
    /// State rows per spring: a.x, a.y, a.z, b.x, b.y, b.z.
    rows: Vec<[usize; 6]>,
    /// Rest length per spring.
    rest: Vec<f64>,
}

/// The spring tables of the Gradient kernel (one per specialisation of `spring`).
fn spring_tables(scene: &CompiledScene) -> Vec<Springs> {
    gradient_loops(scene)
        .iter()
        .map(|lp| {
            assert_eq!(lp.dof_width, 6, "{}: a spring has two particles", lp.name);
            assert_eq!(
                lp.const_width, 1,
                "{}: one constant, the rest length",
                lp.name
            );
            let params: Vec<u32> = lp
                .graph
                .nodes()
                .iter()
                .filter_map(|op| match op {
                    Op::Leaf(Leaf::Param(p)) => Some(*p),
                    _ => None,
                })
                .collect();
            assert_eq!(params.len(), 1, "{}: k is one parameter", lp.name);
            Springs {
                k_param: params[0] as usize,
                rows: lp
                    .dofs
                    .chunks_exact(6)
                    .map(|r| std::array::from_fn(|i| r[i] as usize))
                    .collect(),
                rest: lp.consts.clone(),
            }
        })
        .collect()
}

/// `grad += dE/dx` for E = sum 0.5 k (|xa - xb| - L0)^2 over environments
/// `0..n`, instances outer, environments inner (the loop LLVM vectorises).
fn reference_spring_gradient(
    tables: &[Springs],
    x: &[f64],
    params: &[f64],
    grad: &mut [f64],
    stride: usize,
    n: usize,
) {
    let row = |r: usize| r * stride..r * stride + n;
    for t in tables {
        let k = &params[row(t.k_param)];
        for (r, &l0) in t.rows.iter().zip(&t.rest) {
            let (ax, ay, az) = (&x[row(r[0])], &x[row(r[1])], &x[row(r[2])]);
            let (bx, by, bz) = (&x[row(r[3])], &x[row(r[4])], &x[row(r[5])]);
            match grad.get_disjoint_mut(r.map(row)) {
                Ok([gax, gay, gaz, gbx, gby, gbz]) => {
                    let (gax, gay, gaz) = (&mut gax[..n], &mut gay[..n], &mut gaz[..n]);
                    let (gbx, gby, gbz) = (&mut gbx[..n], &mut gby[..n], &mut gbz[..n]);
                    for e in 0..n {
                        let (dx, dy, dz) = (ax[e] - bx[e], ay[e] - by[e], az[e] - bz[e]);
                        let l = (dx * dx + dy * dy + dz * dz).sqrt();
                        let f = k[e] * (l - l0) / l;
                        let (fx, fy, fz) = (f * dx, f * dy, f * dz);
                        gax[e] += fx;
                        gay[e] += fy;
                        gaz[e] += fz;
                        gbx[e] -= fx;
                        gby[e] -= fy;
                        gbz[e] -= fz;
                    }
                }
                // Rows shared within a spring: only pinned rows (fixed DOFs of
                // equal value share one), so a few springs at the pins.
                Err(_) => {
                    for e in 0..n {
                        let d = [ax[e] - bx[e], ay[e] - by[e], az[e] - bz[e]];
                        let l = (d[0] * d[0] + d[1] * d[1] + d[2] * d[2]).sqrt();
                        let f = k[e] * (l - l0) / l;
                        for c in 0..3 {
                            grad[r[c] * stride + e] += f * d[c];
                            grad[r[3 + c] * stride + e] -= f * d[c];
                        }
                    }
                }
            }
        }
    }
}

fn rust_reference_spring(c: &mut Criterion) {
    let mut group = c.benchmark_group("rust_reference_spring");
    group.sampling_mode(SamplingMode::Flat);
    let jit = compile("hanging_cloth.joule", Backend::Jit);
    let tables = spring_tables(&jit);
    let instances: usize = tables.iter().map(|t| t.rows.len()).sum();
    assert_eq!(instances, gradient_instances(&jit));
    let dofs = jit.layout().dofs;
    for batch in BATCHES {
        let mut buf = inputs(&jit, batch);
        let s = buf.stride;
        // Once, untimed: the reference computes what the JIT computes.
        jit.run(KernelKind::Gradient, &mut buf, 0, batch)
            .expect("buffers fit");
        let mut grad = vec![0.0; buf.grad.len()];
        reference_spring_gradient(&tables, &buf.x, &buf.params, &mut grad, s, batch);
        let scale = buf.grad[..dofs * s]
            .iter()
            .fold(0.0f64, |m, g| m.max(g.abs()));
        let mut worst = 0.0f64;
        for row in 0..dofs {
            for e in 0..batch {
                let (a, b) = (buf.grad[row * s + e], grad[row * s + e]);
                let err = (a - b).abs() / a.abs().max(b.abs()).max(1e-6 * scale);
                assert!(
                    err <= 1e-9,
                    "batch {batch}: grad row {row} env {e}: JIT {a} vs Rust {b}"
                );
                worst = worst.max(err);
            }
        }
        println!(
            "rust_reference_spring/{batch}: matches the JIT gradient, max rel. error {worst:.1e}"
        );

        group.throughput(Throughput::Elements((instances * batch) as u64));
        group.bench_function(BenchmarkId::new("hanging_cloth/rust", batch), |bch| {
            bch.iter(|| {
                reference_spring_gradient(
                    &tables,
                    black_box(&buf.x),
                    black_box(&buf.params),
                    black_box(&mut grad),
                    s,
                    batch,
                )
            })
        });
    }
    group.finish();
}

/// `scenes/hanging_cloth.joule` with `N` left open.
const CLOTH: &str = r#"scene "hanging cloth"

const N = {N}
const h = 1.0 / (N - 1)

settings {
    dt = 1 / 60
    gravity = vec3(0, 0, -9.81)
    integrator = implicit_euler(iterations = 10, tolerance = 1e-8)
}

param stretch = 5000
param bend = 1

particle cloth[i in 0..N, j in 0..N] {
    x = vec3(i * h, 0, 1 - j * h)
    mass = 0.1 / (N * N)
}

fix cloth[0, 0], cloth[N - 1, 0]

energy spring(a: particle, b: particle, k: scalar) {
    let rest_len = rest(norm(a.x - b.x))
    0.5 * k * (norm(a.x - b.x) - rest_len)^2
}

spring(cloth[i, j], cloth[i + 1, j], stretch) for i in 0..N-1, j in 0..N
spring(cloth[i, j], cloth[i, j + 1], stretch) for i in 0..N,   j in 0..N-1
spring(cloth[i, j], cloth[i + 2, j], bend)    for i in 0..N-2, j in 0..N

observe corner = cloth[N - 1, N - 1].x
loss sag = cloth[N / 2, N - 1].x.z
"#;

fn cloth(n: usize) -> String {
    CLOTH.replace("{N}", &n.to_string())
}

fn compile_cloth(text: &str) -> CompiledScene {
    let checked = joule::check_source("cloth.joule", text);
    assert!(checked.ok(), "{}", checked.render_diagnostics(false, 100));
    joule_compiler::compile(
        checked.model.expect("a model when ok"),
        Backend::Jit,
        vec![],
    )
    .expect("codegen")
}

fn compile_time(c: &mut Criterion) {
    let mut group = c.benchmark_group("compile_time");
    group.sampling_mode(SamplingMode::Flat).sample_size(10);
    for n in [8, 16, 32, 64] {
        let text = cloth(n);
        // Once, untimed by criterion: the phases of one compile.
        let t = Instant::now();
        let checked = joule::check_source("cloth.joule", &text);
        let front = t.elapsed();
        let scene = joule_compiler::compile(checked.model.expect("a model"), Backend::Jit, vec![])
            .expect("codegen");
        let ms = |d: Duration| d.as_secs_f64() * 1e3;
        let phases: Vec<String> = scene
            .timings
            .iter()
            .map(|(p, d)| format!("{p} {:.2} ms", ms(*d)))
            .collect();
        println!(
            "compile_time/{n}: {} instances; parse+resolve {:.2} ms, {}",
            gradient_instances(&scene),
            ms(front),
            phases.join(", ")
        );
        group.bench_function(BenchmarkId::from_parameter(n), |bch| {
            bch.iter(|| compile_cloth(black_box(&text)))
        });
    }
    group.finish();
}

/// Simulation and gradient throughput of the locomotion scenes (env-steps per
/// second over 10-step rollouts; gradients run forward and backward).
fn simulation(c: &mut Criterion) {
    let mut group = c.benchmark_group("simulation");
    group.sampling_mode(SamplingMode::Flat).sample_size(10);
    let steps = 10;
    for name in ["ant", "soft_walker"] {
        let checked =
            joule::check_path(Path::new(&scene_path(&format!("{name}.joule")))).expect("scene");
        let scene = joule_runtime::Scene::from_checked(checked, Backend::Jit).expect("compile");
        let objective = joule_runtime::Objective::loss("distance");
        for batch in [1usize, 64] {
            group.throughput(Throughput::Elements((batch * steps) as u64));
            group.bench_with_input(
                BenchmarkId::new(format!("{name}/forward"), batch),
                &batch,
                |b, &batch| {
                    b.iter(|| {
                        let mut sim = scene.batch(batch);
                        sim.rollout(steps);
                        black_box(sim.steps())
                    })
                },
            );
            group.bench_with_input(
                BenchmarkId::new(format!("{name}/gradient"), batch),
                &batch,
                |b, &batch| {
                    b.iter(|| {
                        let mut sim = scene.batch(batch);
                        black_box(sim.gradient(&objective, steps).expect("gradient").value[0])
                    })
                },
            );
        }
    }
    group.finish();
}

criterion_group! {
    name = benches;
    config = Criterion::default()
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(2))
        .sample_size(20);
    targets = gradient_throughput, rust_reference_spring, compile_time, simulation
}
criterion_main!(benches);
