//! Optimisation through the simulator: open-loop trajectory optimisation
//! (a control per step), parameter identification (fit parameters to a loss
//! or a recorded trajectory) and model-predictive control (trajectory
//! optimisation re-solved from every state, warm-started).
//!
//! Variables are unconstrained: a bounded quantity `v` in `lo..hi` is
//! `lo + (hi - lo) sigmoid(z)`, an unbounded one `v0 + max(|v0|, 1) z`, so
//! every optimiser respects the scene's ranges without projection. Each
//! evaluation is one forward rollout and one adjoint pass
//! ([`Sim::gradient_schedule`]). Adam is written out here (a few lines);
//! L-BFGS is argmin's, with the Moré-Thuente line search (strong Wolfe
//! conditions).

use crate::gradient::{Objective, Schedule};
use crate::{NameError, Scene, Sim};
use argmin::core::{CostFunction, Error as ArgminError, Executor, Gradient as ArgminGradient};
use argmin::solver::linesearch::MoreThuenteLineSearch;
use argmin::solver::quasinewton::LBFGS;
use std::cell::RefCell;
use std::time::Instant;

/// The optimiser.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Method {
    /// Adam with this learning rate (in the unconstrained variables).
    Adam(f64),
    /// L-BFGS (memory 10) with a Moré-Thuente line search.
    Lbfgs,
}

/// What to optimise, from where.
#[derive(Debug, Clone)]
pub struct Problem {
    /// The objective (minimised; see `maximise`).
    pub objective: Objective,
    /// Maximise instead (rewards).
    pub maximise: bool,
    /// Steps per rollout.
    pub steps: usize,
    /// Every parameter's value: fixed ones as given, optimised ones as the start.
    pub params: Vec<f64>,
    /// Indices of the optimised parameters.
    pub wrt_params: Vec<usize>,
    /// Optimise the control of every step.
    pub wrt_controls: bool,
    /// Controls per step, `[step][control]` (the start when optimised; zeros if empty).
    pub schedule: Vec<Vec<f64>>,
    /// Initial positions and velocities (default: the scene's).
    pub state: Option<(Vec<f64>, Vec<f64>)>,
    /// Multiple shooting: when not empty, every evaluation runs these
    /// windows as one batch (environment `k` is window `k`) with the same
    /// parameters, and the objective is the sum over them (its targets hold
    /// one value per window). `state` and `schedule` are then unused, and
    /// controls cannot be optimised.
    pub windows: Vec<Window>,
}

/// One window of multiple shooting: a stretch of a recording, started from
/// its recorded state and driven by its recorded controls.
#[derive(Debug, Clone)]
pub struct Window {
    /// Free DOFs' positions and velocities at the window's first step.
    pub state: (Vec<f64>, Vec<f64>),
    /// Controls per step, `[step][control]`, at least `steps` of them.
    pub schedule: Vec<Vec<f64>>,
}

impl Problem {
    /// A problem on `scene` with its default parameters, zero controls and initial state.
    pub fn new(scene: &Scene, objective: Objective, steps: usize) -> Problem {
        Problem {
            maximise: objective.reward.is_some() && objective.loss.is_none(),
            objective,
            steps,
            params: scene.model().params.iter().map(|p| p.value).collect(),
            wrt_params: vec![],
            wrt_controls: false,
            schedule: vec![],
            state: None,
            windows: vec![],
        }
    }
}

/// One gradient evaluation.
#[derive(Debug, Clone, PartialEq)]
pub struct Evaluation {
    /// The objective (as defined, not negated).
    pub value: f64,
    /// Norm of the gradient in the unconstrained variables.
    pub grad_norm: f64,
    /// Wall time since the start of the optimisation.
    pub seconds: f64,
}

/// The result: the best point found and the history of evaluations.
#[derive(Debug, Clone)]
pub struct Solution {
    /// Every parameter's value at the best point.
    pub params: Vec<f64>,
    /// Controls per step at the best point, `[step][control]`.
    pub schedule: Vec<Vec<f64>>,
    /// The objective there.
    pub value: f64,
    /// Every evaluation, in order.
    pub history: Vec<Evaluation>,
}

