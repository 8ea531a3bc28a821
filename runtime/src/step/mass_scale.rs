//! Masses that read parameters, per lane ([`joule_compiler::start::MassScales`]):
//! each owner's values from the lane's params. Most owners have a scale
//! `m(p) / m0`: symplectic Euler divides a particle's or affine body's
//! forces by it, a step in joint coordinates multiplies a link's inertia
//! (`M (y - y~)`, its Hessian block, a floating tree's prediction shift) by
//! it. A link whose `com` or `inertia` reads params has its affine mass
//! matrix `W(p)` instead. Both adjoints carry the values' derivatives to the
//! params.

use super::Part;
use crate::joints::Tree;
use crate::Scene;
use glam::DMat4;
use joule_compiler::abi::Real;
use joule_compiler::start::{affine_weights, AFFINE_WEIGHTS};

impl<T: Real> Part<T> {
    /// Every lane's owner values, `[value * stride + lane]`, from its params
    /// (padding lanes: the first lane's); nothing without masses that read
    /// params. No allocation after the first substep.
    pub(super) fn load_mass_scales(&mut self, scene: &Scene) {
        let scales = scene.mass_scales();
        if scales.is_empty() {
            return;
        }
        let (np, s) = (scene.model().params.len(), self.stride());
        let w = &mut self.mass;
        w.values.resize(scales.len() * s, 1.0);
        w.params.resize(np, 0.0);
        w.lane.resize(scales.len(), 1.0);
        for e in 0..self.len {
            for (i, p) in w.params.iter_mut().enumerate() {
                *p = self.b.params[i * s + e].to_f64();
            }
            scales.values_into(&w.params, &mut w.nodes, &mut w.lane);
            for (o, &k) in w.lane.iter().enumerate() {
                w.values[o * s + e] = k;
            }
        }
        if self.len > 0 {
            for o in 0..w.lane.len() {
                for e in self.len..s {
                    w.values[o * s + e] = w.values[o * s];
                }
            }
        }
    }

    /// `md` on the owners' rows from the displacement `d` (`md` holding
    /// `M0 d`, the declared mass matrix's product): a scale's rows
    /// multiplied by it, the rows of an owner with weights `W(p) d`.
    pub(super) fn param_mass_rows(&self, scene: &Scene, d: &[f64], md: &mut [f64]) {
        let s = self.stride();
        for o in scene.mass_scales().owners() {
            if !o.has_weights() {
                for e in 0..s {
                    let k = self.mass.values[o.values.start * s + e];
                    for r in o.rows.clone() {
                        md[r * s + e] *= k;
                    }
                }
            }
        }
        self.weighted_rows(scene, d, md);
    }

    /// `md` on the rows of owners with weights (links, affine bodies): `W(p) d`.
    fn weighted_rows(&self, scene: &Scene, d: &[f64], md: &mut [f64]) {
        let s = self.stride();
        for o in scene
            .mass_scales()
            .owners()
            .iter()
            .filter(|o| o.has_weights())
        {
            for e in 0..self.len {
                let w = self.mass.weights(o.values.start, s, e);
                for a in 0..4 {
                    for k in 0..3 {
                        md[(o.rows.start + 3 * a + k) * s + e] = (0..4)
                            .map(|b| w[a][b] * d[(o.rows.start + 3 * b + k) * s + e])
                            .sum();
                    }
                }
            }
        }
    }

    /// How the mass of the link whose rows start at `row` reads params in
    /// lane `e`.
    fn link_inertia(&self, scene: &Scene, row: usize, e: usize) -> LinkInertia {
        let s = self.stride();
        let owner = scene
            .mass_scales()
            .owners()
            .iter()
            .find(|o| o.rows.start == row);
        match owner {
            None => LinkInertia::Declared,
            Some(o) if o.has_weights() => {
                LinkInertia::Weights(self.mass.weights(o.values.start, s, e))
            }
            Some(o) => LinkInertia::Scaled(self.mass.values[o.values.start * s + e]),
        }
    }

    /// Link `l`'s inertia in lane `e` for [`Tree::reduce_hessian`]: its
    /// weights where params set them, and the factor its rigid inertia is
    /// multiplied by (its scale over `over`: `h^2` in the implicit step).
    pub(super) fn link_hessian_mass(
        &self,
        scene: &Scene,
        tree: &Tree,
        l: usize,
        e: usize,
        over: f64,
    ) -> (Option<[[f64; 4]; 4]>, f64) {
        match self.link_inertia(scene, tree.links[l].row, e) {
            LinkInertia::Declared => (None, 1.0 / over),
            LinkInertia::Scaled(k) => (None, k / over),
            LinkInertia::Weights(w) => (Some(w), 1.0 / over),
        }
    }

