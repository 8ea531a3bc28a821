//! `joule train` and `joule imitate`: policies learned through the simulator
//! (joule-learn), with a progress bar, a learning curve (CSV and PNG),
//! atomic checkpoints and `--resume`.

use crate::args::{not_negative, positive, SurrogateArg, ThreadsArg};
use crate::files::{read_file, read_npz, write_atomically};
use crate::load;
use crate::plot::{plot, PlotArgs};
use crate::progress::Progress;
use crate::threads;
use clap::ValueEnum;
use joule_learn::imitate::{Demo, Imitation, Imitator};
use joule_learn::policy::Std;
use joule_learn::ppo::Advantages;
use joule_learn::{policy, Algo, Config, Point, Policy, Trainer};
use joule_runtime::Scene;
use miette::{miette, Result};
use rand::SeedableRng;
use serde_json::json;
use std::io::Write;
use std::path::{Path, PathBuf};

/// Train the scene's `policy` to maximise a reward: analytic policy gradients through the
/// simulator (apg), short-horizon actor-critic (shac), or model-free PPO (the baseline).
#[derive(clap::Args)]
#[command(
    after_help = "Examples:\n  joule train scenes/cartpole.joule --reward height --algo shac --iters 200 --curve curve.csv\n  joule train scenes/cartpole.joule --reward height --algo ppo --checkpoint ck.safetensors\n  joule train scenes/cartpole.joule --reward height --algo ppo --resume ck.safetensors --iters 400"
)]
pub struct TrainArgs {
    /// The scene file (with a `policy` item).
    scene: PathBuf,
    /// Set a parameter's value in every environment (repeatable): a finite
    /// value inside the parameter's declared range. A resumed run needs the
    /// same values.
    #[arg(long = "param", value_name = "NAME=VALUE")]
    params: Vec<String>,
    /// The `reward` item maximised (summed over each episode).
    #[arg(long)]
    reward: String,
    /// The algorithm.
    #[arg(long, value_enum, default_value_t = AlgoArg::Shac)]
    algo: AlgoArg,
    /// The `policy` item trained (default: the scene's only one).
    #[arg(long)]
    policy: Option<String>,
    /// Environments simulated at once [default: 64]. A resumed run keeps
    /// its checkpoint's batch: a different `--batch` with `--resume` is an error.
    #[arg(long, value_name = "BATCH")]
    batch: Option<usize>,
    /// Steps per differentiable window (apg, shac) or per rollout (ppo).
    #[arg(long, default_value_t = 32)]
    horizon: usize,
    /// Iterations in all (a resumed run continues to this total).
    #[arg(long, default_value_t = 100)]
    iters: usize,
    /// Episode length in steps (rounded up to whole windows).
    #[arg(long, default_value_t = 256)]
    episode: usize,
    /// Seed of every random draw (initial weights, resets, PPO's actions).
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// Learning rate (default: 1e-2 for apg/shac, 3e-4 for ppo).
    #[arg(long)]
    lr: Option<f64>,
    /// Largest global gradient norm (default: 1 for apg/shac, 0.5 for ppo).
    #[arg(long)]
    clip: Option<f64>,
    /// Standard deviation of the velocity jitter at every reset, before the
    /// scene's `reset` items are drawn [default: 0.1, or 0 for a scene with
    /// `reset` items: their distribution is the episodes' start].
    #[arg(long, value_name = "SIGMA")]
    noise: Option<f64>,
    /// Weight of a penalty on the squared pre-`tanh` outputs of bounded
    /// controls (apg, shac): keeps a policy from saturating where it has no
    /// gradient left.
    #[arg(long, default_value_t = 0.0)]
    squash_penalty: f64,
    /// Let the learning rates fall linearly to zero over `--iters` (SHAC's
    /// schedule).
    #[arg(long)]
    lr_decay: bool,
    /// Act in the training windows with a Gaussian of this initial standard
    /// deviation around the policy's pre-`tanh` outputs (apg, shac; SHAC's
    /// stochastic actor, its log standard deviation learned with the
    /// weights). The saved policy acts with the mean.
    #[arg(long, default_value_t = 0.0)]
    explore: f64,
    /// Discount of the value targets (shac: TD(lambda), ppo: GAE) and of the
    /// windows' rewards (apg, shac) [default: 0.99].
    #[arg(long)]
    gamma: Option<f64>,
    /// Lambda of TD(lambda) (shac) and GAE (ppo) [default: 0.95].
    #[arg(long)]
    lambda: Option<f64>,
    /// PPO: passes over each rollout (Brax's `num_updates_per_batch`).
    #[arg(long, default_value_t = 4)]
    epochs: usize,
    /// PPO: minibatches per pass, one optimiser step each (a minibatch is
    /// `batch x horizon / minibatches` steps).
    #[arg(long, default_value_t = 4)]
    minibatches: usize,
    /// PPO: clipping range of the probability ratio (Brax's `clipping_epsilon`).
    #[arg(long, default_value_t = 0.2)]
    ratio_clip: f64,
    /// PPO: weight of the policy's entropy in the objective (Brax's `entropy_cost`).
    #[arg(long, default_value_t = 0.0)]
    entropy: f64,
    /// PPO: factor on the rewards in the advantages and value targets
    /// (Brax's `reward_scaling`); returns are reported unscaled.
    #[arg(long, default_value_t = 1.0)]
    reward_scale: f64,
    /// Hidden layer widths of the value network (shac, ppo), e.g.
    /// `256,256,256,256,256` [default: the policy's].
    #[arg(long, value_delimiter = ',', value_name = "WIDTHS")]
    value_hidden: Option<Vec<usize>>,
    /// PPO: the value network computes in f32 (about twice as fast as f64).
    #[arg(long)]
    value_f32: bool,
    /// PPO: the Gaussians' standard deviations, one learned per control
    /// (`shared`) or a function of the state (`state`: the policy network's
    /// second output per control through `softplus + 0.001`, Brax's).
    #[arg(long, value_enum, default_value_t = StdArg::Shared)]
    std: StdArg,
    /// PPO: rollouts of `--horizon` steps collected with the same policy
    /// before each update, whose minibatches are drawn from all of them
    /// (Brax's `batch_size x num_minibatches / num_envs`).
    #[arg(long, default_value_t = 1)]
    unrolls: usize,
    /// PPO: advantages once per iteration from the rollouts' values
    /// (`rollout`), or per minibatch of whole trajectories with the value
    /// network as it is then and the observation statistics updated first
    /// (`minibatch`: Brax's).
    #[arg(long, value_enum, default_value_t = AdvantagesArg::Rollout)]
    advantages: AdvantagesArg,
    #[command(flatten)]
    threads: ThreadsArg,
    /// Stop once the mean episode return reaches this value.
    #[arg(long)]
    target: Option<f64>,
    /// What gradients make of `backward =` surrogates: differentiate each
    /// surrogate energy at the simulated states (`energy`), a step of the
    /// surrogate model from each simulated state (`model`), or nothing
    /// (`off`: exact gradients). Default: the scene's `surrogate` setting.
    #[arg(long, value_enum)]
    surrogate: Option<SurrogateArg>,
    /// Checkpoint file, written atomically every `--every` iterations and at the end.
    #[arg(long)]
    checkpoint: Option<PathBuf>,
    /// Iterations between checkpoints.
    #[arg(long, default_value_t = 10)]
    every: usize,
    /// Continue from a checkpoint (bitwise the run it continues).
    #[arg(long)]
    resume: Option<PathBuf>,
    /// A `trajopt` policy's model param, NAME=VALUE (repeatable): where the
    /// planner's model starts apart from the world (`--param` sets the world's).
    #[arg(long = "planner-param", value_name = "NAME=VALUE")]
    planner_params: Vec<String>,
    /// A `trajopt` policy's model as a scene of its own: the policy, its
    /// cost and learned params are declared there; its state is read out of
    /// the world's by name.
    #[arg(long, value_name = "MODEL.joule")]
    planner_model: Option<PathBuf>,
    #[command(flatten)]
    outputs: Outputs,
}

