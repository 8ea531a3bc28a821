//! The linear solves of a substep and of its adjoint, (M/h^2 + H_E + H_hD)
//! dx = rhs: a sparse Cholesky factorisation planned at compile time
//! (`crate::sparse`) for scenes whose factorisation is cheap enough
//! ([`DIRECT_FLOP_LIMIT`]), else Jacobi-preconditioned CG on the
//! Hessian-vector kernels; and the report of CG solves that stopped short.

use super::{load, set_seed, Cg, Part};
use crate::{Event, Scene, SolveStop};
use joule_compiler::abi::Real;
use joule_compiler::kernels::KernelKind;

/// Most multiply-adds per environment of a sparse Cholesky factorisation for
/// which a scene's systems are solved directly; costlier ones use preconditioned
/// CG. Measured (docs/performance.md): implicit cloths of 1.9M and 2.7M
/// multiply-adds ran 1.8-4.4x faster direct, one of 6.8M 2.1x slower.
pub const DIRECT_FLOP_LIMIT: usize = 4_000_000;
/// Relative residual at which CG stops inside Newton (inexact Newton).
pub const NEWTON_CG_TOLERANCE: f64 = 1e-5;
/// Most CG iterations per solve (at least 50, at most twice the DOFs).
pub const CG_ITERATIONS: usize = 1000;
/// Relative residual at which CG stops in adjoint solves.
pub const ADJOINT_CG_TOLERANCE: f64 = 1e-11;

impl<T: Real> Part<T> {
    /// Solves (M/h^2 + H_E + H_hD) dx = rhs for the active lanes (H_hD: the Hessian
    /// of h D((x - x_t)/h) in positions, from the implicit kernels). With
    /// `surrogate` (adjoint solves) the Hessians are the surrogates' and CG
    /// converges tightly; Newton steps use inexact CG (relative 1e-5).
    pub fn solve(
        &mut self,
        scene: &Scene,
        h: f64,
        rhs: &[f64],
        dx: &mut [f64],
        active: &[bool],
        surrogate: bool,
    ) {
        if scene.direct_solver().is_some() {
            self.solve_direct(scene, h, rhs, dx, active, surrogate);
        } else {
            self.solve_cg(scene, h, rhs, dx, active, surrogate);
        }
    }

    /// Reports the lanes whose CG solves stopped short in this substep.
    pub(super) fn report_stops(&mut self, step: usize, adjoint: bool) {
        for e in 0..self.len {
            if let Some((reason, residual)) = self.stops[e].take() {
                self.events.push(Event::SolveStopped {
                    env: self.first + e,
                    step,
                    reason,
                    residual,
                    adjoint,
                });
            }
        }
    }

    /// The Hessian-block and Hessian-vector kernels (energies, dissipations).
    pub(super) fn hessian_kinds(surrogate: bool) -> [KernelKind; 4] {
        if surrogate {
            [
                KernelKind::SurrogateHessian,
                KernelKind::SurrogateDissipationHessian,
                KernelKind::SurrogateGradHvp,
                KernelKind::SurrogateDissipationGradHvp,
            ]
        } else {
            [
                KernelKind::Hessian,
                KernelKind::DissipationHessian,
                KernelKind::GradHvp,
                KernelKind::DissipationGradHvp,
            ]
        }
    }

    /// Sparse Cholesky solve, a block of up to [`crate::sparse::LANE_BLOCK`]
    /// lanes at once: the Hessian-block kernels' results are assembled straight
    /// into the factor's storage; a lane that is not positive definite is
    /// shifted and factored again (see [`crate::sparse::Direct::factor`]).
    fn solve_direct(
        &mut self,
        scene: &Scene,
        h: f64,
        rhs: &[f64],
        dx: &mut [f64],
        active: &[bool],
        surrogate: bool,
    ) {
        let direct = scene.direct_solver().expect("a direct scene");
        let [he, hd, _, _] = Self::hessian_kinds(surrogate);
        let mut w = self.direct.take().expect("direct scenes have a workspace");
        let stride = self.stride();
        // A block of lanes at a time; the kernels run on the block's lanes only
        // (padding lanes past `len` are inactive).
        for first in (0..stride).step_by(w.lanes()) {
            let end = (first + w.lanes()).min(stride);
            let act = &active[first..end];
            if !act.iter().any(|a| *a) {
                continue;
            }
            direct.begin(&mut w, end - first);
            loop {
                direct.assemble_mass(&mut w, 1.0 / (h * h));
                for kind in [he, hd] {
                    scene
                        .compiled
                        .run(kind, &mut self.b, first, end.min(self.len))
                        .expect("buffers are built from the scene's layout");
                    direct.assemble_blocks(&mut w, kind, &self.b.blocks, stride, first);
                }
                if !direct.factor(&mut w, act) {
                    break;
                }
            }
            direct.solve(&mut w, rhs, dx, act, stride, first);
        }
        self.direct = Some(w);
    }

