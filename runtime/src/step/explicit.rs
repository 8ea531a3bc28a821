//! The explicit substep: symplectic Euler, v += h M^-1 (f - dE/dx - dD/dv);
//! x += h v (the update itself is the mass model's, `MassModel::explicit_update`).

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
}
