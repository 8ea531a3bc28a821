//! The `joule` command-line interface.

mod bench;
mod check;
mod fmt;
mod import;
mod optimize;
mod plot;
mod progress;
mod repl;
mod run;
mod train;
mod viewer;

use clap::{Parser, Subcommand, ValueEnum};
use joule_compiler::compiled::Backend;
use joule_compiler::model::Precision;
use joule_compiler::Emit;
use std::io::IsTerminal;
use std::path::PathBuf;
use std::process::ExitCode;

/// Joule: a differentiable physics compiler.
#[derive(Parser)]
#[command(name = "joule", version, about, long_about = None)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Parse and resolve scene files; report every error, or print an intermediate form.
    #[command(
        after_help = "Examples:\n  joule check scenes/hanging_cloth.joule\n  joule check scenes/*.joule\n  joule check scenes/pendulum.joule --emit model"
    )]
    Check {
        /// Scene files to check.
        #[arg(required = true)]
        files: Vec<PathBuf>,
        /// Print an intermediate form of each file to standard output.
        #[arg(long, value_enum)]
        emit: Option<EmitArg>,
        /// Colour in diagnostics.
        #[arg(long, value_enum, default_value_t = ColorArg::Auto)]
        color: ColorArg,
        /// Print compile time per pass to standard error (compiles kernels too).
        #[arg(long)]
        timings: bool,
        /// Kernel backend used with `--timings`.
        #[arg(long, value_enum, default_value_t = BackendArg::Jit)]
        backend: BackendArg,
        /// One JSON object per file on standard output: `file`, `ok`, `diagnostics`
        /// (severity, code, message, line, column, labels, help).
        #[arg(long, conflicts_with = "emit")]
        json: bool,
        /// Print nothing but diagnostics.
        #[arg(long)]
        quiet: bool,
    },
    /// Convert a MuJoCo MJCF model (XML) into a Joule scene (printed, or written to -o).
    #[command(
        after_help = "Examples:\n  joule import ant.xml -o ant.joule\n  joule import humanoid.xml --lenient > humanoid.joule\n\nA scene can also load a model directly: use \"ant.xml\""
    )]
    Import {
        /// The MJCF file.
        model: PathBuf,
        /// Write the scene here instead of standard output.
        #[arg(short, long)]
        out: Option<PathBuf>,
        /// Skip unsupported elements and attributes with a warning instead of failing.
        #[arg(long)]
        lenient: bool,
        /// Colour in diagnostics.
        #[arg(long, value_enum, default_value_t = ColorArg::Auto)]
        color: ColorArg,
    },
    /// Print a shell completion script (bash, zsh, fish, elvish, powershell).
    #[command(
        after_help = "Example:\n  joule completions bash > ~/.local/share/bash-completion/completions/joule"
    )]
    Completions {
        /// The shell.
        shell: clap_complete::Shell,
    },
    /// Format scene files canonically (in place), or check that they are.
    #[command(
        after_help = "Examples:\n  joule fmt scenes/*.joule\n  joule fmt --check scenes/*.joule     # exit 1 if a file would change\n  joule fmt --stdout my_robot.joule"
    )]
    Fmt {
        /// Scene files to format.
        #[arg(required = true)]
        files: Vec<PathBuf>,
        /// Change nothing; list the files that are not formatted and exit 1 if any.
        #[arg(long, conflicts_with = "stdout")]
        check: bool,
        /// Print the formatted text instead of rewriting the files.
        #[arg(long)]
        stdout: bool,
        /// Colour in diagnostics.
        #[arg(long, value_enum, default_value_t = ColorArg::Auto)]
        color: ColorArg,
        /// Print nothing but errors.
        #[arg(long)]
        quiet: bool,
    },
    /// An interactive session: step, inspect, evaluate expressions, add items, differentiate.
    #[command(
        after_help = "Examples:\n  joule repl scenes/hanging_cloth.joule\n  joule repl scenes/pendulum.joule < session.txt   # a script: exit 1 if a command fails\n\nInside: `:help`, `:step 10`, `norm(cloth[0, 0].x - cloth[1, 0].x)`, `:grad sag 60`."
    )]
    Repl {
        /// The scene to start with (default: an empty scene).
        scene: Option<PathBuf>,
    },
    /// Create a new scene file from a commented template.
    #[command(
        after_help = "Example:\n  joule new my_robot        # writes my_robot.joule\n  joule run my_robot.joule"
    )]
    New {
        /// Name of the scene (the file is NAME.joule).
        name: String,
    },
    /// Simulate a batch of environments and report observations, losses and rewards.
    #[command(
        after_help = "Examples:\n  joule run scenes/hanging_cloth.joule --steps 120\n  joule run scenes/soft_block.joule --batch 64 --param youngs=3e5 --json\n  joule run scenes/pendulum.joule --steps 1000 --out pendulum.csv\n  joule run scenes/cloth_drape.joule --steps 150 --html drape.html   # open in a browser"
    )]
    Run {
        #[command(flatten)]
        sim: SimArgs,
        /// Environments simulated at once.
        #[arg(long, default_value_t = 1)]
        batch: usize,
        /// Worker threads (default: all cores). Results do not depend on it.
        #[arg(long)]
        threads: Option<usize>,
        /// Write the trajectory of every output: `.csv`, `.npy` or `.npz`.
        #[arg(long)]
        out: Option<PathBuf>,
        /// Also record every environment's free DOFs in the `.npz` (`state.x`, `state.v`:
        /// [steps + 1][environment][DOF]); `joule imitate --window` starts its windows from them.
        #[arg(long, requires = "out")]
        state: bool,
        /// Drive the scene's controls by a trained policy (`joule train` / `joule imitate` weights).
        #[arg(long, value_name = "P.safetensors")]
        policy: Option<PathBuf>,
        /// Write a self-contained HTML page that plays the trajectory back in 3D.
        #[arg(long, value_name = "F.html")]
        html: Option<PathBuf>,
        /// The environment the `--html` page shows.
        #[arg(long, value_name = "K", default_value_t = 0, requires = "html")]
        html_env: usize,
        /// Print one JSON object instead of a table.
        #[arg(long)]
        json: bool,
        /// Print nothing but warnings and errors.
        #[arg(long)]
        quiet: bool,
    },
    /// Plot columns of a CSV file (a `run --out` trajectory, a learning curve) as a PNG.
    #[command(
        after_help = "Examples:\n  joule run scenes/pendulum.joule --steps 500 --out pendulum.csv\n  joule plot pendulum.csv -o pendulum.png --y angle\n  joule plot curve.csv -o curve.png --x iteration --y loss,reward"
    )]
    Plot {
        /// The CSV file: a header row of column names, then numeric rows.
        input: PathBuf,
        /// The PNG image to write.
        #[arg(short, long, value_name = "OUT.png")]
        output: PathBuf,
        /// The x column (default: `t`, `time`, `step` or `iteration` if present, else the first).
        #[arg(long, value_name = "COLUMN")]
        x: Option<String>,
        /// The y columns, comma-separated (default: all others but `env`, at most ten).
        #[arg(long, value_name = "COL1,COL2")]
        y: Option<String>,
        /// With an `env` column (a batched trajectory): the environment plotted.
        #[arg(long, value_name = "K", default_value_t = 0)]
        env: usize,
        /// Image width in pixels.
        #[arg(long, default_value_t = 1000)]
        width: u32,
        /// Image height in pixels.
        #[arg(long, default_value_t = 600)]
        height: u32,
    },
    /// Optimise controls (trajectory optimisation, MPC) or fit parameters through the simulator.
    #[command(
        after_help = "Examples:\n  joule optimize scenes/reacher.joule --loss distance --wrt controls --steps 60 --optimizer lbfgs\n  joule optimize scenes/reacher.joule --loss distance --wrt controls --mpc --horizon 20 --steps 60\n  joule run scenes/spring_chain.joule --steps 100 --param EA=3000 --out rec.npz\n  joule optimize scenes/spring_chain.joule --match tip=rec.npz --wrt EA        # identify EA\n  joule optimize scenes/spring_chain.joule --match tip=rec.npz --chamfer --wrt EA   # imitate (ILD)\n  joule optimize scenes/pendulum.joule --loss miss --wrt length --curve curve.csv && joule plot curve.csv -o curve.png"
    )]
    Optimize {
        /// The scene file.
        scene: PathBuf,
        /// Steps per rollout (default: 100, or the length of the `--match` recording).
        #[arg(long)]
        steps: Option<usize>,
        /// Override a parameter (repeatable); optimised ones start there.
        #[arg(long = "param", value_name = "NAME=VALUE")]
        params: Vec<String>,
        /// A `loss` to minimise (after the last step).
        #[arg(long, conflicts_with_all = ["reward", "track"])]
        loss: Option<String>,
        /// A `reward` to maximise (summed over the steps).
        #[arg(long, conflicts_with = "track")]
        reward: Option<String>,
        /// Minimise the squared distance of an output to a recorded trajectory (`joule run --out F.npz`).
        #[arg(long = "match", value_name = "OUTPUT=FILE.npz")]
        track: Option<String>,
        /// With `--match`: the bidirectional Chamfer distance to the recording (imitation from one
        /// demonstration, as in ILD) instead of step-by-step errors.
        #[arg(long, requires = "track")]
        chamfer: bool,
        /// What to optimise: `controls` (one per step) and/or parameter names, comma-separated.
        #[arg(long, required = true)]
        wrt: String,
        /// Iterations (with `--mpc`: per step).
        #[arg(long, default_value_t = 50)]
        iters: usize,
        /// The optimiser.
        #[arg(long, value_enum, default_value_t = OptimizerArg::Lbfgs)]
        optimizer: OptimizerArg,
        /// Adam's learning rate (in the unconstrained variables).
        #[arg(long, default_value_t = 0.05)]
        lr: f64,
        /// Model-predictive control: re-plan `--horizon` steps from every state, apply the first control.
        #[arg(long)]
        mpc: bool,
        /// The MPC planning horizon, in steps.
        #[arg(long, default_value_t = 20, requires = "mpc")]
        horizon: usize,
        /// Write the optimised controls, one row per step: `.csv` or `.npy`.
        #[arg(long)]
        out: Option<PathBuf>,
        /// Write every evaluation (value, gradient norm, seconds) as CSV, for `joule plot`.
        #[arg(long)]
        curve: Option<PathBuf>,
        /// Print one JSON object.
        #[arg(long)]
        json: bool,
        /// Print nothing but errors.
        #[arg(long)]
        quiet: bool,
    },
    /// Train the scene's `policy` to maximise a reward: analytic policy gradients through the
    /// simulator (apg), short-horizon actor-critic (shac), or model-free PPO (the baseline).
    #[command(
        after_help = "Examples:\n  joule train scenes/cartpole.joule --reward height --algo shac --iters 200 --curve curve.csv\n  joule train scenes/cartpole.joule --reward height --algo ppo --checkpoint ck.safetensors\n  joule train scenes/cartpole.joule --reward height --algo ppo --resume ck.safetensors --iters 400"
    )]
    Train {
        /// The scene file (with a `policy` item).
        scene: PathBuf,
        /// The `reward` item maximised (summed over each episode).
        #[arg(long)]
        reward: String,
        /// The algorithm.
        #[arg(long, value_enum, default_value_t = AlgoArg::Shac)]
        algo: AlgoArg,
        /// The `policy` item trained (default: the scene's only one).
        #[arg(long)]
        policy: Option<String>,
        /// Environments simulated at once.
        #[arg(long, default_value_t = 64)]
        batch: usize,
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
        /// Standard deviation of the velocity jitter at every reset.
        #[arg(long, default_value_t = 0.1)]
        noise: f64,
        /// Worker threads for the simulation (results do not depend on it).
        #[arg(long)]
        threads: Option<usize>,
        /// Stop once the mean episode return reaches this value.
        #[arg(long)]
        target: Option<f64>,
        /// Surrogate gradients of `backward =` clauses (`off`: exact gradients).
        #[arg(long, value_enum, default_value_t = Switch::On)]
        surrogate: Switch,
        /// Checkpoint file, written atomically every `--every` iterations and at the end.
        #[arg(long)]
        checkpoint: Option<PathBuf>,
        /// Iterations between checkpoints.
        #[arg(long, default_value_t = 10)]
        every: usize,
        /// Continue from a checkpoint (bitwise the run it continues).
        #[arg(long)]
        resume: Option<PathBuf>,
        #[command(flatten)]
        outputs: train::Outputs,
    },
    /// Imitate one demonstration (`joule run --out demo.npz`): train the scene's `policy` by the
    /// Chamfer distance between its trajectory and the expert's, through the simulator (ILD).
    #[command(
        after_help = "Examples:\n  joule run scenes/reacher.joule --steps 100 --policy expert.safetensors --out demo.npz\n  joule imitate scenes/reacher.joule --expert demo.npz --match fingertip --reward closeness"
    )]
    Imitate {
        /// The scene file (with a `policy` item).
        scene: PathBuf,
        /// The demonstration (`joule run --out demo.npz`; environment 0 is used).
        #[arg(long)]
        expert: PathBuf,
        /// The outputs whose trajectories are matched, comma-separated (positions and velocities
        /// together match the pace as well as the path).
        #[arg(
            long = "match",
            value_name = "OUTPUT,...",
            value_delimiter = ',',
            required = true
        )]
        matched: Vec<String>,
        /// The algorithm (ILD: Chamfer distance through the simulator).
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
        /// Learning rate.
        #[arg(long, default_value_t = 3e-3)]
        lr: f64,
        /// Standard deviation of the velocity jitter at every reset.
        #[arg(long, default_value_t = 0.0)]
        noise: f64,
        /// Seed.
        #[arg(long, default_value_t = 0)]
        seed: u64,
        #[command(flatten)]
        outputs: train::Outputs,
    },
    /// Differentiate a loss after N steps with respect to parameters (adjoint through time).
    #[command(
        after_help = "Examples:\n  joule grad scenes/hanging_cloth.joule --loss sag --steps 60\n  joule grad scenes/pendulum.joule --loss miss --wrt length --check"
    )]
    Grad {
        #[command(flatten)]
        sim: SimArgs,
        /// The `loss` item to differentiate (after the last step).
        #[arg(long, required_unless_present = "reward", conflicts_with = "reward")]
        loss: Option<String>,
        /// Or a `reward` item, summed over the steps.
        #[arg(long)]
        reward: Option<String>,
        /// Parameters to differentiate with respect to, comma-separated (default: all).
        #[arg(long)]
        wrt: Option<String>,
        /// Also compute central finite differences and their relative error.
        #[arg(long)]
        check: bool,
        /// Print one JSON object.
        #[arg(long)]
        json: bool,
    },
    /// Measure a scene: env-steps/s, simulated s per s, ns per DOF-step, gradient cost, compile time, memory.
    #[command(
        after_help = "Examples:\n  joule bench scenes/ant.joule --batch 1,64 --threads 1,2\n  joule bench scenes/pendulum.joule --batch 1,1024 --steps 1000 --json\n\nEach figure is the median of --repeats timed runs after a warm-up, on a rayon pool of\nexactly --threads workers. Peak memory is VmHWM (Linux only)."
    )]
    Bench {
        /// The scene file.
        scene: PathBuf,
        /// Batch sizes, comma-separated.
        #[arg(long, value_delimiter = ',', default_value = "1,64,1024,4096")]
        batch: Vec<usize>,
        /// Thread counts, comma-separated.
        #[arg(long, value_delimiter = ',', default_value = "1,2")]
        threads: Vec<usize>,
        /// Steps per timed repeat (default: about 0.3 s worth).
        #[arg(long)]
        steps: Option<usize>,
        /// Timed repeats; the median is reported.
        #[arg(long, default_value_t = 3)]
        repeats: usize,
        /// Steps of the differentiated rollout (gradient / forward ratio); 0 skips it.
        #[arg(long, default_value_t = 100)]
        horizon: usize,
        /// Kernel precision, overriding the scene's `precision` setting.
        #[arg(long, value_enum)]
        precision: Option<PrecisionArg>,
        /// Print one JSON object.
        #[arg(long)]
        json: bool,
    },
}

