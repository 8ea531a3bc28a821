//! Training a trajectory-optimisation policy through its optimiser
//! (DiffTOP): the task's return in the simulated world, differentiated
//! through every plan into the planner's learned params (its cost's weights
//! and targets, its model's params).
//!
//! An iteration is one episode of every environment from its reset. Each
//! step, the [`Planner`] plans from each environment's state and the world
//! steps with the plans' first controls, on a closed-loop tape. The reverse
//! pass walks back a step at a time: the task reward's seed, the step's
//! adjoint (`dR/du_t`), then the plan's derivatives carry `dR/du_t` into the
//! learned params (`du_t/dtheta`) and into the state the plan started from
//! (`du_t/d(x_t, v_t)`, seeded on the tape, so earlier plans see how their
//! controls moved later ones). Adam ascends the mean return in the learned
//! params' unconstrained variables (`joule_runtime::optimize::Map`: each
//! stays inside its declared range).
//!
//! Imitation ([`Imitate`], a cost learned from one demonstration) replaces
//! the reward by minus the squared distance of the matched outputs to the
//! demonstration's, step by step, differentiated the same way. Cloning
//! ([`CloneDemo`], DiffTOP's imitation objective) simulates nothing: the
//! planner plans from each of the demonstration's states, and its first
//! controls are matched to the ones the expert applied there.
//!
//! The world keeps the scene's params; the planner's model has its own
//! copies, which are what is learned. The model may also be a scene of its
//! own, simpler than the world ([`PlanTrainer::with_model`]; its state read
//! out of the world's by name, `joule_runtime::plan::WorldMap`): the plans'
//! derivatives by the start state then reach the world's DOFs that the
//! model has, and no other. An episode runs its full length
//! (`done` items are not used); an environment whose world diverges is left
//! out of that iteration's gradient.

use crate::curve::Point;
use crate::fused::adam_step;
use crate::plan_ac::{Ac, AcConfig, AcSaved};
use crate::trainer::Algo;
use joule_runtime::optimize::Map;
use joule_runtime::plan::{Plan, Planner, PlannerConfig};
use joule_runtime::{Event, Scene, Sim};
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};
use std::time::Instant;

/// Settings of a planner's training run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PlanConfig {
    /// The task: a `reward` item of the world, summed over the episode
    /// (unless the run imitates a demonstration).
    pub reward: String,
    /// Imitation instead: the outputs matched step by step to a demonstration.
    #[serde(default)]
    pub imitate: Option<Imitate>,
    /// Cloning instead (DiffTOP's imitation objective): the plans made from
    /// a demonstration's states matched to the controls it applied there.
    #[serde(default)]
    pub clone: Option<CloneDemo>,
    /// The `trajopt` policy trained (`None`: the scene's only one).
    pub policy: Option<String>,
    /// Environments (episodes per iteration).
    pub batch: usize,
    /// Threads (the world's steps and the plans' batches).
    pub threads: usize,
    /// Steps per episode.
    pub episode: usize,
    /// Seed of the resets.
    pub seed: u64,
    /// Adam's learning rate in the unconstrained variables.
    pub lr: f64,
    /// Standard deviation of the velocity jitter at every reset.
    pub noise: f64,
    /// Largest gradient norm (larger ones are scaled down).
    pub clip: f64,
    /// The model's params that differ from the world's at the start, by name.
    #[serde(default)]
    pub model: Vec<(String, f64)>,
    /// The file of the planner's model when it is a scene of its own (the
    /// command line's `--planner-model`; kept so a resumed run plans on the
    /// same model).
    #[serde(default)]
    pub model_scene: Option<String>,
    /// The algorithm: apg (whole episodes, the default), or SHAC and PPO
    /// ([`crate::plan_ac`]; the reward's task only, not imitation or cloning).
    #[serde(default = "apg")]
    pub algo: Algo,
    /// SHAC's and PPO's settings.
    #[serde(default)]
    pub ac: AcConfig,
    /// Iterations over which the learning rate falls linearly from `lr` to
    /// zero; 0 keeps it constant.
    #[serde(default)]
    pub lr_decay: usize,
}

