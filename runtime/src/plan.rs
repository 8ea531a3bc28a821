//! Trajectory optimisation as a differentiable policy (DiffTOP's planner).
//!
//! From an environment's state, a [`Planner`] finds the controls of the next
//! `H` steps that minimise a cost (a `loss` and/or `reward` of its model
//! scene, whose params may be learned) with a damped Newton method, warm
//! started from its previous plan shifted by one step, and returns the
//! plan with its derivatives with respect to the learned params and the
//! start state: the policy applies the plan's first control, and a learner
//! differentiates the task through the optimiser.
//!
//! Variables are the unconstrained `z` of [`crate::optimize`] (a bounded
//! control is `lo + (hi - lo) sigmoid(z)`). Each Newton iteration runs one
//! batch of `2n + 1` rollouts with their adjoints (`n = H x controls`): the
//! plan, and the plan moved by `+-eps` along every variable. Their exact
//! adjoint gradients give the cost's gradient `g`, its Hessian
//! `H = d g / d z` and the mixed second derivatives `M = d g / d theta` (and
//! `d g / d x0`, `d g / d v0`) by central differences of exact gradients:
//! exact for costs quadratic in the controls, `O(eps^2)` otherwise (no
//! second-order adjoint of the simulator is needed).
//!
//! The step solves `(H + lambda I) d = -g` (Levenberg-Marquardt: `lambda`
//! grows until `H + lambda I` is positive definite and the step lowers the
//! cost, shrinks after a success). The derivative of the plan is the
//! implicit function theorem's at the point of the last Hessian:
//! `dz/dtheta = -(H + lambda I)^-1 M`. Where the plan converged
//! (`|g|_inf <= tol max(1, |cost|)`) and `H` is positive definite this is
//! the exact derivative of the optimum (`lambda = 0`). Where the iterations
//! ran out it is the derivative of the last Newton step with the Hessian
//! held and the earlier iterations truncated (one step of truncated
//! unrolling); [`Plan::converged`] says which.
//!
//! The model may be a scene of its own, simpler than the world it plans
//! for ([`Planner::for_world`]): a [`WorldMap`] reads the model's state out
//! of the world's by DOF name (bodies, particles and joint coordinates
//! of the same names; the world may have more), and the model's controls
//! are the world's (the same names, any order). Plans made from a world's
//! state ([`Planner::act`]) are then stated in the world's terms: controls
//! in its order, derivatives by its DOFs (zero for DOFs the model lacks).

use crate::gradient::{Objective, Schedule};
use crate::optimize::Map;
use crate::{Event, NameError, Scene, Sim};
use nalgebra::{Cholesky, DMatrix, Dyn};

/// How a [`Planner`] plans.
#[derive(Debug, Clone)]
pub struct PlannerConfig {
    /// The cost: a `loss` of the last state and/or a `reward` summed over the steps.
    pub objective: Objective,
    /// Maximise the objective (a reward) instead of minimising it.
    pub maximise: bool,
    /// Steps planned.
    pub horizon: usize,
    /// Steps each planned control is held for (move blocking): the plan has
    /// `ceil(horizon / hold)` controls of each kind, fewer variables and
    /// fewer rollouts per Newton iteration.
    pub hold: usize,
    /// Newton iterations (Hessian evaluations) per plan, at most.
    pub iters: usize,
    /// Indices of the model's params whose derivatives the plan reports (the learned ones).
    pub learn: Vec<usize>,
    /// Convergence: `|g|_inf <= tol max(1, |cost|)` in the unconstrained variables.
    pub tol: f64,
    /// The central differences' step in the unconstrained variables.
    pub eps: f64,
    /// Threads for the planning batches.
    pub threads: usize,
}

impl PlannerConfig {
    /// The configuration a scene's `trajopt` policy declares.
    pub fn declared(p: &joule_compiler::model::Planner) -> PlannerConfig {
        let objective = Objective {
            loss: p.loss.clone(),
            reward: p.reward.clone(),
            track: None,
        };
        let mut config = PlannerConfig::new(objective, p.horizon, p.iters);
        config.learn = p.learn.clone();
        config.hold = p.hold;
        config
    }