/// A scalar variable's map from the unconstrained `z`: `lo + (hi - lo)
/// sigmoid(z)` in a range, `v0 + scale z` without one.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Map {
    /// In the range `(lo, hi)`.
    Bounded(f64, f64),
    /// About `v0` with `scale = max(|v0|, 1)`.
    Free(f64, f64),
}

impl Map {
    /// The map of a variable with these bounds starting at `start`.
    pub fn new(bounds: Option<(f64, f64)>, start: f64) -> Map {
        match bounds {
            Some((lo, hi)) if hi > lo => Map::Bounded(lo, hi),
            _ => Map::Free(start, start.abs().max(1.0)),
        }
    }

    /// The value and its derivative in `z`.
    pub fn value(self, z: f64) -> (f64, f64) {
        match self {
            Map::Bounded(lo, hi) => {
                let s = 1.0 / (1.0 + (-z).exp());
                (lo + (hi - lo) * s, (hi - lo) * s * (1.0 - s))
            }
            Map::Free(v0, scale) => (v0 + scale * z, scale),
        }
    }

    /// The `z` of a value (kept strictly inside a range).
    pub fn inverse(self, v: f64) -> f64 {
        match self {
            Map::Bounded(lo, hi) => {
                let s = ((v - lo) / (hi - lo)).clamp(1e-6, 1.0 - 1e-6);
                (s / (1.0 - s)).ln()
            }
            Map::Free(v0, scale) => (v - v0) / scale,
        }
    }
}

/// A point `z`, the objective to minimise there and its gradient.
type Point = (Vec<f64>, f64, Vec<f64>);

/// The problem as a function of unconstrained variables.
struct Layout<'a, 's> {
    scene: &'s Scene,
    problem: &'a Problem,
    /// Parameter variables, then controls step-major.
    maps: Vec<Map>,
    start: Instant,
    history: RefCell<Vec<Evaluation>>,
    /// The last point evaluated and its result: argmin asks for the cost and
    /// the gradient of the same point separately, and each is a whole rollout.
    last: RefCell<Option<Point>>,
}

impl<'a, 's> Layout<'a, 's> {
    fn new(scene: &'s Scene, problem: &'a Problem) -> Self {
        let m = scene.model();
        let mut maps: Vec<Map> = problem
            .wrt_params
            .iter()
            .map(|&i| Map::new(m.params[i].bounds, problem.params[i]))
            .collect();
        if problem.wrt_controls {
            for t in 0..problem.steps {
                for (c, decl) in m.controls.iter().enumerate() {
                    maps.push(Map::new(decl.bounds, problem.control(t, c)));
                }
            }
        }
        Layout {
            scene,
            problem,
            maps,
            start: Instant::now(),
            history: RefCell::new(vec![]),
            last: RefCell::new(None),
        }
    }

    fn start_point(&self) -> Vec<f64> {
        let p = self.problem;
        let nc = self.scene.model().controls.len();
        (0..self.maps.len())
            .map(|k| {
                let v = match p.wrt_params.get(k) {
                    Some(&i) => p.params[i],
                    None => {
                        let j = k - p.wrt_params.len();
                        p.control(j / nc, j % nc)
                    }
                };
                self.maps[k].inverse(v)
            })
            .collect()
    }

    /// Parameters and schedule at `z`, with the derivatives of the variables.
    fn decode(&self, z: &[f64]) -> (Vec<f64>, Vec<Vec<f64>>, Vec<f64>) {
        let p = self.problem;
        let nc = self.scene.model().controls.len();
        let mut params = p.params.clone();
        let mut schedule: Vec<Vec<f64>> = (0..p.steps)
            .map(|t| (0..nc).map(|c| p.control(t, c)).collect())
            .collect();
        let mut dv = vec![0.0; z.len()];
        for (k, (&zk, map)) in z.iter().zip(&self.maps).enumerate() {
            let (v, d) = map.value(zk);
            dv[k] = d;
            match p.wrt_params.get(k) {
                Some(&i) => params[i] = v,
                None => {
                    let j = k - p.wrt_params.len();
                    schedule[j / nc][j % nc] = v;
                }
            }
        }
        (params, schedule, dv)
    }

