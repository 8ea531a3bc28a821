//! [`Mjcf`] to Joule source text: one Joule body per MJCF body that has
//! joints (jointless bodies are welded to their parent in MJCF, so their
//! geoms, sites and mass are merged into it exactly), in joint coordinates
//! (its `joint` field is its MJCF joints in order), actuators as the
//! controls `u[k]`.

use super::*;
use crate::math::*;
use crate::names;
use std::cmp::Ordering;
use std::collections::{HashMap, HashSet};
use std::f64::consts::FRAC_1_SQRT_2;
use std::fmt::Write;

/// Contact barrier thickness (m).
const DHAT: f64 = 2e-3;
/// Smoothing speed of lagged friction (m/s).
const FRICTION_EPS: f64 = 1e-2;
/// The most pairs of geoms that may touch an import writes (humanoid_CMU
/// has 1,069; dm_control's dog 5,685).
const MAX_PAIRS: usize = 2000;
/// Smoothing rate of a joint's dry friction (`frictionloss`; rad/s or m/s).
const JOINT_FRICTION_EPS: f64 = 1e-3;

/// A number as Joule source: the shortest text that reads back to the same value.
pub(super) fn num(x: f64) -> String {
    if x == 0.0 {
        "0".into()
    } else if (1e-4..1e9).contains(&x.abs()) {
        format!("{x}")
    } else {
        format!("{x:e}")
    }
}

/// A stiffness-like constant rounded to three significant digits.
fn round3(x: f64) -> f64 {
    let e = 10f64.powf(x.abs().log10().floor() - 2.0);
    (x / e).round() * e
}

/// Entries below `1e-12` of the largest are rounding noise of the frame
/// changes (MuJoCo's own values carry the same noise): written as 0.
fn denoise<const N: usize>(v: [f64; N], scale: f64) -> [f64; N] {
    v.map(|x| if x.abs() < 1e-12 * scale { 0.0 } else { x })
}

pub(super) fn v3(v: V3) -> String {
    format!("vec3({}, {}, {})", num(v[0]), num(v[1]), num(v[2]))
}

/// A Joule body: an MJCF body with joints (or the world) and the jointless
/// bodies welded to it.
struct Group {
    /// The MJCF body that carries the joints.
    root: usize,
    /// Joule name.
    name: String,
    /// Merged bodies (besides the root), by MJCF name.
    merged: Vec<String>,
    /// Geoms and sites in the root's frame, and each geom's MJCF body.
    geoms: Vec<Geom>,
    geom_bodies: Vec<usize>,
    sites: Vec<Site>,
    mass: MassProps,
}

/// Names Joule already uses: keywords, type names, the scene-wide
/// collections, the prelude's items and the constants the importer writes
/// (built-in functions are checked by [`Names::ident`]).
fn reserved() -> HashSet<String> {
    joule_grammar::KEYWORDS
        .iter()
        .chain(names::TYPE_NAMES)
        .chain(&[
            "u",
            "world",
            "dhat",
            "kappa",
            "k_contact",
            "b_contact",
            "kt_contact",
            "h",
            "ctrl_lo",
            "ctrl_hi",
        ])
        .chain(names::COLLECTIONS)
        .copied()
        .chain(names::prelude_items())
        .map(|s| s.to_string())
        .collect()
}

/// Unique Joule identifiers for MJCF names.
struct Names {
    taken: HashSet<String>,
}

impl Names {
    fn ident(&mut self, mjcf: &str) -> String {
        let mut s: String = mjcf
            .chars()
            .map(|c| {
                if c.is_ascii_alphanumeric() || c == '_' {
                    c
                } else {
                    '_'
                }
            })
            .collect();
        if s.is_empty() || s.starts_with(|c: char| c.is_ascii_digit()) {
            s.insert(0, '_');
        }
        let mut name = s.clone();
        let mut k = 1;
        while self.taken.contains(&name) || names::is_builtin_name(&name) {
            name = format!("{s}_{k}");
            k += 1;
        }
        self.taken.insert(name.clone());
        name
    }
}

/// Body-frame contact points `(r, radius)` of a geom placed in a body.
fn contact_points(g: &Geom) -> Vec<(V3, f64)> {
    let local: Vec<(V3, f64)> = match g.kind {
        GeomKind::Sphere { radius } => vec![([0.0; 3], radius)],
        GeomKind::Capsule { radius, half } => {
            vec![([0.0, 0.0, -half], radius), ([0.0, 0.0, half], radius)]
        }
        GeomKind::Cylinder { radius, half } => (0..16)
            .map(|k| {
                let a = (k % 8) as f64 * std::f64::consts::PI / 4.0;
                let z = if k < 8 { -half } else { half };
                ([radius * a.cos(), radius * a.sin(), z], 0.0)
            })
            .collect(),
        GeomKind::Box { half } => (0..8)
            .map(|k| {
                let s = |bit: usize, h: f64| if k >> bit & 1 == 1 { h } else { -h };
                ([s(2, half[0]), s(1, half[1]), s(0, half[2])], 0.0)
            })
            .collect(),
        // Its contacts are written from its shape (`ellipsoid_args`); a
        // mesh's contact is refused (`contact_refused`).
        GeomKind::Ellipsoid { .. } | GeomKind::Plane | GeomKind::Mesh { .. } => vec![],
    };
    local
        .into_iter()
        .map(|(r, rad)| (add(g.pos, rotate(g.quat, r)), rad))
        .collect()
}

/// A geom as a Joule shape (MJCF sizes are radii and half lengths, Joule's
/// are full lengths); planes are not shapes.
fn joule_shape(g: &Geom) -> Option<String> {
    Some(match g.kind {
        GeomKind::Sphere { radius } => format!("sphere({})", num(radius)),
        GeomKind::Capsule { radius, half } => {
            format!("capsule({}, {})", num(radius), num(2.0 * half))
        }
        GeomKind::Cylinder { radius, half } => {
            format!("cylinder({}, {})", num(radius), num(2.0 * half))
        }
        GeomKind::Box { half } => format!("box({})", v3(half.map(|h| 2.0 * h))),
        // Joule has no ellipsoid shape: drawn as its bounding sphere.
        GeomKind::Ellipsoid { radii } => {
            format!("sphere({})", num(radii[0].max(radii[1]).max(radii[2])))
        }
        // Joule has no mesh shape: drawn as its inertia box (MuJoCo's too).
        GeomKind::Mesh { half, .. } => format!("box({})", v3(half.map(|h| 2.0 * h))),
        GeomKind::Plane => return None,
    })
}

/// A body's `shape`: its geoms as placed in the body frame (what the viewer
/// draws; contact uses the geoms' points, mass the MJCF values), or `None`
/// when it has no geom but planes.
fn body_shape(geoms: &[Geom]) -> Option<String> {
    let parts: Vec<(String, V3, Option<Q>)> = geoms
        .iter()
        .filter_map(|g| {
            let q = denoise(g.quat, 1.0);
            let turned = norm(sub([q[1], q[2], q[3]], [0.0; 3])) > 0.0;
            Some((
                joule_shape(g)?,
                denoise(g.pos, reach(g)),
                turned.then_some(q),
            ))
        })
        .collect();
    match parts.as_slice() {
        [] => None,
        [(one, [0.0, 0.0, 0.0], None)] => Some(one.clone()),
        _ => {
            let lines: Vec<String> = parts
                .iter()
                .map(|(shape, at, q)| {
                    let turn = q.map_or(String::new(), |q| {
                        format!(
                            ", quat({}, {}, {}, {})",
                            num(q[0]),
                            num(q[1]),
                            num(q[2]),
                            num(q[3])
                        )
                    });
                    format!("\n        {shape}, {}{turn}", v3(*at))
                })
                .collect();
            Some(format!("compound({}\n    )", lines.join(",")))
        }
    }
}

/// Radius about the body origin that contains a geom.
fn reach(g: &Geom) -> f64 {
    let extent = match g.kind {
        GeomKind::Sphere { radius } => radius,
        GeomKind::Capsule { radius, half } => radius + half,
        GeomKind::Cylinder { radius, half } => (radius * radius + half * half).sqrt(),
        GeomKind::Box { half } | GeomKind::Mesh { half, .. } => norm(half),
        GeomKind::Ellipsoid { radii } => radii[0].max(radii[1]).max(radii[2]),
        GeomKind::Plane => 0.0,
    };
    norm(g.pos) + extent
}

/// The distance between the surfaces of two geoms in the reference pose
/// (negative where they overlap), each with the body whose frame holds it,
/// for spheres and capsules (a segment with a radius); `None` for other
/// shapes.
fn initial_gap((x, bx): (&Geom, &Body), (y, by): (&Geom, &Body)) -> Option<f64> {
    let segment = |g: &Geom, b: &Body| -> Option<(V3, V3, f64)> {
        let world = |p: V3| add(b.xpos, rotate(b.xquat, p));
        match (g.kind, contact_points(g).as_slice()) {
            (GeomKind::Sphere { radius }, [(c, _)]) => Some((world(*c), world(*c), radius)),
            (GeomKind::Capsule { radius, .. }, [(p0, _), (p1, _)]) => {
                Some((world(*p0), world(*p1), radius))
            }
            _ => None,
        }
    };
    let (a0, a1, ra) = segment(x, bx)?;
    let (b0, b1, rb) = segment(y, by)?;
    Some(segment_distance(a0, a1, b0, b1) - ra - rb)
}