    /// A planner minimising `objective` (maximising a reward-only one) over
    /// `horizon` steps with `iters` Newton iterations, differentiating nothing.
    pub fn new(objective: Objective, horizon: usize, iters: usize) -> PlannerConfig {
        PlannerConfig {
            maximise: objective.reward.is_some() && objective.loss.is_none(),
            objective,
            horizon,
            hold: 1,
            iters,
            learn: vec![],
            tol: 1e-9,
            eps: 1e-4,
            threads: 1,
        }
    }
}

/// One environment's plan and its derivatives.
#[derive(Debug, Clone, PartialEq)]
pub struct Plan {
    /// The controls of every planned step, `[step][control]`.
    pub schedule: Vec<Vec<f64>>,
    /// The cost there (the objective, negated when maximised); `NaN` when
    /// the model diverged from this state.
    pub cost: f64,
    /// `|g|_inf` of the cost in the unconstrained variables where the last
    /// Hessian was taken.
    pub grad_norm: f64,
    /// Newton iterations taken (Hessian evaluations).
    pub iterations: usize,
    /// The plan met the tolerance: the derivatives are the implicit function
    /// theorem's at the optimum; otherwise the last step's (truncated unrolling).
    pub converged: bool,
    /// The damping `lambda` in the derivative's `(H + lambda I)` (0 where the
    /// Hessian is positive definite at a converged plan).
    pub damping: f64,
    /// d schedule / d learned param, `[step * controls + control][learned]`.
    pub d_params: Vec<Vec<f64>>,
    /// d schedule / d start position, `[step * controls + control][dof]`.
    pub d_x0: Vec<Vec<f64>>,
    /// d schedule / d start velocity, `[step * controls + control][dof]`.
    pub d_v0: Vec<Vec<f64>>,
}

impl Plan {
    /// The first planned control (what the policy applies).
    pub fn first(&self) -> &[f64] {
        &self.schedule[0]
    }
}

/// A start state: free DOFs' positions and velocities.
pub type State = (Vec<f64>, Vec<f64>);

/// What one batch of rollouts found for one environment's plan.
struct Local {
    cost: f64,
    g: Vec<f64>,
    h: DMatrix<f64>,
    /// d g / d (learned params, x0, v0), one column each.
    m: DMatrix<f64>,
}

/// How a model scene's state and controls sit in the world's.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WorldMap {
    /// The world's DOF of each of the model's DOFs.
    dofs: Vec<usize>,
    /// The world's control of each of the model's controls.
    controls: Vec<usize>,
    /// The world's DOFs.
    world_dofs: usize,
}

impl WorldMap {
    /// The map of `model`'s DOFs and controls onto `world`'s by name: every
    /// DOF of the model must be one of the world's, and the two must have
    /// the same controls.
    pub fn by_names(world: &Scene, model: &Scene) -> Result<WorldMap, NameError> {
        let names = |s: &Scene| (0..s.dofs()).map(|d| s.dof_name(d)).collect::<Vec<_>>();
        let world_names = names(world);
        let mut dofs = vec![];
        let mut missing = vec![];
        for name in names(model) {
            match world_names.iter().position(|w| *w == name) {
                Some(d) => dofs.push(d),
                None => missing.push(name),
            }
        }
        if !missing.is_empty() {
            return Err(NameError(format!(
                "the planner's model has {} the world has not: {}; a model's bodies, particles and joints must be the world's, by name",
                plural(missing.len(), "DOF"),
                listed(&missing)
            )));
        }
        let controls_of = |s: &Scene| -> Vec<String> {
            s.model().controls.iter().map(|c| c.name.clone()).collect()
        };
        let (wc, mc) = (controls_of(world), controls_of(model));
        let unplanned: Vec<String> = wc.iter().filter(|c| !mc.contains(c)).cloned().collect();
        let unknown: Vec<String> = mc.iter().filter(|c| !wc.contains(c)).cloned().collect();
        if !unplanned.is_empty() || !unknown.is_empty() {
            let mut parts = vec![];
            if !unknown.is_empty() {
                parts.push(format!("the model's {} not the world's", listed(&unknown)));
            }
            if !unplanned.is_empty() {
                parts.push(format!(
                    "the world's {} not the model's",
                    listed(&unplanned)
                ));
            }
            return Err(NameError(format!(
                "the planner's model and the world must have the same controls: {}",
                parts.join("; ")
            )));
        }
        let controls = mc
            .iter()
            .map(|c| wc.iter().position(|w| w == c).expect("checked above"))
            .collect();
        Ok(WorldMap {
            dofs,
            controls,
            world_dofs: world.dofs(),
        })
    }