/// Simulation options shared by `run` and `grad`.
#[derive(clap::Args)]
struct SimArgs {
    /// The scene file.
    scene: PathBuf,
    /// Steps to simulate.
    #[arg(long, default_value_t = 100)]
    steps: usize,
    /// Override a parameter in every environment (repeatable).
    #[arg(long = "param", value_name = "NAME=VALUE")]
    params: Vec<String>,
    /// Kernel backend.
    #[arg(long, value_enum, default_value_t = BackendArg::Jit)]
    backend: BackendArg,
    /// Kernel precision, overriding the scene's `precision` setting.
    #[arg(long, value_enum)]
    precision: Option<PrecisionArg>,
}

#[derive(Clone, Copy, ValueEnum)]
enum PrecisionArg {
    /// f64 kernels, two environments per SIMD vector.
    F64,
    /// f32 kernels, four environments per SIMD vector (the solves stay f64).
    F32,
}

impl From<PrecisionArg> for Precision {
    fn from(p: PrecisionArg) -> Precision {
        match p {
            PrecisionArg::F64 => Precision::F64,
            PrecisionArg::F32 => Precision::F32,
        }
    }
}

#[derive(Clone, Copy, ValueEnum)]
enum BackendArg {
    /// Cranelift machine code.
    Jit,
    /// The reference interpreter.
    Interp,
}

