//! Mesh generation (`grid`, `tetgrid`) and Wavefront OBJ loading for deformable bodies.
//!
//! Every mesh carries lumped per-vertex masses plus the connectivity lists the
//! simulator needs: unique edges, triangles, tetrahedra and boundary vertices.

use crate::math::{cross, dot, sub};
use std::collections::HashMap;

/// A generated or loaded mesh: vertices with lumped masses and connectivity lists.
#[derive(Debug, Clone, PartialEq)]
pub struct MeshData {
    /// Vertex positions in metres.
    pub vertices: Vec<[f64; 3]>,
    /// Lumped mass per vertex (kg), parallel to `vertices`.
    pub masses: Vec<f64>,
    /// Unique edges, each `[lo, hi]` with `lo < hi`, sorted ascending.
    pub edges: Vec<[u32; 2]>,
    /// Triangles: all faces of a sheet, or the outward-wound boundary of a solid.
    pub tris: Vec<[u32; 3]>,
    /// Positively oriented tetrahedra (empty for sheets).
    pub tets: Vec<[u32; 4]>,
    /// Boundary vertices, ascending and unique.
    pub surface: Vec<u32>,
}

fn tri_area(v: &[[f64; 3]], [a, b, c]: [u32; 3]) -> f64 {
    let (a, b, c) = (v[a as usize], v[b as usize], v[c as usize]);
    let n = cross(sub(b, a), sub(c, a));
    0.5 * dot(n, n).sqrt()
}

fn tet_volume(v: &[[f64; 3]], [a, b, c, d]: [u32; 4]) -> f64 {
    let (a, b, c, d) = (v[a as usize], v[b as usize], v[c as usize], v[d as usize]);
    dot(sub(b, a), cross(sub(c, a), sub(d, a))) / 6.0
}

/// Coordinate `at + size * i / n`, exact at both ends; `at` when `n == 0`.
fn lerp(at: f64, size: f64, i: usize, n: usize) -> f64 {
    if n == 0 {
        at
    } else {
        at + size * (i as f64 / n as f64)
    }
}

/// Unique, sorted `[lo, hi]` edges of a list of simplices (degenerate pairs skipped).
fn unique_edges<const N: usize>(cells: &[[u32; N]]) -> Vec<[u32; 2]> {
    let mut edges: Vec<[u32; 2]> = cells
        .iter()
        .flat_map(|c| (0..N).flat_map(move |i| (i + 1..N).map(move |j| (c[i], c[j]))))
        .filter(|(a, b)| a != b)
        .map(|(a, b)| [a.min(b), a.max(b)])
        .collect();
    edges.sort_unstable();
    edges.dedup();
    edges
}

/// Sorted, deduplicated vertex indices referenced by `tris`.
fn tri_vertices(tris: &[[u32; 3]]) -> Vec<u32> {
    let mut s: Vec<u32> = tris.iter().flatten().copied().collect();
    s.sort_unstable();
    s.dedup();
    s
}

/// Assemble a triangle sheet; `density` is areal, each triangle's mass split over its 3 vertices.
fn sheet(
    vertices: Vec<[f64; 3]>,
    tris: Vec<[u32; 3]>,
    surface: Vec<u32>,
    density: f64,
) -> MeshData {
    let mut masses = vec![0.0; vertices.len()];
    for &t in &tris {
        let m = tri_area(&vertices, t) * density / 3.0;
        t.iter().for_each(|&k| masses[k as usize] += m);
    }
    MeshData {
        edges: unique_edges(&tris),
        vertices,
        masses,
        tris,
        tets: Vec::new(),
        surface,
    }
}

