//! The learner's networks without a graph: an MLP's forward and backward
//! passes over preallocated row-major buffers (the matrix products by
//! `gemm` on the process's rayon threads; bias, activation and its
//! derivative fused into one sweep per layer) and Adam over flat slices.
//!
//! PPO's rollout and update run on these ([`crate::ppo`], whose loss
//! gradients are closed forms): through candle's graph every operation
//! allocated its tensor and crossed a thread-pool barrier, which on the
//! update's small matrices cost more than the arithmetic. The weights'
//! home stays the candle [`Mlp`] (checkpoints, policy files, the
//! differentiable windows): a [`Net`] borrows them, with their Adam
//! moments, for an iteration ([`Net::of`]) and gives them back
//! ([`Net::store`]).

use crate::adam::{Adam, BETA1, BETA2, EPS};
use crate::net::Mlp;
use candle_core::{Result, Tensor, WithDType};
use joule_compiler::model::Activation;
use num_traits::Float;
use rayon::prelude::*;

/// The number types a [`Net`] computes in: f64, or f32 where its
/// precision is not needed (a PPO value network). The conversions are
/// candle's (`WithDType`), named here apart from `num_traits`' fallible ones.
pub trait Real: Float + WithDType + std::iter::Sum {
    /// `x` rounded to this type.
    fn of(x: f64) -> Self {
        <Self as WithDType>::from_f64(x)
    }
    /// The value as f64.
    fn f64(self) -> f64 {
        <Self as WithDType>::to_f64(self)
    }
    /// The values of a candle tensor (any float type), flattened.
    fn read(t: &Tensor) -> Result<Vec<Self>> {
        t.flatten_all()?.to_dtype(Self::DTYPE)?.to_vec1()
    }
    /// `e^x` in the activations: the library's, except where a type
    /// overrides it with one that vectorises.
    fn exp_v(x: Self) -> Self {
        x.exp()
    }
}

/// f32's activations take `e^x` from `exp_f32`, which the compiler
/// vectorises (the library's `expf` is a call per element).
impl Real for f32 {
    #[inline(always)]
    fn exp_v(x: f32) -> f32 {
        exp_f32(x)
    }
}

/// `e^x` in f32 without a call, so that a loop of it vectorises: `x =
/// n ln 2 + r` with `|r| <= ln 2 / 2` (`n` rounded to nearest by the
/// 1.5 * 2^23 shift, `ln 2` in two parts), `e^r` by Cephes' `expf`
/// polynomial, times `2^n` built in the exponent bits (from the shifted
/// sum's, no conversion); `x` is clamped to
/// [-87, 88] (the results stay normal numbers, and `e^x` for larger `x`
/// saturates at e^88 = 1.7e38 where the library's overflows to
/// infinity). Within 2 ulp of `e^x` (tested); NaN stays NaN.
#[inline(always)]
fn exp_f32(x: f32) -> f32 {
    const SHIFT: f32 = 12_582_912.0; // 1.5 * 2^23
    let x = x.clamp(-87.0, 88.0);
    let t = x * std::f32::consts::LOG2_E + SHIFT;
    let n = t - SHIFT;
    let r = (x - n * 0.693_359_4) - n * -2.121_944_4e-4;
    let p = 1.987_569_1e-4;
    let p = p * r + 1.398_199_9e-3;
    let p = p * r + 8.333_452e-3;
    let p = p * r + 4.166_579_6e-2;
    let p = p * r + 0.166_666_65;
    let p = p * r + 0.5;
    let e_r = p * r * r + r + 1.0;
    // `t`'s bits are 0x4b40_0000 + n: 2^n's exponent field is n + 127.
    e_r * f32::from_bits(t.to_bits().wrapping_add(127u32.wrapping_sub(0x4b40_0000)) << 23)
}

impl Real for f64 {}

/// A matrix in a flat buffer: element `(i, j)` at `i * rs + j * cs`.
struct View<'a, T> {
    data: &'a [T],
    rs: usize,
    cs: usize,
}

