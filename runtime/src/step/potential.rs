//! The incremental potential the implicit substep minimises,
//! 1/(2h^2) |x - x~|_M^2 + E(x) + h D((x - x_t)/h), per environment, and its
//! gradient; the velocity the kernels read is set from x first. Links whose
//! masses read params set their rows of `M (x - x~)` (`mass_scale.rs`).

use super::{load, Part, Scratch};
use crate::Scene;
use joule_compiler::abi::Real;
use joule_compiler::kernels::KernelKind;

/// The lanes whose potential or gradient a sweep must compute: the
/// kernels run on the vector chunks holding one ([`Part::run_where`]); the
/// other lanes' values are stale, and read by no one.
#[derive(Clone, Copy)]
pub(super) enum Lanes {
    /// Every lane (Newton's start).
    All,
    /// The lanes Newton still iterates (`w.active`).
    Active,
    /// The lanes whose line search has not accepted a point (`!w.done`).
    Searching,
}

impl Lanes {
    pub(super) fn wants(self, w: &Scratch, e: usize) -> bool {
        match self {
            Lanes::All => true,
            Lanes::Active => w.active[e],
            Lanes::Searching => !w.done[e],
        }
    }
}

impl<T: Real> Part<T> {
    /// Incremental potential per environment at the current x (v set from x)
    /// into `w.phi`, on the `lanes` asked for.
    pub(super) fn potential(&mut self, scene: &Scene, w: &mut Scratch, h: f64, lanes: Lanes) {
        let (n, s) = (scene.dofs(), self.stride());
        self.set_velocity(n, &w.x_t, h);
        self.b.energy.fill(T::default());
        self.run_where(scene, KernelKind::Energy, |e| lanes.wants(w, e));
        load(&mut w.sweep, &self.b.energy[..s]);
        self.b.energy.fill(T::default());
        self.run_where(scene, KernelKind::Dissipation, |e| lanes.wants(w, e));
        for e in 0..s {
            w.sweep[e] += self.b.energy[e].to_f64(); // the kernel holds h D((x - x_t)/h)
        }
        let k = n * s;
        for ((d, x), xt) in w.d[..k].iter_mut().zip(&self.b.x[..k]).zip(&w.xt[..k]) {
            *d = x.to_f64() - xt;
        }
        scene.mass.mul(&w.d, &mut w.md, s);
        if !scene.mass_scales().is_empty() {
            self.param_mass_rows(scene, &w.d, &mut w.md);
        }
        add_lane_dots(&w.d[..k], &w.md[..k], s, 1.0 / (2.0 * h * h), &mut w.sweep);
        for e in 0..s {
            if lanes.wants(w, e) {
                w.phi[e] = w.sweep[e];
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

    /// Gradient of the incremental potential into `w.g`, on the `lanes`
    /// asked for.
    pub(super) fn potential_gradient(
        &mut self,
        scene: &Scene,
        w: &mut Scratch,
        h: f64,
        lanes: Lanes,
    ) {
        let (n, s) = (scene.dofs(), self.stride());
        self.set_velocity(n, &w.x_t, h);
        self.forces(scene, |e| lanes.wants(w, e));
        let k = n * s;
        for ((d, x), xt) in w.d[..k].iter_mut().zip(&self.b.x[..k]).zip(&w.xt[..k]) {
            *d = x.to_f64() - xt;
        }
        scene.mass.mul(&w.d, &mut w.g, s);
        if !scene.mass_scales().is_empty() {
            self.param_mass_rows(scene, &w.d, &mut w.g);
        }
        let scale = 1.0 / (h * h);
        for (g, grad) in w.g[..k].iter_mut().zip(&self.b.grad[..k]) {
            *g = *g * scale + grad.to_f64();
        }
    }
}

/// Adds `scale` times each lane's dot product of `a` and `b` (rows of
/// `stride` lanes) to `out`: each lane's sum in row order, then scaled,
/// up to eight lanes at a time across the rows (contiguous loads that
/// vectorise, the sums in registers; a lane at a time down its column
/// would be a strided chain of dependent additions).
fn add_lane_dots(a: &[f64], b: &[f64], stride: usize, scale: f64, out: &mut [f64]) {
    let mut c = 0;
    while c < stride {
        c += match stride - c {
            8.. => lane_dots::<8>(a, b, stride, c, scale, out),
            4.. => lane_dots::<4>(a, b, stride, c, scale, out),
            2.. => lane_dots::<2>(a, b, stride, c, scale, out),
            _ => lane_dots::<1>(a, b, stride, c, scale, out),
        };
    }
}

/// [`add_lane_dots`] of the `W` lanes from `c`; returns `W`.
fn lane_dots<const W: usize>(
    a: &[f64],
    b: &[f64],
    stride: usize,
    c: usize,
    scale: f64,
    out: &mut [f64],
) -> usize {
    let rows = a.len() / stride;
    let mut acc = [0.0; W];
    for r in 0..rows {
        let at = r * stride + c;
        let (a, b): (&[f64; W], &[f64; W]) = (
            a[at..at + W].try_into().expect("W lanes"),
            b[at..at + W].try_into().expect("W lanes"),
        );
        for e in 0..W {
            acc[e] += a[e] * b[e];
        }
    }
    for (o, acc) in out[c..c + W].iter_mut().zip(acc) {
        *o += acc * scale;
    }
    W
}