/// Rectangular cloth sheet of `cells[0] x cells[1]` quads in the plane `z = at[2]`,
/// spanning `at[0]..at[0]+size[0]` by `at[1]..at[1]+size[1]`.
///
/// Vertex `i*(ny+1) + j` sits at grid position `(i, j)`. Each cell is split into two
/// counter-clockwise triangles (normal `+z`) along the `(i, j)-(i+1, j+1)` diagonal.
/// `density` is areal (kg/m^2); `surface` holds the sheet's border vertices.
pub fn grid(cells: [usize; 2], size: [f64; 2], at: [f64; 3], density: f64) -> MeshData {
    let [nx, ny] = cells;
    let idx = |i: usize, j: usize| (i * (ny + 1) + j) as u32;
    let mut vertices = Vec::with_capacity((nx + 1) * (ny + 1));
    let mut surface = Vec::new();
    for i in 0..=nx {
        for j in 0..=ny {
            vertices.push([
                lerp(at[0], size[0], i, nx),
                lerp(at[1], size[1], j, ny),
                at[2],
            ]);
            if i == 0 || i == nx || j == 0 || j == ny {
                surface.push(idx(i, j));
            }
        }
    }
    let mut tris = Vec::with_capacity(2 * nx * ny);
    for i in 0..nx {
        for j in 0..ny {
            let (a, b, c, d) = (idx(i, j), idx(i + 1, j), idx(i + 1, j + 1), idx(i, j + 1));
            tris.extend([[a, b, c], [a, c, d]]);
        }
    }
    sheet(vertices, tris, surface, density)
}

/// Solid box of `cells[0] x cells[1] x cells[2]` cubes spanning `at..at+size`.
///
/// Vertex `(i*(ny+1) + j)*(nz+1) + l` sits at grid position `(i, j, l)`. Every cube
/// is split into 6 positively oriented tetrahedra (Kuhn subdivision along its
/// main diagonal, identical in all cells so faces conform). `tris` are the
/// boundary faces wound outward, `surface` their vertices. `density` is kg/m^3,
/// each tetrahedron's mass split over its 4 vertices.
pub fn tetgrid(cells: [usize; 3], size: [f64; 3], at: [f64; 3], density: f64) -> MeshData {
    let [nx, ny, nz] = cells;
    let idx = |i: usize, j: usize, l: usize| ((i * (ny + 1) + j) * (nz + 1) + l) as u32;
    let mut vertices = Vec::with_capacity((nx + 1) * (ny + 1) * (nz + 1));
    for i in 0..=nx {
        for j in 0..=ny {
            for l in 0..=nz {
                vertices.push([
                    lerp(at[0], size[0], i, nx),
                    lerp(at[1], size[1], j, ny),
                    lerp(at[2], size[2], l, nz),
                ]);
            }
        }
    }
    // Kuhn paths 000 -> e_p0 -> e_p0 + e_p1 -> 111 for each axis permutation `p`;
    // odd permutations get their last two vertices swapped to orient positively.
    const PERMS: [([usize; 3], bool); 6] = [
        ([0, 1, 2], false),
        ([1, 2, 0], false),
        ([2, 0, 1], false),
        ([0, 2, 1], true),
        ([2, 1, 0], true),
        ([1, 0, 2], true),
    ];
    let mut tets = Vec::with_capacity(6 * nx * ny * nz);
    for i in 0..nx {
        for j in 0..ny {
            for l in 0..nz {
                for (p, odd) in PERMS {
                    let mut o = [0usize; 3];
                    let mut t = [idx(i, j, l); 4];
                    for (k, &axis) in p.iter().enumerate() {
                        o[axis] = 1;
                        t[k + 1] = idx(i + o[0], j + o[1], l + o[2]);
                    }
                    if odd {
                        t.swap(2, 3);
                    }
                    tets.push(t);
                }
            }
        }
    }
    // Outward faces of a positively oriented tet [a, b, c, d].
    let faces = |[a, b, c, d]: [u32; 4]| [[b, c, d], [a, d, c], [a, b, d], [a, c, b]];
    let key = |mut f: [u32; 3]| {
        f.sort_unstable();
        f
    };
    let mut count: HashMap<[u32; 3], u32> = HashMap::new();
    for f in tets.iter().flat_map(|&t| faces(t)) {
        *count.entry(key(f)).or_default() += 1;
    }
    let tris: Vec<[u32; 3]> = tets
        .iter()
        .flat_map(|&t| faces(t))
        .filter(|&f| count[&key(f)] == 1)
        .collect();
    let mut masses = vec![0.0; vertices.len()];
    for &t in &tets {
        let m = tet_volume(&vertices, t) * density / 4.0;
        t.iter().for_each(|&k| masses[k as usize] += m);
    }
    MeshData {
        edges: unique_edges(&tets),
        surface: tri_vertices(&tris),
        vertices,
        masses,
        tris,
        tets,
    }
}