fn apg() -> Algo {
    Algo::Apg
}

impl PlanConfig {
    /// Defaults for training the scene's planner on `reward`.
    pub fn new(reward: &str) -> PlanConfig {
        PlanConfig {
            reward: reward.into(),
            imitate: None,
            clone: None,
            policy: None,
            batch: 4,
            threads: 1,
            episode: 50,
            seed: 0,
            lr: 0.05,
            noise: 0.0,
            clip: 1e3,
            model: vec![],
            model_scene: None,
            algo: Algo::Apg,
            ac: AcConfig::default(),
            lr_decay: 0,
        }
    }

    /// The learning rate after `done` iterations.
    pub fn lr_at(&self, done: usize) -> f64 {
        crate::adam::decayed(self.lr, self.lr_decay, done)
    }
}

/// A demonstration a planner imitates (DiffTOP's learned cost from one
/// demonstration): the episode's return is `-sum_t |o_t - e_t|^2` over the
/// matched outputs `o_t` after step `t` and the demonstration's `e_t`, the
/// same for every environment.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Imitate {
    /// The outputs matched (any `observe`, `loss`, ... items).
    pub outputs: Vec<String>,
    /// `[step][component]`: the matched outputs' components, one after the
    /// other, after each step of the demonstration.
    pub expert: Vec<Vec<f64>>,
}

/// A demonstration whose controls a planner clones (DiffTOP's imitation
/// objective): each iteration plans from every recorded state, and the loss
/// is the mean over steps of `sum_c ((u_c - u*_c) / half_c)^2`, the first
/// planned control `u` against the one the expert applied `u*`, in units of
/// each control's half range (1 where unbounded), differentiated through
/// each plan into the learned params. Nothing is simulated: the plans see
/// only the expert's states.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CloneDemo {
    /// The world's free DOFs (positions, velocities) before each step.
    pub states: Vec<(Vec<f64>, Vec<f64>)>,
    /// The controls applied at each step, `[step][control]` (all of the world's).
    pub controls: Vec<Vec<f64>>,
}

/// How the plans of an iteration went.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct PlanStats {
    /// Plans made.
    pub plans: usize,
    /// Newton iterations over them.
    pub iterations: usize,
    /// Plans that ran out of iterations (their derivatives truncated).
    pub not_converged: usize,
}

impl PlanStats {
    /// Counts one plan.
    pub fn add(&mut self, plan: &Plan) {
        self.plans += 1;
        self.iterations += plan.iterations;
        self.not_converged += usize::from(!plan.converged);
    }
}

/// One iteration's episodes.
#[derive(Debug, Clone, PartialEq)]
pub struct Episode {
    /// Each environment's return (`NaN` where its world diverged).
    pub returns: Vec<f64>,
    /// `dR/dtheta` of the learned params, summed over the environments
    /// whose returns are finite.
    pub grad: Vec<f64>,
    /// How the plans went.
    pub stats: PlanStats,
    /// Simulator events (divergence, non-convergence) in the world.
    pub events: usize,
}

/// A run's whole state, for checkpoints that resume bitwise.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct State {
    pub(crate) config: PlanConfig,
    /// The learned params' unconstrained variables (then PPO's log standard
    /// deviations) and Adam's moments.
    pub(crate) z: Vec<f64>,
    pub(crate) m: Vec<f64>,
    pub(crate) v: Vec<f64>,
    pub(crate) t: u64,
    pub(crate) rng: ChaCha8Rng,
    pub(crate) curve: Vec<Point>,
    pub(crate) stats: Vec<PlanStats>,
    /// SHAC's and PPO's critic and episodes (filled in checkpoints only).
    #[serde(default)]
    ac: Option<AcSaved>,
}

