//! The mass matrix and the constant external force (gravity) per free DOF.
//! Particles carry their mass on x, y, z. An affine body's kinetic energy is
//! `1/2 sum W[a][b] qdot_a . qdot_b` over its origin and matrix columns, with
//! the 4x4 matrix `W` of its shape (`BodyShape::mass_matrix`): diagonal (mass,
//! second moments) for shapes symmetric about their origin, with first
//! moments and products of inertia for compounds and for bodies given an
//! explicit `inertia`.

use joule_compiler::abi::Real;
use joule_compiler::model::Model;

/// Mass matrix (diagonal plus per-body 4x4 blocks) and external force.
#[derive(Debug, Clone, PartialEq)]
pub struct MassModel {
    /// The diagonal of the mass matrix per free DOF.
    pub mass: Vec<f64>,
    /// Constant external (generalised gravity) force per free DOF.
    pub force: Vec<f64>,
    /// Bodies whose `W` is not diagonal: first DOF and `W^-1`.
    blocks: Vec<(usize, Block)>,
    /// The same bodies' off-diagonal nonzeros of `W` (their diagonal is in
    /// `mass`), a row of their `W` at a time.
    weights: Vec<Couplings>,
    /// `M^-1 force` per free DOF (gravity's acceleration).
    accel: Vec<f64>,
    /// `1 / mass` per free DOF.
    inv_mass: Vec<f64>,
}

/// A 4x4 mass block over (origin, column 0, column 1, column 2).
type Block = [[f64; 4]; 4];

/// A body's off-diagonal nonzeros of `W`, row by row: its first DOF, and
/// per row `a` the count and the `(b, W[a][b])` in ascending `b`.
#[derive(Debug, Clone, PartialEq)]
struct Couplings {
    dof: usize,
    count: [usize; 4],
    terms: [[(usize, f64); 3]; 4],
}

impl Couplings {
    fn new(dof: usize, w: &Block) -> Couplings {
        let mut c = Couplings {
            dof,
            count: [0; 4],
            terms: [[(0, 0.0); 3]; 4],
        };
        for a in 0..4 {
            for b in (0..4).filter(|&b| b != a && w[a][b] != 0.0) {
                c.terms[a][c.count[a]] = (b, w[a][b]);
                c.count[a] += 1;
            }
        }
        c
    }
}

fn is_diagonal(w: &[[f64; 4]; 4]) -> bool {
    (0..4).all(|a| (0..4).all(|b| a == b || w[a][b] == 0.0))
}

/// Inverse of a symmetric positive definite 4x4 matrix (Gauss-Jordan).
fn inverse(w: &[[f64; 4]; 4]) -> [[f64; 4]; 4] {
    let mut a = *w;
    let mut inv = [[0.0; 4]; 4];
    for (k, row) in inv.iter_mut().enumerate() {
        row[k] = 1.0;
    }
    for c in 0..4 {
        let p = (c..4)
            .max_by(|x, y| a[*x][c].abs().total_cmp(&a[*y][c].abs()))
            .expect("rows");
        a.swap(c, p);
        inv.swap(c, p);
        let d = a[c][c];
        for k in 0..4 {
            a[c][k] /= d;
            inv[c][k] /= d;
        }
        for r in 0..4 {
            if r != c {
                let f = a[r][c];
                for k in 0..4 {
                    a[r][k] -= f * a[c][k];
                    inv[r][k] -= f * inv[c][k];
                }
            }
        }
    }
    inv
}

