//! A batch of episodes on a simulation: the reward each step earns, episodes
//! that end (a `done` item fires or the episode length is reached) and
//! randomised resets. Environments whose episode ended keep stepping until
//! the window closes, earning nothing and passing no gradient (no branch in
//! the batch); they are reset at the window boundary.
//!
//! The divergence guard: an environment whose outputs (observations, reward)
//! stop being finite after a step, or that the simulator reports diverged, is
//! *masked* from that step to the window's end ([`Envs::diverge`], counted in
//! [`Envs::resets`]): its reward stops counting, the policy sees zeros
//! instead of its observations ([`Envs::mask`]), the trainers leave its
//! steps from there on out of the normalisation, the value targets and the
//! advantages ([`healthy_steps`]), and the reverse pass passes no gradient
//! through them. It is reset at the window boundary like an ended episode.

use joule_compiler::model::ObjectiveKind;
use joule_runtime::{Event, NameError, Scene, Sim};
use rand_chacha::ChaCha8Rng;

/// Environments, their episodes and the control table the policy writes.
pub struct Envs<'s> {
    /// The simulation.
    pub sim: Sim<'s>,
    /// Rows of the outputs (`Sim::outputs`).
    pub rows: usize,
    /// Output row of the reward (none: every step earns 0).
    pub reward_row: Option<usize>,
    /// Output rows of `done` items.
    done_rows: Vec<usize>,
    /// Episode length in steps.
    pub episode: usize,
    /// Standard deviation of the velocity jitter at reset.
    noise: f64,
    /// Steps taken in each environment's episode.
    pub age: Vec<usize>,
    /// Reward earned so far in each environment's episode.
    pub ret: Vec<f64>,
    /// Whether each environment's episode is still running.
    pub alive: Vec<bool>,
    /// Seconds spent in the simulator since the curve last took them
    /// ([`Envs::timed`]).
    pub sim_seconds: f64,
    /// Returns of the episodes that ended since last drained.
    pub finished: Vec<f64>,
    /// Every control of every environment, `[control][env]`.
    pub controls: Vec<Vec<f64>>,
    /// Whether each environment is masked until its next reset (it diverged).
    pub diverged: Vec<bool>,
    /// Environments masked for diverging since last drained (each is reset
    /// at the next window boundary).
    pub resets: usize,
    /// A fault to plant (a test hook; see [`Fault`]).
    pub fault: Option<Fault>,
}

/// A fault planted in one environment right after one step (the
/// simulation's step `step`, counting from 0 as [`Sim::steps`] does), before
/// the step's outcome is read: how the tests exercise the divergence guard.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Fault {
    /// The environment.
    pub env: usize,
    /// The step after which it strikes.
    pub step: usize,
    /// What it does.
    pub kind: FaultKind,
}

/// What a [`Fault`] does to its environment.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FaultKind {
    /// Sets the state to NaN, which the guard then finds like a divergence.
    Nan,
    /// Masks the environment as if it had diverged, its state untouched
    /// (the reference a NaN fault's run is compared with).
    Mask,
}

/// What one step earned, per environment.
pub struct StepOutcome {
    /// The reward (0 where the episode had already ended or it is not finite).
    pub reward: Vec<f64>,
    /// 1 where the reward counts (the episode was running), else 0.
    pub weight: Vec<f64>,
    /// The episode ended at this step (a done item fired).
    pub terminal: Vec<bool>,
    /// The environment was masked at this step (it diverged).
    pub diverged: Vec<bool>,
    /// All outputs after the step, `[row][env]`.
    pub outputs: Vec<Vec<f64>>,
}

