//! [`Sim`]: a batch of environments being simulated, split into partitions
//! that rayon steps in parallel, and how the batch is split (`partition`,
//! a pure function of the batch, the lane width, the thread count and the
//! partition size `part_lanes` allows). Every environment's arithmetic is
//! independent of the split, so results are bitwise identical for any.

use crate::event::Event;
use crate::gradient::GRADIENT_MEMORY;
use crate::scene::Scene;
use crate::step::{self, Part};
use joule_compiler::abi::Real;
use joule_compiler::model::{Precision, Slot, State};
use rand::Rng;
use rand_distr::{Distribution, Normal, StandardNormal};
use rayon::prelude::*;

/// Storage a partition of an implicit scene aims to stay within: a share
/// of one core's L2 cache (1 MiB on the development machine) that leaves
/// room for the kernels' and the solver's scratch.
const PART_BYTES: usize = 256 << 10;
/// Partitions hold multiples of this many lanes where the batch allows (the
/// sparse factorisation's widest specialisation).
const PART_LANE_MULTIPLE: usize = 8;

/// Most environments in one partition, for environments of `lane_bytes`
/// bytes of storage each: as many as keep a partition within [`PART_BYTES`],
/// rounded down to a multiple of [`PART_LANE_MULTIPLE`] and at least that,
/// so that Newton's iterations over a partition stay in cache; explicit
/// scenes are split by threads alone (`usize::MAX`). Measured (CPU time,
/// 2 threads, identical results): Brax's ant at B = 256 in partitions of
/// 128 / 32 / 16 / 8 lanes 5.8 / 4.8 / 4.4 / 4.2 s; at B = 64, 8-lane
/// partitions against the 4 MiB budget: the penalty ant -4 %, the soft
/// walker -8 %, the hanging cloth -14 % (and, with the budget before that,
/// the penalty ant at B = 1024 on one thread: 4.6k env-steps/s as one
/// partition, 10.4k in partitions of at most 24).
fn part_lanes(lane_bytes: usize, implicit: bool) -> usize {
    let fit = PART_BYTES / lane_bytes.max(1) / PART_LANE_MULTIPLE * PART_LANE_MULTIPLE;
    if implicit {
        fit.max(PART_LANE_MULTIPLE)
    } else {
        usize::MAX
    }
}

/// How `batch` environments are split into partitions, `(first, len)` each,
/// in order: `threads` partitions (fewer if the batch has fewer SIMD vectors
/// of `lanes` lanes), or a multiple of `threads` where a partition would
/// otherwise hold more than `part_lanes` environments. Partitions hold whole
/// units of [`PART_LANE_MULTIPLE`] lanes where every partition gets two or
/// more, else whole vectors, spread evenly (the first ones one larger).
fn partition(batch: usize, lanes: usize, threads: usize, part_lanes: usize) -> Vec<(usize, usize)> {
    let vectors = batch.div_ceil(lanes).max(1);
    // A multiple of the thread count, so that the threads get equal shares.
    let threads = threads.max(1);
    let parts_n = ((vectors * lanes).div_ceil(part_lanes))
        .div_ceil(threads)
        .max(1)
        * threads;
    let parts_n = parts_n.min(vectors);
    let mut ranges = vec![];
    let mut first = 0;
    // Whole units of PART_LANE_MULTIPLE lanes per partition where every
    // partition gets two or more (the factorisation is specialised to 8
    // lanes; fewer would leave the partitions unequal), else whole
    // vectors, spread evenly.
    let unit = PART_LANE_MULTIPLE / lanes;
    let unit = if vectors >= 2 * parts_n * unit {
        unit
    } else {
        1
    };
    let units = vectors.div_ceil(unit);
    for p in 0..parts_n {
        let u = units / parts_n + usize::from(p < units % parts_n);
        let len = (u * unit * lanes).min(batch - first);
        if len > 0 {
            ranges.push((first, len));
        }
        first += len;
    }
    ranges
}

/// A batch's partitions, in the scene's precision.
pub(crate) enum Parts {
    F64(Vec<Part<f64>>),
    F32(Vec<Part<f32>>),
}