    /// The objective to minimise at `z` and its gradient (`+inf` if the rollout
    /// diverged); a point asked for again is not simulated again.
    fn evaluate(&self, z: &[f64]) -> Result<(f64, Vec<f64>), NameError> {
        if let Some((at, f, g)) = self.last.borrow().as_ref() {
            if at.as_slice() == z {
                return Ok((*f, g.clone()));
            }
        }
        let (f, g) = self.simulate(z)?;
        *self.last.borrow_mut() = Some((z.to_vec(), f, g.clone()));
        Ok((f, g))
    }

    /// One rollout and adjoint at `z`, recorded in the history.
    fn simulate(&self, z: &[f64]) -> Result<(f64, Vec<f64>), NameError> {
        let p = self.problem;
        let (params, schedule, dv) = self.decode(z);
        let rollout = rollout_gradient(self.scene, p, &params, &schedule)?;
        let sign = if p.maximise { -1.0 } else { 1.0 };
        let nc = self.scene.model().controls.len();
        let value = rollout.as_ref().map_or(f64::NAN, |r| r.0);
        let grad: Vec<f64> = (0..z.len())
            .map(|k| {
                let Some((_, g)) = &rollout else {
                    return f64::NAN;
                };
                let d = match p.wrt_params.get(k) {
                    Some(&i) => g.params[i].iter().sum(),
                    None => {
                        let j = k - p.wrt_params.len();
                        g.controls[j / nc][j % nc][0]
                    }
                };
                sign * d * dv[k]
            })
            .collect();
        let finite = value.is_finite() && grad.iter().all(|x| x.is_finite());
        let grad_norm = grad.iter().map(|x| x * x).sum::<f64>().sqrt();
        self.history.borrow_mut().push(Evaluation {
            value,
            grad_norm,
            seconds: self.start.elapsed().as_secs_f64(),
        });
        if !finite {
            return Ok((f64::INFINITY, vec![0.0; z.len()]));
        }
        Ok((sign * value, grad))
    }
}

impl Problem {
    /// The start value of control `c` at step `t`.
    fn control(&self, t: usize, c: usize) -> f64 {
        self.schedule
            .get(t)
            .and_then(|s| s.get(c))
            .copied()
            .unwrap_or(0.0)
    }
}

/// One rollout of `problem` with these parameters and controls: the objective
/// and its gradient (`NaN` if the simulation diverged); `None` where the
/// parameters give no valid start (a non-finite state, a joint outside its
/// range), a point as bad as a diverged one.
fn rollout_gradient(
    scene: &Scene,
    problem: &Problem,
    params: &[f64],
    schedule: &[Vec<f64>],
) -> Result<Option<(f64, crate::Gradient)>, NameError> {
    let windows = &problem.windows;
    let mut sim: Sim = scene.batch_threads(windows.len().max(1), 1);
    for (decl, v) in scene.model().params.iter().zip(params) {
        // The names are the model's: an error is a refused start.
        if sim.set_param(&decl.name, *v).is_err() {
            return Ok(None);
        }
    }
    if let Some((x, v)) = &problem.state {
        sim.set_state(0, x, v);
    }
    for (e, w) in windows.iter().enumerate() {
        sim.set_state(e, &w.state.0, &w.state.1);
    }
    let sch: Schedule = if windows.is_empty() {
        schedule
            .iter()
            .map(|s| s.iter().map(|c| vec![*c]).collect())
            .collect()
    } else {
        let nc = scene.model().controls.len();
        (0..problem.steps)
            .map(|t| {
                (0..nc)
                    .map(|c| windows.iter().map(|w| w.schedule[t][c]).collect())
                    .collect()
            })
            .collect()
    };
    let g = sim.gradient_schedule(&problem.objective, &sch)?;
    let diverged = sim
        .events
        .iter()
        .any(|e| matches!(e, crate::Event::Diverged { .. }));
    let value = if diverged {
        f64::NAN
    } else {
        g.value.iter().sum()
    };
    Ok(Some((value, g)))
}

