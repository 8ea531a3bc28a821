//! Learning through the Joule simulator: the simulator as a differentiable
//! layer between neural networks (candle) and a reward.
//!
//! - [`Policy`]: a scene's `policy` item as a batched MLP (one matrix product
//!   per layer for all environments), weights in safetensors files.
//! - [`Trainer`] with [`Algo::Apg`] (analytic policy gradients through short
//!   windows of the batched rollout), [`Algo::Shac`] (a learned value closes
//!   each window) and [`Algo::Ppo`] (the model-free baseline); checkpoints
//!   that resume bitwise; [`curve`]: the learning curve, one [`Point`] per
//!   iteration.
//! - [`imitate`]: a policy trained to reproduce one expert trajectory by the
//!   Chamfer distance between state trajectories, differentiated through the
//!   simulator (ILD).
//! - [`clone`]: behaviour cloning, the policy regressed onto one
//!   demonstration's controls at its states (the baseline of the two
//!   imitations through the simulator).
//! - [`planning`]: a `trajopt` policy (trajectory optimisation as the
//!   policy) trained through its optimiser into its cost's and model's params
//!   (apg and imitation; [`plan_ac`]: SHAC and PPO with a critic on the
//!   world's state).
//!
//! Why candle: a maintained pure-Rust tensor library with reverse-mode
//! autodiff and f64 on the CPU (finite-difference checks need f64), no
//! Python or libtorch to install, and safetensors as its native format.

pub mod adam;
pub mod clone;
pub mod curve;
pub mod envs;
pub mod fused;
pub mod imitate;
pub mod net;
pub mod norm;
pub mod plan_ac;
pub mod planning;
pub mod policy;
pub mod ppo;
pub mod trainer;
pub mod value;
pub mod window;

pub use curve::Point;
pub use policy::Policy;
pub use trainer::{Algo, Config, Trainer};
