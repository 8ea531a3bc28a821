//! The Joule runtime: batched simulation and exact gradients.
//!
//! ```no_run
//! use joule_runtime::Scene;
//! let scene = Scene::compile("particle p { x = vec3(0, 0, 1), mass = 1 }\nobserve z = p.x.z")?;
//! let mut sim = scene.batch(64);
//! sim.rollout(100);
//! let z = sim.output("z");
//! # Ok::<(), miette::Report>(())
//! ```
//!
//! Environments are split into partitions, one per thread; every environment's
//! arithmetic is independent of the split, so results are bitwise identical for
//! any thread count.
//!
//! The modules: [`scene`] (a compiled scene and what the runtime plans for
//! it), [`sim`] (a batch being simulated, and how it is partitioned),
//! [`event`] (what a simulation reports), [`joints`] (the plan and the
//! kinematics of robots in joint coordinates), `step` (integrators over one
//! partition), [`mass`], [`sparse`] (the direct solver), `gradient` and
//! `tape` (adjoints through time), [`optimize`], [`plan`] (trajectory
//! optimisation as a differentiable policy).

// Structure-of-arrays loops index several parallel buffers by row and lane;
// index loops say that more plainly than zipped iterators.
#![allow(clippy::needless_range_loop)]

pub mod event;
mod gradient;
pub mod joints;
#[doc(hidden)] // public for the tests (tests/sparse.rs's dense reference), not a user API
pub mod mass;
pub mod optimize;
pub mod plan;
pub mod scene;
pub mod sim;
pub mod sparse;
#[doc(hidden)] // public for the tests (tests/sparse.rs, tests/alloc.rs), not a user API
pub mod step;
mod tape;

pub use event::{Event, SolveStop};

pub use gradient::{chamfer, Gradient, Objective, Schedule, Track, GRADIENT_MEMORY};
pub use scene::{CompileError, Scene};
pub use sim::{NameError, Sim};
pub use tape::{Tape, TapeGradient};

pub(crate) use sim::{with_parts, Parts};