/// `--algo` of `joule train`.
#[derive(Clone, Copy, ValueEnum)]
enum AlgoArg {
    /// Analytic policy gradients through short windows of the batched rollout.
    Apg,
    /// Short-horizon actor-critic: APG with a learned value closing each window.
    Shac,
    /// Proximal policy optimisation (model-free; no gradient through the simulator).
    Ppo,
}

/// `--std`: where PPO's standard deviations come from.
#[derive(Clone, Copy, ValueEnum)]
enum StdArg {
    /// One learned per control.
    Shared,
    /// A function of the state (Brax's).
    State,
}

/// `--advantages`: where PPO's advantages come from.
#[derive(Clone, Copy, PartialEq, Eq, ValueEnum)]
enum AdvantagesArg {
    /// Once per iteration, from the rollouts' values.
    Rollout,
    /// Per minibatch of trajectories, with the current value network (Brax's).
    Minibatch,
}

impl TrainArgs {
    /// The trainer's settings: the algorithm's defaults, overridden by the flags given.
    fn config(&self) -> Config {
        let algo = match self.algo {
            AlgoArg::Apg => Algo::Apg,
            AlgoArg::Shac => Algo::Shac,
            AlgoArg::Ppo => Algo::Ppo,
        };
        let mut config = Config::new(algo, &self.reward);
        config.policy = self.policy.clone();
        config.batch = self.batch.unwrap_or(64).max(1);
        config.horizon = self.horizon.max(1);
        config.episode = self.episode;
        config.seed = self.seed;
        config.noise = self.noise.unwrap_or(0.1);
        config.squash_penalty = self.squash_penalty;
        config.lr_decay = if self.lr_decay { self.iters } else { 0 };
        config.explore = self.explore;
        config.threads = threads::workers(self.threads.threads);
        config.lr = self.lr.unwrap_or(config.lr);
        config.clip = self.clip.unwrap_or(config.clip);
        config.gamma = self.gamma.unwrap_or(config.gamma);
        config.lambda = self.lambda.unwrap_or(config.lambda);
        config.epochs = self.epochs;
        config.minibatches = self.minibatches;
        config.ratio_clip = self.ratio_clip;
        config.entropy = self.entropy;
        config.reward_scale = self.reward_scale;
        config.value_hidden = self.value_hidden.clone();
        config.value_f32 = self.value_f32;
        config.unrolls = self.unrolls;
        config.advantages = match self.advantages {
            AdvantagesArg::Rollout => Advantages::Rollout,
            AdvantagesArg::Minibatch => Advantages::Minibatch,
        };
        config.std = match self.std {
            StdArg::Shared => Std::Shared,
            StdArg::State => Std::State,
        };
        config
    }
}

/// Where results go and how they are shown (the options `train` and `imitate` share).
#[derive(clap::Args)]
pub struct Outputs {
    /// The trained policy's weights (safetensors).
    #[arg(long, default_value = "policy.safetensors")]
    pub out: PathBuf,
    /// Write the learning curve as CSV, with PNG plots beside it: against
    /// environment steps (`.png`) and wall-clock (`-wall.png`).
    #[arg(long)]
    pub curve: Option<PathBuf>,
    /// Print one JSON object.
    #[arg(long)]
    pub json: bool,
    /// Print nothing but errors.
    #[arg(long)]
    pub quiet: bool,
}