/// The distance between the segments a0-a1 and b0-b1 (either may be a
/// point): Ericson's closest points (Real-Time Collision Detection 5.1.9).
fn segment_distance(a0: V3, a1: V3, b0: V3, b1: V3) -> f64 {
    let (d1, d2, r) = (sub(a1, a0), sub(b1, b0), sub(a0, b0));
    let (a, e, f) = (dot(d1, d1), dot(d2, d2), dot(d2, r));
    let (s, t) = if a <= 1e-300 && e <= 1e-300 {
        (0.0, 0.0)
    } else if a <= 1e-300 {
        (0.0, (f / e).clamp(0.0, 1.0))
    } else {
        let c = dot(d1, r);
        if e <= 1e-300 {
            ((-c / a).clamp(0.0, 1.0), 0.0)
        } else {
            let b = dot(d1, d2);
            let denom = a * e - b * b;
            let s = if denom > 1e-12 * a * e {
                ((b * f - c * e) / denom).clamp(0.0, 1.0)
            } else {
                0.0
            };
            let t = (b * s + f) / e;
            if t < 0.0 {
                ((-c / a).clamp(0.0, 1.0), 0.0)
            } else if t > 1.0 {
                (((b - c) / a).clamp(0.0, 1.0), 1.0)
            } else {
                (s, t)
            }
        }
    };
    norm(sub(add(a0, scale(d1, s)), add(b0, scale(d2, t))))
}

/// The pairs of geoms of two bodies that may collide (planes aside), each
/// with its MJCF body.
fn geom_pairs<'g>(
    a: &'g Group,
    b: &'g Group,
) -> impl Iterator<Item = ((&'g Geom, usize), (&'g Geom, usize))> + 'g {
    let with_bodies = |g: &'g Group| {
        (g.geoms.iter().zip(&g.geom_bodies)).filter(|(g, _)| g.kind != GeomKind::Plane)
    };
    with_bodies(a).flat_map(move |(x, &bx)| {
        with_bodies(b)
            .filter(move |(y, _)| collides(x, y))
            .map(move |(y, &by)| ((x, bx), (y, by)))
    })
}

/// The arguments of `contact_mujoco` after the geometry for a geom against
/// a plane, `tran` the geom's body's translational inverse weight: friction,
/// the regulariser's scale, solref's k and b, solimp, the margin, the step;
/// each pair's mix of the two geoms' as MuJoCo's (the geom of higher
/// `priority`'s, else friction and condim the larger, solref and solimp
/// weighted by solmix, or the direct solref the smaller; the time constant
/// at least two steps, the impedance clamped, the two margins summed: MuJoCo
/// 4's contact engages below the sum, and `gap` only widens its detection).
/// Torsional and rolling friction and the elliptic cone are warnings
/// (`mjcf::condim`, `mjcf::cone`: written as condim 3, the pyramid).
fn mujoco_law(
    m: &Mjcf,
    geom: &Geom,
    plane: &Geom,
    tran: f64,
    warnings: &mut Vec<Diagnostic>,
) -> Result<String, Diagnostic> {
    const MIN: f64 = 1e-15;
    // A geom of higher priority gives the pair its parameters.
    let (a, p, mu) = match geom.contact.priority.cmp(&plane.contact.priority) {
        Ordering::Greater => (&geom.contact, &geom.contact, geom.friction),
        Ordering::Less => (&plane.contact, &plane.contact, plane.friction),
        Ordering::Equal => (
            &geom.contact,
            &plane.contact,
            geom.friction.max(plane.friction),
        ),
    };
    let mix = match (a.solmix >= MIN, p.solmix >= MIN) {
        (true, true) => a.solmix / (a.solmix + p.solmix),
        (false, false) => 0.5,
        (false, true) => 0.0,
        (true, false) => 1.0,
    };
    let blend = |x: f64, y: f64| mix * x + (1.0 - mix) * y;
    // solref: the standard form (time constant, damping ratio) mixed, else
    // the direct form (-stiffness, -damping), the smaller of each.
    let solref = if a.solref[0] > 0.0 && p.solref[0] > 0.0 {
        [
            blend(a.solref[0], p.solref[0]),
            blend(a.solref[1], p.solref[1]),
        ]
    } else {
        [a.solref[0].min(p.solref[0]), a.solref[1].min(p.solref[1])]
    };
    let solref = solver_solref(solref);
    let [mut dmin, mut dmax, mut width, mid, power] =
        solver_solimp(std::array::from_fn(|i| blend(a.solimp[i], p.solimp[i])));
    if dmin == dmax || width <= MIN {
        (dmin, dmax, width) = (0.5 * (dmin + dmax), 0.5 * (dmin + dmax), 1.0);
    } else if power != 1.0 && power != 2.0 {
        return Err(Diagnostic::error(
            "mjcf::unsupported",
            format!(
                "a contact `solimp` power of {} (Joule writes 1 and 2)",
                num(power)
            ),
            geom.span,
            "impedance power",
        )
        .with_help("use power 1 or 2 (MuJoCo's default)"));
    }
    let (k, b) = if solref[0] > 0.0 {
        // The time constant at least two steps (MuJoCo's `refsafe`).
        let (time, ratio) = (solref[0].max(2.0 * m.timestep), solref[1]);
        (
            1.0 / (dmax * time * ratio).powi(2).max(MIN),
            2.0 / (dmax * time).max(MIN),
        )
    } else {
        (
            -solref[0] / (dmax * dmax).max(MIN),
            -solref[1] / dmax.max(MIN),
        )
    };
    let condim = a.condim.max(p.condim);
    if condim > 3 && !warnings.iter().any(|w| w.code == "mjcf::condim") {
        warnings.push(
            Diagnostic::error(
                "mjcf::condim",
                format!(
                    "contact dimension {condim}: its torsional and rolling friction are left out"
                ),
                geom.span,
                "condim above 3",
            )
            .warning()
            .with_help("Joule writes MuJoCo's contact with sliding friction (condim 3) here"),
        );
    }
    if m.elliptic && !warnings.iter().any(|w| w.code == "mjcf::cone") {
        warnings.push(
            Diagnostic::without_span(
                crate::Severity::Warning,
                "mjcf::cone",
                "the elliptic friction cone (`<option cone=\"elliptic\">`) is written as MuJoCo's pyramidal cone",
            )
            .with_help("`joule import --friction cone` writes one elliptic cone with a spring-damper normal force"),
        );
    }
    let (mu, scale) = if condim == 1 {
        (0.0, tran)
    } else {
        (
            mu,
            2.0 * mu * mu * (1.0 + mu * mu) * tran / m.impratio.max(MIN),
        )
    };
    Ok(format!(
        "{}, {}, {}, {}, {}, {}, {}, {}, {}, {}, h",
        num(mu),
        num(scale),
        num(k),
        num(b),
        num(dmin),
        num(dmax),
        num(width),
        num(mid),
        num(power),
        num(geom.contact.margin + plane.contact.margin),
    ))
}

fn collides(a: &Geom, b: &Geom) -> bool {
    a.contype & b.conaffinity != 0 || b.contype & a.conaffinity != 0
}

/// Writes the contact of two geoms (with their bodies' Joule names) of
/// which one is an ellipsoid, with friction `mu`, and says whether it did:
/// the other's point (sphere, a cylinder's rim points), segment (capsule) or
/// point farthest toward the ellipsoid's centre (a second ellipsoid, both
/// ways) against the ellipsoid's surface (`touch_ellipsoid` and the like);
/// a box's edges (as segments) too, and the ellipsoid's point farthest into
/// the box's normal there against the box's faces (`touch_ellipsoid_box`).
fn write_ellipsoid_pair(ct: &mut String, x: (&Geom, &str), y: (&Geom, &str), mu: &str) -> bool {
    let mut write = |kind: &str, args: &str| write_touch(ct, kind, args, mu);
    let (ex, ey) = (ellipsoid_args(x.0), ellipsoid_args(y.0));
    if let (Some(ax), Some(ay)) = (&ex, &ey) {
        for ((an, a), (bn, b)) in [((x.1, ax), (y.1, ay)), ((y.1, ay), (x.1, ax))] {
            write("ellipsoids", &format!("{an}, {bn}, {a}, {b}"));
        }
        return true;
    }
    let ((p, pn), (en, e)) = match (ex, ey) {
        (Some(e), None) => (y, (x.1, e)),
        (None, Some(e)) => (x, (y.1, e)),
        _ => return false,
    };
    if let GeomKind::Box { half } = p.kind {
        let args = format!(
            "{en}, {pn}, {e}, {}, {}, {}",
            v3(p.pos),
            axes_text(p.quat),
            v3(half)
        );
        write("ellipsoid_box", &args);
        // And the box's edges against the ellipsoid, each at its point
        // closest to it (a small box on a large ellipsoid rests on an edge
        // or a corner, where the ellipsoid's point above misses the box).
        let corners = contact_points(p);
        for (i, j) in (0..8)
            .flat_map(|i| [1, 2, 4].map(|b| (i, i | b)))
            .filter(|(i, j)| i != j)
        {
            let (p0, p1) = (corners[i].0, corners[j].0);
            write(
                "capsule_ellipsoid",
                &format!("{pn}, {en}, {}, {}, 0, {e}", v3(p0), v3(p1)),
            );
        }
        return true;
    }
    if let (GeomKind::Capsule { radius, .. }, [(p0, _), (p1, _)]) =
        (p.kind, contact_points(p).as_slice())
    {
        let args = format!("{pn}, {en}, {}, {}, {}, {e}", v3(*p0), v3(*p1), num(radius));
        write("capsule_ellipsoid", &args);
        return true;
    }
    for (pa, rada) in contact_points(p) {
        write(
            "ellipsoid",
            &format!("{pn}, {en}, {}, {}, {e}", v3(pa), num(rada)),
        );
    }
    true
}

