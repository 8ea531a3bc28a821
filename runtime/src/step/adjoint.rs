//! The adjoint of a substep (explicit: the reversed fused kernel; implicit:
//! the implicit function theorem, one solve with the surrogate Hessians),
//! the VJP kernels it runs, the accumulation of parameter and control
//! gradients, and the adjoint of the outputs.

use super::held::held_adjoint_settled;
use super::{set_seed, Adjoint, Part, Scratch, Snapshot};
use crate::Scene;
use joule_compiler::abi::Real;
use joule_compiler::kernels::KernelKind;
use joule_compiler::model::{Integrator, Kinematics};

impl<T: Real> Part<T> {
    /// The adjoint of one substep as the scene's gradients define it: of
    /// the simulated substep from `start` to `end` ([`Part::substep_adjoint`]),
    /// or, in `surrogate = model`, of the surrogate model's own substep from
    /// `start` (taken here, so that the surrogate is re-aligned with the
    /// simulation at every substep and its step map is differentiated at its
    /// own solution). The surrogate's solver reports join this partition's.
    pub fn step_adjoint(
        &mut self,
        scene: &Scene,
        start: &Snapshot,
        end: &Snapshot,
        adj: &mut Adjoint,
        step: usize,
    ) {
        let (Some(model), Some(mut sur)) = (scene.surrogate_model(), self.surrogate.take()) else {
            self.substep_adjoint(scene, start, end, adj, step);
            return;
        };
        sur.b.params.copy_from_slice(&self.b.params);
        sur.b.controls.copy_from_slice(&self.b.controls);
        sur.restore(start);
        sur.events.clear();
        sur.substep(model, step);
        let sur_end = sur.snapshot(model.dofs());
        sur.substep_adjoint(model, start, &sur_end, adj, step);
        self.events.append(&mut sur.events);
        self.surrogate = Some(sur);
    }

    /// Adjoint of one substep from `start` (the state before it) to `end`
    /// (the state it computed). On entry `adj.x`, `adj.v` hold dL/dx', dL/dv'
    /// of `end`; on exit dL/dx, dL/dv of `start`, with params and controls
    /// accumulated. CG solves that stop short are reported as events of `step`.
    pub fn substep_adjoint(
        &mut self,
        scene: &Scene,
        start: &Snapshot,
        end: &Snapshot,
        adj: &mut Adjoint,
        step: usize,
    ) {
        let h = scene.substep();
        let (n, s) = (scene.dofs(), self.stride());
        self.restore(start);
        match scene.compiled.model.settings.integrator {
            Integrator::SymplecticEuler => {
                // w = M^-1 (v' bar + h x' bar), the adjoint of the velocity update.
                self.begin_substep(n);
                self.hold(scene);
                let (vbar, w) = (&mut self.scratch.rhs, &mut self.scratch.dx);
                for i in 0..n * s {
                    vbar[i] = adj.v[i] + h * adj.x[i];
                }
                scene.mass.solve(vbar, w, s);
                self.mass_scales_adjoint(scene, adj, h);
                let w = &self.scratch.dx;
                set_seed(&mut self.b, w);
                self.vjp(scene, KernelKind::Adjoint);
                let vbar = &self.scratch.rhs;
                for i in 0..n * s {
                    let b = &self.b;
                    // The forces' held values are the step's start too.
                    let held = b.d_held_x[i].to_f64();
                    adj.x[i] -= h * (b.d_x[i].to_f64() + b.d_prev_x[i].to_f64() + held);
                    adj.v[i] = vbar[i] - h * (b.d_v[i].to_f64() + b.d_prev_v[i].to_f64());
                }
                self.accumulate(adj, -h);
            }
            Integrator::ImplicitEuler {
                kinematics: Kinematics::Linear,
                ..
            } if scene.tree().is_some() => {
                self.linear_adjoint(scene, start, end, adj);
            }
            Integrator::ImplicitEuler { .. } if scene.tree().is_some() => {
                self.reduced_adjoint(scene, start, end, adj);
            }
            Integrator::RungeKutta4 { .. } => {
                unreachable!("gradients through rk4 are refused before any step is taped (Scene::gradients_unavailable)")
            }
            Integrator::ImplicitEuler { .. } => {
                // The implicit function theorem at the solution `end`: x',
                // v' = (x' - x_t)/h, prev = start (the implicit kernels read
                // velocities as (x - prev_x)/h).
                self.begin_substep(n);
                self.restore(end);
                self.hold(scene);
                let mut w = std::mem::replace(&mut self.scratch, Scratch::new(0, 0));
                for i in 0..n * s {
                    w.rhs[i] = adj.x[i] + adj.v[i] / h;
                }
                w.dx.fill(0.0);
                for e in 0..s {
                    w.active[e] = e < self.len;
                }
                self.stops.fill(None);
                self.solve(scene, h, &w.rhs, &mut w.dx, &w.active, true);
                if scene.holds {
                    self.held_adjoint(scene, h, &mut w);
                }
                self.report_stops(step, true);
                set_seed(&mut self.b, &w.dx);
                self.vjp(scene, KernelKind::Adjoint);
                scene.mass.mul(&w.dx, &mut w.md, s);
                for i in 0..n * s {
                    let vbar_next = adj.v[i];
                    adj.x[i] = w.md[i] / (h * h) - self.b.d_prev_x[i].to_f64() - vbar_next / h;
                    adj.v[i] = w.md[i] / h - self.b.d_prev_v[i].to_f64();
                }
                self.accumulate(adj, -1.0);
                self.scratch = w;
            }
        }
    }