/// Compiles a scene for learning, its surrogates used as `surrogates` says
/// and its parameters set by `--param` overrides (checked first).
fn compile(path: &Path, surrogates: load::Surrogates, params: &[String]) -> Result<Scene> {
    let options = load::Options {
        surrogates,
        ..load::Options::default()
    };
    Ok(load::scene_with_params(path, &options, params)?.scene)
}

fn learn_error(e: candle_core::Error) -> miette::Report {
    miette!("{e}")
}

/// The bytes of a policy or checkpoint to write to `path`, or an error with
/// a hint when they cannot be made (weights that are not finite): nothing
/// is written then.
fn to_save(bytes: candle_core::Result<Vec<u8>>, path: &Path) -> Result<Vec<u8>> {
    bytes.map_err(|e| {
        miette!(
            help = "the training diverged: nothing was written; train again with a smaller `--lr` or `--clip`, or resume from an earlier checkpoint",
            "cannot write `{}`: {e}",
            path.display()
        )
    })
}

/// Writes a trained policy's weights to `path` (nothing where they are not finite).
fn write_weights(policy: &Policy, path: &Path) -> Result<()> {
    let bytes = to_save(policy.to_bytes(), path)?;
    write_atomically(path, |w| w.write_all(&bytes))
}

/// `joule train`: `--iters` iterations in all (a resumed run continues to
/// that total), a checkpoint every `--every` iterations and at the end,
/// stopping early once the mean episode return reaches `--target`.
pub fn train(a: TrainArgs) -> Result<()> {
    a.threads.apply()?;
    let mut config = a.config();
    if !(config.explore.is_finite() && config.explore >= 0.0) {
        return Err(miette!(
            help = "give a standard deviation: 0 (no exploration) or more, e.g. `--explore 0.3`",
            "`--explore {}` is not a standard deviation",
            config.explore
        ));
    }
    check_settings(&config)?;
    if let Some(t) = a.target.filter(|t| !t.is_finite()) {
        return Err(miette!(
            help = "give the mean episode return to stop at, e.g. `--target 100` (leave it out to run every iteration)",
            "`--target {t}` is not a finite return"
        ));
    }
    if config.value_f32 && config.algo != Algo::Ppo {
        return Err(miette!(
            help = "leave `--value-f32` out: shac's value network is differentiated through the simulator, in f64",
            "`--value-f32` is for ppo"
        ));
    }
    if config.std == Std::State && config.algo != Algo::Ppo {
        return Err(miette!(
            help = "leave `--std` out, or explore with `--explore S` (a learned Gaussian)",
            "`--std state` is for ppo"
        ));
    }
    if config.explore > 0.0 && config.algo == Algo::Ppo {
        return Err(miette!(
            help = "leave `--explore` out: ppo explores with its own learned Gaussian",
            "`--explore` is for apg and shac"
        ));
    }
    let (iters, checkpoint, every, target, o) = (
        a.iters,
        a.checkpoint.as_deref(),
        a.every,
        a.target,
        &a.outputs,
    );
    crate::planner::check_resumed_model(a.resume.as_deref(), a.planner_model.as_deref())?;
    let scene = compile(&a.scene, SurrogateArg::option(a.surrogate), &a.params)?;
    if a.noise.is_none() && !scene.model().reset.steps.is_empty() {
        config.noise = 0.0;
    }
    let model = crate::planner::model_scene(a.planner_model.as_deref())?;
    if let Some(name) = planned_policy(&scene, model.as_ref(), a.policy.as_deref())? {
        let model = model.as_ref().zip(a.planner_model.as_deref());
        return train_planner(&a, (&scene, model), name, &config);
    }
    crate::args::check_batch(&scene, &format!("--batch {}", config.batch), config.batch)?;
    if !a.planner_params.is_empty() {
        return Err(miette!(
            help = "leave `--planner-param` out, or train a `trajopt` policy with `--policy NAME`",
            "`--planner-param` sets a `trajopt` policy's model, and this run trains an `mlp` policy"
        ));
    }
    let mut trainer = match &a.resume {
        Some(path) => {
            let bytes = read_file(path, "give a file written by `joule train --checkpoint`")?;
            let trainer = Trainer::resume(&scene, &bytes).map_err(|e| {
                miette!(
                    help = "resume with the scene the checkpoint was trained on",
                    "cannot resume from `{}`: {e}",
                    path.display()
                )
            })?;
            resumed_batch(a.batch, path, trainer.config.batch)?;
            trainer
        }
        None => Trainer::new(&scene, config).map_err(learn_error)?,
    };
    let done = trainer.curve.len();
    let mut bar = Progress::iterations(
        iters.saturating_sub(done) as u64,
        "train",
        !o.quiet && !o.json,
    );
    let save = |t: &Trainer| -> Result<()> {
        if let Some(path) = checkpoint {
            let bytes = to_save(t.checkpoint(), path)?;
            write_atomically(path, |w| w.write_all(&bytes))?;
        }
        Ok(())
    };
    let mut reached = None;
    for i in done..iters {
        let p = trainer.iterate().map_err(learn_error)?.clone();
        bar.message(&format!(
            "return {:.3} | {:.0} env-steps/s | |g| {:.2e}",
            p.reward,
            p.env_steps as f64 / p.wall.max(1e-9),
            p.grad_norm
        ));
        bar.inc();
        if every > 0 && (i + 1) % every == 0 {
            save(&trainer)?;
        }
        if target.is_some_and(|r| p.reward >= r) {
            reached = Some(p);
            break;
        }
    }
    bar.finish();
    save(&trainer)?;
    write_weights(&trainer.policy, &o.out)?;
    finish(
        &a.scene,
        &trainer.curve,
        o,
        reached,
        target,
        &trainer.config,
    )
}