impl MassModel {
    /// Masses and gravity forces of a model's free DOFs.
    pub fn new(model: &Model) -> Self {
        let n = model.dof_count;
        let mut mass = vec![0.0; n];
        let mut force = vec![0.0; n];
        let mut blocks = vec![];
        let mut weights = vec![];
        let g = model.settings.gravity;
        for p in &model.particles {
            if let Some(d) = p.dof {
                for k in 0..3 {
                    mass[d as usize + k] = p.mass;
                    force[d as usize + k] = p.mass * g[k];
                }
            }
        }
        for b in &model.bodies {
            if let Some(d) = b.dof {
                let d = d as usize;
                let w = b.mass_matrix();
                for a in 0..4 {
                    for c in 0..3 {
                        mass[d + 3 * a + c] = w[a][a];
                        // Gravity's generalised force on q_a is W[a][0] g.
                        force[d + 3 * a + c] = w[a][0] * g[c];
                    }
                }
                if !is_diagonal(&w) {
                    blocks.push((d, inverse(&w)));
                    weights.push(Couplings::new(d, &w));
                }
            }
        }
        let mut m = MassModel {
            mass,
            force,
            blocks,
            weights,
            accel: vec![],
            inv_mass: vec![],
        };
        // Rows without inertia (joint coordinates: their bodies' rows carry it).
        m.inv_mass = m
            .mass
            .iter()
            .map(|m| if *m == 0.0 { 0.0 } else { 1.0 / m })
            .collect();
        let mut accel = vec![0.0; n];
        m.solve(&m.force, &mut accel, 1);
        m.accel = accel;
        m
    }

    /// `M^-1 force` per free DOF: the acceleration of the external force.
    pub fn gravity_acceleration(&self) -> &[f64] {
        &self.accel
    }

    /// One symplectic Euler update of the free rows (stride `s`) of a state
    /// of either precision: `v += h M^-1 (force - grad)`, `x += h v`, in f64;
    /// a single pass when the mass matrix is diagonal. `net` and `accel` (as
    /// long as `grad`) are scratch.
    #[allow(clippy::too_many_arguments)]
    pub fn explicit_update<T: Real>(
        &self,
        grad: &[T],
        net: &mut [f64],
        accel: &mut [f64],
        v: &mut [T],
        x: &mut [T],
        h: f64,
        s: usize,
    ) {
        if self.blocks.is_empty() {
            for (r, (inv, f)) in self.inv_mass.iter().zip(&self.force).enumerate() {
                let rows = r * s..(r + 1) * s;
                let (g, v, x) = (&grad[rows.clone()], &mut v[rows.clone()], &mut x[rows]);
                for e in 0..s {
                    let ve = v[e].to_f64() + h * ((f - g[e].to_f64()) * inv);
                    v[e] = T::from_f64(ve);
                    x[e] = T::from_f64(x[e].to_f64() + h * v[e].to_f64());
                }
            }
            return;
        }
        for (r, f) in self.force.iter().enumerate() {
            for (n, g) in net[r * s..(r + 1) * s]
                .iter_mut()
                .zip(&grad[r * s..(r + 1) * s])
            {
                *n = f - g.to_f64();
            }
        }
        self.solve(net, accel, s);
        for i in 0..v.len() {
            v[i] = T::from_f64(v[i].to_f64() + h * accel[i]);
            x[i] = T::from_f64(x[i].to_f64() + h * v[i].to_f64());
        }
    }

    /// `out = M v` on the free rows of a structure-of-arrays buffer (stride `s`).
    pub fn mul(&self, v: &[f64], out: &mut [f64], s: usize) {
        match s {
            1 => self.mul_lanes::<1>(v, out),
            2 => self.mul_lanes::<2>(v, out),
            4 => self.mul_lanes::<4>(v, out),
            8 => self.mul_lanes::<8>(v, out),
            _ => {
                for ((o, x), m) in out
                    .chunks_exact_mut(s)
                    .zip(v.chunks_exact(s))
                    .zip(&self.mass)
                {
                    for (o, x) in o.iter_mut().zip(x) {
                        *o = m * x;
                    }
                }
                for (r, c, w) in self.couplings() {
                    let x = &v[c * s..(c + 1) * s];
                    for (o, x) in out[r * s..(r + 1) * s].iter_mut().zip(x) {
                        *o += w * x;
                    }
                }
            }
        }
    }

