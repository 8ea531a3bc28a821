//! Gradients through time: a forward rollout that records the state before
//! every substep when they fit in [`Sim::set_gradient_memory`]'s budget
//! (default [`GRADIENT_MEMORY`]), so the reverse pass
//! runs the adjoint of each substep backwards straight away; otherwise it
//! keeps checkpoints every `K ~ sqrt(T)` steps, and the reverse pass
//! recomputes each segment from its checkpoint (recording the states) before
//! running its adjoints. Memory is then `O(T/K + K)` states instead of `O(T)`,
//! for one more forward pass.

use crate::step::{widen, Adjoint, Part, Snapshot};
use crate::{with_parts, Event, NameError, Parts, Scene, Sim};
use joule_compiler::abi::Real;
use joule_compiler::model::ObjectiveKind;
use rayon::prelude::*;

/// What to differentiate: a terminal `loss`, the sum of a `reward` over the
/// steps, the squared distance of an output to a target trajectory, or the
/// sum of those given.
#[derive(Debug, Clone, Default)]
pub struct Objective {
    /// Name of a `loss` item, evaluated after the last step.
    pub loss: Option<String>,
    /// Name of a `reward` item, summed over the states after each step.
    pub reward: Option<String>,
    /// An output matched to a recorded trajectory.
    pub track: Option<Track>,
}

impl Objective {
    /// A terminal loss.
    pub fn loss(name: &str) -> Objective {
        Objective {
            loss: Some(name.into()),
            ..Objective::default()
        }
    }

    /// A reward summed over the steps.
    pub fn reward(name: &str) -> Objective {
        Objective {
            reward: Some(name.into()),
            ..Objective::default()
        }
    }

    /// `sum_t |output_t - target_t|^2` over the steps.
    pub fn track(output: &str, targets: Vec<Vec<Vec<f64>>>) -> Objective {
        Objective {
            track: Some(Track {
                output: output.into(),
                targets,
                chamfer: false,
            }),
            ..Objective::default()
        }
    }

    /// The bidirectional Chamfer distance between the output's trajectory and
    /// an expert's (any length), as in imitation by differentiable physics (ILD).
    pub fn chamfer(output: &str, expert: Vec<Vec<Vec<f64>>>) -> Objective {
        Objective {
            track: Some(Track {
                output: output.into(),
                targets: expert,
                chamfer: true,
            }),
            ..Objective::default()
        }
    }
}

/// Trajectory matching, where `a_t` is the output after step `t + 1` and
/// `e_s` the targets: step by step, `sum_t |a_t - e_t|^2`; or, with `chamfer`,
/// `mean_t min_s |a_t - e_s|^2 + mean_s min_t |a_t - e_s|^2` (the agent's
/// states near the expert's and the expert's states covered).
#[derive(Debug, Clone)]
pub struct Track {
    /// Name of any output (`observe`, `loss`, ...).
    pub output: String,
    /// `[step][component][env]`: one entry per step simulated (any number with `chamfer`).
    pub targets: Vec<Vec<Vec<f64>>>,
    /// Chamfer distance instead of step-by-step matching.
    pub chamfer: bool,
}

/// Most bytes of recorded states a gradient keeps by default (over the
/// whole batch) to skip the segment recomputation (the ant over 100 steps at
/// B = 64 records 11 MB); see [`Sim::set_gradient_memory`].
pub const GRADIENT_MEMORY: usize = 1 << 30;

/// Control values for every step: `[step][control][env]` (the layout of
/// [`Gradient::controls`]), clamped to the controls' ranges when applied.
pub type Schedule = Vec<Vec<Vec<f64>>>;