#[derive(Clone, Copy, ValueEnum)]
enum AlgoArg {
    /// Analytic policy gradients through short windows of the batched rollout.
    Apg,
    /// Short-horizon actor-critic: APG with a learned value closing each window.
    Shac,
    /// Proximal policy optimisation (model-free; no gradient through the simulator).
    Ppo,
}

#[derive(Clone, Copy, ValueEnum)]
enum ImitateAlgo {
    /// Imitation learning by differentiable physics: a Chamfer distance between trajectories.
    Ild,
}

#[derive(Clone, Copy, PartialEq, Eq, ValueEnum)]
enum Switch {
    On,
    Off,
}

#[derive(Clone, Copy, ValueEnum)]
enum OptimizerArg {
    /// Adam (first order; `--lr`).
    Adam,
    /// L-BFGS with a Moré-Thuente line search.
    Lbfgs,
}

#[derive(Clone, Copy, ValueEnum)]
enum EmitArg {
    /// The parsed syntax tree.
    Ast,
    /// The resolved model: DOF layout, params, controls, templates and instances.
    Model,
    /// Scalar IR of the energy, dissipation and output kernels.
    Ir,
    /// Scalar IR of the derivative kernels (gradients, HVPs, Hessian blocks, VJPs).
    GradIr,
}

