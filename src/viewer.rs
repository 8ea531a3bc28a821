//! `joule run --html`, `--gif` and `--frames`: a self-contained HTML page that plays back the
//! trajectories of one or several environments (a grid, side by side) as solid
//! shaded 3-D shapes, drawn by three.js (vendored in `src/vendor/`, inlined
//! once into every page, or linked with `--html-three` so that a folder of
//! pages shares one copy).
//!
//! The geometry comes from the resolved model: every particle is a point
//! (drawn as a small sphere unless it lies on a mesh surface); the triangles of
//! meshes (sheets, the boundary of solids) are shaded surfaces; instances of an
//! energy or dissipation that couple exactly two particles (or an `edge`), and
//! the edges of `tri` and `tet` elements, are lines unless they lie on a
//! surface; bodies are their shapes (spheres, boxes, capsules, cylinders,
//! compounds), one colour each, moved by the affine state `x + R r`; the
//! ground plane `z = 0` is drawn when a barrier or penalty argument reads
//! nothing but z-components of one handle. `--gif` draws the same shapes,
//! from the page's default view, with the software rasteriser of
//! `render.rs` into an animated GIF (at most [`MAX_GIF_FRAMES`] frames), and
//! `--frames` into a folder of PNGs (every kept frame).
//!
//! Frames are quantised to 16 bits per DOF between that DOF's smallest and
//! largest value over the page (error at most `(hi - lo) / 131068`), written as
//! base64; runs longer than [`MAX_FRAMES`] frames, or over [`MAX_VALUES`]
//! values in all, keep every k-th step and the last (the smallest k within
//! both), so the frames take at most `4 / 3 * 2 * MAX_VALUES` bytes (about
//! 2.7 MB) of the page, unless the first and last frames alone exceed it.

use crate::files::write_atomically;
use crate::render::{self, Camera, Canvas, Paint, V3};
use joule_compiler::model::BinOp;
use joule_compiler::model::{
    ArgBinding, BodyShape, Builtin, DofAt, DofRef, Input, Model, Shape, Term, TermKind,
};
use joule_runtime::Sim;
use miette::{miette, Result};
use serde_json::{json, Value};
use std::collections::{HashMap, HashSet};
use std::io::Write;
use std::path::{Path, PathBuf};

/// The page: markup, style and script; `__JOULE_DATA__` is replaced by the
/// JSON, `__THREE__` by three.js.
const PAGE: &str = include_str!("viewer.html");
/// three.js r159, the build that defines the global `THREE` (see `src/vendor/README.md`).
const THREE: &str = include_str!("vendor/three.min.js");

/// Most frames a page holds; longer runs keep every k-th step.
pub const MAX_FRAMES: usize = 600;
/// Most quantised values (16 bits each) a page holds over all frames,
/// environments and DOFs; more keep every k-th step.
pub const MAX_VALUES: usize = 1_000_000;
/// Most environments shown side by side.
pub const MAX_ENVS: usize = 16;
/// Environments shown when neither `--html-env` nor `--html-envs` is given:
/// the batch, up to this many.
const DEFAULT_ENVS: usize = 4;
/// The quantised value that stands for a NaN or infinite coordinate.
const NOT_FINITE: u16 = u16::MAX;
/// Steps between the smallest and the largest finite value of a DOF.
const LEVELS: f64 = (u16::MAX - 1) as f64;

/// Most frames a GIF holds; longer runs keep every k-th frame of the page's.
pub const MAX_GIF_FRAMES: usize = 150;
/// A GIF frame's width and height in pixels.
const GIF_SIZE: [usize; 2] = [640, 400];

/// What [`Recorder::film`] draws: a palette, the delay between pictures
/// (hundredths of a second), the kept frames drawn, their size, and the painter.
struct Film<P: Fn(usize) -> Vec<u8>> {
    palette: Vec<u8>,
    delay: u16,
    frames: Vec<usize>,
    size: [usize; 2],
    paint: P,
}

/// A picture of environments `envs` of `sim` as they are now, drawn as
/// `joule run --gif` draws a frame (a cell of a grid per environment, the
/// default view fitted to them): `[height, width]` and its RGB bytes, row
/// by row (what Gymnasium's `render()` returns as an array).
pub fn picture(model: &Model, sim: &mut Sim, envs: &[usize]) -> ([usize; 2], Vec<u8>) {
    let html = Html {
        path: None,
        gif: None,
        pngs: None,
        envs: envs.to_vec(),
        marks: vec![],
        contacts: false,
        three: None,
    };
    let mut rec = Recorder::new(model, &html, 0);
    rec.record(0, sim);
    let film = rec.film(model, 1);
    let [w, h] = film.size;
    let rgb = (film.paint)(0)
        .iter()
        .flat_map(|&i| {
            let k = 3 * i as usize;
            [film.palette[k], film.palette[k + 1], film.palette[k + 2]]
        })
        .collect();
    ([h, w], rgb)
}

/// Where `--html`, `--gif` and `--frames` write, and which environments they show.
pub struct Html {
    /// The page to write.
    pub path: Option<PathBuf>,
    /// The animated GIF to write.
    pub gif: Option<PathBuf>,
    /// The new folder for a PNG per frame.
    pub pngs: Option<PathBuf>,
    /// The environments shown, in grid order.
    pub envs: Vec<usize>,
    /// The three-component outputs drawn as markers (name, first output row).
    pub marks: Vec<(String, usize)>,
    /// Whether the bodies' contact points are drawn.
    pub contacts: bool,
    /// Where the page loads three.js from (`--html-three`), instead of
    /// holding it inline.
    pub three: Option<String>,
}