/// A resumed run keeps its checkpoint's batch (`kept`): a `--batch` flag
/// other than it is an error.
pub(crate) fn resumed_batch(flag: Option<usize>, path: &Path, kept: usize) -> Result<()> {
    match flag {
        Some(b) if b.max(1) != kept => Err(miette!(
            help = "drop `--batch` to continue the run, or start a new run without `--resume`",
            "`--batch {b}` differs from the batch of `{}` ({kept}): a resumed run keeps its batch",
            path.display(),
        )),
        _ => Ok(()),
    }
}

/// The `trajopt` policy a run trains: the one `--policy` names, or the
/// scene's only policy when that is a planner.
fn planner_policy<'m>(scene: &'m Scene, policy: Option<&str>) -> Option<&'m str> {
    let m = scene.model();
    match policy {
        Some(n) => m
            .planners
            .iter()
            .find(|p| p.name == n)
            .map(|p| p.name.as_str()),
        None if m.policies.is_empty() && m.planners.len() == 1 => Some(&m.planners[0].name),
        None => None,
    }
}

/// The `trajopt` policy a run trains ([`planner_policy`]): with a model of
/// its own (`--planner-model`), the model's, which must have one that fits
/// the world.
fn planned_policy<'m>(
    scene: &'m Scene,
    model: Option<&'m Scene>,
    policy: Option<&str>,
) -> Result<Option<&'m str>> {
    let Some(model) = model else {
        return Ok(planner_policy(scene, policy));
    };
    let name = planner_policy(model, policy).ok_or_else(|| {
        miette!(
            help = "declare the planner in the model's scene (`policy plan = trajopt(..)`), and name it with `--policy` if the model has other policies",
            "the planner's model has no `trajopt` policy{}",
            policy.map(|p| format!(" `{p}`")).unwrap_or_default()
        )
    })?;
    joule_runtime::plan::WorldMap::by_names(scene, model)
        .map_err(crate::planner::model_mismatch)?;
    Ok(Some(name))
}

/// The world scene and the planner's model when it is a scene of its own
/// (with its file).
type Scenes<'a> = (&'a Scene, Option<(&'a Scene, &'a Path)>);

/// `joule train` of a `trajopt` policy through its optimiser: apg (whole
/// episodes), SHAC or PPO (windows with a critic on the world's state).
fn train_planner(a: &TrainArgs, (scene, model): Scenes, name: &str, config: &Config) -> Result<()> {
    let unused = [
        (config.squash_penalty != 0.0, "--squash-penalty"),
        (config.explore > 0.0, "--explore"),
        (config.reward_scale != 1.0, "--reward-scale"),
        (config.value_f32, "--value-f32"),
        (config.std != Std::Shared, "--std"),
        (config.unrolls > 1, "--unrolls"),
        (config.advantages != Advantages::Rollout, "--advantages"),
    ];
    if let Some((_, flag)) = unused.iter().find(|u| u.0) {
        return Err(miette!(
            help = "leave `{flag}` out: it sets a network policy's training",
            "`{flag}` does not apply to the `trajopt` policy `{name}`"
        ));
    }
    let mut pc = joule_learn::planning::PlanConfig::new(&config.reward);
    pc.algo = config.algo;
    pc.lr_decay = config.lr_decay;
    if config.algo != Algo::Apg {
        let ac = &mut pc.ac;
        ac.horizon = config.horizon;
        ac.gamma = config.gamma;
        ac.lambda = config.lambda;
        ac.epochs = config.epochs;
        ac.minibatches = config.minibatches;
        ac.ratio_clip = config.ratio_clip;
        ac.entropy = config.entropy;
        if let Some(hidden) = &config.value_hidden {
            ac.value_hidden.clone_from(hidden);
        }
    }
    pc.policy = Some(name.to_string());
    pc.batch = a.batch.unwrap_or(4).max(1);
    crate::args::check_batch(scene, &format!("--batch {}", pc.batch), pc.batch)?;
    pc.threads = config.threads.max(1);
    pc.episode = config.episode;
    pc.seed = config.seed;
    pc.lr = a.lr.unwrap_or(pc.lr);
    pc.noise = config.noise;
    pc.model = crate::args::check_params(model.map_or(scene, |m| m.0).model(), &a.planner_params)?;
    crate::planner::train(
        scene,
        crate::planner::TrainPlan {
            scene: &a.scene,
            model,
            policy: name,
            config: pc,
            iters: a.iters,
            checkpoint: a.checkpoint.as_deref(),
            every: a.every,
            resume: a.resume.as_deref(),
            batch: a.batch,
            outputs: &a.outputs,
        },
    )
}

/// `joule imitate` with a `trajopt` policy: its params learned through the
/// optimiser so that its closed loop matches the demonstration step by step.
fn imitate_planner(
    a: &ImitateArgs,
    (scene, model): Scenes,
    name: &str,
    expert: Vec<Vec<f64>>,
    workers: usize,
) -> Result<()> {
    if a.window.is_some() {
        return Err(miette!(
            help = "leave `--window` out: a planner's episodes are matched step by step from the start",
            "`--window` is for `mlp` policies"
        ));
    }
    let mut pc = joule_learn::planning::PlanConfig::new(a.reward.as_deref().unwrap_or(""));
    pc.imitate = Some(joule_learn::planning::Imitate {
        outputs: a.matched.clone(),
        expert,
    });
    pc.episode = a
        .steps
        .unwrap_or(pc.imitate.as_ref().map_or(0, |i| i.expert.len()));
    pc.noise = a.noise;
    train_imitating_planner(a, (scene, model), name, workers, pc)
}