/// A training run of a `trajopt` policy.
pub struct PlanTrainer<'s> {
    pub(crate) scene: &'s Scene,
    pub(crate) planner: Planner<'s>,
    pub(crate) sim: Sim<'s>,
    /// The learned params' maps from their unconstrained variables.
    pub(crate) maps: Vec<Map>,
    names: Vec<String>,
    /// The rows the return reads: the reward's, or the matched outputs'.
    pub(crate) rows: Vec<usize>,
    pub(crate) state: State,
    /// SHAC's and PPO's critic and episodes.
    pub(crate) ac: Option<Ac>,
}

/// The scene's `trajopt` policy `name` (or its only one).
pub fn planner_spec<'m>(
    scene: &'m Scene,
    name: Option<&str>,
) -> Result<&'m joule_compiler::model::Planner, String> {
    crate::policy::by_name(
        &scene.model().planners,
        name,
        |p| &p.name,
        "`trajopt` policy",
        "the scene has no `trajopt` policy",
        "trajopt policies; choose one by name",
    )
}

impl<'s> PlanTrainer<'s> {
    /// A run on `scene` with these settings, the learned params at the
    /// declared values (or `config.model`'s).
    pub fn new(scene: &'s Scene, config: PlanConfig) -> Result<PlanTrainer<'s>, String> {
        PlanTrainer::build(scene, None, config)
    }

    /// A run in the world `scene` whose planner plans on `model`, a scene of
    /// its own: the `trajopt` policy, its cost, its learned params and
    /// `config.model` are the model's; the task's reward and the episodes
    /// are the world's.
    pub fn with_model(
        scene: &'s Scene,
        model: &'s Scene,
        config: PlanConfig,
    ) -> Result<PlanTrainer<'s>, String> {
        PlanTrainer::build(scene, Some(model), config)
    }

