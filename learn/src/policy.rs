//! A scene's `policy` item as a network: observations (the `observe` items it
//! names, normalised) in, the controls it drives out. Bounded controls are
//! squashed into their range, `mid + half * tanh(y)`; the others are `y`.
//! All environments go through one matrix product per layer.

use crate::net::Mlp;
use crate::norm::Normalizer;
use candle_core::{DType, Device, Result, Tensor};
use joule_compiler::model::{Activation, Init, Policy as PolicySpec};
use joule_runtime::Scene;
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};
use std::collections::HashMap;

/// Where a PPO policy's standard deviations come from.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Std {
    /// One learned log standard deviation per control, the same in every
    /// state (the trainer holds it, the network does not).
    #[default]
    Shared,
    /// A function of the state, as Brax's tanh-normal: the network has a
    /// second output per control, the raw scale `s`, and the standard
    /// deviation is `softplus(s) + 0.001`.
    State,
}

/// The smallest standard deviation of a [`Std::State`] policy.
pub const MIN_STD: f64 = 1e-3;

/// A control's unit in an imitation loss: half its range (`bounds`), 1
/// where it is unbounded. Behaviour cloning of a network and of a planner
/// measure their control errors in it alike.
pub fn control_unit(bounds: Option<(f64, f64)>) -> f64 {
    bounds.map_or(1.0, |(lo, hi)| (hi - lo) / 2.0)
}

/// A policy network bound to a compiled scene.
pub struct Policy {
    /// The item's name.
    pub name: String,
    /// Output rows read as inputs (rows of `Sim::outputs`).
    rows: Vec<usize>,
    /// Control indices driven, in output order.
    pub controls: Vec<usize>,
    /// Ranges of those controls.
    bounds: Vec<Option<(f64, f64)>>,
    /// The network: inputs -> hidden -> one output per control (the
    /// pre-squash means), then with [`Std::State`] one raw scale per control.
    pub net: Mlp,
    /// Where the standard deviations of its stochastic actions come from.
    pub std: Std,
    /// Running observation statistics.
    pub norm: Normalizer,
    /// Layer widths and activation, for checking saved weights.
    sizes: Vec<usize>,
    activation: Activation,
}

/// The tensors and the metadata of a safetensors file.
pub fn read_safetensors(
    bytes: &[u8],
) -> Result<(HashMap<String, Tensor>, HashMap<String, String>)> {
    let (_, header) = safetensors::SafeTensors::read_metadata(bytes)
        .map_err(|e| candle_core::Error::Msg(format!("not a safetensors file: {e}")))?;
    let meta = header.metadata().clone().unwrap_or_default();
    Ok((
        candle_core::safetensors::load_buffer(bytes, &Device::Cpu)?,
        meta,
    ))
}

/// The policy item called `name`, or the only one when `name` is `None`.
pub fn spec<'m>(
    scene: &'m Scene,
    name: Option<&str>,
) -> std::result::Result<&'m PolicySpec, String> {
    by_name(
        &scene.model().policies,
        name,
        |p| &p.name,
        "policy",
        "the scene has no `policy` item; add one, e.g. `policy actor = mlp(inputs = [obs], outputs = u, hidden = [64, 64], activation = tanh)`",
        "policies; choose one with --policy NAME",
    )
}

/// The item of `all` called `name` (`name_of`), or the only one when `name`
/// is `None`: `what` names the kind in "no WHAT named ..", `none` is the
/// error for an empty list, `many` follows the count when there are several.
pub(crate) fn by_name<'m, T>(
    all: &'m [T],
    name: Option<&str>,
    name_of: impl Fn(&T) -> &str,
    what: &str,
    none: &str,
    many: &str,
) -> std::result::Result<&'m T, String> {
    match name {
        Some(n) => all.iter().find(|p| name_of(p) == n).ok_or_else(|| {
            let names: Vec<&str> = all.iter().map(&name_of).collect();
            if names.is_empty() {
                format!("no {what} named `{n}`: {none}")
            } else {
                format!(
                    "no {what} named `{n}` (the scene has: {})",
                    names.join(", ")
                )
            }
        }),
        None => match all {
            [one] => Ok(one),
            [] => Err(none.into()),
            _ => Err(format!("the scene has {} {many}", all.len())),
        },
    }
}

/// The policy's last layer's scale for `init`: a [`Init::Small`] policy's
/// outputs start near 0 (the controls mid-range), LeCun's are not scaled.
fn last_scale(init: Init) -> f64 {
    match init {
        Init::Small => 0.01,
        Init::Lecun => 1.0,
    }
}

impl Policy {
    /// A freshly initialised network for `spec` (standard deviations
    /// [`Std::Shared`], held by the trainer when it needs them).
    pub fn new(scene: &Scene, spec: &PolicySpec, rng: &mut ChaCha8Rng) -> Result<Policy> {
        Policy::with_std(scene, spec, Std::Shared, rng)
    }