/// A planner's imitation run (`pc` says of what) with `joule imitate`'s
/// common settings.
fn train_imitating_planner(
    a: &ImitateArgs,
    (scene, model): Scenes,
    name: &str,
    workers: usize,
    mut pc: joule_learn::planning::PlanConfig,
) -> Result<()> {
    pc.policy = Some(name.to_string());
    pc.batch = a.batch.max(1);
    pc.threads = workers.max(1);
    pc.seed = a.seed;
    pc.lr = a.lr.unwrap_or(pc.lr);
    pc.lr_decay = a.lr_decay_iters();
    pc.model = crate::args::check_params(model.map_or(scene, |m| m.0).model(), &a.planner_params)?;
    crate::planner::train(
        scene,
        crate::planner::TrainPlan {
            scene: &a.scene,
            model,
            policy: name,
            config: pc,
            iters: a.iters,
            checkpoint: None,
            every: 0,
            resume: None,
            batch: None,
            outputs: &a.outputs,
        },
    )
}

/// The learning settings' limits, checked before anything is compiled: a
/// located error with the flag's name and a hint for each.
fn check_settings(c: &Config) -> Result<()> {
    let unit = |name: &str, v: f64, hint: &str| -> Result<()> {
        if v.is_finite() && (0.0..=1.0).contains(&v) {
            Ok(())
        } else {
            Err(miette!(
                help = hint.to_string(),
                "`--{name} {v}` is not in 0..1"
            ))
        }
    };
    unit(
        "gamma",
        c.gamma,
        "a discount such as 0.99 (Brax's ant: 0.97)",
    )?;
    unit("lambda", c.lambda, "a lambda such as 0.95")?;
    not_negative(
        "--entropy",
        c.entropy,
        "an entropy weight such as 0.01, or 0",
    )?;
    not_negative(
        "--ratio-clip",
        c.ratio_clip,
        "a clipping range such as 0.2 or 0.3",
    )?;
    positive(
        "--reward-scale",
        c.reward_scale,
        "a positive factor such as 1 or 10",
    )?;
    positive(
        "--lr",
        c.lr,
        "a learning rate such as 1e-2 (apg, shac) or 3e-4 (ppo); leave `--lr` out for the algorithm's default",
    )?;
    positive(
        "--clip",
        c.clip,
        "the largest gradient norm, such as 1 (apg, shac) or 0.5 (ppo); leave `--clip` out for the algorithm's default",
    )?;
    not_negative(
        "--noise",
        c.noise,
        "the reset jitter's standard deviation in the scene's velocity units, e.g. `--noise 0.1` (0: none)",
    )?;
    not_negative(
        "--squash-penalty",
        c.squash_penalty,
        "a penalty weight such as 1e-3, or 0 (none)",
    )?;
    if c.epochs == 0 || c.minibatches == 0 || c.unrolls == 0 {
        return Err(miette!(
            help = "at least one pass of one minibatch of one rollout, e.g. `--epochs 4 --minibatches 4 --unrolls 1`",
            "`--epochs {}` / `--minibatches {}` / `--unrolls {}` must each be at least 1",
            c.epochs,
            c.minibatches,
            c.unrolls
        ));
    }
    if c.unrolls > 1 && c.algo != Algo::Ppo {
        return Err(miette!(
            help = "leave `--unrolls` out: apg and shac update after every window",
            "`--unrolls` is for ppo"
        ));
    }
    if c.advantages != Advantages::Rollout && c.algo != Algo::Ppo {
        return Err(miette!(
            help = "leave `--advantages` out: shac's value targets are TD(lambda) over its windows",
            "`--advantages` is for ppo"
        ));
    }
    if c.value_hidden.as_ref().is_some_and(|h| h.contains(&0)) {
        return Err(miette!(
            help = "give widths of at least 1, e.g. `--value-hidden 256,256`",
            "a value network layer of width 0"
        ));
    }
    Ok(())
}

/// Writes the curve, prints the summary of training `scene`.
fn finish(
    scene: &std::path::Path,
    curve: &[Point],
    o: &Outputs,
    reached: Option<Point>,
    target: Option<f64>,
    config: &Config,
) -> Result<()> {
    if let Some(path) = &o.curve {
        write_curve(path, curve)?;
    }
    let last = curve.last();
    let best = curve
        .iter()
        .map(|p| p.reward)
        .filter(|r| r.is_finite())
        .fold(f64::NEG_INFINITY, f64::max);
    let dropped: usize = curve.iter().map(|p| p.dropped).sum();
    let events: usize = curve.iter().map(|p| p.events).sum();
    let resets: usize = curve.iter().map(|p| p.resets).sum();
    if o.json {
        println!(
            "{}",
            json!({
                "scene": scene.display().to_string(),
                "algo": config.algo,
                "iterations": last.map_or(0, |p| p.iteration),
                "env_steps": last.map_or(0, |p| p.env_steps),
                "seconds": last.map_or(0.0, |p| p.wall),
                "simulator_seconds": last.map_or(0.0, |p| p.sim),
                "return": last.map(|p| p.reward),
                "best_return": best,
                "target": target,
                "reached": reached.as_ref().map(|p| json!({"iteration": p.iteration, "env_steps": p.env_steps, "seconds": p.wall})),
                "dropped_gradients": dropped,
                "events": events,
                "resets": resets,
                "action_std": last.map(|p| p.action_std),
                "policy": o.out,
            })
        );
    } else if !o.quiet {
        match last {
            Some(p) if p.reward.is_finite() => println!(
                "{} iterations, {} environment steps, {:.1} s: mean episode return {:.4} (best {best:.4})",
                p.iteration, p.env_steps, p.wall, p.reward
            ),
            Some(p) => println!(
                "{} iterations, {} environment steps, {:.1} s: no episode has ended yet (episodes are {} steps)",
                p.iteration, p.env_steps, p.wall, config.episode
            ),
            None => {}
        }
        match (target, &reached) {
            (Some(t), Some(p)) => println!(
                "reached {t} after {} environment steps ({:.1} s)",
                p.env_steps, p.wall
            ),
            (Some(t), None) => println!("did not reach {t}"),
            _ => {}
        }
        if dropped > 0 {
            println!("note: {dropped} non-finite gradients were dropped (NaN guard)");
        }
        if events > 0 {
            println!(
                "note: the simulator reported {events} events (divergence or non-convergence)"
            );
        }
        if resets > 0 {
            println!("note: {resets} environments diverged and were masked and reset");
        }
        println!("wrote {}", o.out.display());
    }
    Ok(())
}