/// Evaluates `$body` with `$p` bound to the partitions (`Vec<Part<T>>`) of
/// either precision: the body is generic code, compiled for both.
macro_rules! with_parts {
    ($parts:expr, $p:ident => $body:expr) => {
        match $parts {
            Parts::F64($p) => $body,
            Parts::F32($p) => $body,
        }
    };
}
pub(crate) use with_parts;

/// A batch of environments being simulated.
pub struct Sim<'s> {
    /// The scene simulated.
    pub(crate) scene: &'s Scene,
    /// The partitions, in batch order.
    pub(crate) parts: Parts,
    /// Environments.
    pub(crate) batch: usize,
    /// Steps taken.
    pub(crate) step: usize,
    /// Most bytes of states a gradient records to skip recomputation.
    pub(crate) gradient_memory: usize,
    /// Everything reported so far (divergence, non-convergence).
    pub events: Vec<Event>,
    /// The environments at their start (not stepped since the batch was
    /// made, nor given a state): setting a parameter there moves the initial
    /// state that reads it, and a gradient carries the initial state's
    /// derivative back to the parameters.
    pub(crate) at_start: Vec<bool>,
}

/// An environment's start: its index, positions and velocities.
type Start = (usize, Vec<f64>, Vec<f64>);

/// A name that does not exist in the scene.
#[derive(Debug, Clone, PartialEq)]
pub struct NameError(pub String);

impl std::fmt::Display for NameError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for NameError {}