    /// A freshly initialised network for `spec` whose standard deviations come from `std`.
    pub fn with_std(
        scene: &Scene,
        spec: &PolicySpec,
        std: Std,
        rng: &mut ChaCha8Rng,
    ) -> Result<Policy> {
        let model = scene.model();
        let layout = scene.compiled.layout();
        let mut rows = vec![];
        for &i in &spec.inputs {
            let o = layout
                .output(&model.objectives[i].name)
                .expect("policy inputs are outputs of the scene");
            rows.extend(o.offset..o.offset + o.len);
        }
        let controls: Vec<usize> = spec.outputs.iter().map(|&c| c as usize).collect();
        let bounds = controls.iter().map(|&c| model.controls[c].bounds).collect();
        let mut sizes = vec![rows.len()];
        sizes.extend(&spec.hidden);
        sizes.push(match std {
            Std::Shared => controls.len(),
            Std::State => 2 * controls.len(),
        });
        Ok(Policy {
            name: spec.name.clone(),
            net: Mlp::new(
                &sizes,
                spec.activation,
                spec.init,
                last_scale(spec.init),
                rng,
            )?,
            std,
            norm: Normalizer::new(rows.len()),
            rows,
            controls,
            bounds,
            sizes,
            activation: spec.activation,
        })
    }

    /// Inputs of the network.
    pub fn inputs(&self) -> usize {
        self.rows.len()
    }

    /// The raw observations `[env][input]` from outputs `[row][env]`.
    pub fn observe(&self, outputs: &[Vec<f64>]) -> Vec<Vec<f64>> {
        let batch = outputs.first().map_or(0, Vec::len);
        (0..batch)
            .map(|e| self.rows.iter().map(|&r| outputs[r][e]).collect())
            .collect()
    }

    /// Normalised observations as a `[env, input]` tensor.
    pub fn input(&self, obs: &[Vec<f64>]) -> Result<Tensor> {
        Tensor::from_vec(
            self.normalized(obs),
            (obs.len(), self.inputs()),
            &Device::Cpu,
        )
    }

    /// Normalised observations, flat `[env][input]`.
    pub fn normalized(&self, obs: &[Vec<f64>]) -> Vec<f64> {
        self.norm.apply(obs).into_iter().flatten().collect()
    }

    /// The controls `[env, control]` for normalised inputs (differentiable),
    /// see [`Policy::squash`].
    pub fn forward(&self, input: &Tensor) -> Result<Tensor> {
        Ok(self.squash(&self.means(input)?)?.0)
    }

    /// The pre-squash means `[env, control]` for normalised inputs
    /// (differentiable): the network's outputs, without the raw scales of
    /// a [`Std::State`] network.
    pub fn means(&self, input: &Tensor) -> Result<Tensor> {
        let y = self.net.forward(input)?;
        match self.std {
            Std::Shared => Ok(y),
            Std::State => y.narrow(1, 0, self.controls.len()),
        }
    }

    /// The controls for pre-squash outputs `y` (`[env, control]`):
    /// `mid + half * tanh(y)` in bounded columns, `y` in the others; and the
    /// mask `[1, control]` of the bounded columns.
    pub fn squash(&self, y: &Tensor) -> Result<(Tensor, Tensor)> {
        let n = self.bounds.len();
        let row = |f: &dyn Fn(Option<(f64, f64)>) -> f64| {
            Tensor::from_vec(
                self.bounds.iter().map(|&b| f(b)).collect(),
                (1, n),
                &Device::Cpu,
            )
        };
        let mask = row(&|b| f64::from(u8::from(b.is_some())))?;
        let mid = row(&|b| b.map_or(0.0, |(l, h)| (l + h) / 2.0))?;
        let half = row(&|b| b.map_or(0.0, |(l, h)| (h - l) / 2.0))?;
        let squashed = y.tanh()?.broadcast_mul(&half)?.broadcast_add(&mid)?;
        let u = (squashed.broadcast_mul(&mask)? + y.broadcast_mul(&mask.affine(-1.0, 1.0)?)?)?;
        Ok((u, mask))
    }

    /// The controls' ranges (`None`: unbounded), in the network's output order.
    pub fn bounds(&self) -> &[Option<(f64, f64)>] {
        &self.bounds
    }

    /// Writes `u` (`[env, control]`) into a `[control][env]` table of all the scene's controls.
    pub fn write_controls(&self, u: &Tensor, all: &mut [Vec<f64>]) -> Result<()> {
        for (e, row) in u.to_vec2::<f64>()?.into_iter().enumerate() {
            for (k, &c) in self.controls.iter().enumerate() {
                all[c][e] = row[k];
            }
        }
        Ok(())
    }