/// The objective and its gradients, per environment.
#[derive(Debug, Clone, PartialEq)]
pub struct Gradient {
    /// The objective per environment.
    pub value: Vec<f64>,
    /// d objective / d param, `[param][env]` (through the initial state too,
    /// for environments at their start: see [`Sim::set_param`]).
    pub params: Vec<Vec<f64>>,
    /// d objective / d control at each step, `[step][control][env]`.
    pub controls: Vec<Vec<Vec<f64>>>,
    /// d objective / d initial position of each free DOF, `[dof][env]`.
    pub x0: Vec<Vec<f64>>,
    /// d objective / d initial velocity of each free DOF, `[dof][env]`.
    pub v0: Vec<Vec<f64>>,
    /// Bytes of recorded state per environment and step (the states of
    /// every SIMD lane of the batch, padding lanes included, over the
    /// environments), during the reverse pass.
    pub bytes_per_env_step: usize,
    /// Checkpoint interval used: the number of steps when every state was
    /// kept from the forward pass (nothing recomputed).
    pub checkpoint_every: usize,
    /// What the forward pass reported (divergence, non-convergence, CG stops)
    /// and the adjoint's CG solves that stopped short (the gradient is then inexact).
    pub events: Vec<Event>,
}

struct PartGradient {
    value: Vec<f64>,
    params: Vec<f64>,
    controls: Vec<Vec<f64>>,
    x0: Vec<f64>,
    v0: Vec<f64>,
    events: Vec<Event>,
}

/// What one partition differentiates: output rows and per-step data in its buffer layout.
struct PartObjective {
    loss: Option<usize>,
    reward: Option<usize>,
    /// First row, components, and `[step][component * stride + env]` targets.
    track: Option<(usize, usize, Vec<Vec<f64>>)>,
    /// The track is a Chamfer distance.
    chamfer: bool,
    /// `[step][control * stride + env]`.
    schedule: Option<Vec<Vec<f64>>>,
}

/// `[step][row][env]` (global) to `[step][row * stride + env]` for one partition.
fn part_rows<T: Real>(data: &[Vec<Vec<f64>>], p: &Part<T>) -> Vec<Vec<f64>> {
    let s = p.b.stride;
    data.iter()
        .map(|rows| {
            let mut out = vec![0.0; rows.len() * s];
            for (r, row) in rows.iter().enumerate() {
                out[r * s..r * s + p.len].copy_from_slice(&row[p.first..p.first + p.len]);
            }
            out
        })
        .collect()
}