    /// The mass of link `l` of `tree` in lane `e`.
    pub(super) fn link_mass(&self, scene: &Scene, tree: &Tree, l: usize, e: usize) -> f64 {
        match self.link_inertia(scene, tree.links[l].row, e) {
            LinkInertia::Declared => tree.declared_mass(l),
            LinkInertia::Scaled(k) => k * tree.declared_mass(l),
            LinkInertia::Weights(w) => w[0][0],
        }
    }

    /// The explicit step's adjoint through the masses of particles and
    /// affine bodies that read params: turns `w = M0^-1 vbar` into `M(p)^-1
    /// vbar` on their rows (divided by a scale, multiplied by `W(p)^-1 W0`
    /// for weights) and returns the values' derivatives (`[value * stride +
    /// lane]`) with `g` the forces' rows (`grad`, `dE/dx` at the substep's
    /// start): `(h / scale) w . g` for a scale, `h (w_a . a_b + w_b . a_a)`
    /// (once on the diagonal) for a weight `W[a][b]`, `a = W(p)^-1 g`.
    pub(super) fn explicit_mass_adjoint(
        &self,
        scene: &Scene,
        w: &mut [f64],
        g: impl Fn(usize) -> f64,
        h: f64,
    ) -> Vec<f64> {
        let s = self.stride();
        let mut out = vec![0.0; self.mass.values.len()];
        for o in scene.mass_scales().owners().iter().filter(|o| !o.link) {
            for e in 0..self.len {
                let i = |r: usize| (o.rows.start + r) * s + e;
                if !o.has_weights() {
                    let k = self.mass.values[o.values.start * s + e];
                    let inv = 1.0 / k;
                    for r in 0..o.rows.len() {
                        w[i(r)] *= inv;
                    }
                    let sum: f64 = (0..o.rows.len()).map(|r| w[i(r)] * g(i(r))).sum();
                    out[o.values.start * s + e] = sum * (h / k);
                    continue;
                }
                let inverse = mat4(self.mass.weights(o.values.start, s, e)).inverse();
                turn_rows(&(inverse * mat4(o.declared)), o.rows.start, s, e, w);
                let gb: [f64; 12] = std::array::from_fn(|r| g(i(r)));
                let a: [f64; 12] = std::array::from_fn(|r| {
                    let (blk, k) = (r / 3, r % 3);
                    (0..4).map(|b| inverse.col(b)[blk] * gb[3 * b + k]).sum()
                });
                let dot = |x: usize, y: usize| -> f64 {
                    (0..3).map(|k| w[i(3 * x + k)] * a[3 * y + k]).sum()
                };
                for (v, &(x, y)) in AFFINE_WEIGHTS.iter().enumerate() {
                    let d = if x == y {
                        dot(x, x)
                    } else {
                        dot(x, y) + dot(y, x)
                    };
                    out[(o.values.start + v) * s + e] = h * d;
                }
            }
        }
        out
    }

    /// The inertia term's part of the values' derivatives
    /// (`[value * stride + lane]`) in a step in joint coordinates: its
    /// residual `M (y - y~) / h^2`, met by the seed `s` (`md` its `M0 s`)
    /// with `delta = y* - y~`: `-(M0 s) . delta / h^2` for a scale,
    /// `-(s_a . delta_b + s_b . delta_a) / h^2` for a link's weight
    /// `W[a][b]` (once on the diagonal; `s_a` the rows of block `a`: the
    /// origin, then the rotation's columns).
    pub(super) fn inertia_value_seeds(
        &self,
        scene: &Scene,
        seed: &[f64],
        md: &[f64],
        delta: impl Fn(usize) -> f64,
        h: f64,
    ) -> Vec<f64> {
        let s = self.stride();
        let mut out = vec![0.0; self.mass.values.len()];
        for o in scene.mass_scales().owners() {
            for e in 0..self.len {
                let i = |r: usize| (o.rows.start + r) * s + e;
                if !o.has_weights() {
                    let sum: f64 = (0..o.rows.len()).map(|r| md[i(r)] * delta(i(r))).sum();
                    out[o.values.start * s + e] = -sum / (h * h);
                    continue;
                }
                let dot = |a: usize, b: usize| -> f64 {
                    (0..3)
                        .map(|k| seed[i(3 * a + k)] * delta(i(3 * b + k)))
                        .sum()
                };
                for (v, &(a, b)) in AFFINE_WEIGHTS.iter().enumerate() {
                    let d = if a == b {
                        dot(a, a)
                    } else {
                        dot(a, b) + dot(b, a)
                    };
                    out[(o.values.start + v) * s + e] = -d / (h * h);
                }
            }
        }
        out
    }

