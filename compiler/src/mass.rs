//! Mass properties of solid shapes: volume, mass distribution and their
//! composition, for the scene's bodies and for the MJCF importer's geoms.
//!
//! Two conventions are in use, and this module computes both:
//! - **Second moments** (Joule's bodies): `S = integral rho r r^T` about the
//!   body origin, and the 4x4 affine mass matrix `W` over (origin, matrix
//!   columns): `W[0][0] = m`, `W[0][j+1] = W[j+1][0] = m c_j` (first
//!   moments, `c` the centre of mass), `W[j+1][k+1] = S_jk`. The runtime's
//!   mass model reads `W` ([`Body::mass_matrix`]).
//! - **Inertia tensor about the centre of mass** (MuJoCo's, and the `inertia`
//!   field of a body): `I = integral rho (|r|^2 Id - r r^T)`, `r` from the
//!   centre of mass ([`MassProps`], [`mujoco`]).
//!
//! Conversions, about one point: `I = tr(S) Id - S` and `S = tr(I)/2 Id - I`
//! ([`Inertia::second_moments`]). Moving the point from the centre of mass
//! to the origin, `c` the centre of mass from the origin (parallel axes):
//! `S_origin = S_com + m c c^T` ([`Body::mass_matrix`]) and
//! `I_origin = I_com + m (|c|^2 Id - c c^T)` ([`MassProps::combine`]).
//! Each convention keeps its own formulas (and their order of floating-point
//! operations); the sphere's volume is shared.

use crate::math::*;
use crate::model::{Body, BodyShape, Inertia};
use std::f64::consts::PI;

/// Volume of a solid sphere of radius `radius`.
pub fn sphere_volume(radius: f64) -> f64 {
    4.0 / 3.0 * PI * radius.powi(3)
}

impl BodyShape {
    /// Volume of the shape.
    pub fn volume(&self) -> f64 {
        match *self {
            BodyShape::Compound { ref parts } => parts.iter().map(|(p, ..)| p.volume()).sum(),
            BodyShape::Sphere { radius } => sphere_volume(radius),
            BodyShape::Box { size } => size[0] * size[1] * size[2],
            BodyShape::Capsule { radius, length } => {
                PI * radius * radius * length + sphere_volume(radius)
            }
            BodyShape::Cylinder { radius, length } => PI * radius * radius * length,
        }
    }

    /// Second moments `[S_xx, S_yy, S_zz]` (integral of rho r_j^2) of the shape
    /// with mass `m` about its origin: the mass of the affine matrix columns.
    pub fn second_moments(&self, m: f64) -> [f64; 3] {
        match *self {
            BodyShape::Compound { .. } => {
                let w = self.mass_matrix(m);
                [w[1][1], w[2][2], w[3][3]]
            }
            BodyShape::Sphere { radius } => [m * radius * radius / 5.0; 3],
            BodyShape::Box { size } => size.map(|l| m * l * l / 12.0),
            BodyShape::Cylinder { radius, length } => {
                let r = m * radius * radius / 4.0;
                [r, r, m * length * length / 12.0]
            }
            BodyShape::Capsule { radius, length } => {
                // A cylinder of length L plus two hemispheres whose flat faces sit at z = +-L/2.
                let (vc, vs) = (PI * radius * radius * length, sphere_volume(radius));
                let (mc, mh) = (m * vc / (vc + vs), m * vs / (vc + vs) / 2.0);
                let c = length / 2.0;
                let side = mc * radius * radius / 4.0 + 2.0 * mh * radius * radius / 5.0;
                let along = mc * length * length / 12.0
                    + 2.0 * mh * (radius * radius / 5.0 + 2.0 * c * 3.0 * radius / 8.0 + c * c);
                [side, side, along]
            }
        }
    }

