//! Lumped (diagonal) mass per free DOF and the constant external force
//! (gravity). Particles carry their mass on x, y, z. An affine body carries
//! its mass on its origin and the second moment `S_jj = integral of rho r_j^2`
//! of its shape on column `j` of its matrix (exact for shapes symmetric about
//! their origin, which every built-in shape is).

use joule_compiler::model::Model;

/// Diagonal mass and external force per free DOF.
#[derive(Debug, Clone, PartialEq)]
pub struct MassModel {
    /// Mass (or second moment) per free DOF.
    pub mass: Vec<f64>,
    /// Constant external force per free DOF.
    pub force: Vec<f64>,
}

impl MassModel {
    /// Masses and gravity forces of a model's free DOFs.
    pub fn new(model: &Model) -> Self {
        let n = model.dof_count;
        let mut mass = vec![0.0; n];
        let mut force = vec![0.0; n];
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
                let s = b.shape.second_moments(b.mass);
                for k in 0..3 {
                    mass[d + k] = b.mass;
                    force[d + k] = b.mass * g[k];
                    for row in 0..3 {
                        mass[d + 3 + 3 * k + row] = s[k];
                    }
                }
            }
        }
        MassModel { mass, force }
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