impl<'s> Sim<'s> {
    /// `batch` environments of `scene` at its initial state, in the
    /// partitions [`partition`] plans for `threads` threads.
    pub(crate) fn new(scene: &'s Scene, batch: usize, threads: usize) -> Sim<'s> {
        let precision = scene.model().settings.precision;
        let implicit = scene.model().settings.integrator.is_implicit();
        let ranges = partition(
            batch,
            joule_compiler::abi::lanes(precision),
            threads,
            part_lanes(scene.lane_bytes(), implicit),
        );
        fn build<T: Real>(scene: &Scene, ranges: &[(usize, usize)]) -> Vec<Part<T>> {
            ranges
                .iter()
                .map(|&(first, len)| Part::new(scene, first, len))
                .collect()
        }
        let parts = match precision {
            Precision::F64 => Parts::F64(build(scene, &ranges)),
            Precision::F32 => Parts::F32(build(scene, &ranges)),
        };
        Sim {
            scene,
            parts,
            batch,
            step: 0,
            gradient_memory: GRADIENT_MEMORY,
            events: vec![],
            at_start: vec![true; batch],
        }
    }

    /// Environments.
    pub fn batch(&self) -> usize {
        self.batch
    }

    /// Sets the most bytes of recorded states a [`Sim::gradient`] may keep
    /// (default [`GRADIENT_MEMORY`]); a rollout whose states need
    /// more keeps checkpoints every ~sqrt(steps) steps and recomputes between
    /// them (one more forward pass, the same gradients bit for bit).
    pub fn set_gradient_memory(&mut self, bytes: usize) {
        self.gradient_memory = bytes;
    }

    /// Partitions the batch is split into (each stepped by one thread at a time).
    pub fn partitions(&self) -> usize {
        with_parts!(&self.parts, parts => parts.len())
    }

    /// Newton iterations of the implicit steps taken so far (every substep,
    /// [`Sim::gradient`]'s forward pass included), summed over the
    /// environments: an iteration counts each environment still iterating in
    /// it. Divided by environments and steps, the mean iterations per step;
    /// 0 for explicit scenes.
    pub fn newton_iterations(&self) -> u64 {
        with_parts!(&self.parts, parts => parts.iter().map(|p| p.newton_iterations).sum())
    }

    /// Steps taken.
    pub fn steps(&self) -> usize {
        self.step
    }

    /// Simulated time.
    pub fn time(&self) -> f64 {
        self.step as f64 * self.scene.model().settings.dt
    }

    /// Sets a parameter in every environment. Environments at their start
    /// (not stepped since the batch was made, nor given a state) move to the
    /// start the parameter gives where the initial state reads it, and a
    /// gradient from there includes the parameter's effect through it.
    pub fn set_param(&mut self, name: &str, value: f64) -> Result<(), NameError> {
        let i = self.param_index(name)?;
        let starts = self.starts(|_, p| p[i] = value)?;
        with_parts!(&mut self.parts, parts => for p in parts {
            let s = p.b.stride;
            p.b.params[i * s..(i + 1) * s].fill(Real::from_f64(value));
        });
        self.restart(starts);
        Ok(())
    }

    /// Sets a parameter in one environment (moving its start as
    /// [`Sim::set_param`] does).
    pub fn set_param_env(&mut self, name: &str, env: usize, value: f64) -> Result<(), NameError> {
        let i = self.param_index(name)?;
        let mut starts = self.starts(|e, p| {
            if e == env {
                p[i] = value;
            }
        })?;
        starts.retain(|s| s.0 == env);
        let (p, e) = self.locate(env);
        with_parts!(&mut self.parts, parts => {
            let b = &mut parts[p].b;
            b.params[i * b.stride + e] = Real::from_f64(value);
        });
        self.restart(starts);
        Ok(())
    }

    /// A parameter's value in one environment.
    pub fn param(&self, name: &str, env: usize) -> Result<f64, NameError> {
        let i = self.param_index(name)?;
        let (p, e) = self.locate(env);
        Ok(with_parts!(&self.parts, parts => {
            let b = &parts[p].b;
            b.params[i * b.stride + e].to_f64()
        }))
    }

    fn param_index(&self, name: &str) -> Result<usize, NameError> {
        self.scene
            .model()
            .params
            .iter()
            .position(|p| p.name == name)
            .ok_or_else(|| {
                let known: Vec<&str> = self
                    .scene
                    .model()
                    .params
                    .iter()
                    .map(|p| p.name.as_str())
                    .collect();
                NameError(format!(
                    "unknown parameter `{name}` (the scene's parameters: {})",
                    known.join(", ")
                ))
            })
    }

    /// Sets control `index` (in declaration order) in one environment, clamped to its range.
    pub fn set_control(&mut self, index: usize, env: usize, value: f64) {
        let c = &self.scene.model().controls[index];
        let v = c.bounds.map_or(value, |(lo, hi)| value.clamp(lo, hi));
        let (p, e) = self.locate(env);
        with_parts!(&mut self.parts, parts => {
            let b = &mut parts[p].b;
            b.controls[index * b.stride + e] = Real::from_f64(v);
        });
    }

    /// The partition holding `env`, and the environment's index in it.
    pub(crate) fn locate(&self, env: usize) -> (usize, usize) {
        with_parts!(&self.parts, parts => {
            let p = parts
                .iter()
                .position(|p| env >= p.first && env < p.first + p.len)
                .expect("environment in range");
            (p, env - parts[p].first)
        })
    }

    /// Every partition's first environment, environments and stride.
    pub(crate) fn ranges(&self) -> Vec<(usize, usize, usize)> {
        with_parts!(&self.parts, parts => parts.iter().map(|p| (p.first, p.len, p.b.stride)).collect())
    }

    /// Appends the events of every partition's last operation.
    pub(crate) fn collect_events(&mut self) {
        with_parts!(&self.parts, parts => for p in parts {
            self.events.extend(p.events.iter().cloned());
        });
    }

    /// One step of every environment.
    pub fn step(&mut self) {
        let scene = self.scene;
        let step = self.step;
        with_parts!(&mut self.parts, parts => parts.par_iter_mut().for_each(|p| p.step(scene, step)));
        self.step += 1;
        self.at_start.fill(false);
        self.collect_events();
    }

    /// Takes one implicit Euler substep from the current state, recording the
    /// gradient norm of the incremental potential at every Newton iteration,
    /// `[iteration][env]` (for convergence studies). Explicit scenes return nothing.
    #[doc(hidden)] // public for the tests (tests/physics.rs), not a user API
    pub fn newton_trace(&mut self) -> Vec<Vec<f64>> {
        let scene = self.scene;
        self.at_start.fill(false);
        let joule_compiler::model::Integrator::ImplicitEuler {
            iterations,
            tolerance,
            kinematics,
        } = scene.model().settings.integrator
        else {
            return vec![];
        };
        let h = scene.substep();
        let mut traces = vec![];
        with_parts!(&mut self.parts, parts => for p in parts {
            let mut t = vec![];
            if scene.tree().is_some() {
                p.implicit_reduced(scene, h, iterations, tolerance, kinematics, self.step, Some(&mut t));
            } else {
                p.implicit(scene, h, iterations, tolerance, self.step, Some(&mut t));
            }
            traces.push(t);
        });
        let iters = traces.iter().map(Vec::len).max().unwrap_or(0);
        (0..iters)
            .map(|i| {
                traces
                    .iter()
                    .flat_map(|t| t.get(i).cloned().unwrap_or_default())
                    .collect()
            })
            .collect()
    }

    /// `n` steps.
    pub fn rollout(&mut self, n: usize) {
        for _ in 0..n {
            self.step();
        }
    }

    /// Evaluates every output (observe, reward, loss, done) at the current state:
    /// row-major `[output row][env]`.
    pub fn outputs(&mut self) -> Vec<Vec<f64>> {
        let rows = self.scene.compiled.layout().output_rows();
        let scene = self.scene;
        let mut out = vec![vec![0.0; self.batch]; rows];
        with_parts!(&mut self.parts, parts => {
            parts.par_iter_mut().for_each(|p| p.outputs(scene));
            for p in parts.iter() {
                let s = p.b.stride;
                for (r, row) in out.iter_mut().enumerate() {
                    step::load(&mut row[p.first..p.first + p.len], &p.b.outputs[r * s..r * s + p.len]);
                }
            }
        });
        out
    }

    /// The total potential energy of every environment (all `energy` items,
    /// including the automatic rigidity), at the current positions.
    pub fn potential_energy(&mut self) -> Vec<f64> {
        let scene = self.scene;
        let mut out = vec![0.0; self.batch];
        with_parts!(&mut self.parts, parts => {
            parts.par_iter_mut().for_each(|p| p.potential_energy(scene));
            for p in parts.iter() {
                step::load(&mut out[p.first..p.first + p.len], &p.b.energy[..p.len]);
            }
        });
        out
    }

    /// The components of one named output per environment (`[component][env]`).
    pub fn output(&mut self, name: &str) -> Vec<Vec<f64>> {
        let Some(info) = self.scene.compiled.layout().output(name).cloned() else {
            return vec![];
        };
        let all = self.outputs();
        all[info.offset..info.offset + info.len].to_vec()
    }

    /// The free DOFs' positions of one environment.
    pub fn positions(&self, env: usize) -> Vec<f64> {
        self.column(env, State::Pos)
    }

    /// The free DOFs' velocities of one environment.
    pub fn velocities(&self, env: usize) -> Vec<f64> {
        self.column(env, State::Vel)
    }

    /// One environment's free rows of the positions or velocities.
    fn column(&self, env: usize, which: State) -> Vec<f64> {
        let (p, e) = self.locate(env);
        let n = self.scene.dofs();
        with_parts!(&self.parts, parts => {
            let b = &parts[p].b;
            let rows = match which {
                State::Pos => &b.x,
                State::Vel => &b.v,
                State::PrevPos => &b.prev_x,
                State::PrevVel => &b.prev_v,
                State::Held => &b.held_x,
            };
            (0..n).map(|r| rows[r * b.stride + e].to_f64()).collect()
        })
    }

    /// Sets the free DOFs' positions and velocities of one environment (and
    /// forgets that it diverged); `prev(..)` in outputs reads them too until
    /// the next step. In a scene with joint trees the links' position rows
    /// follow from the joint coordinates (forward kinematics), whatever `x`
    /// holds for them.
    pub fn set_state(&mut self, env: usize, x: &[f64], v: &[f64]) {
        self.put_state(env, x, v, true);
    }

    /// Puts back a state read by [`Sim::positions`] and [`Sim::velocities`]
    /// exactly, row for row (a checkpoint's): unlike [`Sim::set_state`], the
    /// rows of links in joint-coordinate trees are kept as given, not
    /// recomputed by forward kinematics (which rounds differently from the
    /// step that wrote them), so the observations read before the next step
    /// are bitwise the uninterrupted run's.
    pub fn restore_state(&mut self, env: usize, x: &[f64], v: &[f64]) {
        self.put_state(env, x, v, false);
    }

    fn put_state(&mut self, env: usize, x: &[f64], v: &[f64], sync_links: bool) {
        let (p, e) = self.locate(env);
        self.at_start[env] = false;
        let n = self.scene.dofs();
        with_parts!(&mut self.parts, parts => {
            let part = &mut parts[p];
            let s = part.b.stride;
            for r in 0..n {
                part.b.x[r * s + e] = Real::from_f64(x[r]);
                part.b.v[r * s + e] = Real::from_f64(v[r]);
                part.b.prev_x[r * s + e] = Real::from_f64(x[r]);
                part.b.prev_v[r * s + e] = Real::from_f64(v[r]);
            }
            part.diverged[e] = false;
            if let Some(tree) = self.scene.tree().filter(|_| sync_links) {
                part.sync_links(tree, e);
            }
        });
    }

    /// Every environment's parameters, environment-major:
    /// `out[env * params + i]` is parameter `i` (in declaration order) of `env`.
    ///
    /// # Panics
    /// If `out` does not hold `batch * params` values.
    pub fn read_params(&self, out: &mut [f64]) {
        let rows = self.scene.model().params.len();
        with_parts!(&self.parts, parts => for p in parts {
            gather(out, &p.b.params, rows, p.first, p.len, p.b.stride);
        });
    }

    /// Sets every environment's parameters from an environment-major table
    /// (the layout of [`Sim::read_params`]); an error, with nothing written,
    /// where an environment at its start would start at a non-finite state
    /// or outside a joint's range.
    ///
    /// # Panics
    /// If `values` does not hold `batch * params` values.
    pub fn write_params(&mut self, values: &[f64]) -> Result<(), NameError> {
        let rows = self.scene.model().params.len();
        let starts = self.starts(|e, p| p.copy_from_slice(&values[e * rows..(e + 1) * rows]))?;
        with_parts!(&mut self.parts, parts => for p in parts {
            scatter(&mut p.b.params, values, rows, p.first, p.len, p.b.stride, |_, v| v);
        });
        self.restart(starts);
        Ok(())
    }

    /// One environment's parameters, in declaration order.
    pub(crate) fn env_params(&self, env: usize) -> Vec<f64> {
        let (p, e) = self.locate(env);
        let n = self.scene.model().params.len();
        with_parts!(&self.parts, parts => {
            let b = &parts[p].b;
            (0..n).map(|i| b.params[i * b.stride + e].to_f64()).collect()
        })
    }

    /// Adds to the parameters' gradients `params[param][env]` their part
    /// through the initial state, for the environments `started` (at their
    /// start when the differentiated rollout began), from the gradients with
    /// respect to the initial positions and velocities `[dof][env]`.
    pub(crate) fn chain_start(
        &self,
        started: &[bool],
        params: &mut [Vec<f64>],
        x0: &[Vec<f64>],
        v0: &[Vec<f64>],
    ) {
        let start = self.scene.start();
        if start.is_empty() {
            return;
        }
        for env in (0..self.batch).filter(|&e| started[e]) {
            let dx: Vec<f64> = x0.iter().map(|r| r[env]).collect();
            let dv: Vec<f64> = v0.iter().map(|r| r[env]).collect();
            let mut d = vec![0.0; params.len()];
            start.vjp(&self.env_params(env), &dx, &dv, &mut d);
            for (g, d) in params.iter_mut().zip(d) {
                g[env] += d;
            }
        }
    }

    /// The starts `(env, x, v)` the environments at their start would take
    /// with their params changed by `change(env, params)` (none when the
    /// initial state reads no params), checked: finite, and every joint
    /// coordinate inside its barrier range (a start outside one would never
    /// move back in). Nothing is written.
    fn starts(&self, change: impl Fn(usize, &mut [f64])) -> Result<Vec<Start>, NameError> {
        let scene = self.scene;
        let mut starts = vec![];
        if scene.start().is_empty() {
            return Ok(starts);
        }
        for env in (0..self.batch).filter(|&e| self.at_start[e]) {
            let mut params = self.env_params(env);
            change(env, &mut params);
            let (x, v) = scene.start_dofs(&params, || 0.0);
            if let Some(r) = (0..x.len()).find(|&r| !x[r].is_finite() || !v[r].is_finite()) {
                return Err(NameError(format!(
                    "environment {env} would start at a non-finite state with these params ({} = {}, rate {}); give params for which the initial state is finite",
                    scene.dof_name(r),
                    x[r],
                    v[r]
                )));
            }
            let joints = scene.tree().map_or(&[][..], |t| &t.joints[..]);
            for j in joints {
                let (Some((lo, hi)), None) = (j.range, j.soft) else {
                    continue;
                };
                let q = x[j.row];
                if !(lo < q && q < hi) {
                    return Err(NameError(format!(
                        "environment {env} would start `{}` at {q}, outside its range {lo}..{hi} (a barrier never crossed); give params that start it inside",
                        scene.dof_name(j.row)
                    )));
                }
            }
            starts.push((env, x, v));
        }
        Ok(starts)
    }

    /// Puts environments at the starts [`Sim::starts`] gave (they stay at
    /// their start).
    fn restart(&mut self, starts: Vec<Start>) {
        for (env, x, v) in starts {
            self.put_state(env, &x, &v, true);
            self.at_start[env] = true;
        }
    }

    /// Every environment's controls as last applied, environment-major:
    /// `out[env * controls + c]`.
    ///
    /// # Panics
    /// If `out` does not hold `batch * controls` values.
    pub fn read_controls(&self, out: &mut [f64]) {
        let rows = self.scene.model().controls.len();
        with_parts!(&self.parts, parts => for p in parts {
            gather(out, &p.b.controls, rows, p.first, p.len, p.b.stride);
        });
    }

    /// Sets every environment's controls from an environment-major table
    /// (`values[env * controls + c]`), each clamped to its range.
    ///
    /// # Panics
    /// If `values` does not hold `batch * controls` values.
    pub fn write_controls(&mut self, values: &[f64]) {
        let controls = &self.scene.model().controls;
        let clamp = |c: usize, v: f64| controls[c].bounds.map_or(v, |(lo, hi)| v.clamp(lo, hi));
        with_parts!(&mut self.parts, parts => for p in parts {
            scatter(&mut p.b.controls, values, controls.len(), p.first, p.len, p.b.stride, clamp);
        });
    }

    /// Evaluates every output at the current state into an
    /// environment-major table: `out[env * rows + row]` (the rows of
    /// [`Sim::outputs`]).
    ///
    /// # Panics
    /// If `out` does not hold `batch * rows` values.
    pub fn read_outputs(&mut self, out: &mut [f64]) {
        let rows = self.scene.compiled.layout().output_rows();
        let scene = self.scene;
        with_parts!(&mut self.parts, parts => {
            parts.par_iter_mut().for_each(|p| p.outputs(scene));
            for p in parts.iter() {
                gather(out, &p.b.outputs, rows, p.first, p.len, p.b.stride);
            }
        });
    }

    /// Every environment's free DOFs' positions and velocities,
    /// environment-major: `x[env * dofs + d]`, `v[env * dofs + d]`.
    ///
    /// # Panics
    /// If `x` or `v` does not hold `batch * dofs` values.
    pub fn read_state(&self, x: &mut [f64], v: &mut [f64]) {
        let rows = self.scene.dofs();
        with_parts!(&self.parts, parts => for p in parts {
            gather(x, &p.b.x, rows, p.first, p.len, p.b.stride);
            gather(v, &p.b.v, rows, p.first, p.len, p.b.stride);
        });
    }

    /// Sets every environment's free DOFs' positions and velocities from
    /// environment-major tables (the layout of [`Sim::read_state`]) and
    /// forgets which environments diverged; `prev(..)` in outputs reads them
    /// too until the next step. Links' position rows follow from the joint
    /// coordinates, as in [`Sim::set_state`].
    ///
    /// # Panics
    /// If `x` or `v` does not hold `batch * dofs` values.
    pub fn write_state(&mut self, x: &[f64], v: &[f64]) {
        let rows = self.scene.dofs();
        self.at_start.fill(false);
        with_parts!(&mut self.parts, parts => for p in parts {
            let s = p.b.stride;
            scatter(&mut p.b.x, x, rows, p.first, p.len, s, |_, v| v);
            scatter(&mut p.b.v, v, rows, p.first, p.len, s, |_, v| v);
            scatter(&mut p.b.prev_x, x, rows, p.first, p.len, s, |_, v| v);
            scatter(&mut p.b.prev_v, v, rows, p.first, p.len, s, |_, v| v);
            p.diverged.iter_mut().for_each(|d| *d = false);
            if let Some(tree) = self.scene.tree() {
                for e in 0..p.len {
                    p.sync_links(tree, e);
                }
            }
        });
    }

    /// Starts a new episode in one environment: the scene's initial state
    /// with N(0, `noise`) added to every velocity component (see
    /// [`Scene::initial_dofs`]), then the scene's `reset` items drawn (joint
    /// coordinates, rates and params; a drawn param is clamped to its
    /// range), all from `rng`; forgets that the environment diverged.
    pub fn reset_env<R: Rng + ?Sized>(&mut self, env: usize, noise: f64, rng: &mut R) {
        let normal = Normal::new(0.0, noise.max(0.0)).expect("a finite standard deviation");
        let m = self.scene.model();
        let defaults: Vec<f64> = m.params.iter().map(|p| p.value).collect();
        // Every variate is drawn in the same order whether or not the
        // initial state reads parameters (the jitter, then the reset's).
        let (mut jitter, mut variates) = (vec![], vec![]);
        let (mut x, mut v) = self.scene.initial_dofs(|| {
            let j = normal.sample(rng);
            jitter.push(j);
            j
        });
        let mut params = m.reset.draw(&mut x, &mut v, &defaults, |slot| {
            let u = match slot {
                Slot::Uniform => rng.random::<f64>(),
                Slot::Normal => StandardNormal.sample(rng),
                Slot::Let => 0.0,
            };
            variates.push(u);
            u
        });
        let clamp = |i: usize, value: f64| {
            m.params[i]
                .bounds
                .map_or(value, |(lo, hi)| value.clamp(lo, hi))
        };
        if !self.scene.start().is_empty() {
            // Start from the parameters the reset draws (the others as the
            // environment has them), then draw the reset again on that start.
            let mut p = self.env_params(env);
            for &(i, value) in &params {
                p[i] = clamp(i, value);
            }
            let mut jitter = jitter.into_iter();
            (x, v) = self.scene.start_dofs(&p, || jitter.next().unwrap_or(0.0));
            let mut variates = variates.into_iter();
            params = m.reset.draw(&mut x, &mut v, &defaults, |_| {
                variates.next().unwrap_or(0.0)
            });
        }
        let (p, e) = self.locate(env);
        with_parts!(&mut self.parts, parts => {
            let b = &mut parts[p].b;
            for &(i, value) in &params {
                b.params[i * b.stride + e] = Real::from_f64(clamp(i, value));
            }
        });
        self.set_state(env, &x, &v);
    }
}

/// Copies rows `0..rows` of a partition's buffer (`[row * stride + lane]`,
/// environments `first..first + len`) into an environment-major table
/// (`[env * rows + row]`).
fn gather<T: Real>(
    out: &mut [f64],
    buf: &[T],
    rows: usize,
    first: usize,
    len: usize,
    stride: usize,
) {
    for e in 0..len {
        let dst = &mut out[(first + e) * rows..(first + e + 1) * rows];
        for (r, d) in dst.iter_mut().enumerate() {
            *d = buf[r * stride + e].to_f64();
        }
    }
}

/// The inverse of [`gather`], through `map(row, value)`.
fn scatter<T: Real>(
    buf: &mut [T],
    values: &[f64],
    rows: usize,
    first: usize,
    len: usize,
    stride: usize,
    map: impl Fn(usize, f64) -> f64,
) {
    for e in 0..len {
        let src = &values[(first + e) * rows..(first + e + 1) * rows];
        for (r, &v) in src.iter().enumerate() {
            buf[r * stride + e] = T::from_f64(map(r, v));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::{part_lanes, partition, PART_BYTES};

    /// Lengths of the partitions, checking that they tile the batch.
    fn lens(batch: usize, lanes: usize, threads: usize, part_lanes: usize) -> Vec<usize> {
        let ranges = partition(batch, lanes, threads, part_lanes);
        let mut next = 0;
        for &(first, len) in &ranges {
            assert_eq!(first, next, "{ranges:?}");
            assert!(len > 0, "{ranges:?}");
            next += len;
        }
        assert_eq!(next, batch, "{ranges:?}");
        ranges.iter().map(|r| r.1).collect()
    }

    #[test]
    fn one_environment_is_one_partition() {
        assert_eq!(lens(1, 2, 1, usize::MAX), [1]);
        assert_eq!(lens(1, 2, 8, usize::MAX), [1]);
        assert_eq!(lens(1, 4, 8, 8), [1]);
    }

    #[test]
    fn explicit_batches_are_split_by_threads_in_units_of_eight_lanes() {
        // f64x2: 64 environments are 32 vectors, 4 units of 8 lanes per thread.
        assert_eq!(lens(64, 2, 2, usize::MAX), [32, 32]);
        // 10 vectors on 3 threads: too few for two units each, so vectors.
        assert_eq!(lens(20, 2, 3, usize::MAX), [8, 6, 6]);
        // 13 f32 environments are 4 f32x4 vectors: never more partitions than vectors.
        assert_eq!(lens(13, 4, 8, usize::MAX), [4, 4, 4, 1]);
        // A ragged batch: the last partition holds the remainder.
        assert_eq!(
            lens(1023, 2, 8, usize::MAX),
            [128; 7].into_iter().chain([127]).collect::<Vec<_>>()
        );
    }

    #[test]
    fn implicit_batches_are_split_into_multiples_of_the_thread_count() {
        // The ant at B = 1024 on one thread: partitions of at most 24 lanes.
        let ant = lens(1024, 2, 1, 24);
        assert_eq!(ant.len(), 43);
        assert!(ant.iter().all(|&l| l <= 24 && l % 8 == 0), "{ant:?}");
        // On two threads: a multiple of two partitions.
        let two = lens(1024, 2, 2, 24);
        assert_eq!(two.len(), 44);
        assert!(two.iter().all(|&l| l <= 24), "{two:?}");
        // B = 64 on 2 threads fits in two partitions of 32.
        assert_eq!(lens(64, 2, 2, 32), [32, 32]);
        // A partition limit below the batch: 64 on 2 threads in eighths.
        assert_eq!(lens(64, 2, 2, 8), [8; 8]);
    }

    #[test]
    fn partitions_hold_what_fits_in_the_byte_budget() {
        // Implicit: multiples of 8 lanes within PART_BYTES, at least 8.
        assert_eq!(part_lanes(PART_BYTES / 24, true), 24);
        assert_eq!(part_lanes(PART_BYTES / 100, true), 96);
        assert_eq!(part_lanes(PART_BYTES / 7, true), 8);
        assert_eq!(part_lanes(PART_BYTES, true), 8);
        // Explicit: threads alone.
        assert_eq!(part_lanes(PART_BYTES / 24, false), usize::MAX);
        assert_eq!(part_lanes(0, false), usize::MAX);
    }
}

#[cfg(test)]
mod reset_tests {
    use crate::Scene;
    use rand::rngs::StdRng;
    use rand::SeedableRng;

    /// Every environment's starts (params, velocities) after resets from a
    /// generator seeded with `seed`.
    fn starts(scene: &Scene, seed: u64) -> (Vec<f64>, Vec<Vec<f64>>) {
        let mut sim = scene.batch_threads(8, 2);
        let mut rng = StdRng::seed_from_u64(seed);
        for e in 0..8 {
            sim.reset_env(e, 0.0, &mut rng);
        }
        let k = (0..8).map(|e| sim.param("k", e).expect("k")).collect();
        (k, (0..8).map(|e| sim.velocities(e)).collect())
    }

    /// `reset_env` draws the scene's `reset` per environment: a drawn param
    /// clamped into its range, each environment its own start, and the same
    /// seed the same starts.
    #[test]
    fn resets_draw_per_environment_and_clamp_params() {
        let scene = Scene::compile(
            "param k = 1 in 0.5..1.5
             body torso { shape = sphere(0.2), mass = 1, x = vec3(0, 0, 1), joint = free }
             reset { k = normal(1, 10)  torso.qdot = uniform(-1, 1) }",
        )
        .expect("compiles");
        let (k, v) = starts(&scene, 3);
        assert!(k.iter().all(|k| (0.5..=1.5).contains(k)), "{k:?}");
        assert!(k.iter().any(|&k| k == 0.5 || k == 1.5), "clamped: {k:?}");
        assert!(v.windows(2).all(|w| w[0] != w[1]), "each its own start");
        let rates = scene.dofs() - 6..scene.dofs();
        assert!(v
            .iter()
            .all(|v| v[rates.clone()].iter().all(|r| r.abs() < 1.0 && *r != 0.0)));
        assert_eq!(starts(&scene, 3), (k, v), "the same seed, the same starts");
    }
}