/// Keep only the position index of each `f` corner (`7/3/2` -> `7`), so texture and
/// normal seams don't split vertices and malformed `vt`/`vn` references are ignored.
fn strip_face_attributes(line: &str) -> String {
    let mut words = line.split_whitespace();
    if words.next() != Some("f") {
        return line.to_owned();
    }
    let corners = words.map(|w| w.split('/').next().filter(|v| !v.is_empty()).unwrap_or("0"));
    std::iter::once("f")
        .chain(corners)
        .collect::<Vec<_>>()
        .join(" ")
}

/// Why an OBJ file is refused: what is wrong (located by line where it can
/// be) and what to do about it.
#[derive(Debug, Clone, PartialEq)]
pub struct ObjError {
    /// What is wrong.
    pub message: String,
    /// What to do about it.
    pub help: String,
}

impl ObjError {
    fn new(message: impl Into<String>, help: impl Into<String>) -> ObjError {
        ObjError {
            message: message.into(),
            help: help.into(),
        }
    }
}

/// The hint for faces whose indices name no vertex.
const FACE_INDEX_HELP: &str = "an `f` line numbers the `v` lines from 1 (or back from -1, the latest): every index must name a vertex of the file";

/// The 1-based line of every `v` line whose coordinates (read as `f32`, as
/// the OBJ reader does) are not all finite, with its text.
fn non_finite_vertex(lines: &[String]) -> Option<(usize, &str)> {
    lines.iter().enumerate().find_map(|(n, line)| {
        let mut words = line.split_whitespace();
        let bad = words.next() == Some("v")
            && words
                .take(3)
                .any(|w| w.parse::<f32>().is_ok_and(|x| !x.is_finite()));
        bad.then_some((n + 1, line.trim()))
    })
}

/// The 1-based line of the `f` line each triangle comes from (a polygon of
/// `n` corners makes `n - 2` triangles, in the file's order).
fn face_lines(lines: &[String]) -> Vec<usize> {
    lines
        .iter()
        .enumerate()
        .flat_map(|(n, line)| {
            let mut words = line.split_whitespace();
            let corners = if words.next() == Some("f") {
                words.count()
            } else {
                0
            };
            std::iter::repeat_n(n + 1, corners.saturating_sub(2))
        })
        .collect()
}

