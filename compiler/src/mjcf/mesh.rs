//! Mesh assets (`<asset><mesh>`): their triangles, read from an STL or OBJ
//! file or given inline (`vertex` with `face`), placed by `refpos`,
//! `refquat` and `scale`, and the mass frame MuJoCo's compiler gives a mesh
//! geom: the mesh's volume, centre of mass and principal axes (the geom's
//! frame moves there) and the box of the same principal moments (its
//! inertia per unit mass). `inertia="legacy"` (MuJoCo's default: each
//! face's pyramid counted with a positive volume), `exact` (signed volumes:
//! a closed, outward-wound surface) and `shell` (the surface's area, mass on
//! it) are computed as MuJoCo's `mjCMesh` does; `convex` (the hull) is not.

use crate::math::*;
use nalgebra::{Matrix3, SymmetricEigen};
use std::path::Path;

/// MuJoCo's smallest meaningful value (`mjMINVAL`): smaller faces have no
/// area, a smaller volume is an error.
const MIN_VAL: f64 = 1e-15;

/// How a mesh's volume and inertia are computed (its `inertia` attribute).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MeshInertia {
    /// MuJoCo's default: the pyramids from the faces' centroid to each face,
    /// each counted positive (a non-convex mesh's volume is overcounted).
    Legacy,
    /// Signed pyramids: exact for a closed surface wound outward.
    Exact,
    /// The mass on the surface (areas for volumes).
    Shell,
}

/// A triangle mesh: vertices and faces (indices into them).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Triangles {
    pub vertices: Vec<V3>,
    pub faces: Vec<[usize; 3]>,
}

/// The mass frame of a mesh in its asset's coordinates.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct MeshFrame {
    /// Volume (area for a shell), m^3 (m^2).
    pub volume: f64,
    /// The centre of mass and the principal axes (a rotation): a mesh
    /// geom's frame is its MJCF frame composed with this one.
    pub pos: V3,
    pub quat: Q,
    /// Half sides of the box with the mesh's principal moments at any mass
    /// (MuJoCo's inertia box): a mesh geom's inertia is this box's.
    pub half: V3,
}

/// Reads a mesh file: STL (binary or ASCII) or OBJ (polygons fanned into
/// triangles), by its extension.
pub fn read(path: &Path, bytes: &[u8]) -> Result<Triangles, String> {
    let ext = path
        .extension()
        .and_then(|e| e.to_str())
        .map(str::to_ascii_lowercase);
    match ext.as_deref() {
        Some("stl") => {
            let mesh = stl_io::read_stl(&mut std::io::Cursor::new(bytes))
                .map_err(|e| format!("not a readable STL file: {e}"))?;
            Ok(Triangles {
                vertices: mesh
                    .vertices
                    .iter()
                    .map(|v| [v[0] as f64, v[1] as f64, v[2] as f64])
                    .collect(),
                faces: mesh.faces.iter().map(|f| f.vertices).collect(),
            })
        }
        Some("obj") => {
            let options = tobj::LoadOptions {
                triangulate: true,
                single_index: false,
                ..Default::default()
            };
            let (models, _) =
                tobj::load_obj_buf(&mut std::io::Cursor::new(bytes), &options, |_| {
                    Err(tobj::LoadError::OpenFileFailed)
                })
                .map_err(|e| format!("not a readable OBJ file: {e}"))?;
            let mut t = Triangles::default();
            for m in models {
                let base = t.vertices.len();
                t.vertices.extend(
                    m.mesh
                        .positions
                        .chunks_exact(3)
                        .map(|p| [p[0] as f64, p[1] as f64, p[2] as f64]),
                );
                t.faces.extend(m.mesh.indices.chunks_exact(3).map(|f| {
                    [
                        base + f[0] as usize,
                        base + f[1] as usize,
                        base + f[2] as usize,
                    ]
                }));
            }
            Ok(t)
        }
        _ => Err("only STL and OBJ mesh files are read".into()),
    }
}