    /// The affine mass matrix `W` over (origin, column 0, column 1, column 2):
    /// `W[0][0] = m`, `W[0][j+1] = integral of rho r_j` (first moments),
    /// `W[j+1][k+1] = integral of rho r_j r_k` (second moments). The kinetic
    /// energy is `1/2 sum W[a][b] qdot_a . qdot_b`. Diagonal for every shape
    /// symmetric about its origin; a compound adds offsets (parallel axes)
    /// and turns each part's second moments by its rotation (`R S R^T`).
    pub fn mass_matrix(&self, m: f64) -> [[f64; 4]; 4] {
        let mut w = [[0.0; 4]; 4];
        match self {
            BodyShape::Compound { parts } => {
                let volume = self.volume();
                for (part, c, q) in parts {
                    let mi = m * part.volume() / volume;
                    let s = rotate_tensor(&qmat(*q), &diag(part.second_moments(mi)));
                    w[0][0] += mi;
                    for j in 0..3 {
                        w[0][j + 1] += mi * c[j];
                        w[j + 1][0] += mi * c[j];
                        for k in 0..3 {
                            w[j + 1][k + 1] += s[j][k] + mi * c[j] * c[k];
                        }
                    }
                }
            }
            _ => {
                let s = self.second_moments(m);
                w[0][0] = m;
                for j in 0..3 {
                    w[j + 1][j + 1] = s[j];
                }
            }
        }
        w
    }
}

impl Inertia {
    /// The second-moment matrix `S = integral rho r r^T` about the centre of
    /// mass: `tr(I)/2 Id - I`. Positive definite exactly when the principal
    /// moments satisfy the triangle inequality strictly.
    pub fn second_moments(&self) -> [[f64; 3]; 3] {
        let half = (self.tensor[0][0] + self.tensor[1][1] + self.tensor[2][2]) / 2.0;
        std::array::from_fn(|j| {
            std::array::from_fn(|k| if j == k { half } else { 0.0 } - self.tensor[j][k])
        })
    }
}

impl Body {
    /// The 4x4 affine mass matrix `W` over (origin, R's columns): mass, first
    /// moments `m c` and second moments about the origin. From `inertia` when
    /// given (`S_com + m c c^T`), else from the shape.
    pub fn mass_matrix(&self) -> [[f64; 4]; 4] {
        let Some(inertia) = &self.inertia else {
            return self.shape.mass_matrix(self.mass);
        };
        let (m, c) = (self.mass, inertia.com);
        let s = inertia.second_moments();
        let mut w = [[0.0; 4]; 4];
        w[0][0] = m;
        for j in 0..3 {
            w[0][j + 1] = m * c[j];
            w[j + 1][0] = m * c[j];
            for k in 0..3 {
                w[j + 1][k + 1] = s[j][k] + m * c[j] * c[k];
            }
        }
        w
    }

    /// Its mass, centre of mass and inertia tensor about the centre of mass,
    /// in the body frame: its `inertia` when given, else from the shape's
    /// [`BodyShape::mass_matrix`] (`c = W_0j / m`, second moments about `c`
    /// `S = W_jk - m c c^T`, `I = tr(S) Id - S`).
    pub fn mass_props(&self) -> MassProps {
        if let Some(i) = &self.inertia {
            return MassProps {
                mass: self.mass,
                com: i.com,
                inertia: i.tensor,
            };
        }
        let w = self.shape.mass_matrix(self.mass);
        let m = w[0][0];
        let com: V3 = std::array::from_fn(|j| if m > 0.0 { w[0][j + 1] / m } else { 0.0 });
        let s: M3 =
            std::array::from_fn(|j| std::array::from_fn(|k| w[j + 1][k + 1] - m * com[j] * com[k]));
        let trace = s[0][0] + s[1][1] + s[2][2];
        MassProps {
            mass: m,
            com,
            inertia: std::array::from_fn(|j| {
                std::array::from_fn(|k| if j == k { trace } else { 0.0 } - s[j][k])
            }),
        }
    }
}

/// Mass, centre of mass and inertia tensor about the centre of mass, in some frame.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct MassProps {
    /// Mass (kg).
    pub mass: f64,
    /// Centre of mass.
    pub com: V3,
    /// Inertia tensor about `com` (kg m^2), rows.
    pub inertia: M3,
}

impl MassProps {
    /// A solid of mass `m` centred at the origin of its own frame, with the
    /// principal moments of inertia `d` along the frame's axes (see [`mujoco`]).
    pub fn principal(m: f64, d: V3) -> MassProps {
        MassProps {
            mass: m,
            com: [0.0; 3],
            inertia: diag(d),
        }
    }

    /// The same distribution seen from a frame in which this one sits at
    /// `pos` with orientation `q`.
    pub fn moved(&self, pos: V3, q: Q) -> MassProps {
        let r = qmat(q);
        MassProps {
            mass: self.mass,
            com: add(pos, mul_mv(&r, self.com)),
            inertia: rotate_tensor(&r, &self.inertia),
        }
    }