    /// [`MassModel::mul`] for a stride of `W` lanes: the diagonal, then each
    /// body with a full `W` its twelve rows at once, each row's sum in
    /// registers (not a chain of stores into it) and in the order of the
    /// general stride's: its diagonal term, then the couplings by column.
    fn mul_lanes<const W: usize>(&self, v: &[f64], out: &mut [f64]) {
        let (o, x) = (out.as_chunks_mut::<W>().0, v.as_chunks::<W>().0);
        for ((o, x), m) in o.iter_mut().zip(x).zip(&self.mass) {
            for e in 0..W {
                o[e] = m * x[e];
            }
        }
        for body in &self.weights {
            let d = body.dof;
            let (x, o) = (&x[d..d + 12], &mut o[d..d + 12]);
            for c in 0..3 {
                for a in 0..4 {
                    let mut acc = o[3 * a + c];
                    for &(b, w) in &body.terms[a][..body.count[a]] {
                        for e in 0..W {
                            acc[e] += w * x[3 * b + c][e];
                        }
                    }
                    o[3 * a + c] = acc;
                }
            }
        }
    }

    /// `out = M^-1 v` on the free rows.
    pub fn solve(&self, v: &[f64], out: &mut [f64], s: usize) {
        for (r, m) in self.mass.iter().enumerate() {
            for e in 0..s {
                out[r * s + e] = if *m == 0.0 { 0.0 } else { v[r * s + e] / m };
            }
        }
        for (d, inv) in &self.blocks {
            Self::apply_block(inv, *d, v, out, s);
        }
    }

    /// Sets a body's rows to a 4x4 block times them.
    fn apply_block(w: &Block, d: usize, v: &[f64], out: &mut [f64], s: usize) {
        for c in 0..3 {
            for e in 0..s {
                let q: [f64; 4] = std::array::from_fn(|a| v[(d + 3 * a + c) * s + e]);
                for a in 0..4 {
                    let row = (d + 3 * a + c) * s + e;
                    out[row] = (0..4).map(|b| w[a][b] * q[b]).sum();
                }
            }
        }
    }

    /// The nonzero entries `(row, column, value)` of the mass matrix (both
    /// triangles): the diagonal, and the couplings of bodies whose `W` is not diagonal.
    pub fn entries(&self) -> Vec<(usize, usize, f64)> {
        let mut out: Vec<(usize, usize, f64)> = self
            .mass
            .iter()
            .enumerate()
            .map(|(r, m)| (r, r, *m))
            .collect();
        out.extend(self.couplings());
        out
    }

    /// The off-diagonal nonzeros of the bodies' `W` as (row, column,
    /// value), both triangles: by body, then component, row and column.
    fn couplings(&self) -> impl Iterator<Item = (usize, usize, f64)> + '_ {
        self.weights.iter().flat_map(|body| {
            (0..3).flat_map(move |c| {
                (0..4).flat_map(move |a| {
                    body.terms[a][..body.count[a]]
                        .iter()
                        .map(move |&(b, w)| (body.dof + 3 * a + c, body.dof + 3 * b + c, w))
                })
            })
        })
    }
}

#[cfg(test)]
mod tests {
    use joule_compiler::model::BodyShape;

    /// Second moments by midpoint integration over a fine grid of the bounding box.
    fn numeric(inside: impl Fn(f64, f64, f64) -> bool, half: [f64; 3], m: f64) -> [f64; 3] {
        let n = 120;
        let mut sum = [0.0; 3];
        let mut count = 0.0;
        for i in 0..n {
            for j in 0..n {
                for k in 0..n {
                    let p = [i, j, k].map(|c| -1.0 + (2.0 * c as f64 + 1.0) / n as f64);
                    let (x, y, z) = (p[0] * half[0], p[1] * half[1], p[2] * half[2]);
                    if inside(x, y, z) {
                        count += 1.0;
                        sum[0] += x * x;
                        sum[1] += y * y;
                        sum[2] += z * z;
                    }
                }
            }
        }
        sum.map(|s| m * s / count)
    }