/// The learning curve as CSV and two PNG plots (against environment steps and wall-clock).
pub(crate) fn write_curve(path: &Path, curve: &[Point]) -> Result<()> {
    write_atomically(path, |w| {
        writeln!(
            w,
            "iteration,env_steps,wall_s,sim_s,reward,episodes,grad_norm,loss,dropped,events,resets,action_std"
        )?;
        for p in curve {
            writeln!(
                w,
                "{},{},{},{},{},{},{},{},{},{},{},{}",
                p.iteration,
                p.env_steps,
                p.wall,
                p.sim,
                p.reward,
                p.episodes,
                p.grad_norm,
                p.loss,
                p.dropped,
                p.events,
                p.resets,
                p.action_std
            )?;
        }
        Ok(())
    })?;
    if curve.len() < 2 {
        return Ok(());
    }
    let stem = path.with_extension("");
    for (x, png) in [
        ("env_steps", stem.with_extension("png")),
        (
            "wall_s",
            PathBuf::from(format!("{}-wall.png", stem.display())),
        ),
    ] {
        plot(&PlotArgs {
            inputs: vec![path.to_path_buf()],
            output: png,
            x: Some(x.into()),
            y: Some("reward".into()),
            env: 0,
            width: 800,
            height: 500,
        })?;
    }
    Ok(())
}

/// Imitate one demonstration (`joule run --out demo.npz`): train the scene's `policy` by the
/// Chamfer distance between its trajectory and the expert's, through the simulator (ILD), or
/// clone the expert's controls at its states (`--algo bc`).
#[derive(clap::Args)]
#[command(
    after_help = "Examples:\n  joule run scenes/reacher.joule --steps 100 --policy expert.safetensors --out demo.npz --state\n  joule imitate scenes/reacher.joule --expert demo.npz --match fingertip --reward closeness\n  joule imitate scenes/reacher.joule --expert demo.npz --algo bc --iters 2000 --reward closeness"
)]
pub struct ImitateArgs {
    /// The scene file (with a `policy` item).
    scene: PathBuf,
    /// Set a parameter's value in every environment (repeatable).
    #[arg(long = "param", value_name = "NAME=VALUE")]
    params: Vec<String>,
    /// The demonstration (`joule run --out demo.npz`; environment 0 is used).
    #[arg(long)]
    expert: PathBuf,
    /// The outputs whose trajectories are matched, comma-separated (positions and velocities
    /// together match the pace as well as the path).
    /// Required but with `--algo bc`, which regresses the controls instead.
    #[arg(long = "match", value_name = "OUTPUT,...", value_delimiter = ',')]
    matched: Vec<String>,
    /// The algorithm: ILD (through the simulator) or behaviour cloning.
    #[arg(long, value_enum, default_value_t = ImitateAlgo::Ild)]
    algo: ImitateAlgo,
    /// The `policy` item trained (default: the scene's only one).
    #[arg(long)]
    policy: Option<String>,
    /// A `reward` item to report next to the expert's.
    #[arg(long)]
    reward: Option<String>,
    /// Steps per episode (default: the demonstration's length).
    #[arg(long)]
    steps: Option<usize>,
    /// Differentiate windows of this many steps, each state matched to the expert's at the
    /// same step of the episode (default: whole episodes, matched by the Chamfer distance)
    #[arg(long)]
    window: Option<usize>,
    /// Iterations.
    #[arg(long, default_value_t = 100)]
    iters: usize,
    /// Environments (differently jittered starts).
    #[arg(long, default_value_t = 4)]
    batch: usize,
    /// Learning rate [default: 3e-3; a `trajopt` policy's, in its params'
    /// unconstrained variables: 0.05].
    #[arg(long)]
    lr: Option<f64>,
    /// Standard deviation of the velocity jitter at every reset.
    #[arg(long, default_value_t = 0.0)]
    noise: f64,
    /// Lower the learning rate linearly to 0 over the run's iterations.
    #[arg(long)]
    lr_decay: bool,
    /// A `trajopt` policy's model param, NAME=VALUE (repeatable): where the
    /// planner's model starts apart from the world.
    #[arg(long = "planner-param", value_name = "NAME=VALUE")]
    planner_params: Vec<String>,
    /// A `trajopt` policy's model as a scene of its own (see `joule train`).
    #[arg(long, value_name = "MODEL.joule")]
    planner_model: Option<PathBuf>,
    /// Seed.
    #[arg(long, default_value_t = 0)]
    seed: u64,
    #[command(flatten)]
    threads: ThreadsArg,
    #[command(flatten)]
    outputs: Outputs,
}

