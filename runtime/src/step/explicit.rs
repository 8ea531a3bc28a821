//! The explicit substep: symplectic Euler, v += h M^-1 (f - dE/dx - dD/dv);
//! x += h v (the update itself is the mass model's, `MassModel::explicit_update`).
//! A mass that reads parameters is its declared mass times a scale per
//! environment: its owner's forces are divided by the scale first (the
//! weight's acceleration does not change with the mass); a body whose
//! distribution reads them has its forces turned by `W0 W(p)^-1`.

use super::Part;
use crate::Scene;
use joule_compiler::abi::Real;

impl<T: Real> Part<T> {
    /// One symplectic Euler substep of length `h`.
    pub(super) fn explicit(&mut self, scene: &Scene, h: f64) {
        let (n, s) = (scene.dofs(), self.stride());
        if scene.explicit_reads_prev {
            self.begin_substep(n);
        }
        // Forces at the step's start: what `held(..)` reads too.
        self.hold(scene);
        self.forces(scene, |_| true);
        self.scale_forces(scene);
        let b = &mut self.b;
        scene.mass.explicit_update(
            &b.grad[..n * s],
            &mut self.scratch.rhs,
            &mut self.scratch.dx,
            &mut b.v[..n * s],
            &mut b.x[..n * s],
            h,
            s,
        );
    }

    /// Turns the forces of the particles and affine bodies whose masses read
    /// parameters ([`super::mass_scale::explicit_forces`]; links' masses act
    /// in the reduced step).
    pub(super) fn scale_forces(&mut self, scene: &Scene) {
        if scene.mass_scales().is_empty() {
            return;
        }
        self.load_mass_scales(scene);
        let s = self.stride();
        super::mass_scale::explicit_forces(scene, &self.mass.values, s, &mut self.b.grad);
    }
}