#[derive(Clone, Copy, PartialEq, Eq, ValueEnum)]
enum ColorArg {
    Auto,
    Always,
    Never,
}

impl From<BackendArg> for Backend {
    fn from(b: BackendArg) -> Backend {
        match b {
            BackendArg::Jit => Backend::Jit,
            BackendArg::Interp => Backend::Interp,
        }
    }
}

impl ColorArg {
    /// Whether diagnostics on standard error are coloured.
    fn enabled(self) -> bool {
        match self {
            ColorArg::Always => true,
            ColorArg::Never => false,
            ColorArg::Auto => std::io::stderr().is_terminal(),
        }
    }
}

/// Stack for the compiler thread: deeply nested (but valid) input must not overflow.
const COMPILER_STACK: usize = 256 << 20;

fn main() -> ExitCode {
    let cli = Cli::parse();
    std::thread::Builder::new()
        .stack_size(COMPILER_STACK)
        .spawn(move || run(cli))
        .expect("spawning the compiler thread")
        .join()
        .unwrap_or(ExitCode::from(101))
}

fn common(s: SimArgs) -> run::Common {
    run::Common {
        scene: s.scene,
        steps: s.steps,
        params: s.params,
        backend: s.backend.into(),
        precision: s.precision.map(Into::into),
    }
}