    /// The union of distributions given in one frame (parallel-axis theorem).
    pub fn combine(parts: &[MassProps]) -> MassProps {
        let mass: f64 = parts.iter().map(|p| p.mass).sum();
        if mass <= 0.0 {
            return MassProps::default();
        }
        let com = parts
            .iter()
            .fold([0.0; 3], |c, p| add(c, scale(p.com, p.mass / mass)));
        let mut inertia = [[0.0; 3]; 3];
        for p in parts {
            let d = sub(p.com, com);
            let dd = dot(d, d);
            for (j, row) in inertia.iter_mut().enumerate() {
                for (k, x) in row.iter_mut().enumerate() {
                    let shift = if j == k { dd } else { 0.0 } - d[j] * d[k];
                    *x += p.inertia[j][k] + p.mass * shift;
                }
            }
        }
        MassProps { mass, com, inertia }
    }

    /// Mass and inertia multiplied by `s` (MJCF `settotalmass`).
    pub fn scaled(&self, s: f64) -> MassProps {
        MassProps {
            mass: self.mass * s,
            com: self.com,
            inertia: self.inertia.map(|r| r.map(|x| x * s)),
        }
    }
}

/// MuJoCo's solid primitives, computed as its compiler does: sizes as MJCF
/// gives them (radii and half lengths, axis along z), uniform density,
/// principal moments of inertia `[I_xx, I_yy, I_zz]` about the centre for a
/// mass `m`.
pub mod mujoco {
    use super::sphere_volume;
    use std::f64::consts::PI;

    /// Volume of a capsule: radius and half length of the cylinder part.
    pub fn capsule_volume(radius: f64, half: f64) -> f64 {
        PI * radius * radius * 2.0 * half + sphere_volume(radius)
    }

    /// Volume of a cylinder: radius and half length.
    pub fn cylinder_volume(radius: f64, half: f64) -> f64 {
        PI * radius * radius * 2.0 * half
    }

    /// Volume of a box: half sizes.
    pub fn box_volume(half: [f64; 3]) -> f64 {
        8.0 * half[0] * half[1] * half[2]
    }

    /// Volume of an ellipsoid with radii `r`.
    pub fn ellipsoid_volume(r: [f64; 3]) -> f64 {
        4.0 / 3.0 * PI * r[0] * r[1] * r[2]
    }

    /// Principal moments of a solid ellipsoid of mass `m` and radii `r`.
    pub fn ellipsoid_inertia(m: f64, r: [f64; 3]) -> [f64; 3] {
        let s = r.map(|x| x * x);
        [
            m * (s[1] + s[2]) / 5.0,
            m * (s[0] + s[2]) / 5.0,
            m * (s[0] + s[1]) / 5.0,
        ]
    }

    /// Principal moments of a solid sphere.
    pub fn sphere_inertia(m: f64, radius: f64) -> [f64; 3] {
        [0.4 * m * radius * radius; 3]
    }

    /// Principal moments of a capsule, with MuJoCo's split of the mass:
    /// a cylinder of height `2 half`, two hemispheres.
    pub fn capsule_inertia(m: f64, radius: f64, half: f64) -> [f64; 3] {
        let h = 2.0 * half;
        let (vc, vs) = (PI * radius * radius * h, sphere_volume(radius));
        let (mc, ms) = (m * vc / (vc + vs), m * vs / (vc + vs));
        let perp = mc * (3.0 * radius * radius + h * h) / 12.0
            + ms * (0.4 * radius * radius + h * h / 4.0 + 3.0 * h * radius / 8.0);
        [
            perp,
            perp,
            mc * radius * radius / 2.0 + ms * 0.4 * radius * radius,
        ]
    }

    /// Principal moments of a solid cylinder.
    pub fn cylinder_inertia(m: f64, radius: f64, half: f64) -> [f64; 3] {
        let h = 2.0 * half;
        let perp = m * (3.0 * radius * radius + h * h) / 12.0;
        [perp, perp, m * radius * radius / 2.0]
    }

    /// Principal moments of a solid box.
    pub fn box_inertia(m: f64, half: [f64; 3]) -> [f64; 3] {
        let s = half.map(|x| 4.0 * x * x);
        [
            m * (s[1] + s[2]) / 12.0,
            m * (s[0] + s[2]) / 12.0,
            m * (s[0] + s[1]) / 12.0,
        ]
    }
}