/// `dst (m x n, row-major) = lhs (m x k) * rhs (k x n)`.
fn matmul<T: Real>((m, n, k): (usize, usize, usize), dst: &mut [T], lhs: View<T>, rhs: View<T>) {
    if m == 0 || n == 0 {
        return;
    }
    let last = |rows: usize, cols: usize, v: &View<T>| (rows - 1) * v.rs + (cols - 1) * v.cs;
    assert!(dst.len() >= m * n, "matmul: the destination is too short");
    if k == 0 {
        dst[..m * n].fill(T::zero());
        return;
    }
    assert!(
        last(m, k, &lhs) < lhs.data.len() && last(k, n, &rhs) < rhs.data.len(),
        "matmul: an operand is too short"
    );
    // SAFETY: every element gemm reads or writes is inside the slices (the
    // asserts above bound the largest offsets), `dst` is borrowed mutably
    // so it aliases neither operand, and `T` is f32 or f64 (gemm's types).
    unsafe {
        gemm::gemm(
            m,
            n,
            k,
            dst.as_mut_ptr(),
            1,
            n as isize,
            false,
            lhs.data.as_ptr(),
            lhs.cs as isize,
            lhs.rs as isize,
            rhs.data.as_ptr(),
            rhs.cs as isize,
            rhs.rs as isize,
            T::one(),
            T::one(),
            false,
            false,
            false,
            gemm::Parallelism::Rayon(0),
        );
    }
}

/// Rows per rayon task in the element-wise sweeps.
const SWEEP_ROWS: usize = 64;

/// A hidden layer's outputs from its products `z` (`[rows][width]`): with
/// the bias `b` added, `h = activation(z)`, and `z` is overwritten by the
/// activation's derivative there (what the backward pass multiplies by).
/// One loop per activation, so that the element-wise arithmetic
/// vectorises where the functions allow.
fn activate<T: Real>(a: Activation, b: &[T], z: &mut [T], h: &mut [T]) {
    #[cfg(target_arch = "x86_64")]
    if std::arch::is_x86_feature_detected!("avx2") {
        // SAFETY: the processor has the instructions `activate_avx2` is
        // compiled for.
        return unsafe { activate_avx2(a, b, z, h) };
    }
    activate_any(a, b, z, h)
}

/// [`activate`] compiled for AVX2's 256-bit vectors (twice the lanes of
/// the baseline's SSE2; the same operations, so the same results).
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
unsafe fn activate_avx2<T: Real>(a: Activation, b: &[T], z: &mut [T], h: &mut [T]) {
    activate_any(a, b, z, h)
}

/// [`activate`] for any processor (inlined into each instruction set's copy).
#[inline(always)]
fn activate_any<T: Real>(a: Activation, b: &[T], z: &mut [T], h: &mut [T]) {
    #[inline(always)]
    fn each<T: Real>(b: &[T], z: &mut [T], h: &mut [T], f: impl Fn(T) -> (T, T)) {
        for (zr, hr) in z.chunks_mut(b.len()).zip(h.chunks_mut(b.len())) {
            for ((zv, hv), &bv) in zr.iter_mut().zip(hr.iter_mut()).zip(b) {
                (*hv, *zv) = f(*zv + bv);
            }
        }
    }
    let (one, zero) = (T::one(), T::zero());
    match a {
        Activation::Tanh => each(b, z, h, |z| {
            let h = z.tanh();
            (h, one - h * h)
        }),
        Activation::Relu => each(b, z, h, |z| if z > zero { (z, one) } else { (zero, zero) }),
        Activation::Elu => each(b, z, h, |z| {
            if z > zero {
                (z, one)
            } else {
                let h = z.exp_m1();
                (h, h + one)
            }
        }),
        Activation::Sigmoid => each(b, z, h, |z| {
            let h = one / (one + T::exp_v(-z));
            (h, h * (one - h))
        }),
        Activation::Swish => each(b, z, h, |z| {
            let e = T::exp_v(-z);
            let (h, s) = (z / (one + e), one / (one + e));
            (h, s + h * (one - s))
        }),
        Activation::Identity => each(b, z, h, |z| (z, one)),
    }
}