impl Html {
    /// The outputs (a page at `path`, a `gif`, a new folder `pngs`) for a batch
    /// of `batch`, showing environment `env` alone, the first `count`, or by
    /// default the batch up to four; a `pngs` folder that exists is refused.
    pub fn new(
        path: Option<PathBuf>,
        gif: Option<PathBuf>,
        pngs: Option<PathBuf>,
        env: Option<usize>,
        count: Option<usize>,
        batch: usize,
    ) -> Result<Html> {
        let range = match batch {
            1 => "only environment 0 exists".to_string(),
            _ => format!("environments are numbered 0 to {}", batch - 1),
        };
        let envs = match (env, count) {
            (Some(k), _) if k >= batch => {
                return Err(miette!(
                    help =
                        format!("{range}; pass `--html-env` below {batch} or a larger `--batch`"),
                    "`--html-env {k}` is not an environment of this batch of {batch}"
                ))
            }
            (Some(k), _) => vec![k],
            (None, Some(n)) if n == 0 || n > batch.min(MAX_ENVS) => {
                let most = batch.min(MAX_ENVS);
                let why = if n > MAX_ENVS {
                    format!("a page shows at most {MAX_ENVS} environments side by side")
                } else if n > batch {
                    format!("this batch has {batch} (`--batch`); {range}")
                } else {
                    "a page shows at least one environment".to_string()
                };
                let pass = if most == 1 {
                    "leave `--html-envs` out (or pass 1)".to_string()
                } else {
                    format!("pass `--html-envs` from 1 to {most}")
                };
                return Err(miette!(
                    help = format!("{why}; {pass}"),
                    "`--html-envs {n}` cannot be shown from this batch of {batch}"
                ));
            }
            (None, Some(n)) => (0..n).collect(),
            (None, None) => (0..batch.min(DEFAULT_ENVS)).collect(),
        };
        let html = Html {
            path,
            gif,
            pngs,
            envs,
            marks: vec![],
            contacts: false,
            three: None,
        };
        html.check_pngs()?;
        Ok(html)
    }

    /// Draws the outputs `names` as markers: each must be a scene output of
    /// three components (a point: a target, a fingertip).
    pub fn mark(
        &mut self,
        layout: &joule_compiler::kernels::Layout,
        names: &[String],
    ) -> Result<()> {
        let points: Vec<&str> = layout
            .outputs
            .iter()
            .filter(|o| o.len == 3)
            .map(|o| o.name.as_str())
            .collect();
        for name in names {
            match layout.output(name) {
                Some(o) if o.len == 3 => self.marks.push((name.clone(), o.offset)),
                found => {
                    let what = match found {
                        Some(o) if o.len == 1 => format!("`{name}` is a number, not a point"),
                        Some(o) => format!("`{name}` has {} components, not a point's 3", o.len),
                        None => format!("the scene has no output `{name}`"),
                    };
                    let help = if points.is_empty() {
                        "add an `observe NAME = <vec3 expression>` to the scene and mark it"
                            .to_string()
                    } else {
                        format!(
                            "the scene's three-component outputs are: {}",
                            points.join(", ")
                        )
                    };
                    return Err(miette!(help = help, "cannot mark `{name}`: {what}"));
                }
            }
        }
        Ok(())
    }

    /// Makes the page load three.js from `src` instead of holding its 668 kB
    /// inline, so that pages in one folder share one copy: an `http://`,
    /// `https://` or `file://` address as given, or a path relative to the
    /// page's folder, which must hold the build the page is written for
    /// (the vendored r159, byte for byte). Checked before the run.
    pub fn link_three(&mut self, src: &str) -> Result<()> {
        let bad = src
            .chars()
            .find(|c| c.is_whitespace() || c.is_control() || "\"'<>\\".contains(*c));
        if src.is_empty() || bad.is_some() {
            return Err(miette!(
                help = "give a URL or a relative path without spaces, quotes or angle brackets, e.g. `--html-three ../three.min.js`",
                "`--html-three {src:?}` cannot be written into the page as a script's address"
            ));
        }
        let remote = ["http://", "https://", "file://"]
            .iter()
            .any(|scheme| src.starts_with(scheme));
        if !remote {
            let page = self.path.as_deref().unwrap_or(Path::new(""));
            let folder = page.parent().unwrap_or(Path::new(""));
            let file = folder.join(src);
            let help = format!(
                "the page's folder is `{}`: give three.js's path from there (the vendored copy is src/vendor/three.min.js), an http(s) address, or leave `--html-three` out to inline it",
                if folder.as_os_str().is_empty() { Path::new(".") } else { folder }.display()
            );
            match std::fs::read(&file) {
                Ok(bytes) if bytes == THREE.as_bytes() => {}
                Ok(_) => {
                    return Err(miette!(
                        help = "link the build the page is written for: three.js r159 as vendored in src/vendor/three.min.js",
                        "`{}` is not the three.js build the page is written for",
                        file.display()
                    ))
                }
                Err(e) => {
                    return Err(miette!(
                        help = help,
                        "the page would not find three.js at `{src}`: `{}`: {e}",
                        file.display()
                    ))
                }
            }
        }
        self.three = Some(src.to_string());
        Ok(())
    }

    /// Refuses a `pngs` folder that exists already, before the run.
    pub fn check_pngs(&self) -> Result<()> {
        match &self.pngs {
            Some(dir) if dir.exists() => Err(miette!(
                help =
                    "give a folder that does not exist yet: the frames get a folder of their own",
                "`{}` already exists",
                dir.display()
            )),
            _ => Ok(()),
        }
    }
}

/// One coordinate of a point: a free DOF, or a fixed value.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
enum Slot {
    Dof(u32),
    Fixed(u64),
}

impl Slot {
    fn of(r: DofRef) -> Slot {
        match r {
            DofRef::Free(d) => Slot::Dof(d),
            DofRef::Fixed(v) => Slot::Fixed(v.to_bits()),
        }
    }
}