    fn build(
        scene: &'s Scene,
        model: Option<&'s Scene>,
        config: PlanConfig,
    ) -> Result<PlanTrainer<'s>, String> {
        let mut config = config;
        let own = model.unwrap_or(scene);
        let spec = planner_spec(own, config.policy.as_deref())?;
        if spec.learn.is_empty() {
            return Err(format!(
                "the `trajopt` policy `{}` learns nothing: list the params it may learn, e.g. `learn = [w_effort, m_pole]`",
                spec.name
            ));
        }
        if config.batch == 0 || config.episode == 0 || config.threads == 0 {
            return Err("a run needs at least one environment, step and thread".into());
        }
        if config.algo != Algo::Apg {
            check_ac(&config)?;
            // Episodes of whole windows, as the networks' SHAC and PPO.
            let h = config.ac.horizon;
            config.episode = config.episode.div_ceil(h) * h;
        }
        let layout = scene.compiled.layout();
        if let Some(cl) = &config.clone {
            check_clone(scene, cl)?;
        }
        let rows: Vec<usize> = match &config.imitate {
            None if config.clone.is_some() => vec![],
            None => vec![layout
                .output(&config.reward)
                .filter(|o| o.kind == joule_compiler::model::ObjectiveKind::Reward)
                .map(|o| o.offset)
                .ok_or_else(|| format!("no reward named `{}`", config.reward))?],
            Some(im) => {
                let mut rows = vec![];
                for name in &im.outputs {
                    let o = layout
                        .output(name)
                        .ok_or_else(|| format!("no output named `{name}`"))?;
                    rows.extend(o.offset..o.offset + o.len);
                }
                if im.expert.len() < config.episode
                    || im.expert.iter().any(|e| e.len() != rows.len())
                {
                    return Err(format!(
                        "the demonstration must give {} components for each of the episode's {} steps (it has {} steps)",
                        rows.len(),
                        config.episode,
                        im.expert.len()
                    ));
                }
                if !im.expert.iter().flatten().all(|x| x.is_finite()) {
                    return Err("the demonstration has a value that is not finite".into());
                }
                rows
            }
        };
        let mut pc = PlannerConfig::declared(spec);
        pc.threads = config.threads;
        let mut planner = Planner::new(own, pc, config.batch).map_err(|e| e.0)?;
        if model.is_some() {
            planner = planner.for_world(scene).map_err(|e| e.0)?;
        }
        let m = own.model();
        for (name, value) in &config.model {
            let i = m
                .params
                .iter()
                .position(|p| &p.name == name)
                .ok_or_else(|| format!("no param named `{name}`"))?;
            planner.set_param(i, *value);
        }
        let maps: Vec<Map> = spec
            .learn
            .iter()
            .map(|&i| Map::new(m.params[i].bounds, planner.params()[i]))
            .collect();
        let z: Vec<f64> = spec
            .learn
            .iter()
            .zip(&maps)
            .map(|(&i, map)| map.inverse(planner.params()[i]))
            .collect();
        let mut z = z;
        let mut rng = ChaCha8Rng::seed_from_u64(config.seed);
        let mut sim = scene.batch_threads(config.batch, config.threads);
        let ac = match config.algo {
            Algo::Apg => None,
            Algo::Shac | Algo::Ppo => {
                let controls: Vec<Map> = scene
                    .model()
                    .controls
                    .iter()
                    .map(|c| Map::new(c.bounds, 0.0))
                    .collect();
                if config.algo == Algo::Ppo {
                    z.extend(vec![config.ac.std.ln(); controls.len()]);
                }
                let inputs = 2 * scene.dofs();
                let ac = Ac::new(inputs, config.batch, &config.ac, controls, &mut rng)?;
                for e in 0..config.batch {
                    sim.reset_env(e, config.noise, &mut rng);
                }
                Some(ac)
            }
        };
        let n = z.len();
        Ok(PlanTrainer {
            scene,
            planner,
            sim,
            names: spec
                .learn
                .iter()
                .map(|&i| m.params[i].name.clone())
                .collect(),
            maps,
            rows,
            state: State {
                rng,
                config,
                z,
                m: vec![0.0; n],
                v: vec![0.0; n],
                t: 0,
                curve: vec![],
                stats: vec![],
                ac: None,
            },
            ac,
        })
    }

    /// The learned params by name, at their current values.
    pub fn learned(&self) -> Vec<(String, f64)> {
        self.names
            .iter()
            .zip(&self.state.z)
            .zip(&self.maps)
            .map(|((n, &z), m)| (n.clone(), m.value(z).0))
            .collect()
    }

    /// The learning curve so far, with each iteration's plan statistics.
    pub fn curve(&self) -> (&[Point], &[PlanStats]) {
        (&self.state.curve, &self.state.stats)
    }

    /// The settings.
    pub fn config(&self) -> &PlanConfig {
        &self.state.config
    }

    /// Sets the learned params (in the policy's `learn` order), each kept
    /// inside its range.
    pub fn set_learned(&mut self, values: &[f64]) {
        for ((z, m), &v) in self.state.z.iter_mut().zip(&self.maps).zip(values) {
            *z = m.inverse(v);
        }
    }

    /// One episode of every environment from its reset with the current
    /// learned params: the episodes' returns (`NaN` where the world
    /// diverged), `dR/dtheta` summed over the environments that did not,
    /// and how the plans went.
    pub fn episode(&mut self) -> Result<Episode, String> {
        if let Some(cl) = self.state.config.clone.take() {
            let ep = self.cloned(&cl);
            self.state.config.clone = Some(cl);
            return ep;
        }
        let (batch, steps) = (self.state.config.batch, self.state.config.episode);
        let values: Vec<f64> = self.learned().iter().map(|l| l.1).collect();
        self.planner.set_learned(&values);
        for e in 0..batch {
            self.sim
                .reset_env(e, self.state.config.noise, &mut self.state.rng);
            self.planner.reset(e);
        }
        let nc = self.scene.model().controls.len();
        let p = values.len();
        let mut tape = self.sim.tape();
        let mut plans = Vec::with_capacity(steps);
        let mut stats = PlanStats::default();
        let mut returns = vec![0.0; batch];
        // The rows the return reads after each step, `[step][row][env]`.
        let mut outputs: Vec<Vec<Vec<f64>>> = Vec::with_capacity(steps);
        let events_before = self.sim.events.len();
        for _ in 0..steps {
            let made = self.planner.act(&mut self.sim).map_err(|e| e.0)?;
            made.iter().for_each(|plan| stats.add(plan));
            self.sim.step_taped(&mut tape);
            let out = self.sim.outputs();
            let t = outputs.len();
            let read: Vec<Vec<f64>> = self.rows.iter().map(|&r| out[r].clone()).collect();
            match &self.state.config.imitate {
                None => {
                    for (r, o) in returns.iter_mut().zip(&read[0]) {
                        *r += o;
                    }
                }
                Some(im) => {
                    for (k, row) in read.iter().enumerate() {
                        for (r, o) in returns.iter_mut().zip(row) {
                            *r -= (o - im.expert[t][k]).powi(2);
                        }
                    }
                }
            }
            outputs.push(read);
            plans.push(
                made.into_iter()
                    .map(|pl| first_rows(pl, nc))
                    .collect::<Vec<_>>(),
            );
        }
        let events = self.sim.events.len() - events_before;
        for ev in &self.sim.events[events_before..] {
            if let Event::Diverged { env, .. } = ev {
                returns[*env] = f64::NAN;
            }
        }
        let alive: Vec<bool> = returns.iter().map(|r| r.is_finite()).collect();
        let all_rows = self.scene.compiled.layout().output_rows();
        let mut grad = vec![0.0; p];
        for t in (0..steps).rev() {
            // d return / d (the rows after step t).
            let mut seed = vec![vec![0.0; batch]; all_rows];
            for (k, &r) in self.rows.iter().enumerate() {
                for e in (0..batch).filter(|&e| alive[e]) {
                    seed[r][e] = match &self.state.config.imitate {
                        None => 1.0,
                        Some(im) => -2.0 * (outputs[t][k][e] - im.expert[t][k]),
                    };
                }
            }
            self.sim.seed_outputs(&mut tape, &seed).map_err(|e| e.0)?;
            let dead: Vec<bool> = alive.iter().map(|a| !a).collect();
            reverse_through_plans(&mut self.sim, &mut tape, &plans[t], &dead, &mut grad)?;
        }
        Ok(Episode {
            returns,
            grad,
            stats,
            events,
        })
    }

    /// Cloning's iteration ([`CloneDemo`]): every environment plans from a
    /// contiguous part of the demonstration's states in order (warm started
    /// from the plan of the state before, as in closed loop), its "return"
    /// minus its share of the loss, so that the mean over environments is
    /// minus the loss.
    fn cloned(&mut self, cl: &CloneDemo) -> Result<Episode, String> {
        let batch = self.state.config.batch;
        let values: Vec<f64> = self.learned().iter().map(|l| l.1).collect();
        self.planner.set_learned(&values);
        let steps = cl.controls.len();
        let part = steps.div_ceil(batch);
        let units: Vec<f64> = self
            .scene
            .model()
            .controls
            .iter()
            .map(|c| crate::policy::control_unit(c.bounds))
            .collect();
        for e in 0..batch {
            self.planner.reset(e);
        }
        let p = values.len();
        let share = batch as f64 / steps as f64;
        let mut returns = vec![0.0; batch];
        let mut grad = vec![0.0; p];
        let mut stats = PlanStats::default();
        for k in 0..part {
            // Environments past the demonstration's end plan from its last
            // state; their plans are not counted.
            let step = |e: usize| (e * part + k).min(steps - 1);
            for e in 0..batch {
                let (x, v) = &cl.states[step(e)];
                self.sim.set_state(e, x, v);
            }
            let made = self.planner.act(&mut self.sim).map_err(|e| e.0)?;
            for (e, plan) in made.iter().enumerate() {
                if e * part + k >= steps {
                    continue;
                }
                stats.add(plan);
                let want = &cl.controls[step(e)];
                for (c, (&u, &w)) in plan.first().iter().zip(want).enumerate() {
                    let r = (u - w) / units[c];
                    returns[e] -= share * r * r;
                    for (g, d) in grad.iter_mut().zip(&plan.d_params[c]) {
                        *g -= share * 2.0 * r / units[c] * d;
                    }
                }
            }
        }
        Ok(Episode {
            returns,
            grad,
            stats,
            events: 0,
        })
    }

    /// Adam's ascent step on the learned params along `grad` (`dJ/dtheta`,
    /// the policy's params first, then PPO's log standard deviations):
    /// returns the gradient's norm in the unconstrained variables and
    /// whether the step was skipped (not finite).
    pub(crate) fn ascend(&mut self, grad: &[f64]) -> (f64, bool) {
        let p = self.maps.len();
        let gz: Vec<f64> = grad
            .iter()
            .enumerate()
            .map(|(j, g)| {
                if j < p {
                    -g * self.maps[j].value(self.state.z[j]).1
                } else {
                    -g
                }
            })
            .collect();
        let norm = gz.iter().map(|g| g * g).sum::<f64>().sqrt();
        if !norm.is_finite() {
            return (norm, true);
        }
        let scale = if norm > self.state.config.clip {
            self.state.config.clip / norm
        } else {
            1.0
        };
        self.state.t += 1;
        let s = &mut self.state;
        let lr = s.config.lr_at(s.curve.len());
        adam_step(&mut s.z, &gz, (&mut s.m, &mut s.v), lr, s.t, scale);
        (norm, false)
    }

    /// One episode of every environment and one Adam step on its mean return.
    pub fn iterate(&mut self) -> Result<(&Point, PlanStats), String> {
        if self.state.config.algo != Algo::Apg {
            self.iterate_ac()?;
            let stats = *self.state.stats.last().expect("a row per iteration");
            return Ok((self.state.curve.last().expect("a point"), stats));
        }
        let start = Instant::now();
        let batch = self.state.config.batch;
        let ep = self.episode()?;
        let live = ep.returns.iter().filter(|r| r.is_finite()).count();
        let mean = |v: f64| v / live.max(1) as f64;
        let mut dropped = batch - live;
        let mut norm = f64::NAN;
        if live > 0 {
            let (n, skipped) = self.ascend(&ep.grad.iter().map(|g| mean(*g)).collect::<Vec<_>>());
            norm = n;
            dropped += usize::from(skipped);
        } else {
            dropped += 1;
        }
        let reward = mean(ep.returns.iter().filter(|r| r.is_finite()).sum());
        let last = self.state.curve.last();
        let seconds = start.elapsed().as_secs_f64();
        let point = Point {
            iteration: self.state.curve.len() + 1,
            env_steps: last.map_or(0, |l| l.env_steps)
                + if self.state.config.clone.is_some() {
                    0 // cloning simulates nothing
                } else {
                    (batch * self.state.config.episode) as u64
                },
            wall: last.map_or(0.0, |l| l.wall) + seconds,
            sim: last.map_or(0.0, |l| l.sim) + seconds,
            reward,
            episodes: live,
            grad_norm: norm,
            loss: -reward,
            dropped,
            events: ep.events,
            resets: batch,
            action_std: 0.0,
        };
        self.state.curve.push(point);
        self.state.stats.push(ep.stats);
        self.sim.events.clear(); // counted in the episode
        Ok((self.state.curve.last().expect("a point"), ep.stats))
    }

    /// The run's state as JSON bytes (settings, learned params, Adam's
    /// moments, the random stream, the curve): [`PlanTrainer::resume`]
    /// continues it bitwise.
    pub fn checkpoint(&self) -> Result<Vec<u8>, String> {
        let mut state = self.state.clone();
        if let Some(ac) = &self.ac {
            let b = self.state.config.batch;
            state.ac = Some(ac.save(
                (0..b).map(|e| self.sim.positions(e)).collect(),
                (0..b).map(|e| self.sim.velocities(e)).collect(),
                self.planner.warm_starts().to_vec(),
            )?);
        }
        serde_json::to_vec(&state).map_err(|e| e.to_string())
    }

    /// Continues a run from [`PlanTrainer::checkpoint`]'s bytes.
    pub fn resume(scene: &'s Scene, bytes: &[u8]) -> Result<PlanTrainer<'s>, String> {
        PlanTrainer::resume_with(scene, None, bytes)
    }

    /// [`PlanTrainer::resume`] of a run whose planner plans on `model`
    /// ([`PlanTrainer::with_model`]).
    pub fn resume_with_model(
        scene: &'s Scene,
        model: &'s Scene,
        bytes: &[u8],
    ) -> Result<PlanTrainer<'s>, String> {
        PlanTrainer::resume_with(scene, Some(model), bytes)
    }

    /// The configuration a checkpoint holds (which model it planned on).
    pub fn checkpoint_config(bytes: &[u8]) -> Result<PlanConfig, String> {
        let state: State =
            serde_json::from_slice(bytes).map_err(|e| format!("not a planner checkpoint: {e}"))?;
        Ok(state.config)
    }

    fn resume_with(
        scene: &'s Scene,
        model: Option<&'s Scene>,
        bytes: &[u8],
    ) -> Result<PlanTrainer<'s>, String> {
        let state: State =
            serde_json::from_slice(bytes).map_err(|e| format!("not a planner checkpoint: {e}"))?;
        let mut tr = PlanTrainer::build(scene, model, state.config.clone())?;
        let n = tr.state.z.len();
        if [state.z.len(), state.m.len(), state.v.len()] != [n; 3]
            || state.stats.len() != state.curve.len()
            || !state
                .z
                .iter()
                .chain(&state.m)
                .chain(&state.v)
                .all(|x| x.is_finite())
        {
            return Err(format!(
                "a damaged planner checkpoint: {n} learned params expected, finite, and one plan statistic per curve row"
            ));
        }
        if let Some(ac) = &mut tr.ac {
            let saved = state
                .ac
                .as_ref()
                .ok_or("a damaged planner checkpoint: SHAC's or PPO's critic is missing")?;
            ac.restore(saved)?;
            let (b, dofs) = (state.config.batch, scene.dofs());
            let fits = |rows: &[Vec<f64>]| {
                rows.len() == b
                    && rows
                        .iter()
                        .all(|r| r.len() == dofs && r.iter().all(|x| x.is_finite()))
            };
            if !fits(&saved.x) || !fits(&saved.v) {
                return Err(format!(
                    "a damaged planner checkpoint: the states are not [{b} environments][{dofs} DOFs]"
                ));
            }
            for e in 0..b {
                tr.sim.restore_state(e, &saved.x[e], &saved.v[e]);
            }
            tr.planner
                .set_warm_starts(saved.warm.clone())
                .map_err(|e| format!("a damaged planner checkpoint: {}", e.0))?;
        }
        tr.state = state;
        tr.state.ac = None;
        Ok(tr)
    }
}