/// Writes a body-body contact `touch_KIND(args, dhat, kappa)` and its lagged
/// friction `friction_touch_KIND(args, mu, dhat, kappa, eps)`.
fn write_touch(ct: &mut String, kind: &str, args: &str, mu: &str) {
    writeln!(ct, "touch_{kind}({args}, dhat, kappa)").ok();
    let eps = num(FRICTION_EPS);
    writeln!(
        ct,
        "friction_touch_{kind}({args}, {mu}, dhat, kappa, {eps})"
    )
    .ok();
}

/// Whether the pair of geoms `a`, `b` (`b` may be a plane) has no contact
/// in Joule (one is a mesh: MuJoCo collides its convex hull): then an error
/// at the mesh is added to `diags`, once per mesh.
fn contact_refused(a: &Geom, b: &Geom, diags: &mut Vec<Diagnostic>) -> bool {
    let (mesh, other) = match (a.kind, b.kind) {
        (GeomKind::Mesh { .. }, _) => (a, b),
        (_, GeomKind::Mesh { .. }) => (b, a),
        _ => return false,
    };
    if !diags
        .iter()
        .any(|d| d.labels.first().map(|l| l.span) == Some(mesh.span))
    {
        diags.push(
            Diagnostic::error(
                "mjcf::unsupported",
                format!(
                    "contact of a mesh geom (with `{}`) is not supported by the MJCF importer",
                    other.name.as_deref().unwrap_or("geom")
                ),
                mesh.span,
                "may collide",
            )
            .with_help("MuJoCo collides a mesh's convex hull; give it `contype=\"0\" conaffinity=\"0\"` and collide primitives in its place"),
        );
    }
    true
}

/// A geom's axes (the columns of its rotation in the body frame) as a
/// Joule `mat3`.
fn axes_text(q: Q) -> String {
    let r = qmat(q);
    format!(
        "mat3({}, {}, {})",
        v3([r[0][0], r[1][0], r[2][0]]),
        v3([r[0][1], r[1][1], r[2][1]]),
        v3([r[0][2], r[1][2], r[2][2]])
    )
}

/// An ellipsoid's centre, axes and semi-axes as Joule arguments, or `None`
/// for another geom.
fn ellipsoid_args(g: &Geom) -> Option<String> {
    match g.kind {
        GeomKind::Ellipsoid { radii } => Some(format!(
            "{}, {}, {}",
            v3(g.pos),
            axes_text(g.quat),
            v3(radii)
        )),
        _ => None,
    }
}

/// Whether twists are linearly independent (Gram-Schmidt, relative to each
/// one's size).
fn independent(twists: &[[f64; 6]]) -> bool {
    let mut basis: Vec<[f64; 6]> = vec![];
    for t in twists {
        let size = t.iter().map(|x| x * x).sum::<f64>().sqrt();
        let mut r = *t;
        for e in &basis {
            let d: f64 = r.iter().zip(e).map(|(a, b)| a * b).sum();
            for (x, y) in r.iter_mut().zip(e) {
                *x -= d * y;
            }
        }
        let left = r.iter().map(|x| x * x).sum::<f64>().sqrt();
        if left <= 1e-6 * size {
            return false;
        }
        basis.push(r.map(|x| x / left));
    }
    true
}

/// MuJoCo's default time constant of a soft joint limit (`solreflimit`), s.
const LIMIT_TIME: f64 = 0.02;
/// MuJoCo's default time constant of a contact (`solref`), s, and its
/// impedance at depth (`solimp`'s `dmax`).
const CONTACT_TIME: f64 = 0.02;
const CONTACT_IMPEDANCE: f64 = 0.95;
/// Ground contact points this close (m) to the lowest one in the reference
/// pose are the ones taken to carry the model's weight (its feet).
const SUPPORT_BAND: f64 = 0.05;

/// The cone contact's spring and lag (`contact_soft`'s `k` and `lag`) from
/// the scene's `k_contact`, `b_contact` and step `h`.
const CONE_SPRINGS: &str =
    "k_contact + b_contact / h, (b_contact / h) / (k_contact + b_contact / h)";

/// What drives an actuator: its control `u[k]`, or the activation point its
/// dynamics make of the control (`prelude`'s `activation`).
pub(super) enum Input {
    /// `u[k]`.
    Control(usize),
    /// The activation of `u[k]`: the point's name.
    Activation(usize, String),
}

impl Input {
    /// The control's index.
    pub(super) fn control(&self) -> usize {
        match self {
            Input::Control(k) | Input::Activation(k, _) => *k,
        }
    }

    /// Its value as a Joule expression: `u[k]`, or the activation at the
    /// step's start.
    pub(super) fn value(&self) -> String {
        match self {
            Input::Control(k) => format!("u[{k}]"),
            Input::Activation(_, act) => format!("prev({act}.x.x)"),
        }
    }

    /// A scene energy's parameter taking it, how the energy reads it, and
    /// the argument an instance passes.
    pub(super) fn parameter(&self) -> (&'static str, &'static str, String) {
        match self {
            Input::Control(k) => ("u: control", "u", format!("u[{k}]")),
            Input::Activation(_, act) => ("a: particle", "prev(a.x.x)", act.clone()),
        }
    }
}

/// How an imported model is stepped: under MuJoCo's laws, a model on
/// MuJoCo's `Euler` or `RK4` as MuJoCo steps it (the linear step, `rk4`),
/// taking its forces (the fluid's too) at the state; else implicit Euler.
#[derive(Clone, Copy, PartialEq)]
enum Stepping {
    MujocoEuler,
    MujocoRk4,
    Implicit,
}

impl Stepping {
    fn of(m: &Mjcf, friction: Friction) -> Stepping {
        match (
            friction,
            m.integrator.as_ref().map(|(name, _)| name.as_str()),
        ) {
            (Friction::Mujoco, None) => Stepping::MujocoEuler,
            (Friction::Mujoco, Some("RK4")) => Stepping::MujocoRk4,
            _ => Stepping::Implicit,
        }
    }
}

/// The actuators a joint carries as its own options: a motor (control,
/// gear) and a position servo (control, kp, kv).
#[derive(Default, Clone, Copy)]
struct JointActuators {
    motor: Option<(usize, f64)>,
    servo: Option<(usize, f64, f64)>,
}

/// Per joint (MJCF body, index among its joints), the first motor and the
/// first position servo on it: these become the joint's `motor` and `servo`
/// options; further actuators on one joint stay penalty energies, and so
/// does a servo on a joint with a `ref` (its target is `u - ref` in Joule's
/// coordinate), every actuator with activation dynamics and every actuator
/// on a tendon.
fn joint_actuators(m: &Mjcf) -> HashMap<(usize, usize), JointActuators> {
    let mut out: HashMap<(usize, usize), JointActuators> = HashMap::new();
    for (k, a) in m.actuators.iter().enumerate() {
        let Transmission::Joint(b, ji) = a.target else {
            continue;
        };
        let j = &m.bodies[b].joints[ji];
        if !matches!(j.kind, JointKind::Hinge | JointKind::Slide) || a.filter.is_some() {
            continue;
        }
        let acts = out.entry((b, ji)).or_default();
        match a.kind {
            ActuatorKind::Motor { gear } if acts.motor.is_none() => acts.motor = Some((k, gear)),
            ActuatorKind::Position { kp, kv } if acts.servo.is_none() && j.reference == 0.0 => {
                acts.servo = Some((k, kp, kv))
            }
            _ => {}
        }
    }
    out
}

/// ` + x` or ` - |x|` as Joule source, nothing for 0: a term added to an
/// expression.
pub(super) fn plus(x: f64) -> String {
    if x == 0.0 {
        String::new()
    } else if x > 0.0 {
        format!(" + {}", num(x))
    } else {
        format!(" - {}", num(-x))
    }
}

/// A `solref` as MuJoCo's solver takes it: one of mixed signs (neither the
/// standard nor the direct form) replaced by the default.
fn solver_solref(solref: [f64; 2]) -> [f64; 2] {
    if (solref[0] > 0.0) == (solref[1] > 0.0) {
        solref
    } else {
        DEFAULT_SOLREF
    }
}

/// A `solimp` as MuJoCo's solver clamps it: the impedances and the
/// midpoint within [1e-4, 0.9999], the width at least 0, the power at
/// least 1.
fn solver_solimp(i: [f64; 5]) -> [f64; 5] {
    let clamp = |x: f64| x.clamp(1e-4, 0.9999);
    [
        clamp(i[0]),
        clamp(i[1]),
        i[2].max(0.0),
        clamp(i[3]),
        i[4].max(1.0),
    ]
}

/// A limited joint's `solref`, `solimp` and `margin` options: MuJoCo's
/// limit as its solver takes it (a `solreflimit` of mixed signs replaced by
/// the default, `solimplimit` clamped as MuJoCo clamps it). A negative
/// margin, or one that spans the range `lo..hi`, is unsupported.
fn limit_law(j: &Joint, (lo, hi): (f64, f64)) -> Result<String, Diagnostic> {
    let l = &j.limit;
    if l.margin < 0.0 || 2.0 * l.margin >= hi - lo {
        return Err(Diagnostic::error(
            "mjcf::unsupported",
            format!("joint `{}`'s limit margin of {}", j.name, num(l.margin)),
            j.span,
            "limit margin",
        )
        .with_help("Joule's limit engages within a margin >= 0 of each end, less than half the range's width"));
    }
    let (solref, solimp) = (solver_solref(l.solref), solver_solimp(l.solimp));
    let list = |v: &[f64]| v.iter().map(|x| num(*x)).collect::<Vec<_>>().join(", ");
    Ok(format!(
        "solref = [{}], solimp = [{}], margin = {}",
        list(&solref),
        list(&solimp),
        num(l.margin)
    ))
}