/// What the viewer draws, from the model.
struct Geometry {
    /// Each point's three coordinates.
    points: Vec<[Slot; 3]>,
    /// Pairs of point indices not on a surface triangle.
    edges: Vec<[u32; 2]>,
    /// Mesh surface triangles, as point indices.
    tris: Vec<[u32; 3]>,
    /// Whether the scene touches the ground plane `z = 0`.
    ground: bool,
    /// Other planes its points touch, `dot(n, x) = c` as `[n, c]` (walls,
    /// tilted or raised floors: the prelude's `ground_plane*` contacts).
    planes: Vec<[f64; 4]>,
    /// Per body, the points its contacts act at: `[r, radius]` in its frame
    /// (instances whose first argument is the body and whose constants name
    /// `r` and `radius`, as every body contact of the prelude).
    contacts: Vec<Vec<[f64; 4]>>,
}

impl Geometry {
    fn of(model: &Model) -> Geometry {
        let mut points: Vec<[Slot; 3]> = vec![];
        let mut index: HashMap<[Slot; 3], u32> = HashMap::new();
        let mut point = |p: [Slot; 3], points: &mut Vec<[Slot; 3]>| -> u32 {
            *index.entry(p).or_insert_with(|| {
                points.push(p);
                points.len() as u32 - 1
            })
        };
        let particle_point: Vec<u32> = model
            .particles
            .iter()
            .map(|p| {
                let slots = match p.dof {
                    Some(d) => [Slot::Dof(d), Slot::Dof(d + 1), Slot::Dof(d + 2)],
                    None => p.x.map(|v| Slot::Fixed(v.to_bits())),
                };
                point(slots, &mut points)
            })
            .collect();
        let tris: Vec<[u32; 3]> = model
            .surfaces
            .iter()
            .map(|t| t.map(|p| particle_point[p as usize]))
            .filter(|[a, b, c]| a != b && b != c && a != c)
            .collect();
        let on_surface: HashSet<[u32; 2]> = tris
            .iter()
            .flat_map(|&[a, b, c]| [[a, b], [b, c], [c, a]])
            .map(|[a, b]| [a.min(b), a.max(b)])
            .collect();
        let mut edges = HashSet::new();
        let mut ground = false;
        let mut planes: Vec<[f64; 4]> = vec![];
        let mut contacts: Vec<Vec<[f64; 4]>> = vec![vec![]; model.bodies.len()];
        for t in &model.templates {
            // The particle-like corners each instance's handles contribute, and how
            // its handles' corners connect.
            let mut local_edges: Vec<[usize; 2]> = vec![];
            let mut corners = 0;
            let mut handles = vec![]; // (first DOF entry, corners) per particle-like handle
            let mut entry = 0;
            for a in &t.args {
                if let ArgBinding::Handle { kind, width } = a.binding {
                    let n = match kind {
                        "particle" => 1,
                        "edge" => 2,
                        "tri" => 3,
                        "tet" => 4,
                        _ => 0,
                    };
                    if n > 0 {
                        handles.push((entry, n));
                        for i in 0..n {
                            for j in i + 1..n {
                                local_edges.push([corners + i, corners + j]);
                            }
                        }
                        corners += n;
                    }
                    entry += width as usize;
                }
            }
            // Two particles coupled by one instance: a spring-like line.
            if corners == 2 && handles.len() == 2 {
                local_edges.push([0, 1]);
            }
            if !local_edges.is_empty() && t.dof_width > 0 {
                for row in t.dofs.chunks(t.dof_width) {
                    let ids: Vec<u32> = handles
                        .iter()
                        .flat_map(|&(first, n)| (0..n).map(move |c| first + 3 * c))
                        .filter_map(|e| row.get(e..e + 3))
                        .map(|r| {
                            point(
                                [Slot::of(r[0]), Slot::of(r[1]), Slot::of(r[2])],
                                &mut points,
                            )
                        })
                        .collect();
                    if ids.len() != corners {
                        continue; // not laid out as 3 DOFs per corner: drawn as points only
                    }
                    for [i, j] in &local_edges {
                        let (a, b) = (ids[*i].min(ids[*j]), ids[*i].max(ids[*j]));
                        if a != b {
                            edges.insert([a, b]);
                        }
                    }
                }
            }
            // The prelude's friction contacts on the ground hide their
            // height in their branches: known by name.
            let base = t.name.split('#').next().unwrap_or("");
            ground |= t.count > 0
                && (touches_ground(&t.body)
                    || matches!(
                        base,
                        "contact_soft"
                            | "contact_soft_particle"
                            | "contact_coulomb"
                            | "contact_coulomb_particle"
                    ));
            for (b, point) in contact_consts(model, t) {
                let known = |p: &[f64; 4]| (0..4).all(|k| (p[k] - point[k]).abs() < 1e-12);
                if !contacts[b].iter().any(known) {
                    contacts[b].push(point);
                }
            }
            if base.starts_with("ground_plane") || base.starts_with("contact_mujoco") {
                let of_t = plane_consts(t);
                // MuJoCo's contact law names its plane (the ground among them).
                ground |= base.starts_with("contact_mujoco")
                    && t.count > 0
                    && of_t.contains(&[0.0, 0.0, 1.0, 0.0]);
                for plane in of_t {
                    let known = |p: &[f64; 4]| (0..4).all(|k| (p[k] - plane[k]).abs() < 1e-9);
                    if plane != [0.0, 0.0, 1.0, 0.0] && !planes.iter().any(known) {
                        planes.push(plane);
                    }
                }
            }
        }
        let mut edges: Vec<[u32; 2]> = edges.difference(&on_surface).copied().collect();
        edges.sort_unstable();
        Geometry {
            points,
            edges,
            tris,
            ground,
            planes,
            contacts,
        }
    }
}