impl Sim<'_> {
    /// Runs `steps` steps from the current state with the current controls
    /// (leaving the simulation at the end) and returns the objective with its
    /// gradients.
    pub fn gradient(&mut self, objective: &Objective, steps: usize) -> Result<Gradient, NameError> {
        self.gradient_impl(objective, steps, None)
    }

    /// Like [`Sim::gradient`], with the controls of every step given: one
    /// step per entry of `schedule` (open-loop trajectory optimisation).
    pub fn gradient_schedule(
        &mut self,
        objective: &Objective,
        schedule: &Schedule,
    ) -> Result<Gradient, NameError> {
        self.gradient_impl(objective, schedule.len(), Some(schedule))
    }

    fn gradient_impl(
        &mut self,
        objective: &Objective,
        steps: usize,
        schedule: Option<&Schedule>,
    ) -> Result<Gradient, NameError> {
        let scene = self.scene;
        if let Some(why) = scene.gradients_unavailable() {
            return Err(NameError(why.into()));
        }
        let layout = scene.compiled.layout();
        let row = |name: &Option<String>, kind: Option<ObjectiveKind>| {
            let Some(n) = name else { return Ok(None) };
            layout
                .output(n)
                .filter(|o| kind.is_none_or(|k| o.kind == k))
                .map(|o| Some((o.offset, o.len)))
                .ok_or_else(|| {
                    let known: Vec<&str> = layout
                        .outputs
                        .iter()
                        .filter(|o| kind.is_none_or(|k| o.kind == k))
                        .map(|o| o.name.as_str())
                        .collect();
                    let what = kind.map_or("output", |k| k.keyword());
                    NameError(format!(
                        "no {what} named `{n}` (the scene has: {})",
                        known.join(", ")
                    ))
                })
        };
        let loss = row(&objective.loss, Some(ObjectiveKind::Loss))?.map(|r| r.0);
        let reward = row(&objective.reward, Some(ObjectiveKind::Reward))?.map(|r| r.0);
        let track_name = objective.track.as_ref().map(|t| t.output.clone());
        let track = row(&track_name, None)?;
        let (n, batch) = (scene.dofs(), self.batch);
        let np = scene.model().params.len();
        let nc = scene.model().controls.len();
        if let (Some(t), Some((_, len))) = (&objective.track, track) {
            let ok = (t.targets.len() == steps || (t.chamfer && !t.targets.is_empty()))
                && t.targets
                    .iter()
                    .all(|s| s.len() == len && s.iter().all(|c| c.len() == batch));
            if !ok {
                let n = if t.chamfer {
                    "at least 1".to_string()
                } else {
                    steps.to_string()
                };
                return Err(NameError(format!(
                    "the targets of `{}` must be [{n} steps][{len} components][{batch} environments]",
                    t.output
                )));
            }
        }
        if let Some(sch) = schedule {
            if sch
                .iter()
                .any(|s| s.len() != nc || s.iter().any(|c| c.len() != batch))
            {
                return Err(NameError(format!(
                    "a control schedule must be [steps][{nc} controls][{batch} environments]"
                )));
            }
        }
        let subs = scene.substeps();
        // A snapshot holds every lane of a partition, padding included (a
        // batch of 1 fills one of the two f64 lanes): count what is stored.
        let lanes: usize = with_parts!(&self.parts, ps => ps.iter().map(|p| p.b.stride).sum());
        let recorded = 16 * n * subs * lanes;
        let bytes_per_env_step = recorded.div_ceil(batch);
        let keep_all = recorded * steps <= self.gradient_memory;
        let k = if keep_all {
            steps.max(1)
        } else {
            ((steps as f64).sqrt().ceil() as usize).max(1)
        };
        let start = self.step;
        let clamp = |sch: &Schedule| -> Schedule {
            sch.iter()
                .map(|step| {
                    step.iter()
                        .zip(&scene.model().controls)
                        .map(|(vals, c)| match c.bounds {
                            Some((lo, hi)) => vals.iter().map(|v| v.clamp(lo, hi)).collect(),
                            None => vals.clone(),
                        })
                        .collect()
                })
                .collect()
        };
        let schedule = schedule.map(clamp);
        let started = std::mem::replace(&mut self.at_start, vec![false; batch]);
        let parts: Vec<(usize, usize, PartGradient)> = with_parts!(&mut self.parts, ps => ps
            .par_iter_mut()
            .map(|p| {
                let o = PartObjective {
                    loss,
                    reward,
                    track: track.map(|(row, len)| {
                        let t = objective.track.as_ref().expect("a track row has a track");
                        (row, len, part_rows(&t.targets, p))
                    }),
                    schedule: schedule.as_ref().map(|sch| part_rows(sch, p)),
                    chamfer: objective.track.as_ref().is_some_and(|t| t.chamfer),
                };
                (p.first, p.b.stride, part_gradient(p, scene, &o, steps, k, keep_all, start))
            })
            .collect());
        self.step += steps;
        let mut g = Gradient {
            value: vec![0.0; batch],
            params: vec![vec![0.0; batch]; np],
            controls: vec![vec![vec![0.0; batch]; nc]; steps],
            x0: vec![vec![0.0; batch]; n],
            v0: vec![vec![0.0; batch]; n],
            bytes_per_env_step,
            checkpoint_every: k,
            events: vec![],
        };
        for (first, s, pg) in parts {
            g.events.extend(pg.events);
            for e in 0..pg.value.len() {
                let env = first + e;
                g.value[env] = pg.value[e];
                for i in 0..np {
                    g.params[i][env] = pg.params[i * s + e];
                }
                for (t, ct) in pg.controls.iter().enumerate() {
                    for c in 0..nc {
                        g.controls[t][c][env] = ct[c * s + e];
                    }
                }
                for r in 0..n {
                    g.x0[r][env] = pg.x0[r * s + e];
                    g.v0[r][env] = pg.v0[r * s + e];
                }
            }
        }
        self.chain_start(&started, &mut g.params, &g.x0, &g.v0);
        Ok(g)
    }
}

