//! Masses that read parameters, per lane ([`joule_compiler::start::MassScales`]):
//! each owner's scale `m(p) / m0` from the lane's params, applied to its
//! rows. Symplectic Euler divides the owner's forces by it; a step in joint
//! coordinates multiplies its link's inertia (`M (y - y~)`, its Hessian block)
//! by it, and both adjoints carry `dL/dscale` to the params.

use super::Part;
use crate::joints::Tree;
use crate::Scene;
use joule_compiler::abi::Real;

impl<T: Real> Part<T> {
    /// Every lane's owner scales, `[owner * stride + lane]`, from its params
    /// (1 in padding lanes); nothing without masses that read params. No
    /// allocation after the first substep.
    pub(super) fn load_mass_scales(&mut self, scene: &Scene) {
        let scales = scene.mass_scales();
        if scales.is_empty() {
            return;
        }
        let (np, s) = (scene.model().params.len(), self.stride());
        let owners = scales.owner_rows().count();
        let w = &mut self.mass;
        w.scale.resize(owners * s, 1.0);
        w.params.resize(np, 0.0);
        w.lane.resize(owners, 1.0);
        for e in 0..self.len {
            for (i, p) in w.params.iter_mut().enumerate() {
                *p = self.b.params[i * s + e].to_f64();
            }
            scales.scales_into(&w.params, &mut w.nodes, &mut w.lane);
            for (o, &k) in w.lane.iter().enumerate() {
                w.scale[o * s + e] = k;
            }
        }
    }

    /// Multiplies each owner's rows of `buf` (`[row * stride + lane]`) by its
    /// lane's scale, or divides them.
    pub(super) fn scale_mass_rows<R: Real>(&self, scene: &Scene, buf: &mut [R], divide: bool) {
        scale_rows(scene, &self.mass.scale, self.stride(), buf, divide);
    }

    /// The scale of the mass of the link whose rows start at `row` in lane
    /// `e` (1 where its mass does not read params).
    pub(super) fn link_mass_scale(&self, scene: &Scene, row: usize, e: usize) -> f64 {
        let s = self.stride();
        scene
            .mass_scales()
            .owner_rows()
            .position(|r| r.start == row)
            .map_or(1.0, |o| self.mass.scale[o * s + e])
    }

    /// Per owner and lane, `[owner * stride + lane]`, the sum of `f(i)` over
    /// the owner's rows in that lane (`i = row * stride + lane`).
    pub(super) fn owner_sums(&self, scene: &Scene, f: impl Fn(usize) -> f64) -> Vec<f64> {
        let s = self.stride();
        let mut sums = vec![0.0; self.mass.scale.len()];
        for (o, rows) in scene.mass_scales().owner_rows().enumerate() {
            for e in 0..self.len {
                sums[o * s + e] = rows.clone().map(|r| f(r * s + e)).sum();
            }
        }
        sums
    }

    /// Adds `dL/dparams` for lane scales' derivatives `dscale[owner * stride + lane]`.
    pub(super) fn mass_scales_to_params(&self, scene: &Scene, dscale: &[f64], params: &mut [f64]) {
        let (np, s) = (scene.model().params.len(), self.stride());
        let owners = scene.mass_scales().owner_rows().count();
        for e in 0..self.len {
            let p: Vec<f64> = (0..np).map(|i| self.b.params[i * s + e].to_f64()).collect();
            let seeds: Vec<f64> = (0..owners).map(|o| dscale[o * s + e]).collect();
            let mut dp = vec![0.0; np];
            scene.mass_scales().vjp(&p, &seeds, &mut dp);
            for (i, d) in dp.into_iter().enumerate() {
                params[i * s + e] += d;
            }
        }
    }