impl Triangles {
    /// MuJoCo's placement of an asset's vertices: less `refpos`, turned by
    /// the inverse of `refquat`, then scaled axis by axis.
    pub fn place(&mut self, refpos: V3, refquat: Q, scale_by: V3) {
        let r = qnormalize(refquat).map(|q| transpose(&qmat(q)));
        for v in &mut self.vertices {
            let mut p = sub(*v, refpos);
            if let Some(r) = &r {
                p = mul_mv(r, p);
            }
            *v = [p[0] * scale_by[0], p[1] * scale_by[1], p[2] * scale_by[2]];
        }
    }

    /// Area, unit normal and centroid of face `f` (no normal, zero area
    /// below MuJoCo's smallest value).
    fn triangle(&self, f: [usize; 3]) -> (f64, V3, V3) {
        let [a, b, c] = f.map(|i| self.vertices[i]);
        let center = scale(add(add(a, b), c), 1.0 / 3.0);
        let n = cross(sub(b, a), sub(c, a));
        let len = norm(n);
        if len < MIN_VAL {
            return (0.0, [0.0; 3], center);
        }
        (0.5 * len, scale(n, 1.0 / len), center)
    }

    /// The mass frame MuJoCo's compiler computes (`mjCMesh::Process`).
    pub fn mass_frame(&self, inertia: MeshInertia) -> Result<MeshFrame, String> {
        if self.vertices.len() < 4 {
            return Err("a mesh needs at least 4 vertices".into());
        }
        if let Some(i) = self
            .faces
            .iter()
            .flatten()
            .find(|&&i| i >= self.vertices.len())
        {
            return Err(format!("a face names vertex {i}, which does not exist"));
        }
        // The faces' centroid, weighted by area.
        let (mut facecen, mut total_area) = ([0.0; 3], 0.0);
        for &f in &self.faces {
            let (area, _, center) = self.triangle(f);
            facecen = add(facecen, scale(center, area));
            total_area += area;
        }
        if total_area < MIN_VAL {
            return Err("the mesh's surface area is too small".into());
        }
        facecen = scale(facecen, 1.0 / total_area);
        // The centre of mass: of the pyramids from `facecen` (a shell's is
        // `facecen` itself).
        let com = if inertia == MeshInertia::Shell {
            facecen
        } else {
            let (mut com, mut volume) = ([0.0; 3], 0.0);
            for &f in &self.faces {
                let (area, normal, center) = self.triangle(f);
                let mut v = dot(sub(center, facecen), normal) * area / 3.0;
                if inertia == MeshInertia::Legacy {
                    v = v.abs();
                }
                volume += v;
                com = add(
                    com,
                    scale(add(scale(center, 0.75), scale(facecen, 0.25)), v),
                );
            }
            if volume < MIN_VAL {
                return Err(if volume < 0.0 {
                    "the mesh's volume is negative (faces wound inward)".into()
                } else {
                    "the mesh's volume is too small (`inertia=\"shell\"` puts the mass on its surface)".into()
                });
            }
            scale(com, 1.0 / volume)
        };
        // Second moments about the centre of mass, over the pyramids from
        // it (or the faces, for a shell); the volume recomputed with them.
        let (mut p, mut volume) = ([[0.0; 3]; 3], 0.0);
        let weight = if inertia == MeshInertia::Shell {
            12.0
        } else {
            20.0
        };
        for &f in &self.faces {
            let (area, normal, center) = self.triangle(f);
            let [d, e, g] = f.map(|i| sub(self.vertices[i], com));
            let mut v = match inertia {
                MeshInertia::Shell => area,
                _ => dot(sub(center, com), normal) * area / 3.0,
            };
            if inertia == MeshInertia::Legacy {
                v = v.abs();
            }
            volume += v;
            for (j, row) in p.iter_mut().enumerate() {
                for (k, x) in row.iter_mut().enumerate() {
                    *x += v / weight
                        * (2.0 * (d[j] * d[k] + e[j] * e[k] + g[j] * g[k])
                            + d[j] * e[k]
                            + d[k] * e[j]
                            + d[j] * g[k]
                            + d[k] * g[j]
                            + e[j] * g[k]
                            + e[k] * g[j]);
                }
            }
        }
        let trace = p[0][0] + p[1][1] + p[2][2];
        let tensor = Matrix3::from_fn(|j, k| if j == k { trace } else { 0.0 } - p[j][k]);
        let eig = SymmetricEigen::new(tensor);
        let moments = [0, 1, 2].map(|i| eig.eigenvalues[i]);
        if moments.iter().any(|&m| m <= 0.0) {
            return Err("the mesh's inertia is not positive".into());
        }
        let mut axes = [[0.0; 3]; 3];
        for (i, row) in axes.iter_mut().enumerate() {
            for (k, x) in row.iter_mut().enumerate() {
                *x = eig.eigenvectors[(i, k)];
            }
        }
        // A rotation: the third axis the cross product of the first two.
        let third = cross(
            [axes[0][0], axes[1][0], axes[2][0]],
            [axes[0][1], axes[1][1], axes[2][1]],
        );
        for (i, row) in axes.iter_mut().enumerate() {
            row[2] = third[i];
        }
        let half = [0, 1, 2].map(|i| {
            let (j, k) = ((i + 1) % 3, (i + 2) % 3);
            0.5 * (6.0 * (moments[j] + moments[k] - moments[i]).max(0.0) / volume).sqrt()
        });
        Ok(MeshFrame {
            volume,
            pos: com,
            quat: mat_quat(&axes),
            half,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The unit cube [0, 1]^3, wound outward.
    fn cube() -> Triangles {
        let vertices = (0..8)
            .map(|k| [(k & 1) as f64, (k >> 1 & 1) as f64, (k >> 2 & 1) as f64])
            .collect();
        let quads = [
            [0, 2, 3, 1],
            [4, 5, 7, 6],
            [0, 1, 5, 4],
            [2, 6, 7, 3],
            [0, 4, 6, 2],
            [1, 3, 7, 5],
        ];
        let faces = quads
            .iter()
            .flat_map(|q| [[q[0], q[1], q[2]], [q[0], q[2], q[3]]])
            .collect();
        Triangles { vertices, faces }
    }

    #[test]
    fn a_cube_is_its_own_inertia_box() {
        for inertia in [MeshInertia::Legacy, MeshInertia::Exact] {
            let f = cube().mass_frame(inertia).unwrap();
            assert!((f.volume - 1.0).abs() < 1e-12, "{inertia:?}: {}", f.volume);
            for i in 0..3 {
                assert!((f.pos[i] - 0.5).abs() < 1e-12);
                assert!((f.half[i] - 0.5).abs() < 1e-12, "{:?}", f.half);
            }
        }
        // A shell: six unit faces, mass on the surface, I = 5/18 m per axis
        // (the box of that inertia has half sides sqrt(5/12)).
        let f = cube().mass_frame(MeshInertia::Shell).unwrap();
        assert!((f.volume - 6.0).abs() < 1e-12);
        for h in f.half {
            assert!((h - (5.0f64 / 12.0).sqrt()).abs() < 1e-12, "{:?}", f.half);
        }
    }

    #[test]
    fn inward_faces_are_refused_exactly_and_counted_in_legacy() {
        let mut t = cube();
        for f in &mut t.faces {
            f.swap(1, 2);
        }
        assert!(t
            .mass_frame(MeshInertia::Exact)
            .unwrap_err()
            .contains("negative"));
        let f = t.mass_frame(MeshInertia::Legacy).unwrap();
        assert!((f.volume - 1.0).abs() < 1e-12);
    }

    #[test]
    fn placement_moves_turns_and_scales() {
        let mut t = cube();
        t.place(
            [0.5, 0.5, 0.5],
            axis_angle([0.0, 0.0, 1.0], 0.3),
            [2.0, 1.0, 3.0],
        );
        let f = t.mass_frame(MeshInertia::Exact).unwrap();
        assert!((f.volume - 6.0).abs() < 1e-12);
        assert!(norm(f.pos) < 1e-12);
    }
}