/// Adds the per-step terms (reward, step-by-step tracking) at the current
/// state to `value`, and, with `seed`, writes their output adjoints into
/// `out_seed` (for a Chamfer track, the precomputed `chamfer_seeds` of step `t`).
fn step_terms<T: Real>(
    p: &mut Part<T>,
    scene: &Scene,
    o: &PartObjective,
    t: usize,
    value: &mut [f64],
    seed: bool,
    chamfer_seeds: &[Vec<f64>],
) {
    if o.reward.is_none() && o.track.is_none() {
        return;
    }
    let s = p.b.stride;
    p.outputs(scene);
    if seed {
        p.b.out_seed.fill(T::default());
    }
    if let Some(r) = o.reward {
        for e in 0..p.len {
            value[e] += p.b.outputs[r * s + e].to_f64();
        }
        if seed {
            p.b.out_seed[r * s..r * s + p.len].fill(T::from_f64(1.0));
        }
    }
    if let Some((row, len, targets)) = o.track.as_ref().filter(|_| !o.chamfer) {
        for c in 0..*len {
            for e in 0..p.len {
                let i = (row + c) * s + e;
                let d = p.b.outputs[i].to_f64() - targets[t][c * s + e];
                value[e] += d * d;
                if seed {
                    p.b.out_seed[i] = T::from_f64(p.b.out_seed[i].to_f64() + 2.0 * d);
                }
            }
        }
    }
    if let (Some((row, len, _)), true, true) = (&o.track, o.chamfer, seed) {
        let rows = row * s..(row + len) * s;
        for (seed, g) in p.b.out_seed[rows].iter_mut().zip(&chamfer_seeds[t]) {
            *seed = T::from_f64(seed.to_f64() + g);
        }
    }
}

/// The Chamfer distance of each environment's trajectory `agent[t]` to the
/// expert's `expert[s]` (both `[component * stride + env]`), added to
/// `value`; returns its derivative with respect to each `agent[t]`.
pub fn chamfer(
    agent: &[Vec<f64>],
    expert: &[Vec<f64>],
    len: usize,
    stride: usize,
    envs: usize,
    value: &mut [f64],
) -> Vec<Vec<f64>> {
    let mut grad = vec![vec![0.0; len * stride]; agent.len()];
    let (nt, ns) = (agent.len() as f64, expert.len() as f64);
    let dist = |a: &[f64], b: &[f64], e: usize| -> f64 {
        (0..len)
            .map(|c| (a[c * stride + e] - b[c * stride + e]).powi(2))
            .sum()
    };
    // Adds d(w |a_t - e_s|^2)/d a_t.
    let pull = |grad: &mut [Vec<f64>], t: usize, s: usize, e: usize, w: f64| {
        for c in 0..len {
            let i = c * stride + e;
            grad[t][i] += 2.0 * w * (agent[t][i] - expert[s][i]);
        }
    };
    for (e, v) in value.iter_mut().enumerate().take(envs) {
        for t in 0..agent.len() {
            let (s, d) = (0..expert.len())
                .map(|s| (s, dist(&agent[t], &expert[s], e)))
                .fold((0, f64::INFINITY), |a, b| if b.1 < a.1 { b } else { a });
            *v += d / nt;
            pull(&mut grad, t, s, e, 1.0 / nt);
        }
        for s in 0..expert.len() {
            let (t, d) = (0..agent.len())
                .map(|t| (t, dist(&agent[t], &expert[s], e)))
                .fold((0, f64::INFINITY), |a, b| if b.1 < a.1 { b } else { a });
            *v += d / ns;
            pull(&mut grad, t, s, e, 1.0 / ns);
        }
    }
    grad
}

