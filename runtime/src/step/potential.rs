//! The incremental potential the implicit substep minimises,
//! 1/(2h^2) |x - x~|_M^2 + E(x) + h D((x - x_t)/h), per environment, and its
//! gradient; the velocity the kernels read is set from x first.

use super::{load, Part, Scratch};
use crate::Scene;
use joule_compiler::abi::Real;
use joule_compiler::kernels::KernelKind;

impl<T: Real> Part<T> {
    /// Incremental potential per environment at the current x (v set from x)
    /// into `w.phi`.
    pub(super) fn potential(&mut self, scene: &Scene, w: &mut Scratch, h: f64) {
        let (n, s) = (scene.dofs(), self.stride());
        self.set_velocity(n, &w.x_t, h);
        self.b.energy.fill(T::default());
        self.run(scene, KernelKind::Energy);
        load(&mut w.phi, &self.b.energy[..s]);
        self.b.energy.fill(T::default());
        self.run(scene, KernelKind::Dissipation);
        for e in 0..s {
            w.phi[e] += self.b.energy[e].to_f64(); // the kernel holds h D((x - x_t)/h)
        }
        let k = n * s;
        for ((d, x), xt) in w.d[..k].iter_mut().zip(&self.b.x[..k]).zip(&w.xt[..k]) {
            *d = x.to_f64() - xt;
        }
        scene.mass.mul(&w.d, &mut w.md, s);
        let scale = 1.0 / (2.0 * h * h);
        match s {
            2 => add_lane_dots::<2>(&w.d[..k], &w.md[..k], scale, &mut w.phi),
            4 => add_lane_dots::<4>(&w.d[..k], &w.md[..k], scale, &mut w.phi),
            8 => add_lane_dots::<8>(&w.d[..k], &w.md[..k], scale, &mut w.phi),
            _ => {
                // The same order as `add_lane_dots`: a lane's sum, then scaled.
                for (e, phi) in w.phi[..s].iter_mut().enumerate() {
                    let dot = (0..n).fold(0.0, |acc, r| acc + w.d[r * s + e] * w.md[r * s + e]);
                    *phi += dot * scale;
                }
            }
        }
    }

    pub(super) fn set_velocity(&mut self, n: usize, x_t: &[f64], h: f64) {
        let k = n * self.stride();
        let rate = 1.0 / h;
        for ((v, x), xt) in self.b.v[..k].iter_mut().zip(&self.b.x[..k]).zip(&x_t[..k]) {
            *v = T::from_f64((x.to_f64() - xt) * rate);
        }
    }

    /// Gradient of the incremental potential into `w.g`.
    pub(super) fn potential_gradient(&mut self, scene: &Scene, w: &mut Scratch, h: f64) {
        let (n, s) = (scene.dofs(), self.stride());
        self.set_velocity(n, &w.x_t, h);
        self.forces(scene);
        let k = n * s;
        for ((d, x), xt) in w.d[..k].iter_mut().zip(&self.b.x[..k]).zip(&w.xt[..k]) {
            *d = x.to_f64() - xt;
        }
        scene.mass.mul(&w.d, &mut w.g, s);
        let scale = 1.0 / (h * h);
        for (g, grad) in w.g[..k].iter_mut().zip(&self.b.grad[..k]) {
            *g = *g * scale + grad.to_f64();
        }
    }
}

/// Adds `scale` times each lane's dot product of `a` and `b` (rows of `W`
/// lanes) to `out`.
fn add_lane_dots<const W: usize>(a: &[f64], b: &[f64], scale: f64, out: &mut [f64]) {
    let mut acc = [0.0; W];
    for (a, b) in a.as_chunks::<W>().0.iter().zip(b.as_chunks::<W>().0) {
        for e in 0..W {
            acc[e] += a[e] * b[e];
        }
    }
    for (o, a) in out.iter_mut().zip(acc) {
        *o += a * scale;
    }
}
