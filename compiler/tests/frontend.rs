//! Front-end numbers checked against values computed independently here:
//! generator order and guards, DOF numbering with fixed particles, rest values,
//! mesh counts and lumped masses, per-tet rest matrices, `use` and `if`.

use joule_compiler::model::{DofRef, Model, Template};
use std::path::Path;

#[macro_use]
#[path = "../../tests/common/scene_list.rs"]
mod scene_list;

fn model(path: &str) -> Model {
    let checked = joule_compiler::check_path(Path::new(path)).expect("test scene exists");
    assert!(checked.ok(), "{}", checked.render_diagnostics(false, 100));
    checked.model.expect("a model when ok")
}

/// The particle position behind a row of a template's DOF table.
fn position(m: &Model, refs: &[DofRef]) -> [f64; 3] {
    let mut x = [0.0; 3];
    for (k, r) in refs.iter().enumerate() {
        x[k] = match *r {
            DofRef::Fixed(v) => v,
            DofRef::Free(d) => {
                let p = m
                    .particles
                    .iter()
                    .find(|p| p.dof == Some(d - d % 3))
                    .expect("a free DOF belongs to a particle");
                p.x[(d % 3) as usize]
            }
        };
    }
    x
}

fn dist(a: [f64; 3], b: [f64; 3]) -> f64 {
    ((a[0] - b[0]).powi(2) + (a[1] - b[1]).powi(2) + (a[2] - b[2]).powi(2)).sqrt()
}

fn rows(t: &Template) -> impl Iterator<Item = (&[DofRef], &[f64])> {
    let nc = t.const_names.len();
    (0..t.count).map(move |i| {
        (
            &t.dofs[i * t.dof_width..(i + 1) * t.dof_width],
            &t.consts[i * nc..(i + 1) * nc],
        )
    })
}

#[test]
fn generators_expand_in_order_with_guards_and_rest_values() {
    let m = model("tests/frontend/generators.joule");
    let (n, mm) = (5usize, 4usize);
    // Particles: innermost index last; the fixed one has no DOFs, the rest are numbered in order.
    assert_eq!(m.particles.len(), n * mm);
    let mut next = 0;
    for i in 0..n {
        for j in 0..mm {
            let p = &m.particles[i * mm + j];
            assert_eq!(p.name, format!("p[{i}, {j}]"));
            let (fi, fj) = (i as f64, j as f64);
            assert_eq!(
                p.x,
                [fi + 0.1 * fj * fj, fj - 0.05 * fi * fi, 0.01 * fi * fj]
            );
            assert_eq!(p.mass, 1.0 + fi + 10.0 * fj);
            if (i, j) == (0, 0) {
                assert_eq!(p.dof, None);
            } else {
                assert_eq!(p.dof, Some(next));
                next += 3;
            }
        }
    }
    assert_eq!(m.dof_count, next as usize);

    // Instances: the guard keeps flat-index pairs a < b with b - a odd and <= 3.
    let mut expected = vec![];
    for i1 in 0..n {
        for j1 in 0..mm {
            for i2 in 0..n {
                for j2 in 0..mm {
                    let (a, b) = (i1 * mm + j1, i2 * mm + j2);
                    if a < b && (b - a) % 2 == 1 && b - a <= 3 {
                        expected.push((a, b, 7.0 + i1 as f64));
                    }
                }
            }
        }
    }
    assert_eq!(m.templates.len(), 1);
    let t = &m.templates[0];
    assert_eq!(t.count, expected.len());
    for ((dofs, consts), (a, b, k)) in rows(t).zip(&expected) {
        let (xa, xb) = (m.particles[*a].x, m.particles[*b].x);
        assert_eq!(position(&m, &dofs[..3]), xa);
        assert_eq!(position(&m, &dofs[3..]), xb);
        assert_eq!(consts[0], *k);
        assert!((consts[1] - dist(xa, xb)).abs() < 1e-14);
    }
}

