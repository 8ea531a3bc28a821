//! Multi-layer perceptrons on candle: weights are candle `Var`s, the layers
//! are `candle_nn::Linear`, gradients come from candle's reverse mode.
//! Weights are initialised from the trainer's own seeded generator (not
//! candle's), so a run is reproducible bit for bit.

use candle_core::{DType, Device, Result, Tensor, Var};
use candle_nn::{Linear, Module};
use joule_compiler::model::{Activation, Init};
use rand::Rng;
use rand_chacha::ChaCha8Rng;

/// An error naming the first of the `named` tensors that holds a NaN or an
/// infinity: weights that are never saved or loaded.
pub fn check_finite(named: &[(String, Tensor)]) -> Result<()> {
    for (name, t) in named {
        let values = t.flatten_all()?.to_dtype(DType::F64)?.to_vec1::<f64>()?;
        if let Some(k) = values.iter().position(|v| !v.is_finite()) {
            return Err(candle_core::Error::Msg(format!(
                "tensor `{name}` holds a non-finite value ({}) at index {k}",
                values[k]
            )));
        }
    }
    Ok(())
}

/// A fully connected network: `sizes[0]` inputs, `sizes[last]` outputs,
/// `activation` between layers and none after the last. Its weights and
/// arithmetic are f64 unless [`Mlp::in_f32`] made them f32; it reads and
/// returns f64 either way.
pub struct Mlp {
    /// Weights `[out, in]` and biases `[out]`, layer by layer.
    params: Vec<(Var, Var)>,
    activation: Activation,
}

impl Mlp {
    /// Uniform(-gain/sqrt(in), gain/sqrt(in)) weights (`gain` from
    /// `init`: 1 for [`Init::Small`], sqrt(3) for LeCun's), zero biases; the
    /// last layer's weights are scaled by `last_scale` (small for a
    /// [`Init::Small`] policy, so it starts near the middle of the
    /// controls' ranges).
    pub fn new(
        sizes: &[usize],
        activation: Activation,
        init: Init,
        last_scale: f64,
        rng: &mut ChaCha8Rng,
    ) -> Result<Mlp> {
        let gain = match init {
            Init::Small => 1.0,
            Init::Lecun => 3f64.sqrt(),
        };
        let layers = sizes.len() - 1;
        let params = (0..layers)
            .map(|l| {
                let (fan_in, fan_out) = (sizes[l], sizes[l + 1]);
                let bound = gain / (fan_in as f64).sqrt();
                let scale = if l + 1 == layers { last_scale } else { 1.0 };
                let w: Vec<f64> = (0..fan_in * fan_out)
                    .map(|_| scale * rng.random_range(-bound..bound))
                    .collect();
                Ok((
                    Var::from_vec(w, (fan_out, fan_in), &Device::Cpu)?,
                    Var::zeros(fan_out, DType::F64, &Device::Cpu)?,
                ))
            })
            .collect::<Result<_>>()?;
        Ok(Mlp { params, activation })
    }

    /// The same network (the same initial weights, rounded) computing in f32:
    /// about twice the arithmetic per second, where f64's precision is not
    /// needed (a PPO value network; not a network differentiated through
    /// the simulator and checked against finite differences).
    pub fn in_f32(self) -> Result<Mlp> {
        let params = self
            .params
            .iter()
            .map(|(w, b)| {
                Ok((
                    Var::from_tensor(&w.as_tensor().to_dtype(DType::F32)?)?,
                    Var::from_tensor(&b.as_tensor().to_dtype(DType::F32)?)?,
                ))
            })
            .collect::<Result<_>>()?;
        Ok(Mlp {
            params,
            activation: self.activation,
        })
    }

    /// The weights' type.
    fn dtype(&self) -> DType {
        self.params
            .first()
            .map_or(DType::F64, |(w, _)| w.as_tensor().dtype())
    }

    /// The network applied to a batch `[rows, inputs]` (f64 in and out).
    pub fn forward(&self, x: &Tensor) -> Result<Tensor> {
        let mut h = x.to_dtype(self.dtype())?;
        for (l, (w, b)) in self.params.iter().enumerate() {
            h = Linear::new(w.as_tensor().clone(), Some(b.as_tensor().clone())).forward(&h)?;
            if l + 1 < self.params.len() {
                h = match self.activation {
                    Activation::Tanh => h.tanh()?,
                    Activation::Relu => h.relu()?,
                    Activation::Elu => h.elu(1.0)?,
                    Activation::Sigmoid => candle_nn::ops::sigmoid(&h)?,
                    Activation::Swish => (&h * candle_nn::ops::sigmoid(&h)?)?,
                    Activation::Identity => h,
                };
            }
        }
        h.to_dtype(DType::F64)
    }

    /// Widths of the layers, inputs first.
    pub fn sizes(&self) -> Vec<usize> {
        let dims = |l: usize| self.params[l].0.as_tensor().dims().to_vec();
        let mut sizes: Vec<usize> = (0..self.params.len()).map(|l| dims(l)[1]).collect();
        sizes.extend(self.params.last().map(|(w, _)| w.as_tensor().dims()[0]));
        sizes
    }

    /// The activation between layers.
    pub fn activation(&self) -> Activation {
        self.activation
    }

    /// The trainable variables, weights then bias per layer.
    pub fn vars(&self) -> Vec<Var> {
        self.params
            .iter()
            .flat_map(|(w, b)| [w.clone(), b.clone()])
            .collect()
    }

    /// Named tensors for a safetensors file: `{prefix}.{layer}.weight` / `.bias`.
    pub fn named(&self, prefix: &str) -> Vec<(String, Tensor)> {
        self.params
            .iter()
            .enumerate()
            .flat_map(|(l, (w, b))| {
                [
                    (format!("{prefix}.{l}.weight"), w.as_tensor().clone()),
                    (format!("{prefix}.{l}.bias"), b.as_tensor().clone()),
                ]
            })
            .collect()
    }

    /// Loads the tensors [`Mlp::named`] wrote; every shape must match and
    /// every value be finite.
    pub fn load(&self, prefix: &str, get: &dyn Fn(&str) -> Option<Tensor>) -> Result<()> {
        for (name, t) in self.named(prefix) {
            let v = get(&name)
                .ok_or_else(|| candle_core::Error::Msg(format!("missing tensor `{name}`")))?;
            if v.dims() != t.dims() {
                return Err(candle_core::Error::Msg(format!(
                    "tensor `{name}` is {:?}, the network needs {:?}",
                    v.dims(),
                    t.dims()
                )));
            }
            check_finite(&[(name.clone(), v.clone())])?;
            let var = self
                .vars()
                .into_iter()
                .find(|var| var.as_tensor().id() == t.id())
                .expect("named() lists the network's own variables");
            var.set(&v.to_dtype(t.dtype())?)?;
        }
        Ok(())
    }
}