/// Refuses windows that cannot be run: with optimised controls, too few
/// controls for the steps, or states of another length than the scene's.
fn check_windows(scene: &Scene, problem: &Problem) -> Result<(), NameError> {
    if problem.windows.is_empty() {
        return Ok(());
    }
    if problem.wrt_controls {
        return Err(NameError(
            "windows (multiple shooting) replay recorded controls: they cannot be optimised".into(),
        ));
    }
    let dofs = scene.dofs();
    let nc = scene.model().controls.len();
    for (k, w) in problem.windows.iter().enumerate() {
        if w.state.0.len() != dofs || w.state.1.len() != dofs {
            return Err(NameError(format!(
                "window {k} starts from {} positions and {} velocities; the scene has {dofs} DOFs",
                w.state.0.len(),
                w.state.1.len()
            )));
        }
        if w.schedule.len() < problem.steps || w.schedule.iter().any(|u| u.len() != nc) {
            return Err(NameError(format!(
                "window {k} holds {} steps of controls; {} steps of {nc} controls are needed",
                w.schedule.len(),
                problem.steps
            )));
        }
    }
    Ok(())
}

/// The objective at the problem's starting point (one rollout).
pub fn evaluate(scene: &Scene, problem: &Problem) -> Result<f64, NameError> {
    check_windows(scene, problem)?;
    let layout = Layout::new(scene, problem);
    let (params, schedule, _) = layout.decode(&layout.start_point());
    Ok(rollout_gradient(scene, problem, &params, &schedule)?.map_or(f64::NAN, |r| r.0))
}

/// Minimises (or maximises) the problem's objective from its start with `iters` iterations.
pub fn optimize(
    scene: &Scene,
    problem: &Problem,
    method: Method,
    iters: usize,
) -> Result<Solution, NameError> {
    check_windows(scene, problem)?;
    let layout = Layout::new(scene, problem);
    let z0 = layout.start_point();
    let best = match method {
        Method::Adam(lr) => adam(&layout, z0, lr, iters)?,
        Method::Lbfgs => lbfgs(&layout, z0, iters)?,
    };
    let (params, schedule, _) = layout.decode(&best);
    let value = rollout_gradient(scene, problem, &params, &schedule)?.map_or(f64::NAN, |r| r.0);
    Ok(Solution {
        params,
        schedule,
        value,
        history: layout.history.into_inner(),
    })
}

/// Adam (beta 0.9 / 0.999); a non-finite evaluation halves the step and retries from the best point.
fn adam(
    layout: &Layout,
    mut z: Vec<f64>,
    mut lr: f64,
    iters: usize,
) -> Result<Vec<f64>, NameError> {
    let n = z.len();
    let (b1, b2, eps) = (0.9, 0.999, 1e-8);
    let (mut m, mut v) = (vec![0.0; n], vec![0.0; n]);
    let mut best = (f64::INFINITY, z.clone());
    for t in 1..=iters {
        let (f, g) = layout.evaluate(&z)?;
        if !f.is_finite() {
            lr *= 0.5;
            z = best.1.clone();
            continue;
        }
        if f < best.0 {
            best = (f, z.clone());
        }
        for k in 0..n {
            m[k] = b1 * m[k] + (1.0 - b1) * g[k];
            v[k] = b2 * v[k] + (1.0 - b2) * g[k] * g[k];
            let mh = m[k] / (1.0 - b1.powi(t as i32));
            let vh = v[k] / (1.0 - b2.powi(t as i32));
            z[k] -= lr * mh / (vh.sqrt() + eps);
        }
    }
    Ok(best.1)
}