    /// Adds `dL/dparams` for lane values' derivatives `dvalues[value * stride + lane]`.
    pub(super) fn mass_scales_to_params(&self, scene: &Scene, dvalues: &[f64], params: &mut [f64]) {
        let (np, s) = (scene.model().params.len(), self.stride());
        let n = scene.mass_scales().len();
        for e in 0..self.len {
            let p: Vec<f64> = (0..np).map(|i| self.b.params[i * s + e].to_f64()).collect();
            let seeds: Vec<f64> = (0..n).map(|o| dvalues[o * s + e]).collect();
            let mut dp = vec![0.0; np];
            scene.mass_scales().vjp(&p, &seeds, &mut dp);
            for (i, d) in dp.into_iter().enumerate() {
                params[i * s + e] += d;
            }
        }
    }

    /// A floating tree's prediction shift with links' masses that read
    /// params: sets their rows of `md` (`M0 d`, the shift's numerator
    /// rows) to `M(p) d` and records, per lane, each tree's shift `c = T^T M
    /// d / m` and each link's `T^T M0 d` and rows of `d`, which the adjoint
    /// reads.
    pub(super) fn record_floating_shift(
        &mut self,
        scene: &Scene,
        tree: &Tree,
        d: &[f64],
        md: &mut [f64],
    ) {
        let s = self.stride();
        let (nt, nl) = (tree.floating.len(), tree.links.len());
        self.mass
            .floating
            .resize(3 * s * nt + LINK_SHIFT * s * nl, 0.0);
        for (l, link) in tree.links.iter().enumerate() {
            for e in 0..s {
                let at = 3 * s * nt + LINK_SHIFT * (s * l + e);
                let rec = &mut self.mass.floating[at..at + LINK_SHIFT];
                for k in 0..3 {
                    rec[k] = md[(link.row + k) * s + e];
                }
                for r in 0..12 {
                    rec[3 + r] = d[(link.row + r) * s + e];
                }
            }
        }
        self.param_mass_rows(scene, d, md);
        for (t, (links, _)) in tree.floating.iter().enumerate() {
            for e in 0..self.len {
                let m = tree.floating_mass(links, |l| self.link_mass(scene, tree, l, e));
                for k in 0..3 {
                    let sum: f64 = links
                        .iter()
                        .map(|l| md[(tree.links[*l].row + k) * s + e])
                        .sum();
                    self.mass.floating[3 * (s * t + e) + k] = sum / m;
                }
            }
        }
    }

    /// The floating trees' shift's part of the values' derivatives (added
    /// to `dvalues`, `[value * stride + lane]`): with `P = T^T M s` (`md`:
    /// `M(p) s` on the links' rows), `P . (T^T M0_l d - c m0_l) / (m h^2)`
    /// for a link's scale; for a link with weights `P . (d_0 - c) / (m
    /// h^2)` for its mass `W[0][0]` and `P . d_b / (m h^2)` for its first
    /// moments `W[0][b]` (`d_b` its rows of the shift's `d`).
    pub(super) fn floating_shift_adjoint(
        &self,
        scene: &Scene,
        tree: &Tree,
        md: &[f64],
        h: f64,
        dvalues: &mut [f64],
    ) {
        let s = self.stride();
        let nt = tree.floating.len();
        for (t, (links, _)) in tree.floating.iter().enumerate() {
            for e in 0..self.len {
                let m = tree.floating_mass(links, |l| self.link_mass(scene, tree, l, e));
                let p: [f64; 3] = std::array::from_fn(|k| {
                    links
                        .iter()
                        .map(|&l| md[(tree.links[l].row + k) * s + e])
                        .sum()
                });
                let c = &self.mass.floating[3 * (s * t + e)..3 * (s * t + e) + 3];
                for &l in links {
                    let row = tree.links[l].row;
                    let owners = scene.mass_scales().owners();
                    let Some(o) = owners.iter().find(|o| o.rows.start == row) else {
                        continue;
                    };
                    let at = 3 * s * nt + LINK_SHIFT * (s * l + e);
                    let rec = &self.mass.floating[at..at + LINK_SHIFT];
                    if !o.has_weights() {
                        let m_l = tree.floating_mass(&[l], |l| tree.declared_mass(l));
                        let d: f64 = (0..3).map(|k| p[k] * (rec[k] - c[k] * m_l)).sum();
                        dvalues[o.values.start * s + e] += d / (m * h * h);
                        continue;
                    }
                    let d = &rec[3..];
                    for b in 0..4 {
                        let sum: f64 = (0..3)
                            .map(|k| p[k] * (d[3 * b + k] - if b == 0 { c[k] } else { 0.0 }))
                            .sum();
                        // `W[0][b]` is value `b` of the link's ten.
                        dvalues[(o.values.start + b) * s + e] += sum / (m * h * h);
                    }
                }
            }
        }
    }
}

