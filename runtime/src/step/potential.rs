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
        for i in 0..n * s {
            w.d[i] = self.b.x[i].to_f64() - w.xt[i];
        }
        scene.mass.mul(&w.d, &mut w.md, s);
        for r in 0..n {
            for e in 0..s {
                let i = r * s + e;
                w.phi[e] += w.d[i] * w.md[i] / (2.0 * h * h);
            }
        }
    }

    pub(super) fn set_velocity(&mut self, n: usize, x_t: &[f64], h: f64) {
        let s = self.stride();
        for i in 0..n * s {
            self.b.v[i] = T::from_f64((self.b.x[i].to_f64() - x_t[i]) / h);
        }
    }

    /// Gradient of the incremental potential into `w.g`.
    pub(super) fn potential_gradient(&mut self, scene: &Scene, w: &mut Scratch, h: f64) {
        let (n, s) = (scene.dofs(), self.stride());
        self.set_velocity(n, &w.x_t, h);
        self.forces(scene);
        for i in 0..n * s {
            w.d[i] = self.b.x[i].to_f64() - w.xt[i];
        }
        scene.mass.mul(&w.d, &mut w.g, s);
        for i in 0..n * s {
            w.g[i] = w.g[i] / (h * h) + self.b.grad[i].to_f64();
        }
    }
}