impl<'s> Envs<'s> {
    /// `batch` environments on `threads` threads, each reset with jitter.
    pub fn new(
        scene: &'s Scene,
        batch: usize,
        threads: usize,
        reward: Option<&str>,
        episode: usize,
        noise: f64,
        rng: &mut ChaCha8Rng,
    ) -> Result<Envs<'s>, NameError> {
        let layout = scene.compiled.layout();
        let rewards: Vec<&str> = layout
            .outputs
            .iter()
            .filter(|o| o.kind == ObjectiveKind::Reward)
            .map(|o| o.name.as_str())
            .collect();
        let reward_row = match reward {
            None => None,
            Some(reward) => Some(
                layout
                    .output(reward)
                    .filter(|o| o.kind == ObjectiveKind::Reward)
                    .map(|o| o.offset)
                    .ok_or_else(|| {
                        NameError(format!(
                            "no reward named `{reward}` (the scene has: {})",
                            rewards.join(", ")
                        ))
                    })?,
            ),
        };
        let done_rows = layout
            .outputs
            .iter()
            .filter(|o| o.kind == ObjectiveKind::Done)
            .map(|o| o.offset)
            .collect();
        let controls = scene.default_controls(batch);
        let mut envs = Envs {
            sim: scene.batch_threads(batch, threads),
            rows: layout.output_rows(),
            reward_row,
            done_rows,
            episode: episode.max(1),
            noise,
            age: vec![0; batch],
            ret: vec![0.0; batch],
            alive: vec![true; batch],
            sim_seconds: 0.0,
            finished: vec![],
            controls,
            diverged: vec![false; batch],
            resets: 0,
            fault: None,
        };
        for e in 0..batch {
            envs.reset(e, rng);
        }
        Ok(envs)
    }

    /// Environments.
    pub fn batch(&self) -> usize {
        self.age.len()
    }

    fn reset(&mut self, env: usize, rng: &mut ChaCha8Rng) {
        self.sim.reset_env(env, self.noise, rng);
        self.age[env] = 0;
        self.ret[env] = 0.0;
        self.alive[env] = true;
        self.diverged[env] = false;
    }

    /// Starts environment `env`'s episode over from the free DOFs' state `x`,
    /// `v`, as if `age` steps of it had been taken.
    pub fn start_at(&mut self, env: usize, x: &[f64], v: &[f64], age: usize) {
        self.sim.set_state(env, x, v);
        self.age[env] = age;
        self.ret[env] = 0.0;
        self.alive[env] = true;
        self.diverged[env] = false;
    }

    /// Masks environment `env` until its next reset, as one that diverged
    /// (its episode ends, counted in [`Envs::resets`]).
    pub fn diverge(&mut self, env: usize) {
        self.alive[env] = false;
        self.diverged[env] = true;
        self.resets += 1;
    }

    /// Zeros the observations `[env][input]` of masked environments, so that
    /// what the policy and the value networks read is finite.
    pub fn mask(&self, obs: &mut [Vec<f64>]) {
        for (row, &d) in obs.iter_mut().zip(&self.diverged) {
            if d {
                row.fill(0.0);
            }
        }
    }

    /// Runs `f` on the simulation, its time counted as the simulator's (the
    /// learning curve's `sim_s`).
    pub fn timed<R>(&mut self, f: impl FnOnce(&mut Sim) -> R) -> R {
        let start = std::time::Instant::now();
        let r = f(&mut self.sim);
        self.sim_seconds += start.elapsed().as_secs_f64();
        r
    }

    /// Puts the control table into the simulation (before a step).
    pub fn apply_controls(&mut self) {
        self.sim
            .set_controls(&self.controls)
            .expect("the table is built for the scene's controls and batch");
    }

    /// Bookkeeping after a step: the reward each environment earned, which
    /// episodes ended, and which environments diverged (an output not
    /// finite, or the simulator's [`Event::Diverged`] at this step): those
    /// are masked ([`Envs::diverge`]).
    pub fn after_step(&mut self) -> StepOutcome {
        let step = self.sim.steps().saturating_sub(1);
        let fault = self.fault.filter(|f| f.step == step);
        if let Some(f) = fault {
            self.fault = None;
            if f.kind == FaultKind::Nan {
                let nan = vec![f64::NAN; self.sim.positions(f.env).len()];
                self.sim.set_state(f.env, &nan, &nan);
            }
        }
        let outputs = self.sim.outputs();
        let b = self.batch();
        let mut out = StepOutcome {
            reward: vec![0.0; b],
            weight: vec![0.0; b],
            terminal: vec![false; b],
            diverged: vec![false; b],
            outputs,
        };
        let mut bad: Vec<bool> = (0..b)
            .map(|e| out.outputs.iter().any(|row| !row[e].is_finite()))
            .collect();
        // This step's events are the last ones reported.
        for ev in self.sim.events.iter().rev() {
            let (env, s, diverged) = match *ev {
                // A state outside the potential's domain cannot move: reset.
                Event::Diverged { env, step, .. } | Event::Inadmissible { env, step } => {
                    (env, step, true)
                }
                Event::NotConverged { env, step, .. } | Event::SolveStopped { env, step, .. } => {
                    (env, step, false)
                }
            };
            if s != step {
                break;
            }
            bad[env] |= diverged;
        }
        if let Some(f) = fault.filter(|f| f.kind == FaultKind::Mask) {
            bad[f.env] = true;
        }
        for (e, bad) in bad.into_iter().enumerate() {
            self.age[e] += 1;
            if self.diverged[e] {
                continue;
            }
            if bad {
                self.diverge(e);
                out.diverged[e] = true;
                continue;
            }
            if !self.alive[e] {
                continue;
            }
            let r = self.reward_row.map_or(0.0, |row| out.outputs[row][e]);
            out.reward[e] = r;
            out.weight[e] = 1.0;
            self.ret[e] += r;
            if self.done(&out.outputs, e) {
                self.alive[e] = false;
                out.terminal[e] = true;
            }
        }
        out
    }

    /// Whether a `done` item fires in environment `env` of `outputs` (`[row][env]`).
    pub fn done(&self, outputs: &[Vec<f64>], env: usize) -> bool {
        self.done_rows.iter().any(|&d| outputs[d][env] > 0.5)
    }

    /// At a window boundary: environments whose episode ended or reached its
    /// length record their return and start again.
    pub fn boundary(&mut self, rng: &mut ChaCha8Rng) {
        for e in 0..self.batch() {
            if !self.alive[e] || self.age[e] >= self.episode {
                self.finished.push(self.ret[e]);
                self.reset(e, rng);
            }
        }
    }
}

/// Steps of a window (`diverged`: `[step][env]`, as
/// [`StepOutcome::diverged`]) before environment `env` was masked: the
/// rewards and values of steps `0..n` and the observations of `0..=n` are its
/// own; all of the window when it was not masked.
pub fn healthy_steps(diverged: &[Vec<bool>], env: usize) -> usize {
    diverged
        .iter()
        .position(|d| d[env])
        .unwrap_or(diverged.len())
}

/// The observations `obs[t][env]` of a window's steps `t < diverged.len()`
/// that are the environments' own (see [`healthy_steps`]), step-major: what
/// updates the normalisation.
pub fn healthy_observations(obs: &[Vec<Vec<f64>>], diverged: &[Vec<bool>]) -> Vec<Vec<f64>> {
    let b = obs.first().map_or(0, Vec::len);
    let n: Vec<usize> = (0..b).map(|e| healthy_steps(diverged, e)).collect();
    obs.iter()
        .take(diverged.len())
        .enumerate()
        .flat_map(|(t, row)| row.iter().zip(&n).filter(move |(_, &n)| t <= n))
        .map(|(o, _)| o.clone())
        .collect()
}

/// A name the scene lacks, as a learning error.
pub(crate) fn name_error(e: NameError) -> candle_core::Error {
    candle_core::Error::Msg(e.0)
}