/// A link's record of a floating tree's shift per lane: its `T^T M0 d`
/// (3) and its rows of `d` (12).
const LINK_SHIFT: usize = 15;

/// How a link's mass reads params in one lane.
enum LinkInertia {
    /// It does not: the declared mass matrix.
    Declared,
    /// The declared mass matrix times this scale.
    Scaled(f64),
    /// This affine mass matrix (its `com` or `inertia` reads params).
    Weights([[f64; 4]; 4]),
}

/// A partition's vectors for masses that read params, reused across steps.
#[derive(Default)]
pub(super) struct MassWork {
    /// Each lane's owner values, `[value * stride + lane]`.
    pub(super) values: Vec<f64>,
    /// With such masses on a floating tree: each tree's prediction shift
    /// and each link's record of it ([`LINK_SHIFT`]), per lane.
    pub(super) floating: Vec<f64>,
    /// One lane's params, its graph's values and its owners' values.
    params: Vec<f64>,
    nodes: Vec<f64>,
    lane: Vec<f64>,
}

impl MassWork {
    /// Lane `e`'s affine mass matrix of the owner whose ten values begin at
    /// `first` (stride `s`).
    fn weights(&self, first: usize, s: usize, e: usize) -> [[f64; 4]; 4] {
        weights_at(&self.values, first, s, e)
    }
}

/// Lane `e`'s affine mass matrix from `values` (`[value * stride + lane]`,
/// stride `s`), its ten values beginning at `first`.
fn weights_at(values: &[f64], first: usize, s: usize, e: usize) -> [[f64; 4]; 4] {
    let v: [f64; 10] = std::array::from_fn(|k| values[(first + k) * s + e]);
    affine_weights(&v)
}

/// The forces of the particles and affine bodies whose masses read params
/// (`buf`, `[row * stride + lane]`, stride `s`), turned so that the declared
/// mass matrix's inverse gives their accelerations: divided by a scale,
/// multiplied by `W0 W(p)^-1` for weights (`values`: `[value * stride +
/// lane]`). Links' act in the reduced step.
pub(super) fn explicit_forces<R: Real>(scene: &Scene, values: &[f64], s: usize, buf: &mut [R]) {
    for o in scene.mass_scales().owners().iter().filter(|o| !o.link) {
        for e in 0..s {
            if !o.has_weights() {
                let k = 1.0 / values[o.values.start * s + e];
                for r in o.rows.clone() {
                    let x = &mut buf[r * s + e];
                    *x = R::from_f64(x.to_f64() * k);
                }
                continue;
            }
            let w = weights_at(values, o.values.start, s, e);
            let turn = mat4(o.declared) * mat4(w).inverse();
            turn_rows(&turn, o.rows.start, s, e, buf);
        }
    }
}

/// `M` as a glam matrix (symmetric: rows or columns alike).
fn mat4(m: [[f64; 4]; 4]) -> DMat4 {
    DMat4::from_cols_array_2d(&m)
}

/// A body's twelve rows from `first` in lane `e` (stride `s`), three-row
/// blocks `a` (origin, the rotation's columns), replaced by `sum_b T[a][b]
/// block_b` (`T` column-major as glam's: `T[a][b]` is `col(b)[a]`).
fn turn_rows<R: Real>(t: &DMat4, first: usize, s: usize, e: usize, buf: &mut [R]) {
    let old: [f64; 12] = std::array::from_fn(|r| buf[(first + r) * s + e].to_f64());
    for a in 0..4 {
        for k in 0..3 {
            let sum: f64 = (0..4).map(|b| t.col(b)[a] * old[3 * b + k]).sum();
            buf[(first + 3 * a + k) * s + e] = R::from_f64(sum);
        }
    }
}