/// Two triangles of the plane `[n, c]`: a square of half-width `half`
/// about the foot of `centre` on it.
fn plane_quad(plane: &[f64; 4], centre: V3, half: f64) -> [[V3; 3]; 2] {
    let n = [plane[0], plane[1], plane[2]];
    let off = n.iter().zip(&centre).map(|(a, b)| a * b).sum::<f64>() - plane[3];
    let foot: V3 = std::array::from_fn(|k| centre[k] - off * n[k]);
    // A unit vector across `n`, then the third by the cross product.
    let a = if n[2].abs() < 0.9 {
        [0.0, 0.0, 1.0]
    } else {
        [1.0, 0.0, 0.0]
    };
    let cross = |p: V3, q: V3| -> V3 {
        [
            p[1] * q[2] - p[2] * q[1],
            p[2] * q[0] - p[0] * q[2],
            p[0] * q[1] - p[1] * q[0],
        ]
    };
    let unit = |p: V3| -> V3 {
        let l = p.iter().map(|x| x * x).sum::<f64>().sqrt();
        p.map(|x| x / l)
    };
    let u = unit(cross(n, a));
    let w = cross(n, u);
    let corner = |su: f64, sw: f64| -> V3 {
        std::array::from_fn(|k| foot[k] + half * (su * u[k] + sw * w[k]))
    };
    let (p, q, r, s) = (
        corner(-1.0, -1.0),
        corner(1.0, -1.0),
        corner(1.0, 1.0),
        corner(-1.0, 1.0),
    );
    [[p, q, r], [p, r, s]]
}

/// The body and body-frame contact point `[r, radius]` of each instance of
/// a template whose first argument is a moving body and whose constants
/// name `r[0]`, `r[1]`, `r[2]` (and `radius`, else 0).
fn contact_consts(model: &Model, t: &joule_compiler::model::Template) -> Vec<(usize, [f64; 4])> {
    let body_first = matches!(
        t.args.first().map(|a| &a.binding),
        Some(ArgBinding::Handle { kind: "body", .. })
    );
    let Some([x, y, z]) = const_columns(t, ["r[0]", "r[1]", "r[2]"]) else {
        return vec![];
    };
    if !body_first || t.dof_width == 0 {
        return vec![];
    }
    let radius = const_columns(t, ["radius"]);
    t.dofs
        .chunks(t.dof_width)
        .zip(instance_consts(t))
        .filter_map(|(row, k)| {
            let DofRef::Free(d) = row[0] else { return None };
            let b = model.bodies.iter().position(|b| b.dof == Some(d))?;
            Some((b, [k[x], k[y], k[z], radius.map_or(0.0, |[r]| k[r])]))
        })
        .collect()
}

/// The planes `[n, c]` of a plane contact's instances: their constants
/// named `n[0]`, `n[1]`, `n[2]` and `c` (the prelude's `ground_plane*` and
/// `contact_mujoco*`).
fn plane_consts(t: &joule_compiler::model::Template) -> Vec<[f64; 4]> {
    let Some([x, y, z, c]) = const_columns(t, ["n[0]", "n[1]", "n[2]", "c"]) else {
        return vec![];
    };
    instance_consts(t)
        .map(|k| [k[x], k[y], k[z], k[c]])
        .collect()
}

/// Where the constants `names` stand among a template's per-instance
/// constants (`None` unless it has them all).
fn const_columns<const N: usize>(
    t: &joule_compiler::model::Template,
    names: [&str; N],
) -> Option<[usize; N]> {
    let at = names.map(|name| t.const_names.iter().position(|n| n == name));
    at.iter()
        .all(Option::is_some)
        .then(|| at.map(|c| c.unwrap_or_default()))
}

/// Each instance's constants of a template.
fn instance_consts(t: &joule_compiler::model::Template) -> std::slice::ChunksExact<'_, f64> {
    t.consts.chunks_exact(t.const_names.len().max(1))
}

/// Whether a term holds a barrier or penalty whose distance argument reads
/// only z-components (DOF offsets 2 mod 3: a particle's `x.z`, a body's
/// `x.z` and the z-row of `R`) of a single handle: contact with `z = 0`.
fn touches_ground(t: &Term) -> bool {
    let mut found = false;
    visit_contacts(t, &mut vec![], &mut |dist, lets| {
        let mut reads = vec![];
        component_reads(dist, 0, lets, &mut reads);
        let one_handle = reads.windows(2).all(|w| w[0].0 == w[1].0);
        found |= !reads.is_empty()
            && one_handle
            && reads
                .iter()
                .all(|&(arg, off)| arg != u16::MAX && off % 3 == 2);
    });
    found
}

/// `let` bindings in scope, innermost last.
type Lets<'a> = Vec<(u32, &'a Term)>;

/// Calls `f` with the distance argument of every barrier and penalty in `t`.
fn visit_contacts<'a>(t: &'a Term, lets: &mut Lets<'a>, f: &mut impl FnMut(&Term, &Lets<'a>)) {
    match &t.kind {
        TermKind::Lit(_) | TermKind::Input(_) | TermKind::Local(_) => {}
        TermKind::Pack(v) => v.iter().for_each(|c| visit_contacts(c, lets, f)),
        TermKind::Call(b, v) => {
            if matches!(b, Builtin::Barrier | Builtin::Penalty) {
                if let Some(d) = v.first() {
                    f(d, lets);
                }
            }
            v.iter().for_each(|c| visit_contacts(c, lets, f));
        }
        TermKind::Get(c, _) | TermKind::Unary(_, c) => visit_contacts(c, lets, f),
        TermKind::Binary(_, a, b) => {
            visit_contacts(a, lets, f);
            visit_contacts(b, lets, f);
        }
        TermKind::Let {
            local, value, body, ..
        } => {
            visit_contacts(value, lets, f);
            lets.push((*local, value));
            visit_contacts(body, lets, f);
            lets.pop();
        }
    }
}