/// An MLP's weights, gradients and Adam moments, and the activations of
/// its last forward pass, in flat buffers (weights `[out][in]` as candle's
/// `Linear`, so the copies to and from the [`Mlp`] are plain).
pub struct Net<T> {
    sizes: Vec<usize>,
    activation: Activation,
    /// `[w0, b0, w1, b1, ...]`: the [`Mlp::vars`] order.
    params: Vec<Vec<T>>,
    /// Gradients of the last [`Net::backward`], as `params`.
    grads: Vec<Vec<T>>,
    /// Adam's first and second moments, as `params`.
    m: Vec<Vec<T>>,
    v: Vec<Vec<T>>,
    /// Rows of the last forward pass.
    rows: usize,
    /// `h[0]` the inputs, `h[l + 1]` layer `l`'s activations (the outputs:
    /// the last layer's, no activation), `[rows][width]`.
    h: Vec<Vec<T>>,
    /// Hidden layer `l`'s activation derivatives at its pre-activations
    /// `[rows][width]` (the last layer's: its outputs before the bias).
    dz: Vec<Vec<T>>,
    /// Backward scratch: the gradient with respect to a layer's outputs.
    delta: Vec<T>,
    next: Vec<T>,
}

impl<T: Real> Net<T> {
    /// The network `mlp` with its weights and `adam`'s moments of them
    /// (`adam` may list more variables after the network's: those are
    /// the caller's).
    pub fn of(mlp: &Mlp, adam: &Adam) -> Result<Net<T>> {
        let vars = mlp.vars();
        let read = |ts: &[Tensor]| -> Result<Vec<Vec<T>>> { ts.iter().map(T::read).collect() };
        let params = vars
            .iter()
            .map(|v| T::read(v.as_tensor()))
            .collect::<Result<Vec<_>>>()?;
        let grads = params.iter().map(|p| vec![T::zero(); p.len()]).collect();
        let sizes = mlp.sizes();
        Ok(Net {
            activation: mlp.activation(),
            m: read(&adam.m[..vars.len()])?,
            v: read(&adam.v[..vars.len()])?,
            params,
            grads,
            rows: 0,
            h: sizes.iter().map(|_| vec![]).collect(),
            dz: sizes.iter().skip(1).map(|_| vec![]).collect(),
            delta: vec![],
            next: vec![],
            sizes,
        })
    }

    /// Writes the weights back into `mlp` and the moments into `adam`
    /// (whose step count the caller keeps).
    pub fn store(&self, mlp: &Mlp, adam: &mut Adam) -> Result<()> {
        for (i, var) in mlp.vars().iter().enumerate() {
            let t = var.as_tensor();
            let back = |x: &[T]| -> Result<Tensor> {
                Tensor::from_vec(
                    x.iter().map(|v| v.f64()).collect::<Vec<f64>>(),
                    t.dims(),
                    t.device(),
                )?
                .to_dtype(t.dtype())
            };
            var.set(&back(&self.params[i])?)?;
            adam.m[i] = back(&self.m[i])?;
            adam.v[i] = back(&self.v[i])?;
        }
        Ok(())
    }

    /// The weights, `[w0, b0, w1, b1, ...]`.
    #[cfg(test)]
    pub(crate) fn params(&self) -> &[Vec<T>] {
        &self.params
    }

    /// Outputs of the network.
    pub fn outputs(&self) -> usize {
        self.sizes[self.sizes.len() - 1]
    }