/// Reports an error as a miette diagnostic; the exit code is 1.
fn finish(result: miette::Result<()>) -> ExitCode {
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("{e:?}");
            ExitCode::FAILURE
        }
    }
}

/// The template `joule new` writes: small, complete, and commented.
const TEMPLATE: &str = r#"// NAME: a starting point. Check it with `joule check NAME.joule`,
// run it with `joule run NAME.joule --steps 200`, differentiate it with
// `joule grad NAME.joule --loss height --check`. The language: docs/LANGUAGE.md.
scene "NAME"

settings {
    dt = 1e-3                          // s
    gravity = vec3(0, 0, -9.81)        // m/s^2
    integrator = symplectic_euler      // or implicit_euler(iterations = 20, tolerance = 1e-8)
}

param stiffness = 200 in 1..1e4        // differentiable, one value per environment

// A chain of 5 particles hanging from a fixed first one.
particle bead[i in 0..5] { x = vec3(0.1 * i, 0, 1), mass = 0.05 }
fix bead[0]

energy spring(a: particle, b: particle, k: scalar) =
    0.5 * k * (norm(a.x - b.x) - rest(norm(a.x - b.x)))^2
spring(bead[i], bead[i + 1], stiffness) for i in 0..4

observe tip = bead[4].x
loss height = bead[4].x.z
"#;