/// The DOF reads `(argument, offset)` that component `c` of `t` depends on;
/// a global DOF reads as argument `u16::MAX`. Exact through packs, component
/// access, sums and matrix-vector products; every component of every operand
/// elsewhere.
fn component_reads(t: &Term, c: usize, lets: &[(u32, &Term)], out: &mut Vec<(u16, u16)>) {
    let all = |x: &Term, out: &mut Vec<(u16, u16)>| {
        for k in 0..x.shape.size() {
            component_reads(x, k, lets, out);
        }
    };
    match &t.kind {
        TermKind::Lit(_) => {}
        TermKind::Input(Input::Dof { at, .. }) => out.push(match *at {
            DofAt::Arg { arg, offset } => (arg, offset),
            DofAt::Global(_) => (u16::MAX, 0),
        }),
        TermKind::Input(_) => {}
        TermKind::Pack(v) => {
            if let Some(x) = v.get(c) {
                component_reads(x, 0, lets, out);
            }
        }
        TermKind::Get(x, i) => component_reads(x, *i as usize, lets, out),
        TermKind::Unary(_, x) => component_reads(x, c, lets, out),
        TermKind::Binary(op, a, b) => match (op, a.shape, b.shape) {
            (BinOp::Add | BinOp::Sub, sa, sb) if sa == sb => {
                component_reads(a, c, lets, out);
                component_reads(b, c, lets, out);
            }
            (BinOp::Mul, Shape::Mat(n), Shape::Vec(m)) if n == m => {
                let n = n as usize;
                for k in 0..n {
                    component_reads(a, k * n + c, lets, out);
                }
                all(b, out);
            }
            (BinOp::Mul | BinOp::Div, Shape::Scalar, _) if t.shape == b.shape => {
                all(a, out);
                component_reads(b, c, lets, out);
            }
            (BinOp::Mul | BinOp::Div, _, Shape::Scalar) if t.shape == a.shape => {
                component_reads(a, c, lets, out);
                all(b, out);
            }
            _ => {
                all(a, out);
                all(b, out);
            }
        },
        TermKind::Call(_, v) => v.iter().for_each(|x| all(x, out)),
        TermKind::Let {
            local, value, body, ..
        } => {
            let mut inner = lets.to_vec();
            inner.push((*local, &**value));
            component_reads(body, c, &inner, out);
        }
        TermKind::Local(k) => {
            if let Some(pos) = lets.iter().rposition(|(l, _)| l == k) {
                let (_, value) = lets[pos];
                component_reads(value, c, &lets[..pos], out);
            }
        }
    }
}

/// A body shape as the page's JSON.
fn shape_json(s: &BodyShape) -> Value {
    match s {
        BodyShape::Sphere { radius } => json!({"kind": "sphere", "radius": radius}),
        BodyShape::Box { size } => json!({"kind": "box", "size": size}),
        BodyShape::Capsule { radius, length } => {
            json!({"kind": "capsule", "radius": radius, "length": length})
        }
        BodyShape::Cylinder { radius, length } => {
            json!({"kind": "cylinder", "radius": radius, "length": length})
        }
        BodyShape::Compound { parts } => json!({
            "kind": "compound",
            "parts": parts.iter().map(|(p, at, q)| json!({"shape": shape_json(p), "at": at, "rotation": q})).collect::<Vec<_>>(),
        }),
    }
}

/// A body's colour as `#rrggbb`.
fn body_colour(k: usize) -> String {
    hex(body_rgb(k))
}

/// A colour as `#rrggbb`.
fn hex([r, g, b]: [u8; 3]) -> String {
    format!("#{r:02x}{g:02x}{b:02x}")
}

/// A mark's radius, of the scene's extent.
const MARK_RADIUS: f64 = 0.025;

/// The marks' colours, in order (`--mark`): strong hues apart from the
/// bodies' palette.
const MARK_COLOURS: [[u8; 3]; 4] = [
    [0xff, 0x2d, 0x95],
    [0x22, 0xd3, 0xee],
    [0xfa, 0xcc, 0x15],
    [0xa3, 0xe6, 0x35],
];

/// A body's colour: hues a golden angle apart, so neighbours differ.
fn body_rgb(k: usize) -> [u8; 3] {
    let h = (0.08 + 0.618_034 * k as f64).fract() * 6.0;
    let (s, l) = (0.65, 0.55);
    let c = (1.0 - (2.0 * l - 1.0_f64).abs()) * s;
    let x = c * (1.0 - (h % 2.0 - 1.0).abs());
    let (r, g, b) = match h as u32 {
        0 => (c, x, 0.0),
        1 => (x, c, 0.0),
        2 => (0.0, c, x),
        3 => (0.0, x, c),
        4 => (x, 0.0, c),
        _ => (c, 0.0, x),
    };
    let m = l - c / 2.0;
    [r, g, b].map(|v| ((v + m) * 255.0).round() as u8)
}

/// Standard base64 with padding, as the page's `atob` reads it.
fn base64(bytes: &[u8]) -> String {
    const ABC: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::with_capacity(bytes.len().div_ceil(3) * 4);
    for chunk in bytes.chunks(3) {
        let n = chunk
            .iter()
            .enumerate()
            .fold(0u32, |n, (i, &b)| n | (b as u32) << (16 - 8 * i));
        for k in 0..4 {
            out.push(if k <= chunk.len() {
                ABC[(n >> (18 - 6 * k) & 63) as usize] as char
            } else {
                '='
            });
        }
    }
    out
}

/// Frames quantised to 16 bits per value: each DOF's finite range `lo..hi`
/// over every frame and environment, and the values (frame-major, then
/// environment, then DOF) as `round((v - lo) / (hi - lo) * 65534)`, 65535 for
/// a value that is not finite.
fn quantise(frames: &[f32], dofs: usize) -> (Vec<f32>, Vec<f32>, Vec<u8>) {
    let mut lo = vec![f32::INFINITY; dofs];
    let mut hi = vec![f32::NEG_INFINITY; dofs];
    for row in frames.chunks(dofs.max(1)) {
        for (d, &v) in row.iter().enumerate() {
            if v.is_finite() {
                lo[d] = lo[d].min(v);
                hi[d] = hi[d].max(v);
            }
        }
    }
    for d in 0..dofs {
        if lo[d] > hi[d] {
            (lo[d], hi[d]) = (0.0, 0.0);
        }
    }
    let mut bytes = Vec::with_capacity(2 * frames.len());
    for row in frames.chunks(dofs.max(1)) {
        for (d, &v) in row.iter().enumerate() {
            let span = (hi[d] - lo[d]) as f64;
            let q = if !v.is_finite() {
                NOT_FINITE
            } else if span > 0.0 {
                ((v - lo[d]) as f64 / span * LEVELS).round() as u16
            } else {
                0
            };
            bytes.extend_from_slice(&q.to_le_bytes());
        }
    }
    (lo, hi, bytes)
}