/// The rows of a plan's derivatives that its first controls have (the
/// controls applied): by the learned params, the start positions and the
/// start velocities, `[control][..]`.
pub(crate) type FirstRows = (Vec<Vec<f64>>, Vec<Vec<f64>>, Vec<Vec<f64>>);

/// A plan's [`FirstRows`] (`nc` controls).
pub(crate) fn first_rows(plan: Plan, nc: usize) -> FirstRows {
    (
        plan.d_params[..nc].to_vec(),
        plan.d_x0[..nc].to_vec(),
        plan.d_v0[..nc].to_vec(),
    )
}

/// Carries a closed loop's reverse pass back over its last step not yet
/// reversed (its outputs seeded): the step's adjoint gives `dL/du` of every
/// environment's controls, which each live environment's plan carries into
/// the learned params (added to `grad`) and into the state it planned from
/// (seeded on the tape, for the plans before it). An environment marked
/// `dead` drops its adjoint.
pub(crate) fn reverse_through_plans(
    sim: &mut Sim,
    tape: &mut joule_runtime::Tape,
    plans: &[FirstRows],
    dead: &[bool],
    grad: &mut [f64],
) -> Result<(), String> {
    let (batch, dofs) = (
        dead.len(),
        plans.first().map_or(0, |p| p.1.first().map_or(0, Vec::len)),
    );
    let du = sim.reverse_step(tape);
    let mut dx = vec![vec![0.0; batch]; dofs];
    let mut dv = vec![vec![0.0; batch]; dofs];
    for e in 0..batch {
        if dead[e] {
            sim.drop_adjoint(tape, e);
            continue;
        }
        let (d_params, d_x0, d_v0) = &plans[e];
        for (c, row) in du.iter().enumerate() {
            let a = row[e];
            for (g, d) in grad.iter_mut().zip(&d_params[c]) {
                *g += a * d;
            }
            for d in 0..dofs {
                dx[d][e] += a * d_x0[c][d];
                dv[d][e] += a * d_v0[c][d];
            }
        }
    }
    sim.seed_state(tape, &dx, &dv).map_err(|e| e.0)
}