    /// Seeds for the scene's outputs `[row][env]` from the gradient with respect
    /// to the normalised inputs (`[env, input]`) at raw observations `obs`:
    /// through the normalisation, zero where it clipped.
    pub fn input_seeds(
        &self,
        d_input: &Tensor,
        obs: &[Vec<f64>],
        rows: usize,
    ) -> Result<Vec<Vec<f64>>> {
        let d = d_input.to_vec2::<f64>()?;
        let std = self.norm.std();
        let mut seeds = vec![vec![0.0; obs.len()]; rows];
        for (e, (de, oe)) in d.iter().zip(obs).enumerate() {
            for (k, &r) in self.rows.iter().enumerate() {
                let z = (oe[k] - self.norm.mean[k]) / std[k];
                if z.abs() < 10.0 {
                    seeds[r][e] += de[k] / std[k];
                }
            }
        }
        Ok(seeds)
    }

    /// Named tensors (network and normalisation) for a safetensors file.
    pub fn named(&self) -> Result<Vec<(String, Tensor)>> {
        let dev = &Device::Cpu;
        let mut t = self.net.named("policy");
        t.push((
            "norm.mean".into(),
            Tensor::new(self.norm.mean.as_slice(), dev)?,
        ));
        t.push(("norm.m2".into(), Tensor::new(self.norm.m2.as_slice(), dev)?));
        t.push(("norm.count".into(), Tensor::new(&[self.norm.count], dev)?));
        Ok(t)
    }

    /// Metadata describing the network's shape, checked on load.
    pub fn metadata(&self) -> HashMap<String, String> {
        let mut meta = HashMap::from([
            ("joule.policy".into(), self.name.clone()),
            ("joule.sizes".into(), format!("{:?}", self.sizes)),
            ("joule.activation".into(), format!("{:?}", self.activation)),
        ]);
        if self.std == Std::State {
            meta.insert("joule.std".into(), "state".into());
        }
        meta
    }

    /// The policy a file written by [`Policy::to_bytes`] holds, bound to the
    /// scene's policy item of the same name.
    pub fn from_bytes(scene: &Scene, bytes: &[u8]) -> Result<Policy> {
        let (tensors, meta) = read_safetensors(bytes)?;
        let name = meta.get("joule.policy").map(String::as_str);
        let spec = spec(scene, name).map_err(candle_core::Error::Msg)?;
        let mut rng = rand::SeedableRng::seed_from_u64(0);
        let std = match meta.get("joule.std").map(String::as_str) {
            Some("state") => Std::State,
            _ => Std::Shared,
        };
        let mut policy = Policy::with_std(scene, spec, std, &mut rng)?;
        policy.load(&tensors, &meta)?;
        Ok(policy)
    }

    /// The weights and statistics as a safetensors file; an error if any
    /// of them is not finite (a diverged run's policy is never saved).
    pub fn to_bytes(&self) -> Result<Vec<u8>> {
        let named = self.named()?;
        crate::net::check_finite(&named)?;
        safetensors::serialize(named, Some(self.metadata()))
            .map_err(|e| candle_core::Error::Msg(e.to_string()))
    }

    /// The controls for outputs `[row][env]` (no gradient), written into the
    /// `[control][env]` table `all`.
    pub fn act(&self, outputs: &[Vec<f64>], all: &mut [Vec<f64>]) -> Result<()> {
        let u = self.forward(&self.input(&self.observe(outputs))?)?;
        self.write_controls(&u, all)
    }

    /// Loads weights and statistics written by [`Policy::named`] with
    /// [`Policy::metadata`]; every value must be finite.
    pub fn load(
        &mut self,
        tensors: &HashMap<String, Tensor>,
        meta: &HashMap<String, String>,
    ) -> Result<()> {
        for (k, v) in self.metadata() {
            if let Some(saved) = meta.get(&k).filter(|s| **s != v) {
                return Err(candle_core::Error::Msg(format!(
                    "the weights were saved for {k} = {saved}, this scene's policy has {v}"
                )));
            }
        }
        self.net.load("policy", &|n| tensors.get(n).cloned())?;
        let get = |n: &str| -> Result<Vec<f64>> {
            tensors
                .get(n)
                .ok_or_else(|| candle_core::Error::Msg(format!("missing tensor `{n}`")))?
                .to_dtype(DType::F64)?
                .to_vec1::<f64>()
        };
        let (mean, m2, count) = (get("norm.mean")?, get("norm.m2")?, get("norm.count")?);
        if mean.len() != self.inputs() || m2.len() != self.inputs() || count.len() != 1 {
            return Err(candle_core::Error::Msg(
                "normalisation statistics of the wrong size".into(),
            ));
        }
        if !mean.iter().chain(&m2).chain(&count).all(|v| v.is_finite()) {
            return Err(candle_core::Error::Msg(
                "non-finite normalisation statistics (NaN or infinity)".into(),
            ));
        }
        self.norm = Normalizer {
            count: count[0],
            mean,
            m2,
        };
        Ok(())
    }
}