    /// The model's state read out of a world's.
    pub fn state(&self, (x, v): &State) -> State {
        let pick = |w: &[f64]| self.dofs.iter().map(|&d| w[d]).collect();
        (pick(x), pick(v))
    }

    /// A plan of the model stated in the world's terms: its controls in the
    /// world's order, its derivatives by the world's DOFs.
    pub fn plan(&self, plan: Plan) -> Plan {
        let nc = self.controls.len();
        let mut world = Plan {
            schedule: vec![vec![0.0; nc]; plan.schedule.len()],
            d_params: vec![vec![]; plan.d_params.len()],
            d_x0: vec![vec![0.0; self.world_dofs]; plan.d_x0.len()],
            d_v0: vec![vec![0.0; self.world_dofs]; plan.d_v0.len()],
            ..plan
        };
        for (t, u) in plan.schedule.iter().enumerate() {
            for (c, &wc) in self.controls.iter().enumerate() {
                world.schedule[t][wc] = u[c];
                let (from, to) = (t * nc + c, t * nc + wc);
                world.d_params[to] = plan.d_params[from].clone();
                for (d, &wd) in self.dofs.iter().enumerate() {
                    world.d_x0[to][wd] = plan.d_x0[from][d];
                    world.d_v0[to][wd] = plan.d_v0[from][d];
                }
            }
        }
        world
    }
}

/// `n things`, `1 thing`.
fn plural(n: usize, what: &str) -> String {
    format!("{n} {what}{}", if n == 1 { "" } else { "s" })
}

/// Names in backquotes, the first few.
fn listed(names: &[String]) -> String {
    const SHOWN: usize = 6;
    let mut s: Vec<String> = names.iter().take(SHOWN).map(|n| format!("`{n}`")).collect();
    if names.len() > SHOWN {
        s.push(format!("and {} more", names.len() - SHOWN));
    }
    s.join(", ")
}

/// Trajectory optimisation on a model scene, one plan per environment, warm started.
pub struct Planner<'s> {
    scene: &'s Scene,
    /// Where the model's state and controls sit in the world's, when the
    /// model is a scene of its own.
    world: Option<WorldMap>,
    config: PlannerConfig,
    /// Every param of the model (the learned ones among them).
    params: Vec<f64>,
    /// Each control's map from its unconstrained variable.
    maps: Vec<Map>,
    /// Per environment: the warm start in the unconstrained variables.
    warm: Vec<Vec<f64>>,
}