/// Frames of the shown environments' free DOFs, recorded while `joule run` steps.
pub struct Recorder {
    envs: Vec<usize>,
    steps: usize,
    stride: usize,
    /// Kept frames, each the shown environments' DOFs in turn.
    frames: Vec<f32>,
    /// The marked outputs (name, first output row).
    marks: Vec<(String, usize)>,
    /// Kept frames of the marks: each shown environment's marks in turn.
    mark_frames: Vec<f32>,
    /// Whether the page draws the bodies' contact points.
    contacts: bool,
    /// Where the page loads three.js from, if not inline.
    three: Option<String>,
}

impl Recorder {
    /// A recorder for `steps` steps of the environments `html` shows.
    pub fn new(model: &Model, html: &Html, steps: usize) -> Recorder {
        let per_frame = (model.dof_count * html.envs.len()).max(1);
        // Frames kept with stride `k`: every k-th step, and the last.
        let kept = |k: usize| steps / k + 1 + usize::from(!steps.is_multiple_of(k));
        let mut stride = 1;
        while stride < steps.max(1)
            && (kept(stride) > MAX_FRAMES || kept(stride) * per_frame > MAX_VALUES)
        {
            stride += 1;
        }
        Recorder {
            envs: html.envs.clone(),
            steps,
            stride,
            frames: vec![],
            marks: html.marks.clone(),
            mark_frames: vec![],
            contacts: html.contacts,
            three: html.three.clone(),
        }
    }

    /// Whether the page holds the state after `step` steps: every `stride`-th, and the last.
    fn keeps(&self, step: usize) -> bool {
        step.is_multiple_of(self.stride) || step == self.steps
    }

    /// Records the state after `step` steps (every `stride`-th, and the
    /// last), and the marked outputs there.
    pub fn record(&mut self, step: usize, sim: &mut Sim) {
        if self.keeps(step) {
            for &e in &self.envs {
                self.frames
                    .extend(sim.positions(e).iter().map(|&v| v as f32));
            }
            if !self.marks.is_empty() {
                let rows = sim.outputs();
                for &e in &self.envs {
                    for (_, first) in &self.marks {
                        self.mark_frames
                            .extend((0..3).map(|k| rows[first + k][e] as f32));
                    }
                }
            }
        }
    }

    /// Frame `f`'s DOFs of the `e`-th shown environment.
    fn frame(&self, f: usize, e: usize, dofs: usize) -> &[f32] {
        &self.frames[(f * self.envs.len() + e) * dofs..][..dofs]
    }

    /// Frame `f`'s marks of the `e`-th shown environment, as points.
    fn marks_at(&self, f: usize, e: usize) -> Vec<V3> {
        let n = 3 * self.marks.len();
        self.mark_frames[(f * self.envs.len() + e) * n..][..n]
            .chunks_exact(3)
            .map(|p| std::array::from_fn(|k| p[k] as f64))
            .collect()
    }