/// `--algo` of `joule imitate`.
#[derive(Clone, Copy, ValueEnum)]
enum ImitateAlgo {
    /// Imitation learning by differentiable physics: a Chamfer distance between trajectories.
    Ild,
    /// Behaviour cloning: the policy regressed onto the controls the expert applied at the
    /// states it recorded (`joule run --out demo.npz --state`), no simulation in the loop.
    Bc,
}

impl ImitateArgs {
    /// The iterations over which `--lr-decay` lowers the learning rate (0: constant).
    fn lr_decay_iters(&self) -> usize {
        if self.lr_decay {
            self.iters
        } else {
            0
        }
    }
}

/// `joule imitate`: one demonstration, a policy trained by the Chamfer distance (ILD).
pub fn imitate(a: ImitateArgs) -> Result<()> {
    let workers = a.threads.apply()?;
    if let Some(lr) = a.lr {
        positive(
            "--lr",
            lr,
            "a learning rate such as 3e-3 (0.05 for a `trajopt` policy); leave `--lr` out for the default",
        )?;
    }
    not_negative(
        "--noise",
        a.noise,
        "the reset jitter's standard deviation in the scene's velocity units, e.g. `--noise 0.1` (0: none)",
    )?;
    let o = &a.outputs;
    let scene = compile(&a.scene, load::Surrogates::Scene, &a.params)?;
    crate::args::check_batch(&scene, &format!("--batch {}", a.batch), a.batch)?;
    // A `trajopt` policy imitates through its optimiser; an `mlp` policy
    // has no model to set apart.
    let model = crate::planner::model_scene(a.planner_model.as_deref())?;
    let planner = planned_policy(&scene, model.as_ref(), a.policy.as_deref())?;
    let model = model.as_ref().zip(a.planner_model.as_deref());
    if planner.is_none() && !a.planner_params.is_empty() {
        return Err(miette!(
            help = "leave `--planner-param` out, or imitate with a `trajopt` policy (`--policy NAME`)",
            "`--planner-param` sets a `trajopt` policy's model, and this run trains an `mlp` policy"
        ));
    }
    if let ImitateAlgo::Bc = a.algo {
        return match planner {
            Some(name) => clone_planner(&a, (&scene, model), name, workers),
            None => clone_behaviour(&a, &scene),
        };
    }
    if a.matched.is_empty() {
        return Err(miette!(
            help = "name the outputs to match, e.g. `--match tip,rates` (positions and velocities together), or clone the controls with `--algo bc`",
            "imitation through the simulator matches outputs: `--match` is missing"
        ));
    }
    // Environment 0's trajectory after each step (the file's first row is
    // the start), the outputs' components one after the other.
    let mut expert: Vec<Vec<f64>> = vec![];
    for name in &a.matched {
        let (shape, data) = read_npz(&a.expert, name)?;
        let [steps_rec, envs_rec, len] = shape[..] else {
            return Err(miette!(
                help = "record the demonstration with `joule run SCENE --out demo.npz`",
                "`{name}` in `{}` is not a [steps][environments][components] array",
                a.expert.display()
            ));
        };
        let (steps_rec, envs_rec, len) = (steps_rec as usize, envs_rec as usize, len as usize);
        expert.resize(steps_rec.saturating_sub(1).max(expert.len()), vec![]);
        for (s, row) in expert.iter_mut().enumerate().take(steps_rec - 1) {
            row.extend((0..len).map(|c| data[((s + 1) * envs_rec) * len + c]));
        }
    }
    let states = match a.window {
        None => vec![],
        Some(_) => crate::files::read_states(&a.expert, scene.dofs(), "--window")?,
    };
    if let Some(name) = planner {
        return imitate_planner(&a, (&scene, model), name, expert, workers);
    }
    let spec = policy::spec(&scene, a.policy.as_deref()).map_err(|e| miette!("{e}"))?;
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(a.seed);
    let mut pol = Policy::new(&scene, spec, &mut rng).map_err(learn_error)?;
    let settings = Imitation {
        outputs: a.matched.clone(),
        reward: a.reward.clone(),
        steps: a.steps.unwrap_or(expert.len()),
        window: a.window,
        eval_every: 10,
        batch: a.batch.max(1),
        threads: workers,
        lr: a.lr.unwrap_or(3e-3),
        lr_decay: a.lr_decay_iters(),
        clip: 1.0,
        noise: a.noise,
        seed: a.seed,
    };
    let demo = Demo {
        outputs: expert,
        states,
    };
    let mut im = Imitator::new(&scene, &pol, demo, settings).map_err(learn_error)?;
    // Whole episodes are matched by the Chamfer distance, windows by the
    // distance to the expert's state at the same step.
    let distance = if a.window.is_some() {
        "tracking"
    } else {
        "chamfer"
    };
    let mut bar = Progress::iterations(a.iters as u64, "imitate", !o.quiet && !o.json);
    for _ in 0..a.iters {
        let p = im.iterate(&mut pol).map_err(learn_error)?;
        bar.message(&format!(
            "{distance} {:.3e} | return {:.3} | |g| {:.2e}",
            p.loss, p.reward, p.grad_norm
        ));
        bar.inc();
    }
    bar.finish();
    im.evaluate_last(&pol).map_err(learn_error)?;
    write_weights(&pol, &o.out)?;
    if let Some(path) = &o.curve {
        write_curve(path, &im.curve)?;
    }
    let last = im.curve.last();
    let expert_return = a.reward.as_ref().and_then(|r| {
        read_npz(&a.expert, r).ok().map(|(shape, d)| {
            (1..shape[0] as usize)
                .map(|s| d[s * shape[1] as usize * shape[2] as usize])
                .sum::<f64>()
        })
    });
    if o.json {
        println!(
            "{}",
            json!({
                "scene": a.scene.display().to_string(),
                "iterations": a.iters,
                distance: last.map(|p| p.loss),
                "return": last.map(|p| p.reward),
                "expert_return": expert_return,
                "env_steps": last.map_or(0, |p| p.env_steps),
                "seconds": last.map_or(0.0, |p| p.wall),
                "simulator_seconds": last.map_or(0.0, |p| p.sim),
                "policy": o.out,
            })
        );
    } else if !o.quiet {
        if let Some(p) = last {
            println!(
                "{} iterations, {:.1} s: {} distance {:.4e}",
                p.iteration,
                p.wall,
                if a.window.is_some() {
                    "tracking"
                } else {
                    "Chamfer"
                },
                p.loss
            );
            if a.reward.is_some() {
                println!(
                    "return {:.4} (the expert's: {})",
                    p.reward,
                    expert_return.map_or("not recorded".into(), |r| format!("{r:.4}"))
                );
            }
        }
        println!("wrote {}", o.out.display());
    }
    Ok(())
}