impl<'s> Planner<'s> {
    /// A planner on `scene` (its declared params) for `envs` environments.
    pub fn new(
        scene: &'s Scene,
        config: PlannerConfig,
        envs: usize,
    ) -> Result<Planner<'s>, NameError> {
        let m = scene.model();
        if config.horizon == 0 || config.iters == 0 || config.hold == 0 {
            return Err(NameError(
                "a plan needs a horizon, iterations and a hold of at least 1".into(),
            ));
        }
        if m.controls.is_empty() {
            return Err(NameError("the model has no controls to plan".into()));
        }
        let variables = config.horizon.div_ceil(config.hold) * m.controls.len();
        if variables > joule_compiler::model::MAX_PLAN_VARIABLES {
            return Err(NameError(format!(
                "a plan of {variables} variables (at most {}): shorten the horizon or hold each control longer",
                joule_compiler::model::MAX_PLAN_VARIABLES
            )));
        }
        if let Some(&i) = config.learn.iter().find(|&&i| i >= m.params.len()) {
            return Err(NameError(format!("no param number {i} in the model")));
        }
        if !(config.eps > 0.0 && config.tol >= 0.0) {
            return Err(NameError(
                "the planner's eps must be positive and tol not negative".into(),
            ));
        }
        let maps = m.controls.iter().map(|c| Map::new(c.bounds, 0.0)).collect();
        let mut planner = Planner {
            scene,
            world: None,
            params: m.params.iter().map(|p| p.value).collect(),
            config,
            maps,
            warm: vec![],
        };
        planner.warm = vec![planner.cold(); envs];
        Ok(planner)
    }

    /// The planner for a `world` other than its model scene: [`Planner::act`]
    /// reads the model's state out of the world's and sets the world's
    /// controls ([`WorldMap::by_names`]).
    pub fn for_world(mut self, world: &Scene) -> Result<Planner<'s>, NameError> {
        self.world = Some(WorldMap::by_names(world, self.scene)?);
        Ok(self)
    }

    /// The model scene the planner plans on.
    pub fn model(&self) -> &'s Scene {
        self.scene
    }

    /// The configuration.
    pub fn config(&self) -> &PlannerConfig {
        &self.config
    }

    /// Every param of the model.
    pub fn params(&self) -> &[f64] {
        &self.params
    }

    /// The learned params' values, in [`PlannerConfig::learn`]'s order.
    pub fn learned(&self) -> Vec<f64> {
        self.config.learn.iter().map(|&i| self.params[i]).collect()
    }

    /// Sets the learned params (in [`PlannerConfig::learn`]'s order).
    pub fn set_learned(&mut self, values: &[f64]) {
        for (&i, &v) in self.config.learn.iter().zip(values) {
            self.params[i] = v;
        }
    }

    /// Sets a param of the model by index (learned or not).
    pub fn set_param(&mut self, index: usize, value: f64) {
        self.params[index] = value;
    }

    /// Forgets environment `env`'s warm start (a new episode): zero controls.
    pub fn reset(&mut self, env: usize) {
        self.warm[env] = self.cold();
    }

    /// Zero controls in the unconstrained variables.
    fn cold(&self) -> Vec<f64> {
        let z: Vec<f64> = self.maps.iter().map(|m| m.inverse(0.0)).collect();
        z.repeat(self.blocks())
    }

    /// Plans from the state of each of `sim`'s environments and sets the
    /// plans' first controls there (what the policy does before a step).
    /// With a model of its own ([`Planner::for_world`]) the plans are stated
    /// in the world's terms ([`WorldMap::plan`]).
    pub fn act(&mut self, sim: &mut Sim) -> Result<Vec<Plan>, NameError> {
        let states: Vec<State> = (0..sim.batch())
            .map(|e| (sim.positions(e), sim.velocities(e)))
            .collect();
        let plans = self.plan_world(&states)?;
        let mut controls = vec![vec![0.0; states.len()]; self.maps.len()];
        for (e, plan) in plans.iter().enumerate() {
            for (row, &u) in controls.iter_mut().zip(plan.first()) {
                row[e] = u;
            }
        }
        sim.set_controls(&controls)?;
        Ok(plans)
    }

    /// [`Planner::plan`] from states of the world (the model's own states
    /// unless [`Planner::for_world`] gave it another world), the plans stated
    /// in the world's terms.
    pub fn plan_world(&mut self, states: &[State]) -> Result<Vec<Plan>, NameError> {
        let Some(map) = &self.world else {
            return self.plan(states);
        };
        let states: Vec<State> = states.iter().map(|s| map.state(s)).collect();
        let plans = self.plan(&states)?;
        let map = self.world.as_ref().expect("checked above");
        Ok(plans.into_iter().map(|p| map.plan(p)).collect())
    }

    /// Every environment's warm start (in the controls' unconstrained
    /// variables): what the next plan of each starts from.
    pub fn warm_starts(&self) -> &[Vec<f64>] {
        &self.warm
    }

    /// Replaces the warm starts, one per environment: as many environments
    /// as given from now on (e.g. re-planning recorded states from the warm
    /// starts they were first planned from). Each must be one that
    /// [`Planner::warm_starts`] returned for this planner.
    pub fn set_warm_starts(&mut self, warm: Vec<Vec<f64>>) -> Result<(), NameError> {
        let n = self.cold().len();
        if warm
            .iter()
            .any(|w| w.len() != n || !w.iter().all(|x| x.is_finite()))
        {
            return Err(NameError(format!(
                "a warm start is {n} finite unconstrained controls"
            )));
        }
        self.warm = warm;
        Ok(())
    }

    /// Plans from each environment's state (`states[env]`), leaving each
    /// warm start at its plan shifted by one step (its last control repeated).
    pub fn plan(&mut self, states: &[State]) -> Result<Vec<Plan>, NameError> {
        if states.len() != self.warm.len() {
            return Err(NameError(format!(
                "the planner has {} environments, given {} states",
                self.warm.len(),
                states.len()
            )));
        }
        let dofs = self.scene.dofs();
        if states
            .iter()
            .any(|(x, v)| x.len() != dofs || v.len() != dofs)
        {
            return Err(NameError(format!(
                "a state must give {dofs} positions and velocities"
            )));
        }
        let envs = states.len();
        let mut z = self.warm.clone();
        let mut lambda = vec![0.0; envs];
        let mut used = vec![0.0; envs];
        let mut last: Vec<Option<Local>> = (0..envs).map(|_| None).collect();
        let mut iterations = vec![0; envs];
        let mut converged = vec![false; envs];
        let mut cost = vec![f64::NAN; envs];
        let mut active: Vec<usize> = (0..envs).collect();
        for _ in 0..self.config.iters {
            if active.is_empty() {
                break;
            }
            let locals = self.locals(states, &active, &z)?;
            let mut next = vec![];
            for (&e, local) in active.iter().zip(locals) {
                iterations[e] += 1;
                cost[e] = local.cost;
                let scale = local.cost.abs().max(1.0);
                let finite = local.cost.is_finite()
                    && local.g.iter().all(|x| x.is_finite())
                    && local.h.iter().all(|x| x.is_finite());
                if !finite {
                    // The model diverged here: keep the last good Hessian's derivative.
                    continue;
                }
                let done = inf_norm(&local.g) <= self.config.tol * scale;
                last[e] = Some(local);
                if done {
                    converged[e] = true;
                } else {
                    next.push(e);
                }
            }
            // Levenberg-Marquardt steps for the environments not converged.
            let moved = self.steps(
                states,
                &next,
                &mut z,
                (&mut lambda, &mut used),
                &last,
                &mut cost,
            )?;
            active = moved;
        }
        let nc = self.maps.len();
        let plans = (0..envs)
            .map(|e| {
                let (d, grad_norm, damping) = match &last[e] {
                    Some(local) => {
                        let lam = if converged[e] { 0.0 } else { used[e] };
                        let (d, lam) = derivative(local, lam);
                        (d, inf_norm(&local.g), lam)
                    }
                    None => (
                        DMatrix::zeros(z[e].len(), self.jacobian_columns()),
                        f64::NAN,
                        0.0,
                    ),
                };
                self.plan_of(
                    &z[e],
                    d,
                    cost[e],
                    grad_norm,
                    iterations[e],
                    converged[e],
                    damping,
                    nc,
                )
            })
            .collect();
        // Each held control starts from the plan's control one step later
        // (the last repeated).
        let (hold, blocks) = (self.config.hold, self.blocks());
        for (w, ze) in self.warm.iter_mut().zip(&z) {
            *w = (0..blocks)
                .flat_map(|b| {
                    let from = ((b * hold + 1) / hold).min(blocks - 1);
                    ze[from * nc..(from + 1) * nc].to_vec()
                })
                .collect();
        }
        Ok(plans)
    }

    /// Columns of the plan's Jacobian: learned params, then x0 and v0.
    fn jacobian_columns(&self) -> usize {
        self.config.learn.len() + 2 * self.scene.dofs()
    }

    /// A [`Plan`] from the variables and the derivative `dz/d(theta, x0, v0)`.
    #[allow(clippy::too_many_arguments)]
    fn plan_of(
        &self,
        z: &[f64],
        dz: DMatrix<f64>,
        cost: f64,
        grad_norm: f64,
        iterations: usize,
        converged: bool,
        damping: f64,
        nc: usize,
    ) -> Plan {
        let (p, dofs) = (self.config.learn.len(), self.scene.dofs());
        let mut schedule = vec![vec![0.0; nc]; self.config.horizon];
        let (mut d_params, mut d_x0, mut d_v0) = (vec![], vec![], vec![]);
        for t in 0..self.config.horizon {
            for c in 0..nc {
                let k = (t / self.config.hold) * nc + c;
                let (u, du) = self.maps[c].value(z[k]);
                schedule[t][c] = u;
                let row = |range: std::ops::Range<usize>| range.map(|j| du * dz[(k, j)]).collect();
                d_params.push(row(0..p));
                d_x0.push(row(p..p + dofs));
                d_v0.push(row(p + dofs..p + 2 * dofs));
            }
        }
        Plan {
            schedule,
            cost,
            grad_norm,
            iterations,
            converged,
            damping,
            d_params,
            d_x0,
            d_v0,
        }
    }

    /// The controls `[step][control]` at the unconstrained `z`.
    fn controls(&self, z: &[f64]) -> Vec<Vec<f64>> {
        let nc = self.maps.len();
        (0..self.config.horizon)
            .map(|t| {
                let b = t / self.config.hold;
                z[b * nc..(b + 1) * nc]
                    .iter()
                    .zip(&self.maps)
                    .map(|(&zk, m)| m.value(zk).0)
                    .collect()
            })
            .collect()
    }

    /// Planned controls of each kind: `ceil(horizon / hold)`.
    fn blocks(&self) -> usize {
        self.config.horizon.div_ceil(self.config.hold)
    }

    /// A batch of the model: one lane per point, each from its environment's
    /// state, with the planner's params; the rollouts' gradients.
    fn rollouts(
        &self,
        states: &[State],
        lanes: &[(usize, Vec<f64>)],
    ) -> Result<(crate::Gradient, Vec<bool>), NameError> {
        let m = self.scene.model();
        let mut sim: Sim = self.scene.batch_threads(lanes.len(), self.config.threads);
        for (decl, &v) in m.params.iter().zip(&self.params) {
            sim.set_param(&decl.name, v)?;
        }
        let nc = self.maps.len();
        let mut schedule: Schedule = vec![vec![vec![0.0; lanes.len()]; nc]; self.config.horizon];
        for (l, (e, z)) in lanes.iter().enumerate() {
            sim.set_state(l, &states[*e].0, &states[*e].1);
            for (t, u) in self.controls(z).iter().enumerate() {
                for c in 0..nc {
                    schedule[t][c][l] = u[c];
                }
            }
        }
        let g = sim.gradient_schedule(&self.config.objective, &schedule)?;
        let mut ok = vec![true; lanes.len()];
        for ev in &sim.events {
            if let Event::Diverged { env, .. } = ev {
                ok[*env] = false;
            }
        }
        Ok((g, ok))
    }

    /// The cost's gradient, Hessian and mixed derivatives at each active
    /// environment's `z` (one batch of `2n + 1` lanes per environment).
    fn locals(
        &self,
        states: &[State],
        active: &[usize],
        z: &[Vec<f64>],
    ) -> Result<Vec<Local>, NameError> {
        let eps = self.config.eps;
        let mut lanes = vec![];
        for &e in active {
            lanes.push((e, z[e].clone()));
            for i in 0..z[e].len() {
                for s in [1.0, -1.0] {
                    let mut zi = z[e].clone();
                    zi[i] += s * eps;
                    lanes.push((e, zi));
                }
            }
        }
        let (g, ok) = self.rollouts(states, &lanes)?;
        let sign = if self.config.maximise { -1.0 } else { 1.0 };
        let nc = self.maps.len();
        let dofs = self.scene.dofs();
        // The gradient in z and d/d(theta, x0, v0) at a lane.
        let at = |l: usize| -> (f64, Vec<f64>, Vec<f64>) {
            let zl = &lanes[l].1;
            // A held control's gradient sums its steps'.
            let hold = self.config.hold;
            let gz = zl
                .iter()
                .enumerate()
                .map(|(k, &zk)| {
                    let (b, c) = (k / nc, k % nc);
                    let steps = b * hold..((b + 1) * hold).min(self.config.horizon);
                    let du: f64 = steps.map(|t| g.controls[t][c][l]).sum();
                    sign * du * self.maps[c].value(zk).1
                })
                .collect();
            let mut other: Vec<f64> = self
                .config
                .learn
                .iter()
                .map(|&i| sign * g.params[i][l])
                .collect();
            other.extend((0..dofs).map(|d| sign * g.x0[d][l]));
            other.extend((0..dofs).map(|d| sign * g.v0[d][l]));
            let cost = if ok[l] { sign * g.value[l] } else { f64::NAN };
            (cost, gz, other)
        };
        let mut out = vec![];
        let mut l = 0;
        for &e in active {
            let n = z[e].len();
            let (cost, gz, _) = at(l);
            let mut h = DMatrix::zeros(n, n);
            let mut m = DMatrix::zeros(n, self.jacobian_columns());
            for i in 0..n {
                let (cp, gp, op) = at(l + 1 + 2 * i);
                let (cm, gm, om) = at(l + 2 + 2 * i);
                let bad = if cp.is_finite() && cm.is_finite() {
                    1.0
                } else {
                    f64::NAN
                };
                for j in 0..n {
                    h[(j, i)] = bad * (gp[j] - gm[j]) / (2.0 * eps);
                }
                for j in 0..op.len() {
                    // d/dz_i of dC/d(other_j) = d/d(other_j) of dC/dz_i.
                    m[(i, j)] = bad * (op[j] - om[j]) / (2.0 * eps);
                }
            }
            // Symmetrise: the differences' rounding is not.
            let h = (&h + h.transpose()) * 0.5;
            out.push(Local { cost, g: gz, h, m });
            l += 2 * n + 1;
        }
        Ok(out)
    }

    /// Levenberg-Marquardt steps from each of `envs`' last Hessian: returns
    /// the environments that moved (the others cannot lower their cost).
    fn steps(
        &self,
        states: &[State],
        envs: &[usize],
        z: &mut [Vec<f64>],
        (lambda, used): (&mut [f64], &mut [f64]),
        last: &[Option<Local>],
        cost: &mut [f64],
    ) -> Result<Vec<usize>, NameError> {
        let mut pending: Vec<usize> = envs.to_vec();
        let mut moved = vec![];
        for _ in 0..MAX_REJECTS {
            if pending.is_empty() {
                break;
            }
            let mut trials = vec![];
            for &e in &pending {
                let local = last[e].as_ref().expect("a pending plan has a Hessian");
                let (factor, lam) = damped(&local.h, lambda[e]);
                lambda[e] = lam;
                used[e] = lam;
                let step = factor.solve(&nalgebra::DVector::from_column_slice(&local.g));
                let trial: Vec<f64> = z[e].iter().zip(step.iter()).map(|(a, d)| a - d).collect();
                trials.push((e, trial));
            }
            let (g, ok) = self.rollouts(states, &trials)?;
            let sign = if self.config.maximise { -1.0 } else { 1.0 };
            let mut again = vec![];
            for (l, (e, trial)) in trials.into_iter().enumerate() {
                let c = sign * g.value[l];
                if ok[l] && c.is_finite() && c <= cost[e] {
                    z[e] = trial;
                    cost[e] = c;
                    lambda[e] /= 3.0;
                    moved.push(e);
                } else {
                    let scale = last[e].as_ref().map_or(1.0, |x| max_diag(&x.h));
                    lambda[e] = (lambda[e] * 4.0).max(1e-6 * scale);
                    again.push(e);
                }
            }
            pending = again;
        }
        moved.sort_unstable();
        Ok(moved)
    }
}

