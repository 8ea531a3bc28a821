//! `joule run --html`: a self-contained HTML page that plays back one
//! environment's trajectory (points, springs and element edges, rigid-body
//! shapes, the ground), drawn by inline JavaScript on a 2D canvas.
//!
//! The geometry comes from the resolved model: every particle is a point;
//! instances of an energy or dissipation that couple exactly two particles (or
//! an `edge`), and the edges of `tri` and `tet` elements, are lines; bodies are
//! drawn as their shapes, moved by the affine state `x + R r`; the ground plane
//! `z = 0` is drawn when a barrier or penalty argument reads nothing but
//! z-components of one handle.

use crate::files::write_atomically;
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

/// The page: markup, style and script; `__JOULE_DATA__` is replaced by the JSON.
const PAGE: &str = include_str!("viewer.html");

/// Most frames a page holds; longer runs keep every k-th step.
const MAX_FRAMES: usize = 600;
/// Most numbers a page holds over all frames (about 10 bytes each).
const MAX_NUMBERS: usize = 3_000_000;

/// Where `--html` writes, and which environment it shows.
pub struct Html {
    /// The page to write.
    pub path: PathBuf,
    /// The environment shown.
    pub env: usize,
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
    /// Pairs of point indices.
    edges: Vec<[u32; 2]>,
    /// Whether the scene touches the ground plane `z = 0`.
    ground: bool,
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
        for p in &model.particles {
            let slots = match p.dof {
                Some(d) => [Slot::Dof(d), Slot::Dof(d + 1), Slot::Dof(d + 2)],
                None => p.x.map(|v| Slot::Fixed(v.to_bits())),
            };
            point(slots, &mut points);
        }
        let mut edges = HashSet::new();
        let mut ground = false;
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
            ground |= t.count > 0 && touches_ground(&t.body);
        }
        let mut edges: Vec<[u32; 2]> = edges.into_iter().collect();
        edges.sort_unstable();
        Geometry {
            points,
            edges,
            ground,
        }
    }
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
            "parts": parts.iter().map(|(p, at)| json!({"shape": shape_json(p), "at": at})).collect::<Vec<_>>(),
        }),
    }
}

/// Frames of one environment's free DOFs, recorded while `joule run` steps.
pub struct Recorder {
    env: usize,
    steps: usize,
    stride: usize,
    frames: Vec<Vec<f32>>,
}

impl Recorder {
    /// A recorder for `steps` steps of environment `env` of a batch of `batch`.
    pub fn new(model: &Model, html: &Html, steps: usize, batch: usize) -> Result<Recorder> {
        if html.env >= batch {
            let which = match batch {
                1 => "only environment 0 exists".to_string(),
                _ => format!("environments are numbered 0 to {}", batch - 1),
            };
            return Err(miette!(
                help = format!("{which}; pass `--html-env` below {batch} or a larger `--batch`"),
                "`--html-env {}` is not an environment of this batch of {batch}",
                html.env
            ));
        }
        let frames = steps + 1;
        let per_frame = model.dof_count.max(1);
        let stride = frames
            .div_ceil(MAX_FRAMES)
            .max((frames * per_frame).div_ceil(MAX_NUMBERS))
            .max(1);
        Ok(Recorder {
            env: html.env,
            steps,
            stride,
            frames: vec![],
        })
    }

    /// Whether the page holds the state after `step` steps: every `stride`-th, and the last.
    fn keeps(&self, step: usize) -> bool {
        step.is_multiple_of(self.stride) || step == self.steps
    }

    /// Records the state after `step` steps (every `stride`-th, and the last).
    pub fn record(&mut self, step: usize, sim: &Sim) {
        if self.keeps(step) {
            self.frames
                .push(sim.positions(self.env).iter().map(|&v| v as f32).collect());
        }
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
            .map(|b| {
                json!({
                    "name": b.name,
                    "dof": b.dof.map_or(-1, |d| d as i64),
                    "x": b.x,
                    "R": joule_compiler::math::quat_to_mat(b.rotation),
                    "shape": shape_json(&b.shape),
                })
            })
            .collect();
        let frame_steps: Vec<usize> = (0..=self.steps).filter(|&s| self.keeps(s)).collect();
        let data = json!({
            "title": model.title.clone().unwrap_or_else(|| scene.display().to_string()),
            "scene": scene.display().to_string(),
            "env": self.env,
            "dt": model.settings.dt,
            "steps": frame_steps,
            "dofs": model.dof_count,
            "points": {"dof": dofs, "x": xs},
            "edges": g.edges,
            "bodies": bodies,
            "ground": g.ground,
            "frames": self.frames,
        });
        // `</` cannot end the script element early: JSON allows `<\/`.
        let text = data.to_string().replace("</", "<\\/");
        let page = PAGE.replacen("__JOULE_DATA__", &text, 1);
        write_atomically(path, |w| w.write_all(page.as_bytes()))
    }
}