/// `joule imitate --algo bc`: the scene's `mlp` policy regressed onto the
/// controls a recording's environment 0 applied, at its recorded states.
fn clone_behaviour(a: &ImitateArgs, scene: &Scene) -> Result<()> {
    let o = &a.outputs;
    let (states, controls) = demonstration(a, scene)?;
    let spec = policy::spec(scene, a.policy.as_deref()).map_err(|e| miette!("{e}"))?;
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(a.seed);
    let mut pol = Policy::new(scene, spec, &mut rng).map_err(learn_error)?;
    let settings = joule_learn::clone::Cloning {
        reward: a.reward.clone(),
        steps: a.steps.unwrap_or(controls.len()),
        eval_every: 100,
        lr: a.lr.unwrap_or(3e-3),
        lr_decay: a.lr_decay_iters(),
    };
    let mut cl = joule_learn::clone::Cloner::new(scene, &mut pol, &states, &controls, settings)
        .map_err(learn_error)?;
    let mut bar = Progress::iterations(a.iters as u64, "clone", !o.quiet && !o.json);
    for _ in 0..a.iters {
        let p = cl.iterate(&mut pol).map_err(learn_error)?;
        bar.message(&format!("error {:.3e} | return {:.3}", p.loss, p.reward));
        bar.inc();
    }
    bar.finish();
    cl.evaluate_last(&pol).map_err(learn_error)?;
    write_weights(&pol, &o.out)?;
    if let Some(path) = &o.curve {
        write_curve(path, &cl.curve)?;
    }
    let last = cl.curve.last();
    let error = cl.error(&pol).map_err(learn_error)?;
    if o.json {
        println!(
            "{}",
            json!({
                "scene": a.scene.display().to_string(),
                "algo": "bc",
                "iterations": a.iters,
                "samples": controls.len(),
                "error": error,
                "return": last.map(|p| p.reward).filter(|_| a.reward.is_some()),
                "seconds": last.map_or(0.0, |p| p.wall),
                "policy": o.out,
            })
        );
    } else if !o.quiet {
        println!(
            "{} iterations on {} samples: control error {error:.4e} (squared, in half ranges)",
            a.iters,
            controls.len()
        );
        if let (Some(p), Some(_)) = (last, &a.reward) {
            println!("return {:.4}", p.reward);
        }
        println!("wrote {}", o.out.display());
    }
    Ok(())
}

/// The demonstration a cloning run fits (what cloning cannot use refused
/// first): the states before each step (`--state`) and the controls
/// applied there.
#[allow(clippy::type_complexity)]
fn demonstration(
    a: &ImitateArgs,
    scene: &Scene,
) -> Result<(Vec<(Vec<f64>, Vec<f64>)>, Vec<Vec<f64>>)> {
    let refuse = |flag: &str, help: &str| -> Result<()> {
        Err(miette!(
            help = help.to_string(),
            "`{flag}` has no meaning for behaviour cloning (`--algo bc` fits the expert's controls at its states, no simulation in the loop)"
        ))
    };
    if a.window.is_some() {
        refuse(
            "--window",
            "leave `--window` out, or imitate through the simulator with `--algo ild`",
        )?;
    }
    if !a.matched.is_empty() {
        refuse(
            "--match",
            "leave `--match` out: cloning fits the controls, not outputs",
        )?;
    }
    if a.noise != 0.0 {
        refuse(
            "--noise",
            "leave `--noise` out: cloning never resets an environment",
        )?;
    }
    let nc = scene.model().controls.len();
    let controls = crate::files::read_applied(&a.expert, nc)?;
    let mut states = crate::files::read_states(&a.expert, scene.dofs(), "--window")?;
    if states.len() <= controls.len() {
        return Err(miette!(
            help = "record the demonstration with `joule run SCENE --out demo.npz --state`",
            "`{}` has {} recorded states for {} steps: cloning needs the state before every step",
            a.expert.display(),
            states.len(),
            controls.len()
        ));
    }
    states.truncate(controls.len());
    Ok((states, controls))
}

/// `joule imitate --algo bc` of a `trajopt` policy (DiffTOP's imitation
/// objective): its learned params fitted so that its plans from the
/// demonstration's states start with the controls the expert applied.
fn clone_planner(
    a: &ImitateArgs,
    (scene, model): Scenes,
    name: &str,
    workers: usize,
) -> Result<()> {
    let (states, controls) = demonstration(a, scene)?;
    let mut pc = joule_learn::planning::PlanConfig::new(a.reward.as_deref().unwrap_or(""));
    pc.episode = controls.len();
    pc.clone = Some(joule_learn::planning::CloneDemo { states, controls });
    train_imitating_planner(a, (scene, model), name, workers, pc)
}