    /// A floating tree's prediction shift with scaled link masses: scales
    /// `md` (`M d`, the shift's numerator rows) and records, per lane, each
    /// tree's shift `c = T^T M_s d / m(s)` and each link's unscaled
    /// `T^T M_l d`, which the adjoint's `dL/dscale` reads.
    pub(super) fn record_floating_shift(&mut self, scene: &Scene, tree: &Tree, md: &mut [f64]) {
        let s = self.stride();
        let (nt, nl) = (tree.floating.len(), tree.links.len());
        self.mass.floating.resize(3 * s * (nt + nl), 0.0);
        for (l, link) in tree.links.iter().enumerate() {
            for e in 0..s {
                for k in 0..3 {
                    self.mass.floating[3 * (s * (nt + l) + e) + k] = md[(link.row + k) * s + e];
                }
            }
        }
        self.scale_mass_rows(scene, md, false);
        for (t, (links, _)) in tree.floating.iter().enumerate() {
            for e in 0..self.len {
                let m = tree
                    .floating_mass(links, |l| self.link_mass_scale(scene, tree.links[l].row, e));
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

    /// The floating trees' shift's part of `dL/dscale` (added to `dscale`,
    /// `[owner * stride + lane]`): with `P = T^T M_s s` (`md`: the unscaled
    /// `M s`), `(P . (T^T M_l d - c m_l)) / (m h^2)` for link `l`.
    pub(super) fn floating_shift_adjoint(
        &self,
        scene: &Scene,
        tree: &Tree,
        md: &[f64],
        h: f64,
        dscale: &mut [f64],
    ) {
        let s = self.stride();
        let nt = tree.floating.len();
        let owners: Vec<usize> = scene.mass_scales().owner_rows().map(|r| r.start).collect();
        for (t, (links, _)) in tree.floating.iter().enumerate() {
            for e in 0..self.len {
                let scale = |l: usize| self.link_mass_scale(scene, tree.links[l].row, e);
                let m = tree.floating_mass(links, scale);
                let p: [f64; 3] = std::array::from_fn(|k| {
                    links
                        .iter()
                        .map(|&l| scale(l) * md[(tree.links[l].row + k) * s + e])
                        .sum()
                });
                let c = &self.mass.floating[3 * (s * t + e)..3 * (s * t + e) + 3];
                for &l in links {
                    let Some(o) = owners.iter().position(|&r| r == tree.links[l].row) else {
                        continue;
                    };
                    let md_l =
                        &self.mass.floating[3 * (s * (nt + l) + e)..3 * (s * (nt + l) + e) + 3];
                    let m_l = tree.floating_mass(&[l], |_| 1.0);
                    let d: f64 = (0..3).map(|k| p[k] * (md_l[k] - c[k] * m_l)).sum();
                    dscale[o * s + e] += d / (m * h * h);
                }
            }
        }
    }
}

/// A partition's vectors for masses that read params, reused across steps.
#[derive(Default)]
pub(super) struct MassWork {
    /// Each lane's owner scales, `[owner * stride + lane]`.
    pub(super) scale: Vec<f64>,
    /// With such masses on a floating tree: each tree's prediction shift
    /// and each link's share of its numerator, per lane.
    pub(super) floating: Vec<f64>,
    /// One lane's params, its graph's values and its owners' scales.
    params: Vec<f64>,
    nodes: Vec<f64>,
    lane: Vec<f64>,
}

/// Multiplies each owner's rows of `buf` (`[row * stride + lane]`, stride
/// `s`) by its lane's scale in `scale` (`[owner * stride + lane]`), or
/// divides them.
pub(super) fn scale_rows<R: Real>(
    scene: &Scene,
    scale: &[f64],
    s: usize,
    buf: &mut [R],
    divide: bool,
) {
    for (o, rows) in scene.mass_scales().owner_rows().enumerate() {
        for e in 0..s {
            let k = scale[o * s + e];
            let k = if divide { 1.0 / k } else { k };
            for r in rows.clone() {
                let x = &mut buf[r * s + e];
                *x = R::from_f64(x.to_f64() * k);
            }
        }
    }
}