#[test]
#[allow(clippy::needless_range_loop)] // matrix indices read best as indices
fn tetgrid_counts_masses_and_rest_matrices() {
    let m = model("tests/frontend/soft_tets.joule");
    let (nx, ny, nz) = (3usize, 2usize, 2usize);
    let (sx, sy, sz) = (0.3, 0.2, 0.25);
    assert_eq!(m.particles.len(), (nx + 1) * (ny + 1) * (nz + 1));
    let total: f64 = m.particles.iter().map(|p| p.mass).sum();
    assert!((total - 1000.0 * sx * sy * sz).abs() < 1e-9, "{total}");
    let t = &m.templates[0];
    assert_eq!(t.count, 6 * nx * ny * nz);
    let mut volume = 0.0;
    for (dofs, consts) in rows(t) {
        let v: Vec<[f64; 3]> = (0..4)
            .map(|k| position(&m, &dofs[3 * k..3 * k + 3]))
            .collect();
        // Columns of Dm, and Dm * Bm = I with Bm read column-major from the constants.
        let col = |c: usize| {
            [
                v[c + 1][0] - v[0][0],
                v[c + 1][1] - v[0][1],
                v[c + 1][2] - v[0][2],
            ]
        };
        let dm = [col(0), col(1), col(2)];
        let bm = |i: usize, j: usize| consts[1 + j * 3 + i];
        for i in 0..3 {
            for j in 0..3 {
                let p: f64 = (0..3).map(|k| dm[k][i] * bm(k, j)).sum();
                assert!((p - if i == j { 1.0 } else { 0.0 }).abs() < 1e-12);
            }
        }
        let det = dm[0][0] * (dm[1][1] * dm[2][2] - dm[1][2] * dm[2][1])
            - dm[1][0] * (dm[0][1] * dm[2][2] - dm[0][2] * dm[2][1])
            + dm[2][0] * (dm[0][1] * dm[1][2] - dm[0][2] * dm[1][1]);
        assert!(det > 0.0, "tets are positively oriented");
        assert!((consts[10] - det / 6.0).abs() < 1e-15);
        volume += consts[10];
    }
    assert!((volume - sx * sy * sz).abs() < 1e-12);
}

#[test]
fn use_files_and_compile_time_if() {
    let m = model("tests/frontend/use_main.joule");
    // FINE is true, so N = 8; L = 0.25 comes from the used file.
    assert_eq!(m.particles.len(), 8);
    assert_eq!(m.particles[7].x, [7.0 * 0.25, 0.0, 0.0]);
    let t = &m.templates[0];
    assert_eq!((t.name.as_str(), t.count), ("link", 7));
    assert!(rows(t).all(|(_, c)| (c[0] - 0.25).abs() < 1e-15));
    assert_eq!(m.objectives[0].name, "tip");
}

/// Every table of a template has one row of its declared width per instance,
/// and every free DOF it names exists.
fn template_rows_have_their_declared_width(path: &str) {
    let m = model(path);
    for t in &m.templates {
        assert_eq!(t.dofs.len(), t.count * t.dof_width, "{}", t.name);
        assert_eq!(t.controls.len(), t.count * t.control_width, "{}", t.name);
        assert_eq!(t.consts.len(), t.count * t.const_names.len(), "{}", t.name);
        for d in &t.dofs {
            if let DofRef::Free(k) = d {
                assert!((*k as usize) < m.dof_count);
            }
        }
    }
}

macro_rules! template_rows {
    ($($scene:ident)*) => {
        /// [`template_rows_have_their_declared_width`] on each shipped scene.
        mod every_template_row_has_its_declared_width {
            $(
                #[test]
                fn $scene() {
                    super::template_rows_have_their_declared_width(
                        concat!("../scenes/", stringify!($scene), ".joule"),
                    );
                }
            )*
        }
    };
}
shipped_scenes!(template_rows);