/// One partition's gradient: checkpoints every `k` steps, or (`keep_all`,
/// with `k` = `steps`) every substep's state recorded in the forward pass.
#[allow(clippy::too_many_arguments)]
fn part_gradient<T: Real>(
    p: &mut Part<T>,
    scene: &Scene,
    o: &PartObjective,
    steps: usize,
    k: usize,
    keep_all: bool,
    start: usize,
) -> PartGradient {
    let (n, s) = (scene.dofs(), p.b.stride);
    let subs = scene.substeps();
    let set_controls = |p: &mut Part<T>, t: usize| {
        if let Some(sch) = &o.schedule {
            crate::step::store(&mut p.b.controls, &sch[t]);
        }
    };
    let mut value = vec![0.0; p.len];
    let mut events = vec![];
    // The tracked output at every step, for a Chamfer distance.
    let mut agent: Vec<Vec<f64>> = vec![];
    // Forward, keeping checkpoints (or every substep's state).
    let mut checkpoints: Vec<Snapshot> = vec![];
    let mut recorded: Vec<Snapshot> = vec![];
    let initial = p.snapshot(n);
    for t in 0..steps {
        if t % k == 0 {
            checkpoints.push(p.snapshot(n));
        }
        set_controls(p, t);
        if keep_all {
            p.step_recorded(scene, start + t, &mut recorded);
        } else {
            p.step(scene, start + t);
        }
        events.append(&mut p.events);
        step_terms(p, scene, o, t, &mut value, false, &[]);
        if let (Some((row, len, _)), true) = (&o.track, o.chamfer) {
            agent.push(widen(&p.b.outputs[row * s..(row + len) * s]));
        }
    }
    let chamfer_seeds = match &o.track {
        Some((_, len, expert)) if o.chamfer => chamfer(&agent, expert, *len, s, p.len, &mut value),
        _ => vec![],
    };
    let end_state = p.snapshot(n);
    let mut adj = Adjoint::new(n, s, p.b.params.len(), p.b.controls.len());
    if let Some(l) = o.loss {
        p.outputs(scene);
        for (e, v) in value.iter_mut().enumerate() {
            *v += p.b.outputs[l * s + e].to_f64();
        }
        p.b.out_seed.fill(T::default());
        p.b.out_seed[l * s..l * s + p.len].fill(T::from_f64(1.0));
        p.outputs_adjoint(scene, &mut adj);
    }
    let mut controls = vec![vec![0.0; p.b.controls.len()]; steps];
    let mut scratch = vec![0.0; p.len];
    // Reverse, one segment at a time.
    for (c, cp) in checkpoints.iter().enumerate().rev() {
        let (t0, t1) = (c * k, ((c + 1) * k).min(steps));
        // The state before every substep of the segment: kept by the forward
        // pass, or recomputed from the checkpoint.
        let mut states: Vec<Snapshot> = if keep_all {
            std::mem::take(&mut recorded)
        } else {
            p.restore(cp);
            let mut states = vec![];
            for t in t0..t1 {
                set_controls(p, t);
                for _ in 0..subs {
                    states.push(p.snapshot(n));
                    p.substep(scene, start + t);
                }
            }
            // The forward pass reported these substeps already.
            p.events.clear();
            states
        };
        states.push(if t1 == steps {
            end_state.clone()
        } else {
            checkpoints[c + 1].clone()
        });
        for t in (t0..t1).rev() {
            // `adj.controls` collects this step's control gradient (and, for the
            // last step, the loss's direct dependence on the controls).
            set_controls(p, t);
            if o.reward.is_some() || o.track.is_some() {
                p.restore(&states[(t + 1 - t0) * subs]);
                p.restore_prev(&states[(t - t0) * subs]);
                step_terms(p, scene, o, t, &mut scratch, true, &chamfer_seeds);
                p.outputs_adjoint(scene, &mut adj);
            }
            for sub in (0..subs).rev() {
                let i = (t - t0) * subs + sub;
                p.step_adjoint(scene, &states[i], &states[i + 1], &mut adj, start + t);
                events.append(&mut p.events);
            }
            adj.close_step();
            controls[t].copy_from_slice(&adj.controls);
            adj.controls.fill(0.0);
        }
    }
    // With no step, what the loss read through `prev(..)` is the start.
    adj.close_step();
    // The initial links' rows follow from the coordinates.
    if let Some(tree) = scene.tree() {
        p.pull_initial_links(tree, &initial, &mut adj.x);
    }
    p.restore(&end_state);
    PartGradient {
        value,
        params: adj.params,
        controls,
        x0: adj.x,
        v0: adj.v,
        events,
    }
}