/// SHAC's and PPO's settings are usable and bounded: the reward's task (not
/// imitation or cloning), windows of 1 to [`MAX_HORIZON`] steps, a discount
/// in (0, 1], lambda in [0, 1], 1 to [`MAX_PASSES`] epochs and minibatches,
/// a positive finite standard deviation and learning rate, a value network
/// of at most 8 layers of at most 4096 units.
fn check_ac(c: &PlanConfig) -> Result<(), String> {
    let a = &c.ac;
    if c.imitate.is_some() || c.clone.is_some() {
        return Err(
            "a planner imitates or clones with apg's episodes, not SHAC's or PPO's windows".into(),
        );
    }
    if a.horizon == 0 || a.horizon > MAX_HORIZON {
        return Err(format!(
            "a window of 1 to {MAX_HORIZON} steps, not {}",
            a.horizon
        ));
    }
    if !(a.gamma > 0.0 && a.gamma <= 1.0 && (0.0..=1.0).contains(&a.lambda)) {
        return Err("gamma in (0, 1] and lambda in [0, 1]".into());
    }
    if !(1..=MAX_PASSES).contains(&a.epochs) || !(1..=MAX_PASSES).contains(&a.minibatches) {
        return Err(format!("epochs and minibatches from 1 to {MAX_PASSES}"));
    }
    let positive = |x: f64| x > 0.0 && x.is_finite();
    if !positive(a.std)
        || !positive(a.value_lr)
        || !positive(a.ratio_clip)
        || !a.entropy.is_finite()
    {
        return Err("a positive finite standard deviation, value learning rate and ratio clip, and a finite entropy weight".into());
    }
    if a.value_hidden.len() > 8 || a.value_hidden.iter().any(|&w| w == 0 || w > 4096) {
        return Err("a value network of at most 8 hidden layers of 1 to 4096 units".into());
    }
    Ok(())
}