/// The `joint` field of the Joule body `pc.1` for MJCF body `b` (index
/// `bi`) under the Joule body `pc.0`: its joints in MJCF order (parent side
/// first), with their actuators from `acts`. A range is a soft range, as
/// MuJoCo's limits are (they may start violated, and they act as a
/// spring-damper rather than a barrier). What the joint
/// language does not carry is appended to `energies` as the prelude's
/// penalty energies: a spring toward a nonzero `springref`.
fn joint_field(
    (bi, b): (usize, &Body),
    (p, c): (&str, &str),
    acts: &HashMap<(usize, usize), JointActuators>,
    friction: Friction,
    energies: &mut String,
    diags: &mut Vec<Diagnostic>,
) -> Option<String> {
    if let Some(j) = b.joints.iter().find(|j| j.kind == JointKind::Free) {
        if b.joints.len() > 1 {
            diags.push(
                Diagnostic::error(
                    "mjcf::unsupported",
                    format!("body `{}` combines a free joint with other joints", b.name),
                    b.joints[1].span,
                    "second joint",
                )
                .with_help("a free joint already gives the body all six degrees of freedom"),
            );
            return None;
        }
        if p != "world" {
            diags.push(
                Diagnostic::error(
                    "mjcf::unsupported",
                    format!("free joint of body `{}` inside a moving body", b.name),
                    j.span,
                    "free joint",
                )
                .with_help("free joints belong to bodies of the worldbody"),
            );
            return None;
        }
    }
    if let Some(j) = b.joints.iter().find(|j| {
        matches!(j.kind, JointKind::Ball | JointKind::Free)
            && (j.damping > 0.0 || j.stiffness > 0.0 || j.armature > 0.0 || j.frictionloss > 0.0)
    }) {
        diags.push(
            Diagnostic::error(
                "mjcf::unsupported",
                format!(
                    "damping, stiffness, armature or frictionloss on the ball or free joint `{}`",
                    j.name
                ),
                j.span,
                "ball or free joint",
            )
            .with_help("the importer carries them on hinges and slides only; remove them"),
        );
        return None;
    }
    if !independent(&weight::twists(b).iter().map(|t| t.0).collect::<Vec<_>>()) {
        diags.push(
            Diagnostic::error(
                "mjcf::unsupported",
                format!("the joints of body `{}` repeat a motion", b.name),
                b.joints[0].span,
                "joints",
            )
            .with_help("give the body's joints independent motions (no two parallel hinges through one point, no parallel slides, at most six degrees of freedom)"),
        );
        return None;
    }
    let mut parts = vec![];
    let mut extra = String::new();
    // MuJoCo's coordinate is Joule's plus `ref`: ranges, a spring's rest
    // and servo targets move by it.
    for (ji, j) in b.joints.iter().enumerate() {
        let at = v3(add(b.xpos, rotate(b.xquat, j.pos)));
        let ax = v3(rotate(b.xquat, j.axis));
        let hinge = j.kind == JointKind::Hinge;
        let act = acts.get(&(bi, ji)).copied().unwrap_or_default();
        // A position servo's velocity gain kv is damping on the coordinate.
        let kv = act.servo.map_or(0.0, |s| s.2);
        let mut opts = String::new();
        for (name, x) in [("armature", j.armature), ("damping", j.damping + kv)] {
            if x > 0.0 {
                write!(opts, ", {name} = {}", num(x)).ok();
            }
        }
        let springref = j.springref - j.reference;
        if j.stiffness > 0.0 {
            if springref == 0.0 {
                write!(opts, ", stiffness = {}", num(j.stiffness)).ok();
            } else if hinge {
                writeln!(
                    extra,
                    "pd({p}, {c}, {ax}, {}, {})    // {}: stiffness toward springref",
                    num(springref),
                    num(j.stiffness),
                    j.name
                )
                .ok();
            } else {
                writeln!(
                    extra,
                    "slider_spring({p}, {c}, {at}, {ax}, {}, {})    // {}: stiffness toward springref",
                    num(springref),
                    num(j.stiffness),
                    j.name
                )
                .ok();
            }
        }
        if j.frictionloss > 0.0 {
            let what = if hinge {
                "hinge_friction"
            } else {
                "slider_friction"
            };
            writeln!(
                extra,
                "{what}({p}, {c}, {ax}, {}, {})    // {}: frictionloss",
                num(j.frictionloss),
                num(JOINT_FRICTION_EPS),
                j.name
            )
            .ok();
        }
        if let Some((lo, hi)) = j.range {
            let range = format!(
                "range = [{}, {}]",
                num(lo - j.reference),
                num(hi - j.reference)
            );
            if friction == Friction::Mujoco {
                let law = limit_law(j, (lo, hi)).map_err(|d| diags.push(d)).ok()?;
                write!(opts, ", {range}, {law}").ok();
            } else {
                write!(opts, ", {range}, soft = {}", num(LIMIT_TIME)).ok();
            }
        }
        if let Some((k, gear)) = act.motor {
            write!(opts, ", motor = u[{k}], gear = {}", num(gear)).ok();
        }
        if let Some((k, kp, _)) = act.servo {
            write!(opts, ", servo = u[{k}], kp = {}", num(kp)).ok();
        }
        parts.push(match j.kind {
            JointKind::Hinge => format!("hinge({p}, at = {at}, axis = {ax}{opts})"),
            JointKind::Slide => format!("slider({p}, axis = {ax}{opts})"),
            JointKind::Ball => format!("ball({p}, at = {at})"),
            JointKind::Free => "free".to_string(),
        });
    }
    if !extra.is_empty() {
        writeln!(
            energies,
            "\n// {p} -> {c}: penalty energies beside the joint"
        )
        .ok();
        energies.push_str(&extra);
    }
    Some(match parts.as_slice() {
        [one] => one.clone(),
        _ => format!("[{}]", parts.join(", ")),
    })
}

