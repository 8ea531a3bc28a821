//! Joule: a differentiable physics compiler, as a library.
//!
//! Scene text goes in; batched simulation and exact gradients come out.
//!
//! ```no_run
//! use joule::{Objective, Scene};
//!
//! let scene = Scene::compile(
//!     "particle ball { x = vec3(0, 0, 1), v = vec3(2, 0, 0), mass = 1 }\n\
//!      param drag = 0.1\n\
//!      dissipation air(p: particle, c: scalar) = 0.5 * c * dot(p.v, p.v)\n\
//!      air(ball, drag)\n\
//!      loss distance = -ball.x.x",
//! )?;
//! let mut sim = scene.batch(64); // 64 environments on all cores
//! sim.set_param("drag", 0.2)?;
//! let g = sim.gradient(&Objective::loss("distance"), 100)?;
//! println!("d distance / d drag = {}", g.params[0][0]);
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! - [`Scene`] compiles a scene ([`Scene::compile`] from text, [`Scene::from_path`]
//!   from a file); compile errors are values ([`CompileError`], with the
//!   [`Diagnostic`]s) or miette reports.
//! - [`Sim`] is a batch of environments: parameters and controls per
//!   environment, `step`, `rollout`, `outputs`, `gradient` (through time, by
//!   the adjoint), `events` (divergence, non-convergence).
//! - [`optimize`]: trajectory optimisation, parameter identification and
//!   model-predictive control with Adam or L-BFGS on exact gradients.
//! - [`plan`]: trajectory optimisation as a differentiable policy (a
//!   scene's `trajopt` policy): plans with their derivatives in the learned
//!   params and the start state; [`learn::planning`] trains it through the
//!   optimiser from a reward or one demonstration.
//! - [`learn`]: policies (candle MLPs, safetensors weights) trained through
//!   the simulator — [`learn::Trainer`] with analytic policy gradients,
//!   SHAC or PPO, checkpoints that resume bitwise, and one-demonstration
//!   imitation ([`learn::imitate`]); [`Tape`] is the closed-loop reverse mode
//!   underneath (a policy outside the simulator, one step at a time).
//! - [`check_path`] / [`check_source`] run the front end alone and give the
//!   resolved [`Model`] and its text forms ([`Emit`]); [`format_source`]
//!   prints a scene in the canonical layout of `joule fmt`.
//! - [`fdcheck`]: finite-difference checks of gradients over a sweep of
//!   steps (`joule grad --check`).
//! - `files`, `render`, `viewer` (feature `cli`): trajectory files, the
//!   software rasteriser and the replay page; `viewer::picture` draws a
//!   batch's environments as an RGB picture (the Python package's `render()`).
//! - [`gait`]: gait quality of a legged run (duty factor, clearance, slip,
//!   control spectrum; `joule run --gait`).
//! - [`smoothing`]: how good a gradient is, against the simulation's own
//!   differences of the objective smoothed over control noise (`joule grad
//!   --smooth`).
//!
//! See `docs/` for the language and the architecture, `examples/` for
//! complete programs.

pub mod fdcheck;
#[cfg(feature = "cli")]
pub mod files;
pub mod gait;
#[cfg(feature = "cli")]
pub mod render;
pub mod smoothing;
#[cfg(feature = "cli")]
pub mod viewer;

pub use joule_compiler::compiled::Backend;
pub use joule_compiler::model;
pub use joule_compiler::{check_path, check_source, Checked, Emit, Model};
pub use joule_grammar::format::format_source;
pub use joule_grammar::{Diagnostic, SourceMap};
pub use joule_learn as learn;
pub use joule_runtime::optimize;
pub use joule_runtime::plan;
pub use joule_runtime::{
    CompileError, Event, Gradient, NameError, Objective, Scene, Schedule, Sim, Tape, TapeGradient,
    Track,
};

/// The README's Rust example, compiled and run as a doctest.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
pub struct ReadmeDoctests;
