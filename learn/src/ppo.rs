//! Proximal policy optimisation, the model-free baseline: a Gaussian around
//! the same policy network's controls (a learned, state-independent standard
//! deviation), generalised advantage estimation, and the clipped surrogate
//! objective optimised over minibatch epochs. No gradient passes through the
//! simulator.

use candle_core::{Result, Tensor};

/// `-mean(min(r A, clamp(r, 1 - eps, 1 + eps) A))`, `r = exp(logp_new - logp_old)`.
pub fn clipped_loss(
    logp_new: &Tensor,
    logp_old: &Tensor,
    adv: &Tensor,
    eps: f64,
) -> Result<Tensor> {
    let ratio = (logp_new - logp_old)?.exp()?;
    let unclipped = (&ratio * adv)?;
    let clipped = (ratio.clamp(1.0 - eps, 1.0 + eps)? * adv)?;
    unclipped.minimum(&clipped)?.mean_all()?.neg()
}

/// Log-density of actions `a` (`[rows, k]`) under independent Gaussians with
/// means `mean` (`[rows, k]`) and log standard deviations `log_std` (`[k]`),
/// summed over the `k` components: `[rows]`.
pub fn log_prob(mean: &Tensor, log_std: &Tensor, a: &Tensor) -> Result<Tensor> {
    let k = log_std.dims1()? as f64;
    let z = (a - mean)?.broadcast_div(&log_std.exp()?)?;
    let quad = (z.sqr()?.sum(1)? * -0.5)?;
    quad.broadcast_sub(&log_std.sum_all()?)? - 0.5 * k * (2.0 * std::f64::consts::PI).ln()
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::Device;

    fn t(v: &[f64]) -> Tensor {
        Tensor::new(v, &Device::Cpu).unwrap()
    }

    #[test]
    fn clipped_loss_matches_numbers_computed_by_hand() -> Result<()> {
        // Ratios e^0.5 = 1.6487 (clipped to 1.2 for A = 2 > 0), e^-0.5 = 0.6065
        // (clipped to 0.8 for A = -1 < 0: min(-0.6065, -0.8) = -0.8), and 1 (A = 3).
        let loss = clipped_loss(
            &t(&[0.5, -0.5, 0.0]),
            &t(&[0.0; 3]),
            &t(&[2.0, -1.0, 3.0]),
            0.2,
        )?;
        let want = -(1.2 * 2.0 + -0.8 + 3.0) / 3.0;
        assert!((loss.to_scalar::<f64>()? - want).abs() < 1e-12);
        // Inside the trust region the objective is the plain ratio times A:
        // r = e^0.1 for A = 1, r = e^-0.1 for A = -2.
        let loss = clipped_loss(&t(&[0.1, -0.1]), &t(&[0.0; 2]), &t(&[1.0, -2.0]), 0.2)?;
        let want = -(0.1f64.exp() - 2.0 * (-0.1f64).exp()) / 2.0;
        assert!((loss.to_scalar::<f64>()? - want).abs() < 1e-12);
        Ok(())
    }

    #[test]
    fn log_prob_is_the_gaussian_density() -> Result<()> {
        let mean = Tensor::new(&[[0.0, 1.0]], &Device::Cpu)?;
        let a = Tensor::new(&[[0.5, 0.0]], &Device::Cpu)?;
        let log_std = t(&[0.0, 2f64.ln()]);
        let got = log_prob(&mean, &log_std, &a)?.to_vec1::<f64>()?[0];
        let density = |x: f64, m: f64, s: f64| {
            (-(x - m).powi(2) / (2.0 * s * s)).exp() / (s * (2.0 * std::f64::consts::PI).sqrt())
        };
        let want = (density(0.5, 0.0, 1.0) * density(0.0, 1.0, 2.0)).ln();
        assert!((got - want).abs() < 1e-12, "{got} {want}");
        Ok(())
    }
}