    /// The adjoint through the held values: with `G(x, x_h)` the gradient of
    /// the step's potential and the held values `x_h = x` at the solution,
    /// the step's Jacobian is `H + dG/dx_h` (not symmetric: held values make
    /// forces that are not a potential's), and its transposed system
    /// `(H + dG/dx_h)^T a = w.rhs` is solved by the transpose of the forward's
    /// fixed-point iteration, `a <- H^-1 (w.rhs - (dG/dx_h)^T a)` from `a =
    /// H^-1 w.rhs` in `w.dx` (the VJP kernel's `d_held_x` is `(dG/dx_h)^T a`),
    /// with Anderson's mixing (on a linear map, a Krylov method: a few
    /// dominant modes converge in a few iterations), in the frame of
    /// [`Part::held_adjoint_iterations`].
    fn held_adjoint(&mut self, scene: &Scene, h: f64, w: &mut Scratch) {
        let (n, s) = (scene.dofs(), self.stride());
        for e in 0..s {
            w.active[e] = e < self.len;
        }
        self.held_adjoint_iterations(scene, w, |part, mixing, w| {
            for i in 0..n * s {
                w.md[i] = w.rhs[i] - part.b.d_held_x[i].to_f64();
            }
            w.d[..n * s].copy_from_slice(&w.dx[..n * s]);
            // The Hessian is the same at every iteration: its factor, kept.
            if !part.solve_again(scene, &w.md, &mut w.dx, &w.active) {
                part.solve(scene, h, &w.md, &mut w.dx, &w.active, true);
            }
            // The images, for Anderson's mixing of the next iterates into `w.dx`.
            w.x0[..n * s].copy_from_slice(&w.dx[..n * s]);
            for e in 0..part.len {
                if !w.active[e] {
                    continue;
                }
                let lane = |v: &[f64]| (0..n).map(|r| v[r * s + e].abs()).fold(0.0, f64::max);
                let change = (0..n)
                    .map(|r| (w.dx[r * s + e] - w.d[r * s + e]).abs())
                    .fold(0.0, f64::max);
                if held_adjoint_settled(change, lane(&w.dx)) {
                    w.active[e] = false;
                    continue;
                }
                let (u, t, next) = (&w.d, &w.x0, &mut w.dx);
                mixing.update(
                    e,
                    n,
                    |r| u[r * s + e],
                    |r| t[r * s + e],
                    1.0,
                    |r, v| next[r * s + e] = v,
                );
            }
        });
    }

    /// Runs a VJP kernel into cleared `d_*` buffers.
    pub(super) fn vjp(&mut self, scene: &Scene, kind: KernelKind) {
        // Only kernels of scenes that hold write `d_held_x`: elsewhere it
        // stays zero from its allocation.
        if scene.holds {
            self.b.d_held_x.fill(T::default());
        }
        for buf in [
            &mut self.b.d_x,
            &mut self.b.d_v,
            &mut self.b.d_prev_x,
            &mut self.b.d_prev_v,
            &mut self.b.d_params,
            &mut self.b.d_controls,
        ] {
            buf.fill(T::default());
        }
        self.run(scene, kind);
    }

    /// In an explicit substep with masses that read parameters: turns the
    /// owners' rows of `w = M0^-1 (v' bar + h x' bar)` into `M(p)^-1`'s, and
    /// adds the values' derivatives ([`Part::explicit_mass_adjoint`]),
    /// carried to the parameters.
    fn mass_scales_adjoint(&mut self, scene: &Scene, adj: &mut Adjoint, h: f64) {
        if scene.mass_scales().is_empty() {
            return;
        }
        self.load_mass_scales(scene);
        self.forces(scene, |_| true);
        let mut w = std::mem::take(&mut self.scratch.dx);
        let grad = &self.b.grad;
        let dvalues = self.explicit_mass_adjoint(scene, &mut w, |i| grad[i].to_f64(), h);
        self.scratch.dx = w;
        self.mass_scales_to_params(scene, &dvalues, &mut adj.params);
    }

    pub(super) fn accumulate(&self, adj: &mut Adjoint, scale: f64) {
        for (a, d) in adj.params.iter_mut().zip(self.b.d_params.iter()) {
            *a += scale * d.to_f64();
        }
        for (a, d) in adj.controls.iter_mut().zip(self.b.d_controls.iter()) {
            *a += scale * d.to_f64();
        }
    }

    /// Adds the gradient of `out_seed . outputs` at the current state (what
    /// `prev(..)` reads to `adj.prev`, for the start of the step).
    pub fn outputs_adjoint(&mut self, scene: &Scene, adj: &mut Adjoint) {
        let (n, s) = (scene.dofs(), self.stride());
        self.vjp(scene, KernelKind::OutputsVjp);
        for i in 0..n * s {
            adj.x[i] += self.b.d_x[i].to_f64();
            adj.v[i] += self.b.d_v[i].to_f64();
            adj.prev[i] += self.b.d_prev_x[i].to_f64();
            adj.prev[n * s + i] += self.b.d_prev_v[i].to_f64();
        }
        self.accumulate(adj, 1.0);
    }
}