/// Writes the Joule scene for a model read from `file` (named in the header),
/// its ground contact with `friction`, and the warnings about what it left
/// out (pairs of geoms that overlap in the reference pose).
pub fn write(
    m: &Mjcf,
    file: &str,
    options: super::Options,
) -> Result<(String, Vec<Diagnostic>), Vec<Diagnostic>> {
    let friction = options.friction;
    // The cone as the ground contacts' surrogate (MuJoCo's laws alone).
    let cone_surrogate = options.surrogate_cone && friction == Friction::Mujoco;
    let mut diags = vec![];
    let mut warnings = vec![];
    let n = m.bodies.len();
    // The Joule body of each MJCF body: the nearest ancestor-or-self with joints, or the world.
    let mut group_of: Vec<usize> = Vec::with_capacity(n);
    for (b, body) in m.bodies.iter().enumerate() {
        let g = match b {
            0 => 0,
            _ if body.joints.is_empty() => group_of[body.parent],
            _ => b,
        };
        group_of.push(g);
    }
    let mut names = Names { taken: reserved() };
    let mut groups: Vec<Group> = vec![];
    let mut index: HashMap<usize, usize> = HashMap::new();
    // Per MJCF body: its group and its pose in the group root's frame.
    let mut frames: Vec<(usize, V3, Q)> = Vec::with_capacity(n);
    for (b, &root) in group_of.iter().enumerate() {
        let g = match index.get(&root) {
            Some(&g) => g,
            None => {
                let name = if root == 0 {
                    "world".to_string()
                } else {
                    names.ident(&m.bodies[root].name)
                };
                index.insert(root, groups.len());
                groups.push(Group {
                    root,
                    name,
                    merged: vec![],
                    geoms: vec![],
                    geom_bodies: vec![],
                    sites: vec![],
                    mass: MassProps::default(),
                });
                groups.len() - 1
            }
        };
        // The pose of body b in its group root's frame.
        let (rb, r0) = (&m.bodies[b], &m.bodies[root]);
        let inv = [r0.xquat[0], -r0.xquat[1], -r0.xquat[2], -r0.xquat[3]];
        let pos = rotate(inv, sub(rb.xpos, r0.xpos));
        let q = qmul(inv, rb.xquat);
        let grp = &mut groups[g];
        if b != root {
            grp.merged.push(rb.name.clone());
        }
        for geom in &rb.geoms {
            grp.geoms.push(Geom {
                pos: add(pos, rotate(q, geom.pos)),
                quat: qmul(q, geom.quat),
                ..geom.clone()
            });
            grp.geom_bodies.push(b);
        }
        for s in &rb.sites {
            grp.sites.push(Site {
                name: s.name.clone(),
                pos: add(pos, rotate(q, s.pos)),
                quat: qmul(q, s.quat),
            });
        }
        frames.push((g, pos, q));
        grp.mass = MassProps::combine(&[grp.mass, rb.mass.moved(pos, q)]);
    }
    let places: Vec<sensors::Place> = frames
        .iter()
        .map(|&(g, pos, quat)| sensors::Place {
            body: &groups[g].name,
            world: groups[g].root == 0,
            pos,
            quat,
        })
        .collect();
    // MuJoCo's inverse weights of the bodies, the scale of its contacts' softness.
    let weights = match friction {
        Friction::Mujoco => weight::invweight0(m).ok_or_else(|| {
            vec![Diagnostic::without_span(
                crate::Severity::Error,
                "mjcf::invalid",
                "the joints' mass matrix in the reference pose is singular",
            )
            .with_help("give every moving body mass, or its joints armature")]
        })?,
        _ => vec![],
    };
    let total_mass = m.total_mass();
    let weight = total_mass * norm(m.gravity);
    let mut out = String::new();
    let o = &mut out;
    let mut world_used = false;

    // Joints and actuators first (into `body_text`), so we know whether the world is referenced.
    let mut body_text = String::new();
    let bt = &mut body_text;
    // Penalty energies for what the joints themselves do not carry.
    let mut joint_text = String::new();
    let acts = joint_actuators(m);
    for g in groups.iter().filter(|g| g.root != 0) {
        let b = &m.bodies[g.root];
        if g.mass.mass <= 0.0 {
            diags.push(
                Diagnostic::error(
                    "mjcf::invalid",
                    format!("body `{}` has joints but no mass", b.name),
                    b.span,
                    "massless moving body",
                )
                .with_help(
                    "give it geoms with mass, or an `<inertial>` with `mass` and `diaginertia`",
                ),
            );
            continue;
        }
        let kinds: Vec<&str> = b
            .joints
            .iter()
            .map(|j| match j.kind {
                JointKind::Hinge => "hinge",
                JointKind::Slide => "slide",
                JointKind::Ball => "ball",
                JointKind::Free => "free",
            })
            .collect();
        let joints: Vec<String> = b
            .joints
            .iter()
            .zip(&kinds)
            .map(|(j, k)| format!("{k} `{}`", j.name))
            .collect();
        writeln!(bt, "\n// {}: {}", b.name, joints.join(", ")).ok();
        if !g.merged.is_empty() {
            writeln!(
                bt,
                "// (with {} welded to it in the MJCF, merged)",
                g.merged.join(", ")
            )
            .ok();
        }
        if g.name != b.name {
            writeln!(bt, "// (MJCF name \"{}\")", b.name).ok();
        }
        let radius = g.geoms.iter().map(reach).fold(1e-3, f64::max);
        let big = g
            .mass
            .inertia
            .iter()
            .flatten()
            .fold(0.0, |a: f64, x| a.max(x.abs()));
        let i = g.mass.inertia.map(|row| denoise(row, big));
        let com = denoise(g.mass.com, radius);
        writeln!(bt, "body {} {{", g.name).ok();
        match body_shape(&g.geoms) {
            Some(shape) => writeln!(
                bt,
                "    // Its geoms, as drawn; contact uses their points below."
            )
            .and_then(|()| writeln!(bt, "    shape = {shape}")),
            None => writeln!(bt, "    shape = sphere({})    // no geoms", num(radius)),
        }
        .ok();
        writeln!(bt, "    mass = {}", num(g.mass.mass)).ok();
        writeln!(bt, "    com = {}", v3(com)).ok();
        writeln!(
            bt,
            "    inertia = mat3({}, {}, {})",
            v3(i[0]),
            v3(i[1]),
            v3(i[2])
        )
        .ok();
        writeln!(bt, "    x = {}", v3(b.xpos)).ok();
        let q = b.xquat;
        writeln!(
            bt,
            "    rotation = quat({}, {}, {}, {})",
            num(q[0]),
            num(q[1]),
            num(q[2]),
            num(q[3])
        )
        .ok();
        let parent = &groups[index[&group_of[b.parent]]];
        let written = joint_text.len();
        let joint = joint_field(
            (g.root, b),
            (&parent.name, &g.name),
            &acts,
            friction,
            &mut joint_text,
            &mut diags,
        );
        if let Some(joint) = joint {
            writeln!(bt, "    joint = {joint}").ok();
        }
        writeln!(bt, "}}").ok();
        // The energies name the world body: it is written then.
        world_used |= parent.root == 0 && joint_text.len() > written;
    }

    // Actuators: the controls u[k] in MJCF order.
    let mut act_text = String::new();
    let at_ = &mut act_text;
    let ranges: Vec<Option<(f64, f64)>> = m.actuators.iter().map(|a| a.ctrlrange).collect();
    if let Some(a) = m
        .actuators
        .iter()
        .find(|a| a.ctrlrange.is_some() != ranges[0].is_some())
    {
        diags.push(
            Diagnostic::error(
                "mjcf::unsupported",
                "some actuators with a control range and others without",
                a.span,
                if a.ctrlrange.is_some() {
                    "limited"
                } else {
                    "not limited"
                },
            )
            .with_help(
                "give every actuator a `ctrlrange` (controls u[k] are all bounded or all free)",
            ),
        );
    }
    if !m.actuators.is_empty() {
        writeln!(
            at_,
            "\n// Actuators, in MJCF order: u[k] drives actuator k."
        )
        .ok();
    }
    for (k, a) in m.actuators.iter().enumerate() {
        // What drives it: the control, or the activation its dynamics
        // make of it (a point `act_k`, read at the step's start).
        let input = match a.filter {
            None => Input::Control(k),
            Some((tau, exact)) => {
                let act = names.ident(&format!("act_{k}"));
                let h = m.timestep;
                let rate = num(if exact {
                    -(-h / tau).exp_m1() / h
                } else {
                    1.0 / tau
                });
                writeln!(
                    at_,
                    "particle {act} {{ x = vec3(0, 0, 0), mass = 1e-12 }}    // u[{k}]'s activation (dyntype {}, tau {})\nactivation({act}, u[{k}], {rate})\nactivation_rate({act})",
                    if exact { "filterexact" } else { "filter" },
                    num(tau)
                )
                .ok();
                Input::Activation(k, act)
            }
        };
        // The joints it drives, with the share of its force each takes.
        let (label, joints) = match a.target {
            Transmission::Joint(b, ji) => {
                let jn = &m.bodies[b].joints[ji].name;
                let label = a
                    .name
                    .as_deref()
                    .map_or_else(|| format!("on joint {jn}"), |n| format!("{n} (joint {jn})"));
                (label, vec![((b, ji), 1.0)])
            }
            Transmission::Tendon(t) => {
                let t = &m.tendons[t];
                let label = a.name.as_deref().map_or_else(
                    || format!("on tendon {}", t.name),
                    |n| format!("{n} (tendon {})", t.name),
                );
                let joints = match &t.path {
                    Path::Fixed(joints) => joints.clone(),
                    Path::Spatial(_) => vec![],
                };
                (label, joints)
            }
        };
        let on_joint = match a.target {
            Transmission::Joint(b, ji) => acts.get(&(b, ji)).is_some_and(|x| {
                x.motor.is_some_and(|m| m.0 == k) || x.servo.is_some_and(|s| s.0 == k)
            }),
            Transmission::Tendon(_) => false,
        };
        if on_joint {
            writeln!(at_, "// u[{k}]: {label}, on the joint").ok();
            continue;
        }
        if let Transmission::Tendon(t) = a.target {
            let (t, ident) = (&m.tendons[t], &mut |s: &str| names.ident(s));
            match (a.kind, &t.path) {
                (ActuatorKind::Position { kp, kv }, _) => {
                    sensors::write_tendon_servo(
                        m,
                        &places,
                        t,
                        (&input, kp, kv),
                        &label,
                        ident,
                        at_,
                    );
                    continue;
                }
                (ActuatorKind::Motor { gear }, Path::Spatial(_)) => {
                    sensors::write_tendon_motor(m, &places, t, (&input, gear), &label, ident, at_);
                    continue;
                }
                (ActuatorKind::Motor { .. }, Path::Fixed(_)) => {}
            }
        }
        for ((bi, ji), coef) in joints {
            if coef == 0.0 {
                continue;
            }
            let b = &m.bodies[bi];
            let j = &b.joints[ji];
            let g = &groups[index[&group_of[bi]]];
            let parent = &groups[index[&group_of[b.parent]]];
            let p = &parent.name;
            let c = &g.name;
            let ax = v3(rotate(b.xquat, j.axis));
            let at = v3(add(b.xpos, rotate(b.xquat, j.pos)));
            let hinge = j.kind == JointKind::Hinge;
            world_used |= parent.root == 0;
            let drive = input.value();
            match (a.kind, &input) {
                (ActuatorKind::Motor { gear }, Input::Control(_)) if hinge => writeln!(
                    at_,
                    "motor({p}, {c}, {ax}, u[{k}], {})    // u[{k}]: {label}",
                    num(gear * coef)
                ),
                (ActuatorKind::Motor { gear }, Input::Control(_)) => writeln!(
                    at_,
                    "slider_motor({p}, {c}, {at}, {ax}, u[{k}], {})    // u[{k}]: {label}",
                    num(gear * coef)
                ),
                (ActuatorKind::Motor { gear }, Input::Activation(..)) if hinge => writeln!(
                    at_,
                    "hinge_torque({p}, {c}, {ax}, {} * {drive})    // u[{k}]: {label}",
                    num(gear * coef)
                ),
                (ActuatorKind::Motor { gear }, Input::Activation(..)) => writeln!(
                    at_,
                    "slider_force({p}, {c}, {at}, {ax}, {} * {drive})    // u[{k}]: {label}",
                    num(gear * coef)
                ),
                (ActuatorKind::Position { kp, kv }, _) => {
                    // The target in Joule's coordinate: the input less the joint's `ref`.
                    let (kp_, target) = (num(kp), format!("{drive}{}", plus(-j.reference)));
                    let control = matches!(input, Input::Control(_));
                    let servo = match (hinge, j.reference == 0.0 && control) {
                        (true, true) => format!("servo({p}, {c}, {ax}, {target}, {kp_})"),
                        (false, true) => {
                            format!("slider_servo({p}, {c}, {at}, {ax}, {target}, {kp_})")
                        }
                        (true, false) => format!("pd({p}, {c}, {ax}, {target}, {kp_})"),
                        (false, false) => {
                            format!("slider_spring({p}, {c}, {at}, {ax}, {target}, {kp_})")
                        }
                    };
                    writeln!(at_, "{servo}    // u[{k}]: {label}, position servo").ok();
                    if kv > 0.0 {
                        let damp = if hinge {
                            "pd_damping"
                        } else {
                            "slider_damping"
                        };
                        writeln!(
                            at_,
                            "{damp}({p}, {c}, {ax}, {})    // its velocity gain kv",
                            num(kv)
                        )
                        .ok();
                    }
                    Ok(())
                }
            }
            .ok();
        }
    }

    // Tendons' springs and dampers, and their limits and equalities.
    for t in m.tendons.iter() {
        sensors::write_tendon_forces(m, &places, t, &mut |s| names.ident(s), at_);
    }
    diags.extend(constraint::write_constraints(
        m,
        &places,
        &mut |s| names.ident(s),
        at_,
    ));

    // Contact: geoms against the world's planes (ground), and body pairs.
    let mut contact_text = String::new();
    let ct = &mut contact_text;
    // The soft contact points' heights above their plane in the reference
    // pose, and whether the plane is a floor (its normal within 45 degrees
    // of up: walls carry no weight), by the point (its body and arguments).
    let mut ground_heights: Vec<(String, f64, bool)> = vec![];
    let world = &groups[0];
    let planes: Vec<&Geom> = world
        .geoms
        .iter()
        .filter(|g| g.kind == GeomKind::Plane)
        .collect();
    for plane in &planes {
        // The plane dot(n, x) = c: MuJoCo's planes are half-spaces below the
        // geom's z axis, infinite whatever their size. The ground z = 0
        // keeps the prelude's z-only form.
        let n = denoise(rotate(plane.quat, [0.0, 0.0, 1.0]), 1.0);
        let c = dot(n, plane.pos);
        let ground = norm(sub(n, [0.0, 0.0, 1.0])) < 1e-12 && c.abs() < 1e-12;
        for g in groups.iter().filter(|g| g.root != 0) {
            for (geom, &body) in
                (g.geoms.iter().zip(&g.geom_bodies)).filter(|x| collides(x.0, plane))
            {
                if contact_refused(geom, plane, &mut diags) {
                    continue;
                }
                let mu = geom.friction.max(plane.friction);
                writeln!(
                    ct,
                    "// {} on {}",
                    geom.name.as_deref().unwrap_or("geom"),
                    plane.name.as_deref().unwrap_or("plane")
                )
                .ok();
                let name = &g.name;
                // Its contacts: (the ground energy's and the plane energies'
                // suffixes, their arguments, the lowest point's height in the
                // reference pose).
                let pose = &m.bodies[g.root];
                let height = |p: V3| dot(n, add(pose.xpos, rotate(pose.xquat, p))) - c;
                let contacts: Vec<(&str, &str, String, f64)> =
                    match (geom.kind, ellipsoid_args(geom)) {
                        (GeomKind::Ellipsoid { radii }, Some(args)) => {
                            let turned = qmat(qmul(pose.xquat, geom.quat));
                            let reach = (0..3)
                                .map(|i| {
                                    (radii[i] * (0..3).map(|j| turned[j][i] * n[j]).sum::<f64>())
                                        .powi(2)
                                })
                                .sum::<f64>();
                            let z = height(geom.pos) - reach.sqrt();
                            vec![("_ellipsoid", "_ellipsoid", args, z)]
                        }
                        _ => contact_points(geom)
                            .into_iter()
                            .map(|(point, radius)| {
                                let z = height(point) - radius;
                                ("", "_point", format!("{}, {}", v3(point), num(radius)), z)
                            })
                            .collect(),
                    };
                if friction == Friction::Mujoco {
                    let law = match mujoco_law(m, geom, plane, weights[body][0], &mut warnings) {
                        Ok(law) => law,
                        Err(d) => {
                            diags.push(d);
                            continue;
                        }
                    };
                    // MuJoCo's contact frame: a capsule's axis as its first
                    // tangent, else the world's y axis (z where the normal
                    // is near y).
                    let hint = if n[1].abs() < 0.5 {
                        [0.0, 1.0, 0.0]
                    } else {
                        [0.0, 0.0, 1.0]
                    };
                    let (t, tw) = match geom.kind {
                        GeomKind::Capsule { .. } => (rotate(geom.quat, [0.0, 0.0, 1.0]), [0.0; 3]),
                        _ => ([0.0; 3], hint),
                    };
                    for (_, on_plane, args, z) in &contacts {
                        ground_heights.push((format!("{name}, {args}"), *z, n[2] > FRAC_1_SQRT_2));
                        let (n, c) = (v3(n), num(c));
                        if *on_plane == "_point" && ground && cone_surrogate {
                            let t = v3(t);
                            writeln!(
                                ct,
                                "contact_mujoco_cone({name}, {args}, {n}, {c}, {t}, {}, {law}, {CONE_SPRINGS}, kt_contact)",
                                v3(tw)
                            )
                        } else if *on_plane == "_point" {
                            let t = v3(t);
                            writeln!(
                                ct,
                                "contact_mujoco({name}, {args}, {n}, {c}, {t}, {}, {law})",
                                v3(tw)
                            )
                        } else {
                            writeln!(
                                ct,
                                "contact_mujoco_ellipsoid({name}, {args}, {n}, {c}, {}, {law})",
                                v3(hint)
                            )
                        }
                        .ok();
                    }
                    continue;
                }
                let soft = if friction == Friction::Coulomb {
                    "contact_coulomb"
                } else {
                    "contact_soft"
                };
                let springs = CONE_SPRINGS;
                for (on_ground, on_plane, args, z) in contacts {
                    if ground {
                        ground_heights.push((format!("{name}, {args}"), z, true));
                        writeln!(
                            ct,
                            "{soft}{on_ground}({name}, {args}, {springs}, {}, kt_contact)",
                            num(mu)
                        )
                        .ok();
                    } else if on_plane == "_point" {
                        // MuJoCo's soft contact on the plane (heights along
                        // its normal).
                        ground_heights.push((format!("{name}, {args}"), z, n[2] > FRAC_1_SQRT_2));
                        writeln!(
                            ct,
                            "{soft}_plane({name}, {args}, {}, {}, {springs}, {}, kt_contact)",
                            v3(n),
                            num(c),
                            num(mu)
                        )
                        .ok();
                    } else {
                        let (n, c) = (v3(n), num(c));
                        writeln!(
                            ct,
                            "ground_plane{on_plane}({name}, {args}, {n}, {c}, dhat, kappa)"
                        )
                        .ok();
                        writeln!(
                            ct,
                            "friction_plane{on_plane}({name}, {args}, {n}, {c}, {}, dhat, kappa, {})",
                            num(mu),
                            num(FRICTION_EPS)
                        )
                        .ok();
                    }
                }
            }
        }
    }
    // Pairs of bodies whose geoms may meet (MuJoCo's filters: not parent
    // and child, not excluded), and their pairs of geoms that may collide.
    let meet = |ra: usize, rb: usize| {
        let parent_child = (m.bodies[rb].parent != 0 && group_of[m.bodies[rb].parent] == ra)
            || (m.bodies[ra].parent != 0 && group_of[m.bodies[ra].parent] == rb);
        let excluded = m.excludes.iter().any(|&(x, y)| {
            let (x, y) = (group_of[x], group_of[y]);
            (x, y) == (ra, rb) || (y, x) == (ra, rb)
        });
        !parent_child && !excluded
    };
    // Every pair is evaluated at every Newton iteration (no broad phase):
    // counted before any is written, and per geom, so that a refusal points
    // at the geom in the most of them (where an exclusion helps most).
    let mut partners: HashMap<Span, usize> = HashMap::new();
    let mut pairs = 0;
    for (ga, a) in groups.iter().enumerate() {
        for b in groups[ga + 1..].iter().filter(|b| meet(a.root, b.root)) {
            for ((x, _), (y, _)) in geom_pairs(a, b) {
                pairs += 1;
                *partners.entry(x.span).or_default() += 1;
                *partners.entry(y.span).or_default() += 1;
            }
        }
    }
    if pairs > MAX_PAIRS {
        let (span, most) = partners
            .into_iter()
            .max_by_key(|&(span, n)| (n, std::cmp::Reverse(span.start)))
            .expect("pairs have geoms");
        diags.push(
            Diagnostic::error(
                "mjcf::too_large",
                format!(
                    "{pairs} pairs of geoms in different bodies may touch (after bitmasks, parents and `<exclude>`): Joule evaluates every pair at every Newton iteration, and imports at most {MAX_PAIRS}"
                ),
                span,
                format!("in {most} of them, the most of any geom"),
            )
            .with_help("exclude the pairs that cannot meet (`<contact><exclude>`, `contype`/`conaffinity`)"),
        );
        return Err(diags);
    }
    // Whether a contact between bodies reads the step `h` (MuJoCo's law).
    let mut step_used = false;
    // Pairs that overlap in the reference pose (MuJoCo pushes them apart;
    // a barrier cannot start inside): left out, with a warning, where the
    // barrier is their contact.
    let mut overlaps: Vec<(&Geom, &Geom, f64)> = vec![];
    for (ga, a) in groups.iter().enumerate() {
        for b in groups.iter().skip(ga + 1) {
            let (ra, rb) = (a.root, b.root);
            if !meet(ra, rb) {
                continue;
            }
            for ((x, bx), (y, by)) in geom_pairs(a, b) {
                let gap = initial_gap((x, &m.bodies[ra]), (y, &m.bodies[rb]));
                // MuJoCo's law takes a pair that starts inside (ellipsoid
                // pairs stay the barrier).
                let barrier = friction != Friction::Mujoco
                    || ellipsoid_args(x).is_some()
                    || ellipsoid_args(y).is_some();
                if let Some(gap) = gap.filter(|g| *g <= 0.0 && barrier) {
                    overlaps.push((x, y, gap));
                    continue;
                }
                {
                    if contact_refused(x, y, &mut diags) {
                        continue;
                    }
                    world_used |= ra == 0;
                    writeln!(
                        ct,
                        "// {} with {}",
                        x.name.as_deref().unwrap_or("geom"),
                        y.name.as_deref().unwrap_or("geom")
                    )
                    .ok();
                    // Friction: the larger of the two geoms'.
                    let mu = num(x.friction.max(y.friction));
                    if write_ellipsoid_pair(ct, (x, &a.name), (y, &b.name), &mu) {
                        continue;
                    }
                    // MuJoCo's law: the pair's parameters as MuJoCo mixes
                    // them, the scale from both bodies' inverse weights.
                    let law = match friction {
                        Friction::Mujoco => {
                            let tran = weights[bx][0] + weights[by][0];
                            match mujoco_law(m, x, y, tran, &mut warnings) {
                                Ok(law) => {
                                    step_used = true;
                                    Some(law)
                                }
                                Err(d) => {
                                    diags.push(d);
                                    continue;
                                }
                            }
                        }
                        _ => None,
                    };
                    let mut write = |kind: &str, args: &str| match &law {
                        Some(law) => {
                            writeln!(ct, "touch_{kind}_mujoco({args}, {law})").ok();
                        }
                        None => write_touch(ct, kind, args, &mu),
                    };
                    // Points against a box's faces (both ways for two boxes),
                    // else points against points.
                    let boxes = [(x, y, &a.name, &b.name), (y, x, &b.name, &a.name)];
                    let mut faces = false;
                    for (p, q, pn, qn) in boxes {
                        if let GeomKind::Box { half } = q.kind {
                            faces = true;
                            let axes = axes_text(q.quat);
                            for (pa, rada) in contact_points(p) {
                                let args = format!(
                                    "{pn}, {qn}, {}, {}, {}, {axes}, {}",
                                    v3(pa),
                                    num(rada),
                                    v3(q.pos),
                                    v3(half)
                                );
                                write("box", &args);
                            }
                        }
                    }
                    if faces {
                        continue;
                    }
                    // Capsules along their whole segment: each other's, or a
                    // point's against one.
                    // (A capsule's contact points are its segment's ends.)
                    let segment = |g: &Geom| match (g.kind, contact_points(g).as_slice()) {
                        (GeomKind::Capsule { radius, .. }, [(p0, _), (p1, _)]) => {
                            Some((v3(*p0), v3(*p1), num(radius)))
                        }
                        _ => None,
                    };
                    let (sx, sy) = (segment(x), segment(y));
                    if let (Some((a0, a1, ra)), Some((b0, b1, rb))) = (&sx, &sy) {
                        let (an, bn) = (&a.name, &b.name);
                        let args = format!("{an}, {bn}, {a0}, {a1}, {ra}, {b0}, {b1}, {rb}");
                        write("capsules", &args);
                        continue;
                    }
                    let capsule = (sx.map(|s| (y, s, &b.name, &a.name)))
                        .or(sy.map(|s| (x, s, &a.name, &b.name)));
                    if let Some((p, (c0, c1, rc), pn, cn)) = capsule {
                        for (pa, rada) in contact_points(p) {
                            let args =
                                format!("{pn}, {cn}, {}, {}, {c0}, {c1}, {rc}", v3(pa), num(rada));
                            write("capsule", &args);
                        }
                        continue;
                    }
                    for (pa, rada) in contact_points(x) {
                        for (pb, radb) in contact_points(y) {
                            let args = format!(
                                "{}, {}, {}, {}, {}, {}",
                                a.name,
                                b.name,
                                v3(pa),
                                num(rada),
                                v3(pb),
                                num(radb)
                            );
                            match &law {
                                Some(law) => writeln!(ct, "touch_mujoco({args}, {law})"),
                                None => writeln!(ct, "touch({args}, dhat, kappa)"),
                            }
                            .ok();
                        }
                    }
                }
            }
        }
    }
    if let Some(&(x, y, gap)) = overlaps.first() {
        let name = |g: &Geom| g.name.clone().unwrap_or_else(|| "geom".into());
        warnings.push(
            Diagnostic::error(
                "mjcf::overlap",
                format!(
                    "{} pair(s) of geoms overlap in the reference pose (`{}` and `{}` by {:.1} mm): their contact is not imported",
                    overlaps.len(),
                    name(x),
                    name(y),
                    -gap * 1e3
                ),
                x.span,
                "overlaps another body's geom",
            )
            .warning()
            .with_help("MuJoCo's soft contact pushes such geoms apart; Joule's contact barrier cannot start inside one. Exclude the pair (`<exclude>`) or move the geoms apart"),
        );
    }
    if !diags.is_empty() {
        return Err(diags);
    }

    // Header, settings, controls, bodies, then the energies.
    let shown = std::path::Path::new(file)
        .file_name()
        .map_or(file.to_string(), |f| f.to_string_lossy().into_owned());
    writeln!(
        o,
        "// Imported from {shown} (MuJoCo MJCF model \"{}\") by `joule import`.",
        m.model
    )
    .ok();
    for line in [
        "// Each Joule body is an MJCF body with joints, its origin at the MJCF body frame;",
        "// mass, centre of mass and inertia are the MJCF ones (from geoms or <inertial>);",
        "// its shape is its geoms, as the viewer draws them.",
        "// Bodies are in joint coordinates: each body's `joint` is its MJCF joints in order",
        "// (parent side first) with their armature, damping, stiffness and range; a range",
        "// is soft, as MuJoCo's limits are.",
        "// Actuators are the controls u[k] in MJCF actuator order, on their joints.",
        "// Contact with the ground is MuJoCo's soft contact: on the geoms' contact points a",
    ] {
        writeln!(o, "{line}").ok();
    }
    let ground: &[&str] = match friction {
        Friction::Mujoco => &[
            "// soft constraint with each pair's solref, solimp and margin, minimised in the step,",
            "// with MuJoCo's pyramidal friction cone (contact_mujoco: MuJoCo's own law); the",
            "// same on other planes and for ellipsoids (contact between bodies: the IPC barrier,",
            "// dhat and kappa).",
        ],
        Friction::Cone => &[
            "// spring k_contact and damper b_contact pushing only, and Coulomb friction in one",
            "// cone with it (contact_soft: stiff tangential damper kt_contact h below the cone);",
            "// the same on other planes (ellipsoids there, and contact between bodies: the IPC",
            "// barrier, dhat and kappa).",
        ],
        Friction::Coulomb => &[
            "// spring k_contact and damper b_contact pushing only, and Coulomb friction bounded by",
            "// its force at the step's solution (contact_coulomb: damper kt_contact h below it);",
            "// the same on other planes (ellipsoids there, and contact between bodies: the IPC",
            "// barrier, dhat and kappa).",
        ],
    };
    for line in ground {
        writeln!(o, "{line}").ok();
    }
    if cone_surrogate {
        for line in [
            "// Gradients (surrogate = cone): the ground contacts' surrogate is contact_soft's cone",
            "// (contact_mujoco_cone), and the surrogate model steps implicit Euler on the trees'",
            "// configurations from each of MuJoCo's states (`surrogate = model(kinematics = exact)`).",
        ] {
            writeln!(o, "{line}").ok();
        }
    }
    // How it is stepped, against the model's own integrator.
    let stepping = Stepping::of(m, friction);
    let integrator = m.integrator.as_ref().map_or("Euler", |(name, _)| name);
    let step = match (stepping, friction) {
        (Stepping::MujocoEuler, _) => {
            "MuJoCo's Euler, as MuJoCo steps it (`kinematics = linear`).".to_string()
        }
        (Stepping::MujocoRk4, _) => "MuJoCo's RK4, as MuJoCo steps it (`rk4`).".to_string(),
        (Stepping::Implicit, Friction::Mujoco) => format!(
            "implicit Euler over the joint coordinates, not MuJoCo's `{integrator}` (a warning)."
        ),
        (Stepping::Implicit, _) => format!(
            "implicit Euler over the joint coordinates, not MuJoCo's `{integrator}`\n// (`--friction mujoco` steps MuJoCo's Euler and RK4 as MuJoCo does)."
        ),
    };
    writeln!(o, "// Stepped by {step}").ok();
    writeln!(o, "scene \"{}\"", m.model.replace('"', "'")).ok();
    writeln!(o).ok();
    writeln!(o, "const dhat = {}    // m", num(DHAT)).ok();
    writeln!(
        o,
        "const kappa = {}    // the model's weight / dhat",
        num(round3(weight.max(1e-6) / DHAT))
    )
    .ok();
    // The points that carry the weight standing: those on floors within
    // SUPPORT_BAND of the lowest (a robot's feet, not its thighs and head),
    // or on any plane where there is no floor.
    // Each point counted once, at its height above the nearest such plane.
    let floors = ground_heights.iter().any(|&(_, _, floor)| floor);
    let mut nearest: HashMap<&str, f64> = HashMap::new();
    for (point, z, floor) in &ground_heights {
        if *floor || !floors {
            let h = nearest.entry(point.as_str()).or_insert(f64::INFINITY);
            *h = h.min(*z);
        }
    }
    let heights: Vec<f64> = nearest.into_values().collect();
    let lowest = heights.iter().copied().fold(f64::INFINITY, f64::min);
    let ground_points = heights
        .iter()
        .filter(|z| **z <= lowest + SUPPORT_BAND)
        .count();
    let cone = ground_points > 0 && (friction != Friction::Mujoco || cone_surrogate);
    if friction == Friction::Mujoco && (ground_points > 0 || step_used) && !cone {
        writeln!(o, "const h = {}    // s: the step", num(m.timestep)).ok();
    } else if cone {
        // MuJoCo's soft contact pushes back to cancel gravity at a penetration
        // of g (dmax t)^2 (solref's time constant t, solimp's dmax): the
        // spring whose static penetration that is when the supporting
        // contact points (the lowest, within SUPPORT_BAND) share the weight
        // evenly.
        // Its damper is critical (solref's damping ratio 1): 2 m / (dmax t).
        let (t, share) = (
            CONTACT_IMPEDANCE * CONTACT_TIME,
            total_mass / ground_points as f64,
        );
        writeln!(
            o,
            "const k_contact = {}    // N/m: the weight per supporting contact point / (g (0.95 * 0.02 s)^2)",
            num(round3(share / (t * t)))
        )
        .ok();
        writeln!(
            o,
            "const b_contact = {}    // N s/m: critical damping, 2 (mass per point) / (0.95 * 0.02 s)",
            num(round3(2.0 * share / t))
        )
        .ok();
        writeln!(o, "const h = {}    // s: the step", num(m.timestep)).ok();
        // Below the cone MuJoCo's friction is a damper on the slip velocity
        // of dmax / (1 - dmax) times the contact's damping: over a step of
        // h, a spring on the slip.
        writeln!(
            o,
            "const kt_contact = {} * b_contact / h    // N/m: friction below the cone, the damper dmax / (1 - dmax) b_contact over the step",
            num(round3(CONTACT_IMPEDANCE / (1.0 - CONTACT_IMPEDANCE)))
        )
        .ok();
    }
    writeln!(o, "\nsettings {{").ok();
    writeln!(o, "    dt = {}", num(m.timestep)).ok();
    writeln!(o, "    gravity = {}", v3(m.gravity)).ok();
    // Under MuJoCo's laws a model on MuJoCo's Euler steps as it does: the
    // kinematics linear over the step, the damping implicit after the
    // constraint solve; one on RK4 takes four such solves (docs/joints.md).
    let integrator = match (stepping, &m.integrator, friction) {
        (Stepping::MujocoEuler, ..) => {
            "implicit_euler(iterations = 30, tolerance = 1e-8, kinematics = linear)"
        }
        (Stepping::MujocoRk4, ..) => "rk4(iterations = 30, tolerance = 1e-8)",
        (Stepping::Implicit, Some((name, span)), Friction::Mujoco) => {
            warnings.push(
                Diagnostic::error(
                    "mjcf::integrator",
                    format!("MuJoCo's `{name}` integrator is stepped as implicit Euler"),
                    *span,
                    "not MuJoCo's Euler or RK4",
                )
                .warning()
                .with_help("Joule steps MuJoCo's Euler (`kinematics = linear`, written for models on MuJoCo's default integrator), its RK4 (`rk4`) and implicit Euler: this model's trajectories differ from MuJoCo's at first order in the step under forces"),
            );
            "implicit_euler(iterations = 30, tolerance = 1e-8)"
        }
        _ => "implicit_euler(iterations = 30, tolerance = 1e-8)",
    };
    writeln!(o, "    integrator = {integrator}").ok();
    if cone_surrogate {
        writeln!(o, "    surrogate = model(kinematics = exact)").ok();
    }
    writeln!(o, "}}").ok();
    if !m.actuators.is_empty() {
        let bounds: Vec<(f64, f64)> = ranges.iter().flatten().copied().collect();
        let n = m.actuators.len();
        if bounds.is_empty() {
            writeln!(o, "\ncontrol u[k in 0..{n}]").ok();
        } else if bounds.iter().all(|b| *b == bounds[0]) {
            let (lo, hi) = bounds[0];
            writeln!(o, "\ncontrol u[k in 0..{n}] in {}..{}", num(lo), num(hi)).ok();
        } else {
            // Each actuator's own `ctrlrange`.
            let list = |f: fn(&(f64, f64)) -> f64| {
                bounds
                    .iter()
                    .map(|b| num(f(b)))
                    .collect::<Vec<_>>()
                    .join(", ")
            };
            writeln!(
                o,
                "\n// Each actuator's control range.\nconst ctrl_lo = [{}]\nconst ctrl_hi = [{}]\ncontrol u[k in 0..{n}] in ctrl_lo[k]..ctrl_hi[k]",
                list(|b| b.0),
                list(|b| b.1)
            )
            .ok();
        }
    }
    if world_used {
        writeln!(
            o,
            "\n// The world: a fixed body at the origin for the energies and contact that name it."
        )
        .ok();
        match body_shape(&groups[0].geoms) {
            Some(shape) => writeln!(
                o,
                "// Its geoms, as drawn.\nbody world {{\n    shape = {shape}\n    mass = 1\n}}"
            ),
            None => writeln!(o, "body world {{ shape = sphere(1) mass = 1 }}"),
        }
        .ok();
        writeln!(o, "fix world").ok();
    }
    o.push_str(&body_text);
    o.push_str(&joint_text);
    o.push_str(&act_text);
    if let Some(fluid) = &m.fluid {
        // MuJoCo's Euler and RK4 take the fluid forces at the state, as
        // the linear step and `rk4` take the coordinates' forces.
        let explicit = stepping != Stepping::Implicit;
        fluid::write_fluid(m, fluid, &places, explicit, o);
    }
    if !contact_text.is_empty() {
        writeln!(o, "\n// Contact").ok();
        o.push_str(&contact_text);
    }
    let free: Vec<&Group> = groups
        .iter()
        .filter(|g| {
            m.bodies[g.root]
                .joints
                .iter()
                .any(|j| j.kind == JointKind::Free)
        })
        .collect();
    if !free.is_empty() {
        writeln!(
            o,
            "\n// Free bodies: position and orientation of the body frame."
        )
        .ok();
    }
    for g in free {
        let (x, q) = (
            names.ident(&format!("{}_x", g.name)),
            names.ident(&format!("{}_quat", g.name)),
        );
        writeln!(
            o,
            "observe {x} = {}.x\nobserve {q} = orientation({})",
            g.name, g.name
        )
        .ok();
    }
    let sites: Vec<(&Group, &Site)> = groups
        .iter()
        .flat_map(|g| g.sites.iter().map(move |s| (g, s)))
        .collect();
    if !sites.is_empty() {
        writeln!(o, "\n// Sites: world positions of named body points.").ok();
    }
    for (g, s) in sites {
        let name = names.ident(&s.name);
        if g.root == 0 {
            writeln!(o, "observe {name} = {}", v3(s.pos)).ok();
        } else {
            writeln!(o, "observe {name} = {}.point({})", g.name, v3(s.pos)).ok();
        }
    }
    sensors::write_sensors(m, &places, &mut |s| names.ident(s), o);
    Ok((out, warnings))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `segment_distance` against the smallest distance between 201 points
    /// along each segment, for crossing, parallel, touching and degenerate
    /// (point) segments.
    #[test]
    fn segment_distance_is_the_closest_approach() {
        let cases: [(V3, V3, V3, V3); 6] = [
            (
                [0.0, 0.0, 0.0],
                [1.0, 0.0, 0.0],
                [0.5, -1.0, 0.3],
                [0.5, 1.0, 0.3],
            ),
            (
                [0.0, 0.0, 0.0],
                [1.0, 0.0, 0.0],
                [0.2, 0.1, 0.0],
                [1.4, 0.1, 0.0],
            ),
            (
                [0.0, 0.0, 0.0],
                [1.0, 0.0, 0.0],
                [1.5, 0.2, -0.1],
                [2.5, 0.7, 0.4],
            ),
            (
                [0.3, 0.2, 0.1],
                [0.3, 0.2, 0.1],
                [0.0, 0.0, 0.0],
                [1.0, 1.0, 0.0],
            ),
            (
                [0.3, 0.2, 0.1],
                [0.3, 0.2, 0.1],
                [0.0, 1.0, 0.0],
                [0.0, 1.0, 0.0],
            ),
            (
                [0.0, 0.0, 0.0],
                [0.0, 0.0, 1.0],
                [-0.4, 0.3, 1.2],
                [0.6, -0.2, 0.9],
            ),
        ];
        for (a0, a1, b0, b1) in cases {
            let at = |p: V3, q: V3, t: f64| add(p, scale(sub(q, p), t));
            let mut brute = f64::INFINITY;
            for i in 0..=200 {
                for j in 0..=200 {
                    let d = norm(sub(
                        at(a0, a1, i as f64 / 200.0),
                        at(b0, b1, j as f64 / 200.0),
                    ));
                    brute = brute.min(d);
                }
            }
            let d = segment_distance(a0, a1, b0, b1);
            assert!(d <= brute + 1e-12 && d > brute - 1e-2, "{d} vs {brute}");
            assert!((segment_distance(b0, b1, a0, a1) - d).abs() < 1e-12);
        }
    }
}
