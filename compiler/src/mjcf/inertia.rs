//! Mass properties of MJCF geoms and bodies, computed as MuJoCo's compiler
//! does: uniform density per geom, parallel-axis composition per body.

use super::math::*;
use super::GeomKind;
use std::f64::consts::PI;

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
    /// A geom's volume (zero for planes).
    pub fn volume(kind: &GeomKind) -> f64 {
        match *kind {
            GeomKind::Sphere { radius } => 4.0 / 3.0 * PI * radius.powi(3),
            GeomKind::Capsule { radius, half } => {
                PI * radius * radius * 2.0 * half + 4.0 / 3.0 * PI * radius.powi(3)
            }
            GeomKind::Cylinder { radius, half } => PI * radius * radius * 2.0 * half,
            GeomKind::Box { half } => 8.0 * half[0] * half[1] * half[2],
            GeomKind::Plane => 0.0,
        }
    }

    /// A solid geom of mass `m` in its own frame (centred, axis along z).
    pub fn of_geom(kind: &GeomKind, m: f64) -> MassProps {
        let d = match *kind {
            GeomKind::Sphere { radius } => [0.4 * m * radius * radius; 3],
            GeomKind::Capsule { radius, half } => {
                // MuJoCo's split of the mass: cylinder of height 2 half, two hemispheres.
                let h = 2.0 * half;
                let (vc, vs) = (PI * radius * radius * h, 4.0 / 3.0 * PI * radius.powi(3));
                let (mc, ms) = (m * vc / (vc + vs), m * vs / (vc + vs));
                let perp = mc * (3.0 * radius * radius + h * h) / 12.0
                    + ms * (0.4 * radius * radius + h * h / 4.0 + 3.0 * h * radius / 8.0);
                [
                    perp,
                    perp,
                    mc * radius * radius / 2.0 + ms * 0.4 * radius * radius,
                ]
            }
            GeomKind::Cylinder { radius, half } => {
                let h = 2.0 * half;
                let perp = m * (3.0 * radius * radius + h * h) / 12.0;
                [perp, perp, m * radius * radius / 2.0]
            }
            GeomKind::Box { half } => {
                let s = half.map(|x| 4.0 * x * x);
                [
                    m * (s[1] + s[2]) / 12.0,
                    m * (s[0] + s[2]) / 12.0,
                    m * (s[0] + s[1]) / 12.0,
                ]
            }
            GeomKind::Plane => [0.0; 3],
        };
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
