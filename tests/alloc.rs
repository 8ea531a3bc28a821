//! Stepping allocates nothing: after a warm-up step, a partition's steps
//! (explicit, implicit with the sparse Cholesky, implicit with CG) make no
//! heap allocation on the stepping thread.

use joule_compiler::abi::Real;
use joule_compiler::compiled::Backend;
use joule_compiler::model::Precision;
use joule_runtime::step::Part;
use joule_runtime::Scene;
use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::path::Path;

/// The system allocator, counting the allocations of threads that ask for it.
struct Counting;

thread_local! {
    /// Allocations made by this thread while it counts (`None`: not counting).
    static COUNT: Cell<Option<usize>> = const { Cell::new(None) };
}

// SAFETY: every call is forwarded to the system allocator unchanged.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        COUNT.with(|c| c.set(c.get().map(|n| n + 1)));
        unsafe { System.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        unsafe { System.dealloc(ptr, layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        COUNT.with(|c| c.set(c.get().map(|n| n + 1)));
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static ALLOCATOR: Counting = Counting;

/// Allocations made by `steps` steps of a partition of `batch` environments,
/// after one warm-up step.
fn allocations(scene: &Scene, batch: usize, steps: usize) -> usize {
    match scene.model().settings.precision {
        Precision::F64 => allocations_in::<f64>(scene, batch, steps),
        Precision::F32 => allocations_in::<f32>(scene, batch, steps),
    }
}

fn allocations_in<T: Real>(scene: &Scene, batch: usize, steps: usize) -> usize {
    let mut p = Part::<T>::new(scene, 0, batch);
    p.step(scene, 0);
    COUNT.with(|c| c.set(Some(0)));
    for k in 1..=steps {
        p.step(scene, k);
    }
    COUNT.with(|c| c.replace(None)).expect("counting")
}

fn shipped_at(name: &str, precision: Precision) -> Scene {
    let checked = joule::check_path(Path::new(&format!("scenes/{name}.joule"))).expect("readable");
    let mut model = checked.model.expect("the scene checks");
    model.settings.precision = precision;
    Scene::from_model(model, Backend::Jit).expect("the scene compiles")
}

#[test]
fn explicit_steps_allocate_nothing() {
    for precision in [Precision::F64, Precision::F32] {
        let scene = shipped_at("pendulum", precision);
        assert!(scene.direct_solver().is_none());
        assert_eq!(allocations(&scene, 5, 20), 0, "{precision:?}");
    }
}

#[test]
fn implicit_steps_with_the_sparse_cholesky_allocate_nothing() {
    for (name, batch, precision) in [
        ("ant", 1, Precision::F64),
        ("ant", 70, Precision::F64),
        ("soft_walker", 3, Precision::F64),
        ("ant", 70, Precision::F32),
    ] {
        let scene = shipped_at(name, precision);
        assert!(scene.direct_solver().is_some(), "{name} is solved directly");
        assert_eq!(
            allocations(&scene, batch, 3),
            0,
            "{name}, batch {batch}, {precision:?}"
        );
    }
}

#[test]
fn implicit_steps_with_cg_allocate_nothing() {
    // A cloth large enough for CG; its Newton solve stops short every step
    // (one iteration), so events are reported, into reused storage.
    let n = 40;
    let src = format!(
        "scene \"cloth\"\nconst N = {n}\nconst h = 1.0 / (N - 1)\n\
         settings {{\n dt = 1 / 60\n gravity = vec3(0, 0, -9.81)\n integrator = implicit_euler(iterations = 1, tolerance = 1e-9)\n}}\n\
         particle cloth[i in 0..N, j in 0..N] {{ x = vec3(i * h, j * h, 1), mass = 0.2 / (N * N) }}\n\
         energy spring(a: particle, b: particle, k: scalar) {{\n let l0 = rest(norm(a.x - b.x))\n 0.5 * k * (norm(a.x - b.x) - l0)^2\n}}\n\
         spring(cloth[i, j], cloth[i + 1, j], 1000) for i in 0..N - 1, j in 0..N\n\
         spring(cloth[i, j], cloth[i, j + 1], 1000) for i in 0..N, j in 0..N - 1\n"
    );
    let scene = Scene::compile(&src).expect("the cloth compiles");
    assert!(scene.direct_solver().is_none(), "large enough for CG");
    assert_eq!(allocations(&scene, 2, 2), 0);
}

#[test]
fn implicit_steps_in_joint_coordinates_allocate_nothing() {
    for (batch, precision) in [
        (1, Precision::F64),
        (70, Precision::F64),
        (70, Precision::F32),
    ] {
        let scene = shipped_at("ant_joints", precision);
        assert!(scene.tree().is_some(), "ant_joints is a joint tree");
        assert_eq!(
            allocations(&scene, batch, 3),
            0,
            "ant_joints, batch {batch}, {precision:?}"
        );
    }
}

#[test]
fn symplectic_steps_in_joint_coordinates_allocate_nothing() {
    let mut m = joule::check_path(Path::new("tests/joints/pendulum_mujoco.joule"))
        .expect("readable")
        .model
        .expect("a model");
    m.settings.integrator = joule_compiler::model::Integrator::SymplecticEuler;
    let scene = Scene::from_model(m, Default::default()).expect("compiles");
    for batch in [1, 70] {
        assert_eq!(allocations(&scene, batch, 3), 0, "batch {batch}");
    }
}

#[test]
fn steps_with_masses_that_read_params_allocate_nothing() {
    // Symplectic Euler scaling a ball's and a box's forces; joint trees
    // scaling a link's inertia, fixed and floating.
    for case in ["springs", "link_masses", "floating_masses"] {
        let path = format!("tests/identify/{case}.joule");
        let scene = Scene::from_path(Path::new(&path), Backend::Jit).expect("compiles");
        for batch in [1, 5] {
            assert_eq!(allocations(&scene, batch, 3), 0, "{case}, batch {batch}");
        }
    }
}