    /// The pictures of a GIF or PNG sequence: the page's default view of each
    /// shown environment in a grid, every k-th kept frame up to `most`. Gives
    /// the palette, the delay between pictures in hundredths of a second, the
    /// kept frames drawn, and the painter of one of them (palette indices).
    fn film<'a>(&'a self, model: &'a Model, most: usize) -> Film<impl Fn(usize) -> Vec<u8> + 'a> {
        let g = Geometry::of(model);
        let envs = self.envs.len();
        let dofs = model.dof_count;
        let at = |v: &[f32], p: &[Slot; 3]| -> V3 {
            p.map(|s| match s {
                Slot::Dof(d) => v[d as usize] as f64,
                Slot::Fixed(bits) => f64::from_bits(bits),
            })
        };
        let pose = |v: &[f32], b: &joule_compiler::model::Body| -> (V3, [f64; 9]) {
            match b.dof.map(|d| d as usize) {
                Some(d) => (
                    std::array::from_fn(|k| v[d + k] as f64),
                    std::array::from_fn(|k| v[d + 3 + k] as f64),
                ),
                None => (b.x, joule_compiler::math::quat_to_mat(b.rotation)),
            }
        };
        let kept = (0..=self.steps).filter(|&s| self.keeps(s)).count();
        // Bounds over every frame and environment, as the page fits its camera.
        let (mut lo, mut hi) = ([f64::INFINITY; 3], [f64::NEG_INFINITY; 3]);
        let mut grow = |p: V3, r: f64| {
            for k in 0..3 {
                if p[k].is_finite() {
                    lo[k] = lo[k].min(p[k] - r);
                    hi[k] = hi[k].max(p[k] + r);
                }
            }
        };
        for f in 0..kept {
            for e in 0..self.envs.len() {
                let v = self.frame(f, e, dofs);
                g.points.iter().for_each(|p| grow(at(v, p), 0.0));
                for b in &model.bodies {
                    grow(pose(v, b).0, b.shape.bounding_radius());
                }
                self.marks_at(f, e).into_iter().for_each(|p| grow(p, 0.0));
            }
        }
        if g.ground {
            (lo[2], hi[2]) = (lo[2].min(0.0), hi[2].max(0.0));
        }
        for k in 0..3 {
            if lo[k] > hi[k] {
                (lo[k], hi[k]) = (-1.0, 1.0);
            }
        }
        let centre: V3 = std::array::from_fn(|k| (lo[k] + hi[k]) / 2.0);
        let extent = (0.5 * (0..3).map(|k| (hi[k] - lo[k]).powi(2)).sum::<f64>().sqrt()).max(1e-3);
        // Materials: the surface, particles, fixed points, the marks' colours,
        // then the bodies'.
        let mut materials = vec![[0x60, 0xa5, 0xfa], [0xff, 0x8c, 0x1a], [0xf4, 0x3f, 0x5e]];
        let marks = self.marks.len().min(MARK_COLOURS.len());
        materials.extend_from_slice(&MARK_COLOURS[..marks]);
        let first_body = materials.len();
        let body_slots = render::MATERIALS - materials.len();
        materials.extend((0..model.bodies.len().min(body_slots)).map(body_rgb));
        let shapes: Vec<Vec<[V3; 3]>> = model
            .bodies
            .iter()
            .map(|b| render::shape_triangles(&b.shape))
            .collect();
        let on_surface: HashSet<u32> = g.tris.iter().flatten().copied().collect();
        let fixed = |p: &[Slot; 3]| p.iter().all(|s| matches!(s, Slot::Fixed(_)));
        let dot = extent * if g.points.len() > 200 { 0.007 } else { 0.012 };
        let [w, h] = GIF_SIZE;
        let cols = (1..).find(|c| c * c >= self.envs.len()).unwrap_or(1);
        let rows = self.envs.len().div_ceil(cols);
        let (cw, ch) = (w / cols, h / rows);
        let every = kept.div_ceil(most).max(1);
        let delay = (model.settings.dt * (self.stride * every) as f64 * 100.0)
            .round()
            .clamp(2.0, 65535.0) as u16;
        let palette = render::palette(&materials);
        let frames: Vec<usize> = (0..kept)
            .filter(|f| f % every == 0 || *f + 1 == kept)
            .collect();
        let paint = move |f: usize| -> Vec<u8> {
            let mut c = Canvas::new(w, h);
            for e in 0..envs {
                let v = self.frame(f, e, dofs);
                let cam = Camera::orbit(centre, extent, [e % cols * cw, e / cols * ch, cw, ch]);
                if g.ground {
                    let half = 1.3 * (hi[0] - lo[0]).max(hi[1] - lo[1]).max(extent) / 2.0;
                    let [x0, x1, y0, y1] = [
                        centre[0] - 2.0 * half,
                        centre[0] + 2.0 * half,
                        centre[1] - 2.0 * half,
                        centre[1] + 2.0 * half,
                    ];
                    let ground = Paint::Flat(render::GROUND);
                    c.triangle(&cam, [[x0, y0, 0.0], [x1, y0, 0.0], [x1, y1, 0.0]], ground);
                    c.triangle(&cam, [[x0, y0, 0.0], [x1, y1, 0.0], [x0, y1, 0.0]], ground);
                    for k in 0..=20 {
                        let s = k as f64 / 20.0;
                        let (x, y) = (x0 + s * (x1 - x0), y0 + s * (y1 - y0));
                        c.line(&cam, [x, y0, 0.0], [x, y1, 0.0], render::GRID);
                        c.line(&cam, [x0, y, 0.0], [x1, y, 0.0], render::GRID);
                    }
                }
                for plane in &g.planes {
                    for t in plane_quad(plane, centre, 2.0 * extent) {
                        c.triangle(&cam, t, Paint::Flat(render::GROUND));
                    }
                }
                for (k, b) in model.bodies.iter().enumerate() {
                    let (x, r) = pose(v, b);
                    let place = |p: V3| -> V3 {
                        std::array::from_fn(|i| {
                            x[i] + r[i] * p[0] + r[3 + i] * p[1] + r[6 + i] * p[2]
                        })
                    };
                    let material = first_body + k % body_slots.max(1);
                    for t in &shapes[k] {
                        c.triangle(&cam, t.map(place), Paint::Lit(material));
                    }
                    if self.contacts {
                        for p in &g.contacts[k] {
                            let r = p[3].max(dot);
                            for t in render::sphere(place([p[0], p[1], p[2]]), r, 3) {
                                c.triangle_over(&cam, t, Paint::Lit(2));
                            }
                        }
                    }
                }
                let pts: Vec<V3> = g.points.iter().map(|p| at(v, p)).collect();
                for t in &g.tris {
                    c.triangle(&cam, t.map(|i| pts[i as usize]), Paint::Lit(0));
                }
                for [a, b] in &g.edges {
                    c.line(&cam, pts[*a as usize], pts[*b as usize], render::LINE);
                }
                for (i, p) in g.points.iter().enumerate() {
                    if fixed(p) || !on_surface.contains(&(i as u32)) {
                        let (r, m) = if fixed(p) { (1.8 * dot, 2) } else { (dot, 1) };
                        for t in render::sphere(pts[i], r, 4) {
                            c.triangle(&cam, t, Paint::Lit(m));
                        }
                    }
                }
                // Marks are seen through the bodies (a fingertip inside its link).
                for (k, p) in self.marks_at(f, e).into_iter().enumerate() {
                    for t in render::sphere(p, MARK_RADIUS * extent, 4) {
                        c.triangle_over(&cam, t, Paint::Lit(3 + k % marks.max(1)));
                    }
                }
            }
            c.pixels
        };
        Film {
            palette,
            delay,
            frames,
            size: GIF_SIZE,
            paint,
        }
    }

    /// Writes the animated GIF (atomically): `Recorder::film` with at most
    /// [`MAX_GIF_FRAMES`] pictures, in simulated time, repeating.
    pub fn write_gif(&self, path: &Path, model: &Model) -> Result<()> {
        let film = self.film(model, MAX_GIF_FRAMES);
        let [w, h] = film.size.map(|v| v as u16);
        write_atomically(path, |out| {
            let mut enc =
                gif::Encoder::new(out, w, h, &film.palette).map_err(std::io::Error::other)?;
            enc.set_repeat(gif::Repeat::Infinite)
                .map_err(std::io::Error::other)?;
            for &f in &film.frames {
                let mut frame = gif::Frame::from_indexed_pixels(w, h, (film.paint)(f), None);
                frame.delay = film.delay;
                enc.write_frame(&frame).map_err(std::io::Error::other)?;
            }
            Ok(())
        })
    }

