//! A batch of episodes on a simulation: the reward each step earns, episodes
//! that end (a `done` item fires, the state stops being finite, or the
//! episode length is reached) and randomised resets. Environments whose
//! episode ended keep stepping until the window closes, earning nothing and
//! passing no gradient (no branch in the batch); they are reset at the
//! window boundary.

use joule_compiler::model::ObjectiveKind;
use joule_runtime::{NameError, Scene, Sim};
use rand_chacha::ChaCha8Rng;
use rand_distr::{Distribution, Normal};

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
    /// Returns of the episodes that ended since last drained.
    pub finished: Vec<f64>,
    /// Every control of every environment, `[control][env]`.
    pub controls: Vec<Vec<f64>>,
}

/// What one step earned, per environment.
pub struct StepOutcome {
    /// The reward (0 where the episode had already ended or it is not finite).
    pub reward: Vec<f64>,
    /// 1 where the reward counts (the episode was running), else 0.
    pub weight: Vec<f64>,
    /// The episode ended at this step (done fired or the state diverged).
    pub terminal: Vec<bool>,
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
            finished: vec![],
            controls,
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
        let normal = Normal::new(0.0, self.noise.max(0.0)).expect("a finite standard deviation");
        self.sim.reset_env(env, || normal.sample(rng));
        self.age[env] = 0;
        self.ret[env] = 0.0;
        self.alive[env] = true;
    }

    /// Starts environment `env`'s episode over from the free DOFs' state `x`,
    /// `v`, as if `age` steps of it had been taken.
    pub fn start_at(&mut self, env: usize, x: &[f64], v: &[f64], age: usize) {
        self.sim.set_state(env, x, v);
        self.age[env] = age;
        self.ret[env] = 0.0;
        self.alive[env] = true;
    }

    /// Puts the control table into the simulation (before a step).
    pub fn apply_controls(&mut self) {
        self.sim
            .set_controls(&self.controls)
            .expect("the table is built for the scene's controls and batch");
    }

    /// Bookkeeping after a step: the reward each environment earned and
    /// which episodes ended.
    pub fn after_step(&mut self) -> StepOutcome {
        let outputs = self.sim.outputs();
        let b = self.batch();
        let mut out = StepOutcome {
            reward: vec![0.0; b],
            weight: vec![0.0; b],
            terminal: vec![false; b],
            outputs,
        };
        for e in 0..b {
            self.age[e] += 1;
            if !self.alive[e] {
                continue;
            }
            let r = self.reward_row.map_or(0.0, |row| out.outputs[row][e]);
            let done = self.done(&out.outputs, e);
            if r.is_finite() {
                out.reward[e] = r;
                out.weight[e] = 1.0;
                self.ret[e] += r;
            }
            if done || !r.is_finite() {
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

/// A name the scene lacks, as a learning error.
pub(crate) fn name_error(e: NameError) -> candle_core::Error {
    candle_core::Error::Msg(e.0)
}