    #[test]
    fn second_moments_match_numerical_integration() {
        let (r, l, m) = (0.3, 0.8, 2.0);
        let cases = [
            (
                BodyShape::Sphere { radius: r },
                numeric(|x, y, z| x * x + y * y + z * z <= r * r, [r; 3], m),
            ),
            (
                BodyShape::Cylinder {
                    radius: r,
                    length: l,
                },
                numeric(
                    |x, y, z| x * x + y * y <= r * r && z.abs() <= l / 2.0,
                    [r, r, l / 2.0],
                    m,
                ),
            ),
            (
                BodyShape::Capsule {
                    radius: r,
                    length: l,
                },
                numeric(
                    |x, y, z| {
                        let zc = z.abs() - l / 2.0;
                        x * x + y * y + zc.max(0.0).powi(2) <= r * r
                    },
                    [r, r, l / 2.0 + r],
                    m,
                ),
            ),
            (
                BodyShape::Box {
                    size: [0.2, 0.4, 0.6],
                },
                numeric(|_, _, _| true, [0.1, 0.2, 0.3], m),
            ),
        ];
        for (shape, want) in cases {
            let got = shape.second_moments(m);
            for k in 0..3 {
                assert!(
                    (got[k] - want[k]).abs() < 2e-3 * want[k],
                    "{shape:?} axis {k}: {} vs {}",
                    got[k],
                    want[k]
                );
            }
        }
    }
}

#[cfg(test)]
mod compound_tests {
    use joule_compiler::math::{axis_angle, normalize, rotate, IDENTITY};
    use joule_compiler::model::BodyShape;

    #[test]
    fn compound_mass_matrix_matches_numerical_integration() {
        // A ball of radius 0.1 at (0.3, 0, 0.1) and a box 0.2 x 0.1 x 0.1 at
        // (-0.1, 0.05, 0), turned 40 degrees about (1, 2, 3): first moments and
        // products of inertia are not zero, and the box's own are turned.
        let q = axis_angle(normalize([1.0, 2.0, 3.0]).unwrap(), 40f64.to_radians());
        let shape = BodyShape::Compound {
            parts: vec![
                (BodyShape::Sphere { radius: 0.1 }, [0.3, 0.0, 0.1], IDENTITY),
                (
                    BodyShape::Box {
                        size: [0.2, 0.1, 0.1],
                    },
                    [-0.1, 0.05, 0.0],
                    q,
                ),
            ],
        };
        let m = 3.0;
        let w = shape.mass_matrix(m);
        // Uniform density: integrate over a grid covering both parts.
        let inverse = [q[0], -q[1], -q[2], -q[3]];
        let inside = |x: f64, y: f64, z: f64| {
            let ball = (x - 0.3).powi(2) + y * y + (z - 0.1).powi(2) <= 0.01;
            let d = rotate(inverse, [x + 0.1, y - 0.05, z]);
            let cube = d[0].abs() <= 0.1 && d[1].abs() <= 0.05 && d[2].abs() <= 0.05;
            ball || cube
        };
        let n = 200;
        let (lo, hi) = ([-0.25, -0.1, -0.13], [0.45, 0.18, 0.25]);
        let mut count = 0.0;
        let mut first = [0.0; 3];
        let mut second = [[0.0; 3]; 3];
        for i in 0..n {
            for j in 0..n {
                for k in 0..n {
                    let p = [i, j, k].map(|c| c as f64 + 0.5);
                    let r: [f64; 3] =
                        std::array::from_fn(|d| lo[d] + (hi[d] - lo[d]) * p[d] / n as f64);
                    if inside(r[0], r[1], r[2]) {
                        count += 1.0;
                        for a in 0..3 {
                            first[a] += r[a];
                            for b in 0..3 {
                                second[a][b] += r[a] * r[b];
                            }
                        }
                    }
                }
            }
        }
        assert_eq!(w[0][0], m);
        for a in 0..3 {
            let want = m * first[a] / count;
            assert!(
                (w[0][a + 1] - want).abs() < 2e-3 * m * 0.3,
                "first moment {a}: {} vs {want}",
                w[0][a + 1]
            );
            for b in 0..3 {
                let want = m * second[a][b] / count;
                assert!(
                    (w[a + 1][b + 1] - want).abs() < 2e-3 * m * 0.1,
                    "second moment {a}{b}: {} vs {want}",
                    w[a + 1][b + 1]
                );
            }
        }
    }
}