    /// The network on `rows` inputs `x` (`[rows][inputs]`, f64); returns
    /// the outputs `[rows][outputs]` and keeps the activations for
    /// [`Net::backward`].
    pub fn forward(&mut self, x: &[f64], rows: usize) -> &[T] {
        let layers = self.sizes.len() - 1;
        assert_eq!(
            x.len(),
            rows * self.sizes[0],
            "forward: inputs are not [rows][inputs]"
        );
        self.rows = rows;
        self.h[0].clear();
        self.h[0].extend(x.iter().map(|&v| T::of(v)));
        for l in 0..layers {
            let (fan_in, fan_out) = (self.sizes[l], self.sizes[l + 1]);
            let (w, b) = (&self.params[2 * l], &self.params[2 * l + 1]);
            let z = &mut self.dz[l];
            z.resize(rows * fan_out, T::zero());
            // z = h W^T: W^T's element (k, j) is W[j][k].
            matmul(
                (rows, fan_out, fan_in),
                z,
                View {
                    data: &self.h[l],
                    rs: fan_in,
                    cs: 1,
                },
                View {
                    data: w,
                    rs: 1,
                    cs: fan_in,
                },
            );
            let (activation, hidden) = (self.activation, l + 1 < layers);
            let h = &mut self.h[l + 1];
            h.resize(rows * fan_out, T::zero());
            z.par_chunks_mut(SWEEP_ROWS * fan_out)
                .zip(h.par_chunks_mut(SWEEP_ROWS * fan_out))
                .for_each(|(z, h)| {
                    if hidden {
                        activate(activation, b, z, h);
                    } else {
                        for (hr, zr) in h.chunks_mut(fan_out).zip(z.chunks(fan_out)) {
                            for ((hv, &zv), &bv) in hr.iter_mut().zip(zr).zip(b) {
                                *hv = zv + bv;
                            }
                        }
                    }
                });
        }
        &self.h[layers]
    }

    /// The gradients of a loss with respect to every weight, from its
    /// gradient `d_out` with respect to the last forward pass's outputs
    /// (`[rows][outputs]`), kept for [`Net::grad_norm2`] and [`Net::adam`].
    pub fn backward(&mut self, d_out: &[T]) {
        let layers = self.sizes.len() - 1;
        let rows = self.rows;
        assert_eq!(
            d_out.len(),
            rows * self.outputs(),
            "backward: not [rows][outputs]"
        );
        self.delta.clear();
        self.delta.extend_from_slice(d_out);
        for l in (0..layers).rev() {
            let (fan_in, fan_out) = (self.sizes[l], self.sizes[l + 1]);
            // dW (out x in) = delta^T h: delta^T's element (o, r) is delta[r][o].
            matmul(
                (fan_out, fan_in, rows),
                &mut self.grads[2 * l],
                View {
                    data: &self.delta,
                    rs: 1,
                    cs: fan_out,
                },
                View {
                    data: &self.h[l],
                    rs: fan_in,
                    cs: 1,
                },
            );
            let gb = &mut self.grads[2 * l + 1];
            gb.fill(T::zero());
            for row in self.delta.chunks(fan_out) {
                for (g, &d) in gb.iter_mut().zip(row) {
                    *g += d;
                }
            }
            if l == 0 {
                break;
            }
            // d h = delta W, then through the activation of layer l - 1.
            self.next.resize(rows * fan_in, T::zero());
            matmul(
                (rows, fan_in, fan_out),
                &mut self.next,
                View {
                    data: &self.delta,
                    rs: fan_out,
                    cs: 1,
                },
                View {
                    data: &self.params[2 * l],
                    rs: fan_in,
                    cs: 1,
                },
            );
            let dz = &self.dz[l - 1];
            self.next
                .par_chunks_mut(SWEEP_ROWS * fan_in)
                .zip(dz.par_chunks(SWEEP_ROWS * fan_in))
                .for_each(|(d, dz)| {
                    for (d, &dz) in d.iter_mut().zip(dz) {
                        *d *= dz;
                    }
                });
            std::mem::swap(&mut self.delta, &mut self.next);
        }
    }