    /// Solves again with the factor the last direct solve left, where that
    /// factor is every lane's (the partition is one block of lanes, as it
    /// is up to [`crate::sparse::LANE_BLOCK`] lanes): `dx = A^-1 rhs` on the
    /// `active` lanes. False, doing nothing, where it is not (several blocks,
    /// or a scene solved by CG): then call [`Part::solve`].
    pub(super) fn solve_again(
        &mut self,
        scene: &Scene,
        rhs: &[f64],
        dx: &mut [f64],
        active: &[bool],
    ) -> bool {
        let (Some(direct), Some(mut w)) = (scene.direct_solver(), self.direct.take()) else {
            return false;
        };
        let stride = self.stride();
        let whole = w.lanes() >= stride;
        if whole {
            direct.solve(&mut w, rhs, dx, &active[..stride], stride, 0);
        }
        self.direct = Some(w);
        whole
    }

    /// `c.ap` = (M/h^2 + H_E + H_hD) `c.p`, through the Hessian-vector kernels.
    fn apply(&mut self, scene: &Scene, h: f64, c: &mut Cg, kinds: [KernelKind; 2]) {
        let (n, s) = (scene.dofs(), self.stride());
        set_seed(&mut self.b, &c.p);
        self.b.hv.fill(T::default());
        self.run(scene, kinds[0]);
        load(&mut c.ap, &self.b.hv[..n * s]);
        self.b.hv.fill(T::default());
        self.run(scene, kinds[1]);
        scene.mass.mul(&c.p, &mut c.mp, s);
        for i in 0..n * s {
            c.ap[i] += c.mp[i] / (h * h) + self.b.hv[i].to_f64();
        }
    }

    fn solve_cg(
        &mut self,
        scene: &Scene,
        h: f64,
        rhs: &[f64],
        x: &mut [f64],
        active: &[bool],
        surrogate: bool,
    ) {
        // Inexact Newton: a loose inner solve converges to the same point.
        let rtol = if surrogate {
            ADJOINT_CG_TOLERANCE
        } else {
            NEWTON_CG_TOLERANCE
        };
        let (n, s) = (scene.dofs(), self.stride());
        let [he, hd, hve, hvd] = Self::hessian_kinds(surrogate);
        let mut c = std::mem::replace(&mut self.cg, Cg::new(0, 0));
        // Jacobi preconditioner from the block diagonals.
        c.diag.fill(0.0);
        for kind in [he, hd] {
            self.run(scene, kind);
            let ir = scene.kernel_ir(kind);
            for lp in &ir.loops {
                let w = lp.dof_width;
                for i in 0..lp.count {
                    for a in 0..w {
                        let r = lp.dofs[i * w + a] as usize;
                        if r < n {
                            let base = (lp.block_base + i * w * w + a * w + a) * s;
                            for e in 0..s {
                                c.diag[r * s + e] += self.b.blocks[base + e].to_f64();
                            }
                        }
                    }
                }
            }
        }
        for r in 0..n {
            let k = scene.mass.mass[r] / (h * h);
            for e in 0..s {
                let d = &mut c.diag[r * s + e];
                *d = 1.0 / (*d + k).abs().max(1e-300);
            }
        }
        let dot = |a: &[f64], b: &[f64], e: usize| {
            (0..n).map(|r| a[r * s + e] * b[r * s + e]).sum::<f64>()
        };
        x.fill(0.0);
        c.r.copy_from_slice(rhs);
        for i in 0..n * s {
            c.z[i] = c.r[i] * c.diag[i];
        }
        c.p.copy_from_slice(&c.z);
        for e in 0..s {
            c.rz[e] = dot(&c.r, &c.z, e);
            c.bnorm[e] = dot(rhs, rhs, e).sqrt();
        }
        c.live.copy_from_slice(&active[..s]);
        for _ in 0..(2 * n).clamp(50, CG_ITERATIONS) {
            if !c.live.iter().any(|l| *l) {
                break;
            }
            self.apply(scene, h, &mut c, [hve, hvd]);
            for e in 0..s {
                if !c.live[e] {
                    continue;
                }
                let pap = dot(&c.p, &c.ap, e);
                let alpha = if pap > 0.0 { c.rz[e] / pap } else { 0.0 };
                for k in 0..n {
                    let i = k * s + e;
                    x[i] += alpha * c.p[i];
                    c.r[i] -= alpha * c.ap[i];
                    c.z[i] = c.r[i] * c.diag[i];
                }
                let rz_new = dot(&c.r, &c.z, e);
                let rnorm = dot(&c.r, &c.r, e).sqrt();
                if rnorm <= rtol * c.bnorm[e] || pap <= 0.0 || !rnorm.is_finite() {
                    if pap <= 0.0 && rnorm > rtol * c.bnorm[e] {
                        self.stops[e] = Some((SolveStop::NegativeCurvature, rnorm / c.bnorm[e]));
                    }
                    c.live[e] = false;
                    continue;
                }
                let beta = rz_new / c.rz[e];
                c.rz[e] = rz_new;
                for k in 0..n {
                    let i = k * s + e;
                    c.p[i] = c.z[i] + beta * c.p[i];
                }
            }
            // Frozen lanes contribute no direction.
            for e in 0..s {
                if !c.live[e] {
                    for k in 0..n {
                        c.p[k * s + e] = 0.0;
                    }
                }
            }
        }
        for e in 0..s {
            if c.live[e] {
                let residual = dot(&c.r, &c.r, e).sqrt() / c.bnorm[e];
                self.stops[e] = Some((SolveStop::IterationCap, residual));
            }
        }
        self.cg = c;
    }
}