/// Most steps in a SHAC window or a PPO rollout of a planner.
pub const MAX_HORIZON: usize = 100_000;
/// Most PPO epochs or minibatches of a planner.
pub const MAX_PASSES: usize = 1000;

/// A demonstration to clone fits the world: a state before every step, of
/// the world's DOFs, a value for every control, all finite.
fn check_clone(scene: &Scene, cl: &CloneDemo) -> Result<(), String> {
    let (dofs, nc) = (scene.dofs(), scene.model().controls.len());
    if cl.controls.is_empty() || cl.states.len() < cl.controls.len() {
        return Err(format!(
            "cloning plans from the demonstration's state before each step: {} states for {} steps",
            cl.states.len(),
            cl.controls.len()
        ));
    }
    if cl.controls.iter().any(|c| c.len() != nc)
        || cl
            .states
            .iter()
            .any(|(x, v)| x.len() != dofs || v.len() != dofs)
    {
        return Err(format!(
            "the demonstration must give {nc} controls and {dofs} positions and velocities per step"
        ));
    }
    let values = cl.controls.iter().flatten();
    let states = cl.states.iter().flat_map(|(x, v)| x.iter().chain(v));
    if !values.chain(states).all(|x| x.is_finite()) {
        return Err("the demonstration has a value that is not finite".into());
    }
    Ok(())
}