/// Parse a Wavefront OBJ cloth mesh (vertices and faces; polygons are fan-triangulated).
///
/// `density` is areal (kg/m^2): each triangle's mass is split over its 3 vertices.
/// Vertices are numbered in order of first use by a face; unreferenced vertices
/// are dropped, and vertices of separate `o`/`g` groups at identical positions
/// are merged. `tris` are the faces, `surface` every vertex used by a face.
/// Returns `Err` for unparseable input, a vertex with a non-finite
/// coordinate, out-of-range face indices, a face of zero area (no mass, no
/// rest shape), or no faces.
pub fn parse_obj(text: &str, density: f64) -> Result<MeshData, ObjError> {
    let cleaned: Vec<String> = text.lines().map(strip_face_attributes).collect();
    if let Some((line, v)) = non_finite_vertex(&cleaned) {
        return Err(ObjError::new(
            format!("line {line}: the vertex `{v}` has a coordinate that is not a finite number"),
            "give every `v x y z` line finite coordinates (read as 32-bit floats: at most about 3.4e38 in size)",
        ));
    }
    // `..Default::default()` covers the fields of tobj's optional `merging`/`reordering` features.
    #[allow(clippy::needless_update)]
    let options = tobj::LoadOptions {
        single_index: true,
        triangulate: true,
        ignore_points: true,
        ignore_lines: true,
        ..Default::default()
    };
    let (models, _materials) =
        tobj::load_obj_buf(&mut cleaned.join("\n").as_bytes(), &options, |_| {
            Err(tobj::LoadError::OpenFileFailed)
        })
        .map_err(|e| {
            let help = match e {
            tobj::LoadError::FaceVertexOutOfBounds => FACE_INDEX_HELP,
            _ => {
                "`load` reads a Wavefront OBJ sheet: `v x y z` vertex lines and `f i j k ...` faces"
            }
        };
            ObjError::new(format!("invalid OBJ: {e}"), help)
        })?;

    let mut vertices: Vec<[f64; 3]> = Vec::new();
    let mut tris = Vec::new();
    let mut by_position: HashMap<[u64; 3], u32> = HashMap::new();
    for mesh in models.iter().map(|m| &m.mesh) {
        let positions: Vec<[f64; 3]> = mesh
            .positions
            .chunks_exact(3)
            .map(|p| [f64::from(p[0]), f64::from(p[1]), f64::from(p[2])])
            .collect();
        // Only earlier groups are matched, so duplicates within one group stay distinct.
        let local: Vec<u32> = positions
            .iter()
            .map(|p| {
                by_position
                    .get(&p.map(f64::to_bits))
                    .copied()
                    .unwrap_or_else(|| {
                        vertices.push(*p);
                        (vertices.len() - 1) as u32
                    })
            })
            .collect();
        for (p, &k) in positions.iter().zip(&local) {
            by_position.entry(p.map(f64::to_bits)).or_insert(k);
        }
        for f in mesh.indices.chunks_exact(3) {
            let corner = |n: usize| local.get(f[n] as usize).copied();
            match (corner(0), corner(1), corner(2)) {
                (Some(a), Some(b), Some(c)) => tris.push([a, b, c]),
                _ => {
                    return Err(ObjError::new(
                        "invalid OBJ: face index out of range",
                        FACE_INDEX_HELP,
                    ))
                }
            }
        }
    }
    if vertices.is_empty() || tris.is_empty() {
        return Err(ObjError::new(
            "invalid OBJ: no vertices referenced by faces",
            "a cloth needs at least one face: add `f i j k` lines naming its `v` lines",
        ));
    }
    // A face without area would carry no mass and have no rest shape: slivers
    // are kept, corners that are repeated or on one line are not.
    if let Some(k) = tris.iter().position(|&t| {
        let longest = (0..3)
            .map(|i| {
                let d = sub(vertices[t[(i + 1) % 3] as usize], vertices[t[i] as usize]);
                dot(d, d)
            })
            .fold(0.0, f64::max);
        tri_area(&vertices, t) <= 1e-10 * longest // finite: the coordinates are
    }) {
        let lines = face_lines(&cleaned);
        let at = match lines.get(k) {
            Some(n) if lines.len() == tris.len() => format!("line {n}"),
            _ => format!("triangle {}", k + 1),
        };
        let corners: Vec<String> = tris[k]
            .iter()
            .map(|&i| {
                let [x, y, z] = vertices[i as usize];
                format!("({x}, {y}, {z})")
            })
            .collect();
        return Err(ObjError::new(
            format!(
                "{at}: a face of zero area, corners {}",
                corners.join(", ")
            ),
            "remove the face or move its corners apart: a face whose corners repeat or lie on one line carries no mass and has no rest shape",
        ));
    }
    let surface = tri_vertices(&tris);
    Ok(sheet(vertices, tris, surface, density))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashSet;

    fn close(a: f64, b: f64) -> bool {
        (a - b).abs() <= 1e-9 * (1.0 + a.abs().max(b.abs()))
    }

    fn check_edges(m: &MeshData) {
        assert!(m.edges.iter().all(|e| e[0] < e[1]));
        assert!(
            m.edges.windows(2).all(|w| w[0] < w[1]),
            "edges sorted+unique"
        );
        assert!(
            m.surface.windows(2).all(|w| w[0] < w[1]),
            "surface sorted+unique"
        );
        assert_eq!(m.masses.len(), m.vertices.len());
    }

    #[test]
    fn grid_counts_mass_and_winding() {
        for &(nx, ny) in &[(1, 1), (2, 3), (5, 1), (4, 7)] {
            let (sx, sy, rho) = (2.0, 0.5, 0.3);
            let m = grid([nx, ny], [sx, sy], [1.0, -2.0, 3.0], rho);
            check_edges(&m);
            assert_eq!(m.vertices.len(), (nx + 1) * (ny + 1));
            assert_eq!(m.tris.len(), 2 * nx * ny);
            assert_eq!(m.edges.len(), nx * (ny + 1) + ny * (nx + 1) + nx * ny);
            assert!(m.tets.is_empty());
            assert_eq!(m.surface.len(), 2 * (nx + ny));
            assert!(close(m.masses.iter().sum(), rho * sx * sy));
            assert_eq!(m.vertices[0], [1.0, -2.0, 3.0]);
            assert_eq!(m.vertices[ny], [1.0, -1.5, 3.0]);
            assert_eq!(*m.vertices.last().unwrap(), [3.0, -1.5, 3.0]);
            for &[a, b, c] in &m.tris {
                let v = |k: u32| m.vertices[k as usize];
                let n = cross(sub(v(b), v(a)), sub(v(c), v(a)));
                assert!(n[2] > 0.0 && n[0] == 0.0 && n[1] == 0.0);
            }
        }
    }

    #[test]
    fn tetgrid_topology_and_geometry() {
        for &(nx, ny, nz) in &[(1, 1, 1), (2, 3, 4), (3, 1, 2), (4, 4, 4)] {
            let (size, at, rho) = ([1.5, 2.0, 0.5], [-1.0, 0.25, 2.0], 7.0);
            let vol = size[0] * size[1] * size[2];
            let m = tetgrid([nx, ny, nz], size, at, rho);
            check_edges(&m);
            let v = |k: u32| m.vertices[k as usize];
            let nv = (nx + 1) * (ny + 1) * (nz + 1);
            assert_eq!(m.vertices.len(), nv);
            assert_eq!(m.tets.len(), 6 * nx * ny * nz);
            assert_eq!(m.tris.len(), 2 * 2 * (nx * ny + ny * nz + nx * nz));

            // Orientation and volume, computed directly from the determinant.
            let mut total = 0.0;
            for &[a, b, c, d] in &m.tets {
                let (e1, e2, e3) = (sub(v(b), v(a)), sub(v(c), v(a)), sub(v(d), v(a)));
                let det = e1[0] * (e2[1] * e3[2] - e2[2] * e3[1])
                    - e1[1] * (e2[0] * e3[2] - e2[2] * e3[0])
                    + e1[2] * (e2[0] * e3[1] - e2[1] * e3[0]);
                assert!(det > 0.0);
                total += det / 6.0;
            }
            assert!(close(total, vol));
            assert!(close(m.masses.iter().sum(), rho * vol));

            // Euler characteristic of a triangulated ball: V - E + F - T = 1.
            let mut faces = HashSet::new();
            for t in &m.tets {
                for skip in 0..4 {
                    let mut f: Vec<u32> = (0..4).filter(|&i| i != skip).map(|i| t[i]).collect();
                    f.sort_unstable();
                    faces.insert(f);
                }
            }
            let euler = nv as i64 - m.edges.len() as i64 + faces.len() as i64 - m.tets.len() as i64;
            assert_eq!(euler, 1);

            // Divergence theorem: outward boundary encloses the box volume.
            let flux: f64 = m
                .tris
                .iter()
                .map(|&[a, b, c]| {
                    let centroid = [0, 1, 2].map(|i| (v(a)[i] + v(b)[i] + v(c)[i]) / 3.0);
                    dot(centroid, cross(sub(v(b), v(a)), sub(v(c), v(a)))) / 6.0
                })
                .sum();
            assert!(close(flux, vol), "flux {flux} vs {vol}");

            let interior = nx.saturating_sub(1) * ny.saturating_sub(1) * nz.saturating_sub(1);
            assert_eq!(m.surface.len(), nv - interior);
            let on_face =
                |p: [f64; 3]| (0..3).any(|i| close(p[i], at[i]) || close(p[i], at[i] + size[i]));
            assert!(m.surface.iter().all(|&k| on_face(v(k))));
        }
    }

    #[test]
    fn zero_cells_do_not_panic() {
        let g = grid([0, 3], [1.0, 1.0], [0.0; 3], 1.0);
        assert_eq!((g.vertices.len(), g.tris.len(), g.edges.len()), (4, 0, 0));
        assert!(g.masses.iter().all(|&m| m == 0.0));
        let t = tetgrid([2, 0, 1], [1.0; 3], [0.0; 3], 1.0);
        assert_eq!((t.vertices.len(), t.tets.len(), t.tris.len()), (6, 0, 0));
        assert!(t.surface.is_empty() && t.edges.is_empty());
        assert!(t.vertices.iter().all(|p| p.iter().all(|c| c.is_finite())));
    }

    const SQUARE: &str = "v 0 0 0\nv 1 0 0\nv 1 1 0\nv 0 1 0\n";

    #[test]
    fn obj_unit_square() {
        for faces in ["f 1 2 3\nf 1 3 4\n", "f 1 2 3 4\n", "f -4 -3 -2 -1\n"] {
            let m = parse_obj(&format!("# square\n{SQUARE}{faces}"), 2.5).unwrap();
            check_edges(&m);
            assert_eq!((m.vertices.len(), m.tris.len(), m.edges.len()), (4, 2, 5));
            assert!(close(m.masses.iter().sum(), 2.5));
            assert_eq!(m.surface, vec![0, 1, 2, 3]);
            assert!(m.tets.is_empty());
        }
    }

    #[test]
    fn obj_attributes_and_groups_share_vertices() {
        let uv = "vt 0 0\nvt 1 0\nvt 1 1\nvt 0 1\nvt 0.5 0.5\nvn 0 0 1\n";
        let text = format!("{SQUARE}{uv}f 1/1/1 2/2/1 3/3/1\nf 1/5/1 3//1 4/4/1\n");
        let m = parse_obj(&text, 1.0).unwrap();
        assert_eq!((m.vertices.len(), m.edges.len()), (4, 5));
        let m = parse_obj(&format!("{SQUARE}g a\nf 1 2 3\ng b\nf 1 3 4\n"), 1.0).unwrap();
        assert_eq!((m.vertices.len(), m.edges.len()), (4, 5));
        assert!(close(m.masses.iter().sum(), 1.0));
    }

    #[test]
    fn obj_non_finite_and_degenerate_are_located_errors() {
        for (text, line) in [
            (format!("{SQUARE}v nan 0 1\nf 1 2 3\n"), "line 5"),
            (format!("v 0 0 0\nv 1e200 0 0\n{SQUARE}f 3 4 5\n"), "line 2"),
            ("v 0 0 0\nv inf 1 0\nf 1 2 1\n".to_owned(), "line 2"),
        ] {
            let e = parse_obj(&text, 1.0).unwrap_err();
            assert!(
                e.message.starts_with(line) && e.message.contains("not a finite number"),
                "{e:?}"
            );
            assert!(e.help.contains("finite coordinates"), "{e:?}");
        }
        // Collinear corners, a repeated corner: no area, no mass.
        for (text, line) in [
            ("v 0 0 0\nv 1 0 0\nv 2 0 0\nf 1 2 3\n".to_owned(), "line 4"),
            (format!("{SQUARE}f 1 2 3\nf 1 3 3\n"), "line 6"),
            (format!("{SQUARE}f 1 2 3\nv 2 2 0\nf 1 2 3 5\n"), "line 7"),
        ] {
            let e = parse_obj(&text, 1.0).unwrap_err();
            assert!(
                e.message.starts_with(line) && e.message.contains("zero area"),
                "{text}: {e:?}"
            );
        }
        // A sliver keeps its (small) area and mass.
        let m = parse_obj("v 0 0 0\nv 1 0 0\nv 0.5 1e-6 0\nf 1 2 3\n", 1.0).unwrap();
        assert!(m.masses.iter().all(|&x| x > 0.0));
        let e = parse_obj(&format!("{SQUARE}f 1 2 9\n"), 1.0).unwrap_err();
        assert!(e.help.contains("numbers the `v` lines"), "{e:?}");
    }

    #[test]
    fn obj_malformed_is_err() {
        let bad = [
            String::new(),
            "# nothing\n".to_owned(),
            SQUARE.to_owned(),
            "v 1 2\nf 1 1 1\n".to_owned(),
            "v a b c\n".to_owned(),
            "f 1 2 3\n".to_owned(),
            format!("{SQUARE}f 1 2 9\n"),
            format!("{SQUARE}f 0 1 2\n"),
            format!("{SQUARE}f 1 2 x\n"),
            format!("{SQUARE}f -9 1 2\n"),
            format!("{SQUARE}f /1 2 3\n"),
            format!("{SQUARE}vt 0 0\nf 1/-3 2/-3 3/-3\nf 1 2 99999999999999999999\n"),
        ];
        for text in &bad {
            assert!(parse_obj(text, 1.0).is_err(), "accepted {text:?}");
        }
        // Odd but harmless input must not panic either.
        let m = parse_obj(&format!("{SQUARE}vt 0 0\nf 1/-3 2/-3 3/-3\nl 1 2\n"), 1.0).unwrap();
        assert_eq!(m.tris.len(), 1);
    }
}