fn run(cli: Cli) -> ExitCode {
    match cli.command {
        Command::Completions { shell } => {
            use clap::CommandFactory;
            clap_complete::generate(shell, &mut Cli::command(), "joule", &mut std::io::stdout());
            ExitCode::SUCCESS
        }
        Command::Import {
            model,
            out,
            lenient,
            color,
        } => {
            let color = match color {
                ColorArg::Always => true,
                ColorArg::Never => false,
                ColorArg::Auto => std::io::stderr().is_terminal(),
            };
            import::run(&model, out.as_deref(), lenient, color)
        }
        Command::New { name } => {
            let valid = !name.is_empty()
                && name
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-');
            if !valid {
                eprintln!("error: `{name}` is not a plain file name (letters, digits, `_`, `-`)");
                return ExitCode::FAILURE;
            }
            let path = PathBuf::from(format!("{name}.joule"));
            // create_new: never overwrite a user's file.
            match std::fs::OpenOptions::new()
                .write(true)
                .create_new(true)
                .open(&path)
            {
                Ok(mut f) => {
                    use std::io::Write;
                    if let Err(e) = f.write_all(TEMPLATE.replace("NAME", &name).as_bytes()) {
                        eprintln!("error: cannot write `{}`: {e}", path.display());
                        return ExitCode::FAILURE;
                    }
                    println!(
                        "wrote {} — next: joule run {} --steps 200",
                        path.display(),
                        path.display()
                    );
                    ExitCode::SUCCESS
                }
                Err(e) => {
                    eprintln!("error: cannot create `{}`: {e}", path.display());
                    ExitCode::FAILURE
                }
            }
        }
        Command::Repl { scene } => repl::repl(scene.as_deref()),
        Command::Fmt {
            files,
            check,
            stdout,
            color,
            quiet,
        } => {
            let mode = match (check, stdout) {
                (true, _) => fmt::Mode::Check,
                (_, true) => fmt::Mode::Stdout,
                _ => fmt::Mode::Write,
            };
            fmt::fmt(&files, mode, color.enabled(), quiet)
        }
        Command::Run {
            sim,
            batch,
            threads,
            out,
            state,
            policy,
            html,
            html_env,
            json,
            quiet,
        } => {
            let html = html.map(|path| viewer::Html {
                path,
                env: html_env,
            });
            if let Some(t) = threads {
                if let Err(e) = rayon::ThreadPoolBuilder::new()
                    .num_threads(t.max(1))
                    .build_global()
                {
                    eprintln!("warning: cannot size the thread pool: {e}");
                }
            }
            finish(run::run(
                &common(sim),
                batch,
                threads,
                out.as_deref().map(|path| run::Record { path, state }),
                html.as_ref(),
                json,
                quiet,
                policy.as_deref(),
            ))
        }
        Command::Plot {
            input,
            output,
            x,
            y,
            env,
            width,
            height,
        } => finish(plot::plot(&plot::Plot {
            input,
            output,
            x,
            y,
            env,
            width,
            height,
        })),
        Command::Train {
            scene,
            reward,
            algo,
            policy,
            batch,
            horizon,
            iters,
            episode,
            seed,
            lr,
            clip,
            noise,
            threads,
            target,
            surrogate,
            checkpoint,
            every,
            resume,
            outputs,
        } => {
            let algo = match algo {
                AlgoArg::Apg => joule_learn::Algo::Apg,
                AlgoArg::Shac => joule_learn::Algo::Shac,
                AlgoArg::Ppo => joule_learn::Algo::Ppo,
            };
            let mut config = joule_learn::Config::new(algo, &reward);
            config.policy = policy;
            config.batch = batch.max(1);
            config.horizon = horizon.max(1);
            config.episode = episode;
            config.seed = seed;
            config.noise = noise;
            config.threads = threads.unwrap_or_else(rayon::current_num_threads);
            config.lr = lr.unwrap_or(config.lr);
            config.clip = clip.unwrap_or(config.clip);
            finish(train::train(
                &scene,
                config,
                iters,
                surrogate == Switch::On,
                checkpoint.as_deref(),
                every,
                resume.as_deref(),
                target,
                &outputs,
            ))
        }
        Command::Imitate {
            scene,
            expert,
            matched,
            algo: ImitateAlgo::Ild,
            policy,
            reward,
            steps,
            window,
            iters,
            batch,
            lr,
            noise,
            seed,
            outputs,
        } => {
            let args = train::ImitateArgs {
                scene,
                expert,
                outputs: matched,
                policy,
                reward,
                steps,
                window,
                iters,
                batch: batch.max(1),
                lr,
                noise,
                seed,
            };
            finish(train::imitate(&args, &outputs))
        }
        Command::Optimize {
            scene,
            steps,
            params,
            loss,
            reward,
            track,
            chamfer,
            wrt,
            iters,
            optimizer,
            lr,
            mpc,
            horizon,
            out,
            curve,
            json,
            quiet,
        } => {
            let options = optimize::Options {
                loss,
                reward,
                track,
                chamfer,
                wrt,
                iters,
                method: match optimizer {
                    OptimizerArg::Adam => joule_runtime::optimize::Method::Adam(lr),
                    OptimizerArg::Lbfgs => joule_runtime::optimize::Method::Lbfgs,
                },
                mpc: mpc.then_some(horizon),
                out,
                curve,
                json,
                quiet,
            };
            let common = run::Common {
                scene,
                steps: steps.unwrap_or(100),
                params,
                backend: Backend::Jit,
                precision: None,
            };
            finish(optimize::run(&common, &options, steps.is_some()))
        }
        Command::Grad {
            sim,
            loss,
            reward,
            wrt,
            check,
            json,
        } => {
            let target = match (loss, reward) {
                (Some(l), _) => run::Target::Loss(l),
                (None, Some(r)) => run::Target::Reward(r),
                (None, None) => unreachable!("clap requires one of --loss and --reward"),
            };
            finish(run::grad(
                &common(sim),
                &target,
                wrt.as_deref(),
                check,
                json,
            ))
        }
        Command::Check {
            files,
            emit,
            color,
            timings,
            backend,
            json,
            quiet,
        } => check::check(
            &files,
            &check::Options {
                emit: emit.map(|e| match e {
                    EmitArg::Ast => Emit::Ast,
                    EmitArg::Model => Emit::Model,
                    EmitArg::Ir => Emit::Ir,
                    EmitArg::GradIr => Emit::GradIr,
                }),
                color: color.enabled(),
                timings: timings.then_some(backend.into()),
                json,
                quiet,
            },
        ),
        Command::Bench {
            scene,
            batch,
            threads,
            steps,
            repeats,
            horizon,
            precision,
            json,
        } => finish(bench::bench(&bench::Options {
            scene,
            batches: batch,
            threads,
            steps,
            repeats,
            horizon,
            precision: precision.map(Into::into),
            json,
        })),
    }
}