    /// The squared norm of the last [`Net::backward`]'s gradients.
    pub fn grad_norm2(&self) -> f64 {
        self.grads
            .iter()
            .flat_map(|g| g.iter())
            .map(|g| g.f64() * g.f64())
            .sum()
    }

    /// One Adam step (`step`: its number, from 1) along the gradients of the
    /// last [`Net::backward`] times `scale`.
    pub fn adam(&mut self, lr: f64, step: u64, scale: f64) {
        for i in 0..self.params.len() {
            adam_step(
                &mut self.params[i],
                &self.grads[i],
                (&mut self.m[i], &mut self.v[i]),
                lr,
                step,
                scale,
            );
        }
    }
}

/// Adam's update of `p` along `g * scale` with moments `(m, v)`, its
/// `step`-th (the formula of [`Adam::step`]).
pub fn adam_step<T: Real>(
    p: &mut [T],
    g: &[T],
    (m, v): (&mut [T], &mut [T]),
    lr: f64,
    step: u64,
    scale: f64,
) {
    let t = step as i32;
    let (c1, c2) = (1.0 - BETA1.powi(t), 1.0 - BETA2.powi(t));
    let (b1, b2, eps, scale) = (T::of(BETA1), T::of(BETA2), T::of(EPS), T::of(scale));
    let (c1, c2, lr, one) = (T::of(c1), T::of(c2), T::of(lr), T::one());
    for (((p, &g), m), v) in p.iter_mut().zip(g).zip(m.iter_mut()).zip(v.iter_mut()) {
        let g = g * scale;
        *m = b1 * *m + (one - b1) * g;
        *v = b2 * *v + (one - b2) * g * g;
        *p -= lr * (*m / c1) / ((*v / c2).sqrt() + eps);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::adam::grads_of;
    use candle_core::{Device, Var};
    use joule_compiler::model::Init;
    use rand::SeedableRng;
    use rand_chacha::ChaCha8Rng;

    /// Forward and backward against candle's graph on the same weights, for
    /// every activation: outputs and every weight's gradient of
    /// `sum(out * c)`.
    /// The vectorising f32 exponential against f64's over its whole range
    /// (a million points and the ends): within 2 ulp of the correctly
    /// rounded value; NaN stays NaN, beyond the range it saturates.
    #[test]
    fn the_f32_exponential_is_within_two_ulp() {
        let n = 1_000_000;
        let mut worst: f64 = 0.0;
        for i in 0..=n {
            let x = -87.0 + 175.0 * i as f32 / n as f32;
            let exact = (x as f64).exp();
            let ulp = f64::from((exact as f32).abs()) * f64::from(f32::EPSILON);
            worst = worst.max((f64::from(exp_f32(x)) - exact).abs() / ulp);
        }
        assert!(worst <= 2.0, "{worst} ulp");
        assert!(worst > 0.0, "an exact exponential in f32?");
        assert!(exp_f32(f32::NAN).is_nan());
        assert_eq!(exp_f32(1000.0), exp_f32(88.0));
        assert_eq!(exp_f32(-1000.0), exp_f32(-87.0));
        assert!(exp_f32(88.0).is_finite() && exp_f32(-87.0) > 0.0);
    }

    #[test]
    fn forward_and_backward_match_candles_graph() -> Result<()> {
        for activation in [
            Activation::Tanh,
            Activation::Relu,
            Activation::Elu,
            Activation::Sigmoid,
            Activation::Swish,
            Activation::Identity,
        ] {
            let mut rng = ChaCha8Rng::seed_from_u64(3);
            let mlp = Mlp::new(&[5, 7, 6, 3], activation, Init::Lecun, 1.0, &mut rng)?;
            let adam = Adam::new(&mlp.vars(), 1e-3)?;
            let rows = 70; // more than one sweep chunk
            let x: Vec<f64> = (0..rows * 5)
                .map(|i| ((i * 37 % 23) as f64 - 11.0) / 7.0)
                .collect();
            let c: Vec<f64> = (0..rows * 3)
                .map(|i| ((i * 13 % 7) as f64 - 3.0) / 2.0)
                .collect();
            let xt = Tensor::from_vec(x.clone(), (rows, 5), &Device::Cpu)?;
            let out = mlp.forward(&xt)?;
            let loss = (&out * Tensor::from_vec(c.clone(), (rows, 3), &Device::Cpu)?)?.sum_all()?;
            let want = grads_of(&loss.backward()?, &mlp.vars())?;
            let mut net = Net::<f64>::of(&mlp, &adam)?;
            let got = net.forward(&x, rows).to_vec();
            for (a, b) in got.iter().zip(out.flatten_all()?.to_vec1::<f64>()?) {
                assert!((a - b).abs() < 1e-12, "{activation:?}: output {a} vs {b}");
            }
            net.backward(&c);
            for (i, w) in want.iter().enumerate() {
                for (a, b) in net.grads[i].iter().zip(w.flatten_all()?.to_vec1::<f64>()?) {
                    assert!(
                        (a - b).abs() <= 1e-10 * b.abs().max(1.0),
                        "{activation:?}: gradient of variable {i}: {a} vs {b}"
                    );
                }
            }
        }
        Ok(())
    }

    /// In f32 the same network agrees to f32's precision, and the weights
    /// go back to candle's (f32) variables unchanged.
    #[test]
    fn an_f32_net_agrees_and_round_trips() -> Result<()> {
        let mut rng = ChaCha8Rng::seed_from_u64(4);
        let mlp = Mlp::new(&[4, 16, 1], Activation::Swish, Init::Lecun, 1.0, &mut rng)?.in_f32()?;
        let mut adam = Adam::new(&mlp.vars(), 1e-3)?;
        let x: Vec<f64> = (0..12).map(|i| i as f64 / 5.0 - 1.0).collect();
        let want = mlp
            .forward(&Tensor::from_vec(x.clone(), (3, 4), &Device::Cpu)?)?
            .flatten_all()?
            .to_vec1::<f64>()?;
        let mut net = Net::<f32>::of(&mlp, &adam)?;
        for (a, b) in net.forward(&x, 3).iter().zip(&want) {
            assert!((a.f64() - b).abs() < 1e-5, "{a} vs {b}");
        }
        let before: Vec<Vec<f32>> = net.params.clone();
        net.store(&mlp, &mut adam)?;
        let again = Net::<f32>::of(&mlp, &adam)?;
        assert_eq!(again.params, before);
        Ok(())
    }

    /// The slice Adam takes the steps of the tensor Adam.
    #[test]
    fn the_slice_adam_is_the_tensor_adam() -> Result<()> {
        let x = Var::from_vec(vec![3.0f64, -2.0, 0.5], 3, &Device::Cpu)?;
        let xs = std::slice::from_ref(&x);
        let mut adam = Adam::new(xs, 0.1)?;
        let (mut p, mut m, mut v) = (vec![3.0f64, -2.0, 0.5], vec![0.0; 3], vec![0.0; 3]);
        for step in 1..=20 {
            let g: Vec<f64> = p.iter().map(|x| 2.0 * x + 1.0).collect();
            let gt = Tensor::new(g.as_slice(), &Device::Cpu)?;
            adam.step(xs, &[gt], Some(3.0))?;
            let norm = g.iter().map(|g| g * g).sum::<f64>().sqrt();
            let scale = if norm > 3.0 { 3.0 / norm } else { 1.0 };
            adam_step(&mut p, &g, (&mut m, &mut v), 0.1, step, scale);
            for (a, b) in p.iter().zip(x.as_tensor().to_vec1::<f64>()?) {
                assert!((a - b).abs() < 1e-14, "step {step}: {a} vs {b}");
            }
        }
        Ok(())
    }
}