/// argmin's problem interface over [`Layout::evaluate`].
struct ArgminProblem<'l, 'a, 's> {
    layout: &'l Layout<'a, 's>,
}

impl CostFunction for ArgminProblem<'_, '_, '_> {
    type Param = Vec<f64>;
    type Output = f64;

    fn cost(&self, z: &Vec<f64>) -> Result<f64, ArgminError> {
        Ok(self
            .layout
            .evaluate(z)
            .map_err(|e| ArgminError::msg(e.0))?
            .0)
    }
}

impl ArgminGradient for ArgminProblem<'_, '_, '_> {
    type Param = Vec<f64>;
    type Gradient = Vec<f64>;

    fn gradient(&self, z: &Vec<f64>) -> Result<Vec<f64>, ArgminError> {
        Ok(self
            .layout
            .evaluate(z)
            .map_err(|e| ArgminError::msg(e.0))?
            .1)
    }
}

fn lbfgs(layout: &Layout, z0: Vec<f64>, iters: usize) -> Result<Vec<f64>, NameError> {
    // Strong Wolfe conditions keep every curvature pair positive (y.s > 0), so
    // the quasi-Newton direction stays a descent direction on non-convex problems.
    let search = MoreThuenteLineSearch::new();
    let solver = LBFGS::new(search, 10)
        .with_tolerance_grad(1e-12)
        .and_then(|s| s.with_tolerance_cost(0.0))
        .expect("valid tolerances");
    let result = Executor::new(ArgminProblem { layout }, solver)
        .configure(|s| s.param(z0.clone()).max_iters(iters as u64))
        .run();
    match result {
        Ok(r) => Ok(r.state.best_param.unwrap_or(z0)),
        Err(e) => Err(NameError(format!("L-BFGS stopped: {e}"))),
    }
}

/// What [`mpc`] did: the controls it applied and the effort of its plans.
#[derive(Debug, Clone)]
pub struct Mpc {
    /// The controls applied, `[step][control]`.
    pub applied: Vec<Vec<f64>>,
    /// The objective of each step's plan over its horizon.
    pub values: Vec<f64>,
    /// Rollouts with their adjoint, over all plans.
    pub evaluations: usize,
}

/// Model-predictive control: at every one of `steps` steps, optimise the
/// controls of the next `horizon` steps from the current state (`iters`
/// iterations, warm-started from the previous plan shifted by one step),
/// apply the first, and step.
pub fn mpc(
    scene: &Scene,
    problem: &Problem,
    method: Method,
    horizon: usize,
    steps: usize,
    iters: usize,
) -> Result<Mpc, NameError> {
    let nc = scene.model().controls.len();
    let mut real = scene.batch_threads(1, 1);
    for (decl, v) in scene.model().params.iter().zip(&problem.params) {
        real.set_param(&decl.name, *v)?;
    }
    let mut plan = vec![vec![0.0; nc]; horizon];
    let mut run = Mpc {
        applied: vec![],
        values: vec![],
        evaluations: 0,
    };
    for _ in 0..steps {
        let window = Problem {
            steps: horizon,
            wrt_controls: true,
            wrt_params: vec![],
            schedule: plan.clone(),
            state: Some((real.positions(0), real.velocities(0))),
            ..problem.clone()
        };
        let s = optimize(scene, &window, method, iters)?;
        for (c, u) in s.schedule[0].iter().enumerate() {
            real.set_control(c, 0, *u);
        }
        real.step();
        run.applied.push(s.schedule[0].clone());
        run.values.push(s.value);
        run.evaluations += s.history.len();
        // Warm start: the rest of the plan, its last control repeated.
        plan = s.schedule[1..].to_vec();
        plan.push(s.schedule[horizon - 1].clone());
    }
    Ok(run)
}