    /// Writes every kept frame (up to [`MAX_FRAMES`]) as `frame_0000.png`, ...
    /// into the new folder `dir`: drawn into a temporary folder beside it,
    /// renamed to `dir` when complete, so a failed run leaves no folder.
    pub fn write_pngs(&self, dir: &Path, model: &Model) -> Result<()> {
        if dir.exists() {
            return Html {
                path: None,
                gif: None,
                pngs: Some(dir.to_path_buf()),
                envs: vec![],
                marks: vec![],
                contacts: false,
                three: None,
            }
            .check_pngs();
        }
        let name = dir.file_name().map(|n| n.to_string_lossy().into_owned());
        let Some(name) = name.filter(|n| n != "..") else {
            return Err(miette!(
                help = "give a folder path such as `frames/`",
                "`{}` does not name a new folder",
                dir.display()
            ));
        };
        let temp = dir.with_file_name(format!(".{name}.partial-{}", std::process::id()));
        let cannot = |e: std::io::Error| {
            let _ = std::fs::remove_dir_all(&temp);
            miette!(
                help = "check that the parent folder exists and is writable",
                "cannot write the frames into `{}`: {e}",
                dir.display()
            )
        };
        std::fs::create_dir(&temp).map_err(cannot)?;
        let film = self.film(model, MAX_FRAMES);
        let [w, h] = film.size.map(|v| v as u32);
        for (k, &f) in film.frames.iter().enumerate() {
            let write = || -> std::io::Result<()> {
                let file = std::fs::File::create(temp.join(format!("frame_{k:04}.png")))?;
                let mut enc = png::Encoder::new(std::io::BufWriter::new(file), w, h);
                enc.set_color(png::ColorType::Indexed);
                enc.set_depth(png::BitDepth::Eight);
                enc.set_palette(film.palette.clone());
                let mut out = enc.write_header().map_err(std::io::Error::other)?;
                out.write_image_data(&(film.paint)(f))
                    .map_err(std::io::Error::other)?;
                out.finish().map_err(std::io::Error::other)
            };
            write().map_err(cannot)?;
        }
        std::fs::rename(&temp, dir).map_err(cannot)
    }

    /// Writes the page (atomically).
    pub fn write(&self, path: &Path, model: &Model, scene: &Path) -> Result<()> {
        let g = Geometry::of(model);
        let slots = |p: &[Slot; 3]| -> [Value; 2] {
            let mut dof = [-1i64; 3];
            let mut x = [0f32; 3];
            for (k, s) in p.iter().enumerate() {
                match *s {
                    Slot::Dof(d) => dof[k] = d as i64,
                    Slot::Fixed(bits) => x[k] = f64::from_bits(bits) as f32,
                }
            }
            [json!(dof), json!(x)]
        };
        let (dofs, xs): (Vec<Value>, Vec<Value>) = g
            .points
            .iter()
            .map(|p| {
                let [d, x] = slots(p);
                (d, x)
            })
            .unzip();
        let bodies: Vec<Value> = model
            .bodies
            .iter()
            .enumerate()
            .map(|(k, b)| {
                json!({
                    "contacts": if self.contacts { g.contacts[k].clone() } else { vec![] },
                    "name": b.name,
                    "dof": b.dof.map_or(-1, |d| d as i64),
                    "x": b.x,
                    "R": joule_compiler::math::quat_to_mat(b.rotation),
                    "shape": shape_json(&b.shape),
                    "colour": body_colour(k),
                })
            })
            .collect();
        let frame_steps: Vec<usize> = (0..=self.steps).filter(|&s| self.keeps(s)).collect();
        let (lo, hi, bytes) = quantise(&self.frames, model.dof_count);
        let marks = {
            let (lo, hi, bytes) = quantise(&self.mark_frames, 3 * self.marks.len());
            json!({
                "names": self.marks.iter().map(|m| &m.0).collect::<Vec<_>>(),
                "colours": (0..self.marks.len()).map(|k| hex(MARK_COLOURS[k % MARK_COLOURS.len()])).collect::<Vec<_>>(),
                "frames": {"lo": lo, "hi": hi, "levels": LEVELS, "data": base64(&bytes)},
            })
        };
        let data = json!({
            "mark_radius": MARK_RADIUS,
            "title": model.title.clone().unwrap_or_else(|| scene.display().to_string()),
            "scene": scene.display().to_string(),
            "envs": self.envs,
            "dt": model.settings.dt,
            "steps": frame_steps,
            "dofs": model.dof_count,
            "points": {"dof": dofs, "x": xs},
            "edges": g.edges,
            "tris": g.tris,
            "bodies": bodies,
            "ground": g.ground,
            "planes": g.planes,
            "frames": {"lo": lo, "hi": hi, "levels": LEVELS, "data": base64(&bytes)},
            "marks": marks,
        });
        // `</` cannot end the script element early: JSON allows `<\/`.
        let text = data.to_string().replace("</", "<\\/");
        // The template holds the library's script element before
        // `__JOULE_DATA__`, once each; the library's text holds no
        // `</script`, a linked address no quote or angle bracket.
        let (head, rest) = PAGE
            .split_once("<script>__THREE__</script>")
            .expect("the library's place");
        let (middle, tail) = rest.split_once("__JOULE_DATA__").expect("the data's place");
        let library = match &self.three {
            None => ["<script>", THREE, "</script>"],
            Some(src) => ["<script src=\"", src.as_str(), "\"></script>"],
        };
        let page = [
            head, library[0], library[1], library[2], middle, &text, tail,
        ]
        .concat();
        write_atomically(path, |w| w.write_all(page.as_bytes()))
    }
}