/// Trial steps an environment may have refused in one iteration before it stops moving.
const MAX_REJECTS: usize = 12;

fn inf_norm(v: &[f64]) -> f64 {
    v.iter().fold(0.0, |m, x| m.max(x.abs()))
}

fn max_diag(h: &DMatrix<f64>) -> f64 {
    (0..h.nrows()).fold(1e-12_f64, |m, i| m.max(h[(i, i)].abs()))
}

/// The Cholesky factor of `H + lambda I` with the smallest `lambda >= lambda0`
/// tried (growing geometrically from `1e-10 max|H_ii|`) that is positive
/// definite; at most Gershgorin's bound (twice the largest absolute row
/// sum), where `H + lambda I` is diagonally dominant. `H` is finite.
fn damped(h: &DMatrix<f64>, lambda0: f64) -> (Cholesky<f64, Dyn>, f64) {
    let n = h.nrows();
    let floor = 1e-10 * max_diag(h);
    let bound = 2.0 * h.row_iter().map(|r| r.abs().sum()).fold(floor, f64::max);
    let mut lam = lambda0.min(bound);
    loop {
        let a = h + DMatrix::identity(n, n) * lam;
        if let Some(c) = a.cholesky() {
            return (c, lam);
        }
        if lam >= bound {
            // Rounding at the bound: a scaled identity is the step's last resort.
            let c = (DMatrix::identity(n, n) * (2.0 * bound)).cholesky();
            return (c.expect("a positive multiple of the identity"), 2.0 * bound);
        }
        lam = (lam * 4.0).max(floor).min(bound);
    }
}

/// `dz/d(theta, x0, v0) = -(H + lambda I)^-1 M` and the damping used.
fn derivative(local: &Local, lambda: f64) -> (DMatrix<f64>, f64) {
    let (factor, lam) = damped(&local.h, lambda);
    (-factor.solve(&local.m), lam)
}
