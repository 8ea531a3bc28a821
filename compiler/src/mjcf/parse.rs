//! MJCF XML to [`Mjcf`]: defaults and `childclass` applied, orientations and
//! angles converted, poses composed into world frames, mass properties
//! computed. Every problem is a diagnostic located in the XML.

use super::*;
use crate::math::*;
use roxmltree::{Document, Node};
use std::collections::HashMap;

/// Elements under `<mujoco>` that do not affect the dynamics the importer models.
const IGNORED_TOP: &[&str] = &["size", "visual", "statistic", "custom", "asset", "keyframe"];
/// Body children that only matter for rendering.
const IGNORED_IN_BODY: &[&str] = &["camera", "light"];
/// The ways to give a frame's orientation (at most one per element).
const ORIENTATION: &[&str] = &["quat", "euler", "axisangle", "xyaxes", "zaxis"];
/// Attributes that only concern rendering, bookkeeping or MuJoCo's solver.
const VISUAL: &[&str] = &["class", "group", "user", "rgba", "material", "name"];

/// The `<option><flag>`s turned off that the importer honours.
#[derive(Default)]
struct Flags {
    off: Vec<&'static str>,
}

/// How body mass properties are found (`compiler inertiafromgeom`).
#[derive(Clone, Copy, PartialEq)]
enum FromGeom {
    Auto,
    Always,
    Never,
}

/// A default class: its parent and its element defaults by tag.
struct Class<'a, 'i> {
    parent: Option<String>,
    items: HashMap<&'a str, Node<'a, 'i>>,
}

struct Parser<'a, 'i> {
    /// The model's files, main file first, and what each `<include>` brings in.
    docs: &'a [(FileId, Document<'i>)],
    includes: &'a HashMap<(FileId, usize), FileId>,
    lenient: bool,
    diags: Vec<Diagnostic>,
    classes: HashMap<String, Class<'a, 'i>>,
    degrees: bool,
    from_geom: FromGeom,
    bodies: Vec<Body>,
    /// Per body: whether it has an `<inertial>`, and its values.
    inertials: Vec<Option<MassProps>>,
    joint_count: usize,
    /// The main model's folder (`None` for a model not read from a file)
    /// and `<compiler meshdir>` (or `assetdir`): where mesh files are.
    folder: Option<std::path::PathBuf>,
    meshdir: String,
    /// The `<asset><mesh>` elements by name, and the mass frames of those
    /// geoms used so far (`None`: reported).
    mesh_nodes: HashMap<&'a str, Node<'a, 'i>>,
    mesh_frames: HashMap<&'a str, Option<mesh::MeshFrame>>,
    /// The first colliding geom's and the first limited joint's `solref`/
    /// `solimp` (`solreflimit`/`solimplimit`) that differ from MuJoCo's
    /// defaults, which Joule's contact and ranges are calibrated to.
    contact_softness: Option<Span>,
    limit_softness: Option<Span>,
    /// Whether the contact law written honours the geoms' softness.
    honours_softness: bool,
}

/// Parses the MJCF files `files` (read by [`include::load`], their XML
/// known to parse); the model is `None` when it could not be read at all.
/// `options.friction` decides whether the contact softness is honoured
/// (MuJoCo's contact law) or a warning.
pub fn parse(
    sources: &SourceMap,
    files: &include::Files,
    options: Options,
) -> (Option<Mjcf>, Vec<Diagnostic>) {
    let lenient = options.lenient;
    let mut docs = vec![];
    for &id in &files.ids {
        let text = &sources.get(id).text;
        match Document::parse(text) {
            Ok(d) => docs.push((id, d)),
            Err(e) => return (None, vec![include::xml_error(text, id, &e)]),
        }
    }
    let mut p = Parser {
        docs: &docs,
        includes: &files.includes,
        lenient,
        diags: vec![],
        classes: HashMap::new(),
        degrees: true,
        from_geom: FromGeom::Auto,
        bodies: vec![],
        inertials: vec![],
        joint_count: 0,
        folder: sources
            .get(files.ids[0])
            .path
            .as_deref()
            .map(|p| p.parent().unwrap_or(std::path::Path::new("")).to_path_buf()),
        meshdir: String::new(),
        mesh_nodes: HashMap::new(),
        mesh_frames: HashMap::new(),
        contact_softness: None,
        limit_softness: None,
        honours_softness: options.friction == Friction::Mujoco,
    };
    let root = docs[0].1.root_element();
    if let Some(d) = p.too_large(root) {
        return (None, vec![d]);
    }
    let model = p.model(root);
    (model, p.diags)
}

/// The most bodies, geoms and joints an imported model may have, and the
/// deepest nesting of bodies: the Joule text grows faster than the model
/// (contacts between bodies, poses along chains), so the elements are
/// counted before anything is expanded.
const LIMITS: [(&str, usize); 4] = [
    ("bodies", 200),
    ("geoms", 1000),
    ("joints", 1000),
    ("nested bodies", 100),
];

impl<'a, 'i> Parser<'a, 'i> {
    /// The file of a node's document.
    fn file_of(&self, n: Node) -> FileId {
        self.docs
            .iter()
            .find(|(_, d)| std::ptr::eq(n.document(), d))
            .map_or(self.docs[0].0, |(id, _)| *id)
    }

    /// A byte range of the file that holds `n`.
    fn span(&self, n: Node, r: std::ops::Range<usize>) -> Span {
        Span::new(self.file_of(n), r.start, r.end)
    }

    /// The child elements of `n`, with each `<include>` replaced by the
    /// children of the included file's `<mujoco>`.
    fn elements(&self, n: Node<'a, 'i>) -> Vec<Node<'a, 'i>> {
        let mut out = vec![];
        for c in n.children().filter(Node::is_element) {
            if !c.has_tag_name("include") {
                out.push(c);
                continue;
            }
            let included = self
                .includes
                .get(&(self.file_of(c), c.range().start))
                .and_then(|id| self.docs.iter().find(|(f, _)| f == id));
            if let Some((_, doc)) = included {
                out.extend(self.elements(doc.root_element()));
            }
        }
        out
    }

    /// A diagnostic at the first element past one of the [`LIMITS`], if any:
    /// the elements are counted in the model with its includes, before
    /// anything is built.
    fn too_large(&self, root: Node<'a, 'i>) -> Option<Diagnostic> {
        let mut counts = [0usize; 4];
        let mut stack: Vec<(Node, usize)> = self
            .elements(root)
            .into_iter()
            .rev()
            .map(|c| (c, 0))
            .collect();
        while let Some((n, depth)) = stack.pop() {
            let depth = depth + usize::from(n.has_tag_name("body"));
            stack.extend(self.elements(n).into_iter().rev().map(|c| (c, depth)));
            let k = match n.tag_name().name() {
                "body" => {
                    counts[3] = counts[3].max(depth);
                    0
                }
                "geom" => 1,
                "joint" | "freejoint" => 2,
                _ => continue,
            };
            counts[k] += 1;
            let over = (0..4).find(|&i| counts[i] > LIMITS[i].1);
            if let Some(i) = over {
                let (what, limit) = LIMITS[i];
                // The element, unless it is far into a long line (a minified
                // model), where the renderer cannot draw it: then the root's tag.
                let text = n.document().input_text();
                let column = |at: usize| at - text[..at].rfind('\n').map_or(0, |k| k + 1);
                let at = if column(n.range().start) < 1000 {
                    n
                } else {
                    root
                };
                return Some(
                    Diagnostic::error(
                        "mjcf::too_large",
                        format!("the model has more than {limit} {what}"),
                        self.tag_span(at),
                        if at == n {
                            format!("{what} past {limit} start here")
                        } else {
                            "in this model".to_string()
                        },
                    )
                    .with_help(format!(
                        "the importer takes models of at most {} bodies, {} geoms, {} joints and {} nested bodies; split the model or generate it in Joule (`for` generators)",
                        LIMITS[0].1, LIMITS[1].1, LIMITS[2].1, LIMITS[3].1
                    )),
                );
            }
        }
        None
    }

    /// The `<tag` of an element.
    fn tag_span(&self, n: Node) -> Span {
        let start = n.range().start;
        self.span(n, start..start + 1 + n.tag_name().name().len())
    }

    fn attr_span(&self, n: Node, name: &str) -> Span {
        match n.attribute_node(name) {
            Some(a) => self.span(n, a.range_value()),
            None => self.tag_span(n),
        }
    }

    fn invalid(&mut self, span: Span, message: String, label: &str, help: &str) {
        self.diags
            .push(Diagnostic::error("mjcf::invalid", message, span, label).with_help(help));
    }

    /// Reports something the importer does not model: an error, or with
    /// `lenient` a warning (the caller skips it).
    fn unsupported(&mut self, span: Span, what: String, label: &str) {
        let d = Diagnostic::error(
            "mjcf::unsupported",
            format!("{what} is not supported by the MJCF importer"),
            span,
            label,
        );
        self.diags.push(if self.lenient {
            d.warning().with_help("skipped (--lenient)")
        } else {
            d.with_help("remove it from the model, or run `joule import --lenient` to skip it with a warning")
        });
    }

    fn unsupported_element(&mut self, n: Node) {
        let span = self.tag_span(n);
        self.unsupported(
            span,
            format!("`<{}>`", n.tag_name().name()),
            "unsupported element",
        );
    }

    /// Reports attributes of `n` that are neither supported nor ignorable.
    fn check_attrs(&mut self, n: Node, supported: &[&str], ignored: &[&str]) {
        for a in n.attributes() {
            let name = a.name();
            if !supported.contains(&name) && !ignored.contains(&name) && !VISUAL.contains(&name) {
                let span = self.span(n, a.range_qname());
                self.unsupported(
                    span,
                    format!("attribute `{name}` of `<{}>`", n.tag_name().name()),
                    "unsupported attribute",
                );
            }
        }
    }

    /// An attribute of `n`, or of its default class chain (starting at
    /// `class`): the defaults of the element's own tag, but for the
    /// children of `<tendon>` (`fixed`, `spatial`) and of `<equality>`,
    /// whose defaults MuJoCo keeps under `<default><tendon>` and
    /// `<default><equality>`.
    fn get(&self, n: Node<'a, 'i>, class: &str, name: &str) -> Option<(&'a str, Span)> {
        if let Some(v) = n.attribute(name) {
            return Some((v, self.attr_span(n, name)));
        }
        let tag = match n.parent_element().map(|p| p.tag_name().name()) {
            Some(group @ ("tendon" | "equality")) => group,
            _ => n.tag_name().name(),
        };
        let mut c = Some(class.to_string());
        while let Some(cls) = c {
            let class = self.classes.get(&cls)?;
            if let Some(d) = class.items.get(tag) {
                if let Some(v) = d.attribute(name) {
                    return Some((v, self.attr_span(*d, name)));
                }
            }
            c = class.parent.clone();
        }
        None
    }

    /// Numbers of an attribute value: exactly `n`, or (with `up_to`) 1..=n.
    fn numbers(
        &mut self,
        v: &str,
        span: Span,
        name: &str,
        n: usize,
        up_to: bool,
    ) -> Option<Vec<f64>> {
        let parsed: Result<Vec<f64>, _> = v.split_whitespace().map(str::parse::<f64>).collect();
        match parsed {
            Ok(xs)
                if xs.iter().all(|x| x.is_finite())
                    && (xs.len() == n || up_to && (1..=n).contains(&xs.len())) =>
            {
                Some(xs)
            }
            _ => {
                let want = if up_to {
                    format!("up to {n}")
                } else {
                    n.to_string()
                };
                self.invalid(
                    span,
                    format!("`{name}` must be {want} number(s)"),
                    "not valid here",
                    "write finite numbers separated by spaces, e.g. `0 0 1`",
                );
                None
            }
        }
    }

    /// Numbers of an attribute value, any multiple of `k` of them.
    fn numbers_any(&mut self, v: &str, span: Span, name: &str, k: usize) -> Option<Vec<f64>> {
        let parsed: Result<Vec<f64>, _> = v.split_whitespace().map(str::parse::<f64>).collect();
        match parsed {
            Ok(xs) if xs.iter().all(|x| x.is_finite()) && xs.len() % k == 0 => Some(xs),
            _ => {
                self.invalid(
                    span,
                    format!("`{name}` must be finite numbers, {k} per item"),
                    "not valid here",
                    "write finite numbers separated by spaces, e.g. `0 0 1  1 0 0`",
                );
                None
            }
        }
    }

    fn vec3(&mut self, n: Node<'a, 'i>, class: &str, name: &str, default: V3) -> V3 {
        match self.get(n, class, name) {
            Some((v, s)) => self
                .numbers(v, s, name, 3, false)
                .map_or(default, |x| [x[0], x[1], x[2]]),
            None => default,
        }
    }

    fn real(&mut self, n: Node<'a, 'i>, class: &str, name: &str, default: f64) -> f64 {
        match self.get(n, class, name) {
            Some((v, s)) => self.numbers(v, s, name, 1, false).map_or(default, |x| x[0]),
            None => default,
        }
    }

    /// A non-negative number.
    fn amount(&mut self, n: Node<'a, 'i>, class: &str, name: &str, default: f64) -> f64 {
        let x = self.real(n, class, name, default);
        if x < 0.0 {
            let span = self.get(n, class, name).map_or(self.tag_span(n), |g| g.1);
            self.invalid(
                span,
                format!("`{name}` must not be negative"),
                "negative",
                "give a value >= 0",
            );
            return default;
        }
        x
    }

    fn int(&mut self, n: Node<'a, 'i>, class: &str, name: &str, default: u32) -> u32 {
        match self.get(n, class, name) {
            Some((v, s)) => v.trim().parse().unwrap_or_else(|_| {
                self.invalid(
                    s,
                    format!("`{name}` must be a non-negative integer"),
                    "not an integer",
                    "e.g. `1`",
                );
                default
            }),
            None => default,
        }
    }

    /// `true`/`false`/`auto` (`auto` as `None`).
    fn flag(&mut self, n: Node<'a, 'i>, class: &str, name: &str) -> Option<bool> {
        match self.get(n, class, name) {
            Some(("true", _)) => Some(true),
            Some(("false", _)) => Some(false),
            Some(("auto", _)) | None => None,
            Some((_, s)) => {
                self.invalid(
                    s,
                    format!("`{name}` must be `true`, `false` or `auto`"),
                    "not a flag",
                    "e.g. `true`",
                );
                None
            }
        }
    }

    fn angle(&self, x: f64) -> f64 {
        if self.degrees {
            x.to_radians()
        } else {
            x
        }
    }

    /// A frame orientation from `quat`, `euler`, `axisangle`, `xyaxes` or `zaxis`.
    fn orientation(&mut self, n: Node<'a, 'i>) -> Q {
        let given: Vec<&str> = ORIENTATION
            .iter()
            .copied()
            .filter(|a| n.attribute(*a).is_some())
            .collect();
        if given.len() > 1 {
            let span = self.attr_span(n, given[1]);
            self.invalid(
                span,
                format!(
                    "`{}` and `{}` both give the orientation",
                    given[0], given[1]
                ),
                "second orientation",
                "keep one of quat, euler, axisangle, xyaxes, zaxis",
            );
            return IDENTITY;
        }
        let Some(&kind) = given.first() else {
            return IDENTITY;
        };
        let (v, span) = (n.attribute(kind).unwrap_or(""), self.attr_span(n, kind));
        let len = match kind {
            "quat" | "axisangle" => 4,
            "xyaxes" => 6,
            _ => 3,
        };
        let Some(x) = self.numbers(v, span, kind, len, false) else {
            return IDENTITY;
        };
        let q = match kind {
            "quat" => qnormalize([x[0], x[1], x[2], x[3]]),
            "axisangle" => normalize([x[0], x[1], x[2]]).map(|a| axis_angle(a, self.angle(x[3]))),
            "euler" => {
                // MJCF's default `eulerseq="xyz"`: intrinsic rotations about x, then y, then z.
                let r = |axis: V3, a: f64| axis_angle(axis, self.angle(a));
                Some(qmul(
                    qmul(r([1.0, 0.0, 0.0], x[0]), r([0.0, 1.0, 0.0], x[1])),
                    r([0.0, 0.0, 1.0], x[2]),
                ))
            }
            "zaxis" => normalize([x[0], x[1], x[2]]).map(z_to),
            _ => {
                // xyaxes: x axis, then y made orthogonal to it, z = x cross y.
                let xa = normalize([x[0], x[1], x[2]]);
                let ya = xa.and_then(|xa| {
                    let y = [x[3], x[4], x[5]];
                    normalize(sub(y, scale(xa, dot(xa, y))))
                });
                xa.zip(ya).map(|(xa, ya)| {
                    let za = cross(xa, ya);
                    mat_quat(&transpose(&[xa, ya, za]))
                })
            }
        };
        q.unwrap_or_else(|| {
            self.invalid(
                span,
                format!("`{kind}` has a zero axis"),
                "degenerate",
                "give a non-zero axis",
            );
            IDENTITY
        })
    }

    fn model(&mut self, root: Node<'a, 'i>) -> Option<Mjcf> {
        if root.tag_name().name() != "mujoco" {
            let span = self.tag_span(root);
            self.invalid(
                span,
                format!(
                    "the root element is `<{}>`, not `<mujoco>`",
                    root.tag_name().name()
                ),
                "not MJCF",
                "an MJCF model starts with `<mujoco model=\"...\">`",
            );
            return None;
        }
        self.check_attrs(root, &["model"], &[]);
        let children = self.elements(root);
        // The compiler settings apply to the whole file, wherever they appear.
        for c in children.iter().filter(|c| c.has_tag_name("compiler")) {
            self.compiler(*c);
        }
        for c in children.iter().filter(|c| c.has_tag_name("default")) {
            self.defaults(*c, None);
        }
        // Mesh assets, by name (MuJoCo's default name: the file's stem).
        for a in children.iter().filter(|c| c.has_tag_name("asset")) {
            for m in self
                .elements(*a)
                .into_iter()
                .filter(|m| m.has_tag_name("mesh"))
            {
                let stem = m.attribute("file").and_then(|f| {
                    let f = f.rsplit(['/', '\\']).next()?;
                    Some(f.rsplit_once('.').map_or(f, |(stem, _)| stem))
                });
                if let Some(name) = m.attribute("name").or(stem) {
                    self.mesh_nodes.insert(name, m);
                }
            }
        }
        let (mut timestep, mut gravity) = (0.002, [0.0, 0.0, -9.81]);
        let (mut impratio, mut elliptic, mut integrator) = (1.0, false, None);
        let mut fluid = None;
        let mut flags = Flags::default();
        let mut actuator_nodes = vec![];
        let mut exclude_nodes = vec![];
        let mut tendon_nodes = vec![];
        let mut equality_nodes = vec![];
        let mut sensor_nodes = vec![];
        for c in &children {
            match c.tag_name().name() {
                "compiler" | "default" => {}
                "option" => {
                    self.check_attrs(
                        *c,
                        &["timestep", "gravity", "density", "viscosity", "wind"],
                        &[
                            "iterations",
                            "ls_iterations",
                            "tolerance",
                            "ls_tolerance",
                            "solver",
                            "integrator",
                            "cone",
                            "jacobian",
                            "impratio",
                            "noslip_iterations",
                            "noslip_tolerance",
                            "ccd_iterations",
                            "ccd_tolerance",
                            "o_margin",
                            "o_solref",
                            "o_solimp",
                            "o_friction",
                            "apirate",
                        ],
                    );
                    timestep = self.real(*c, "main", "timestep", timestep);
                    if timestep <= 0.0 {
                        let s = self.attr_span(*c, "timestep");
                        self.invalid(
                            s,
                            "`timestep` must be positive".into(),
                            "not positive",
                            "e.g. `0.002`",
                        );
                        timestep = 0.002;
                    }
                    gravity = self.vec3(*c, "main", "gravity", gravity);
                    impratio = self.real(*c, "main", "impratio", impratio);
                    elliptic = c.attribute("cone") == Some("elliptic");
                    integrator = c
                        .attribute("integrator")
                        .filter(|i| *i != "Euler")
                        .map(|i| (i.to_string(), self.attr_span(*c, "integrator")));
                    let density = self.amount(*c, "main", "density", 0.0);
                    let viscosity = self.amount(*c, "main", "viscosity", 0.0);
                    let wind = self.vec3(*c, "main", "wind", [0.0; 3]);
                    if density > 0.0 || viscosity > 0.0 {
                        fluid = Some(Fluid {
                            density,
                            viscosity,
                            wind,
                        });
                    }
                    for f in self.elements(*c) {
                        if f.has_tag_name("flag") {
                            self.flags(f, &mut flags);
                        } else {
                            self.unsupported_element(f);
                        }
                    }
                }
                "worldbody" => self.world(*c),
                "actuator" => actuator_nodes.extend(self.elements(*c)),
                "tendon" => tendon_nodes.extend(self.elements(*c)),
                "sensor" => sensor_nodes.extend(self.elements(*c)),
                "contact" => exclude_nodes.extend(self.elements(*c)),
                "equality" => equality_nodes.extend(self.elements(*c)),
                t if IGNORED_TOP.contains(&t) => {}
                _ => self.unsupported_element(*c),
            }
        }
        if self.bodies.is_empty() {
            let span = self.tag_span(root);
            self.invalid(
                span,
                "the model has no `<worldbody>`".into(),
                "no bodies",
                "add `<worldbody>` with the model's bodies",
            );
            return None;
        }
        self.settotalmass(root);
        if flags.off.contains(&"gravity") {
            gravity = [0.0; 3];
        }
        let constraint = flags.off.contains(&"constraint");
        let softness = [
            (
                self.contact_softness,
                "contact",
                "contact softness (`solref`/`solimp`",
                "Joule's soft contact has MuJoCo's default softness (time constant 0.02 s, impedance 0.95): where contact matters the motion differs (Brax's half_cheetah, `solimp=\"0 0.8 0.01\"`: 3.2 cm from MuJoCo's at 0.5 s, 0.8 cm from MuJoCo's with its default); `joule import --friction mujoco` writes MuJoCo's own contact law, which honours it against planes",
            ),
            (
                self.limit_softness,
                "limit",
                "joint limit softness (`solreflimit`/`solimplimit`",
                "Joule's soft ranges have MuJoCo's default softness (time constant 0.02 s, impedance 0.95)",
            ),
        ];
        for (span, flag, what, help) in softness {
            if let Some(span) = span.filter(|_| !constraint && !flags.off.contains(&flag)) {
                self.diags.push(
                    Diagnostic::error(
                        "mjcf::softness",
                        format!("this {what} other than MuJoCo's default) is not honoured"),
                        span,
                        "not MuJoCo's default",
                    )
                    .warning()
                    .with_help(help),
                );
            }
        }
        if constraint || flags.off.contains(&"contact") {
            for g in self.bodies.iter_mut().flat_map(|b| &mut b.geoms) {
                (g.contype, g.conaffinity) = (0, 0);
            }
        }
        if constraint || flags.off.contains(&"limit") {
            for j in self.bodies.iter_mut().flat_map(|b| &mut b.joints) {
                j.range = None;
            }
        }
        if constraint || flags.off.contains(&"frictionloss") {
            for j in self.bodies.iter_mut().flat_map(|b| &mut b.joints) {
                j.frictionloss = 0.0;
            }
        }
        if flags.off.contains(&"spring") {
            for j in self.bodies.iter_mut().flat_map(|b| &mut b.joints) {
                j.stiffness = 0.0;
            }
        }
        if flags.off.contains(&"damper") {
            for j in self.bodies.iter_mut().flat_map(|b| &mut b.joints) {
                j.damping = 0.0;
            }
        }
        // Every tendon's name, the refused ones too (their actuators and
        // sensors are skipped, not reported as unknown names).
        let mut tendons = vec![];
        let mut tendon_names = vec![];
        for n in tendon_nodes {
            let k = tendon_names.len();
            tendon_names.push(
                n.attribute("name")
                    .map_or_else(|| format!("tendon{k}"), str::to_string),
            );
            if let Some(mut t) = self.tendon(n, &tendon_names[k]) {
                // The `spring` and `damper` flags turn off tendons' too.
                if flags.off.contains(&"spring") {
                    t.stiffness = 0.0;
                }
                if flags.off.contains(&"damper") {
                    t.damping = 0.0;
                }
                if constraint || flags.off.contains(&"limit") {
                    t.limit = None;
                }
                tendons.push(t);
            }
        }
        let actuators = actuator_nodes
            .into_iter()
            .filter_map(|n| self.actuator(n, &tendons, &tendon_names))
            .collect();
        let sensors = sensor_nodes
            .into_iter()
            .enumerate()
            .filter_map(|(k, n)| self.sensor(n, k, &tendons))
            .collect();
        let excludes = exclude_nodes
            .into_iter()
            .filter_map(|n| self.exclude(n))
            .collect();
        let equalities = equality_nodes
            .into_iter()
            .filter_map(|n| self.equality(n, &tendons, &tendon_names))
            .filter(|_| !constraint && !flags.off.contains(&"equality"))
            .collect();
        Some(Mjcf {
            model: root
                .attribute("model")
                .unwrap_or("MuJoCo Model")
                .to_string(),
            timestep,
            gravity,
            fluid,
            bodies: std::mem::take(&mut self.bodies),
            actuators,
            tendons,
            sensors,
            excludes,
            equalities,
            impratio,
            elliptic,
            integrator,
        })
    }

    /// The index of the imported tendon `name` that `what` (an actuator,
    /// an equality) names; `None` with a diagnostic where the tendon was
    /// refused (`what` goes with it) or does not exist.
    fn tendon_named(
        &mut self,
        (name, span): (&str, Span),
        tendons: &[Tendon],
        tendon_names: &[String],
        what: &str,
    ) -> Option<usize> {
        if let Some(t) = tendons.iter().position(|t| t.name == name) {
            return Some(t);
        }
        if tendon_names.iter().any(|t| t == name) {
            self.unsupported(
                span,
                format!("{what} on a tendon that is not imported"),
                "skipped tendon",
            );
        } else {
            self.invalid(
                span,
                format!("no tendon named `{name}`"),
                "unknown tendon",
                "name a tendon declared in `<tendon>`",
            );
        }
        None
    }

    /// An `<equality><tendon>` on one imported tendon: MuJoCo's soft
    /// constraint holding its length at the reference pose's plus
    /// `polycoef[0]`; `None` where it is inactive (`active="false"`) or
    /// not supported (two tendons, other equalities, a negative `solref`:
    /// stiffness and damping given directly), with a diagnostic for those.
    fn equality(
        &mut self,
        n: Node<'a, 'i>,
        tendons: &[Tendon],
        tendon_names: &[String],
    ) -> Option<Equality> {
        if !n.has_tag_name("tendon") {
            self.unsupported(
                self.tag_span(n),
                format!("an `<equality><{}>`", n.tag_name().name()),
                "unsupported equality (tendon equalities are)",
            );
            return None;
        }
        let class = n.attribute("class").unwrap_or("main");
        self.check_attrs(
            n,
            &[
                "tendon1", "tendon2", "polycoef", "solref", "solimp", "active",
            ],
            &["name"],
        );
        if let Some((_, s)) = self.get(n, class, "tendon2") {
            self.unsupported(s, "an equality of two tendons".into(), "second tendon");
            return None;
        }
        if self
            .get(n, class, "active")
            .is_some_and(|(v, _)| v == "false")
        {
            return None;
        }
        let span = self.tag_span(n);
        let Some((tname, tspan)) = self.get(n, class, "tendon1") else {
            self.invalid(
                span,
                "a tendon equality needs `tendon1`".into(),
                "no tendon",
                "name the tendon it holds: `<tendon tendon1=\"coupling\"/>`",
            );
            return None;
        };
        let tendon = self.tendon_named((tname, tspan), tendons, tendon_names, "an equality")?;
        let polycoef = self.padded(n, class, "polycoef", &[0.0, 1.0, 0.0, 0.0, 0.0])?;
        let (solref, solimp) = self.soft(n, class, ("solref", "solimp"), span)?;
        Some(Equality {
            tendon,
            offset: polycoef[0],
            solref,
            solimp,
            span,
        })
    }

    /// The numbers of the attribute `attr` (from the defaults too), at
    /// most as many as `default` holds, the missing ones `default`'s.
    fn padded(
        &mut self,
        n: Node<'a, 'i>,
        class: &str,
        attr: &str,
        default: &[f64],
    ) -> Option<Vec<f64>> {
        match self.get(n, class, attr) {
            Some((v, s)) => {
                let mut x = self.numbers(v, s, attr, default.len(), true)?;
                x.extend_from_slice(&default[x.len()..]);
                Some(x)
            }
            None => Some(default.to_vec()),
        }
    }

    /// Where the `solref` and `solimp` read from an element (under the
    /// attribute names `names`) differ from MuJoCo's defaults, if they do.
    fn differs(
        &self,
        n: Node<'a, 'i>,
        class: &str,
        names: (&str, &str),
        solref: &[f64],
        solimp: &[f64],
    ) -> Option<Span> {
        if solref != DEFAULT_SOLREF {
            self.get(n, class, names.0).map(|g| g.1)
        } else if solimp != DEFAULT_SOLIMP {
            self.get(n, class, names.1).map(|g| g.1)
        } else {
            None
        }
    }

    /// A soft constraint's `solref` (time constant, damping ratio) and
    /// `solimp` under the attribute names `names` (`solref`/`solimp`,
    /// `solreflimit`/`solimplimit`), MuJoCo's defaults where absent; a
    /// negative `solref` (stiffness and damping given directly) is
    /// unsupported (reported at the attribute, else at `span`).
    fn soft(
        &mut self,
        n: Node<'a, 'i>,
        class: &str,
        (solref_attr, solimp_attr): (&str, &str),
        span: Span,
    ) -> Option<((f64, f64), [f64; 5])> {
        let solref = self.padded(n, class, solref_attr, &DEFAULT_SOLREF)?;
        let solimp = self.padded(n, class, solimp_attr, &DEFAULT_SOLIMP)?;
        if solref[0] <= 0.0 || solref[1] <= 0.0 {
            let s = self.get(n, class, solref_attr).map_or(span, |g| g.1);
            self.unsupported(
                s,
                format!("a `{solref_attr}` of stiffness and damping (negative values)"),
                "direct stiffness",
            );
            return None;
        }
        Some((
            (solref[0], solref[1]),
            [solimp[0], solimp[1], solimp[2], solimp[3], solimp[4]],
        ))
    }

    /// An `<option><flag>`: the flags turned off that the importer honours
    /// are added to `flags` (`constraint`: contact, limits and joint
    /// friction; `contact`, `limit`, `frictionloss`, `gravity`, `spring`,
    /// `damper`); the flags that change
    /// nothing the importer models are ignored; any other flag away from
    /// MuJoCo's default is unsupported.
    fn flags(&mut self, f: Node<'a, 'i>, flags: &mut Flags) {
        // Flags whose default is `enable`, and those whose default is `disable`.
        const ON: &[&str] = &[
            "constraint",
            "equality",
            "frictionloss",
            "limit",
            "contact",
            "spring",
            "damper",
            "gravity",
            "clampctrl",
            "warmstart",
            "filterparent",
            "actuation",
            "refsafe",
            "sensor",
            "midphase",
            "nativeccd",
            "eulerdamp",
            "autoreset",
            "passive",
        ];
        const OFF: &[&str] = &[
            "override",
            "energy",
            "fwdinv",
            "invdiscrete",
            "multiccd",
            "island",
        ];
        // Turned off, what they act on is not imported, or refused anyway.
        const NEUTRAL: &[&str] = &[
            "warmstart",
            "refsafe",
            "sensor",
            "midphase",
            "nativeccd",
            "autoreset",
            "island",
            "energy",
            "fwdinv",
            "invdiscrete",
            "multiccd",
            "equality",
        ];
        const HONOURED: &[&str] = &[
            "constraint",
            "contact",
            "limit",
            "frictionloss",
            "gravity",
            "spring",
            "damper",
        ];
        for a in f.attributes() {
            let (name, value) = (a.name(), a.value());
            let span = self.span(f, a.range_qname());
            let default = if ON.contains(&name) {
                "enable"
            } else if OFF.contains(&name) {
                "disable"
            } else {
                self.unsupported(span, format!("the flag `{name}`"), "unknown flag");
                continue;
            };
            if !matches!(value, "enable" | "disable") {
                let vspan = self.span(f, a.range_value());
                self.invalid(
                    vspan,
                    format!("flag `{name}` must be `enable` or `disable`"),
                    "not a flag value",
                    "e.g. `contact=\"disable\"`",
                );
                continue;
            }
            if value == default || NEUTRAL.contains(&name) {
                continue;
            }
            match HONOURED.iter().find(|h| **h == name) {
                Some(h) => flags.off.push(h),
                None => self.unsupported(
                    span,
                    format!("`{name}=\"{value}\"`"),
                    "a flag away from MuJoCo's default",
                ),
            }
        }
    }

    fn compiler(&mut self, c: Node<'a, 'i>) {
        self.check_attrs(
            c,
            &[
                "angle",
                "inertiafromgeom",
                "settotalmass",
                "coordinate",
                "eulerseq",
                "autolimits",
                "meshdir",
                "assetdir",
            ],
            &[
                "texturedir",
                "strippath",
                "discardvisual",
                "fusestatic",
                "usethread",
                "convexhull",
                "exactmeshinertia",
                "alignfree",
                "saveinertial",
            ],
        );
        // `meshdir` overrides `assetdir`, as in MuJoCo.
        if let Some(dir) = c.attribute("meshdir").or(c.attribute("assetdir")) {
            self.meshdir = dir.to_string();
        }
        match c.attribute("angle") {
            None | Some("degree") => self.degrees = true,
            Some("radian") => self.degrees = false,
            Some(_) => {
                let s = self.attr_span(c, "angle");
                self.invalid(
                    s,
                    "`angle` must be `degree` or `radian`".into(),
                    "unknown unit",
                    "e.g. `angle=\"radian\"`",
                );
            }
        }
        match c.attribute("inertiafromgeom") {
            None | Some("auto") => self.from_geom = FromGeom::Auto,
            Some("true") => self.from_geom = FromGeom::Always,
            Some("false") => self.from_geom = FromGeom::Never,
            Some(_) => {
                let s = self.attr_span(c, "inertiafromgeom");
                self.invalid(
                    s,
                    "`inertiafromgeom` must be `true`, `false` or `auto`".into(),
                    "not a flag",
                    "e.g. `true`",
                );
            }
        }
        if let Some(v) = c.attribute("coordinate").filter(|v| *v != "local") {
            let s = self.attr_span(c, "coordinate");
            self.unsupported(s, format!("`coordinate=\"{v}\"`"), "only local coordinates");
        }
        if let Some(v) = c.attribute("eulerseq").filter(|v| *v != "xyz") {
            let s = self.attr_span(c, "eulerseq");
            self.unsupported(s, format!("`eulerseq=\"{v}\"`"), "only `xyz`");
        }
        if c.attribute("autolimits") == Some("false") {
            let s = self.attr_span(c, "autolimits");
            self.unsupported(s, "`autolimits=\"false\"`".into(), "limits follow `range`");
        }
    }

    /// `<default>` classes (the outermost is `main`), nested.
    fn defaults(&mut self, n: Node<'a, 'i>, parent: Option<String>) {
        let name = match (n.attribute("class"), &parent) {
            (Some(c), _) => c.to_string(),
            (None, None) => "main".to_string(),
            (None, Some(_)) => {
                let s = self.tag_span(n);
                self.invalid(
                    s,
                    "a nested `<default>` needs a `class`".into(),
                    "no class",
                    "e.g. `<default class=\"leg\">`",
                );
                return;
            }
        };
        let mut items = HashMap::new();
        for c in self.elements(n) {
            match c.tag_name().name() {
                "default" => self.defaults(c, Some(name.clone())),
                tag => {
                    items.insert(tag, c);
                }
            }
        }
        self.classes.insert(name, Class { parent, items });
    }

    fn world(&mut self, w: Node<'a, 'i>) {
        let span = self.tag_span(w);
        self.bodies.push(Body {
            name: "world".into(),
            parent: 0,
            xpos: [0.0; 3],
            xquat: IDENTITY,
            geoms: vec![],
            joints: vec![],
            sites: vec![],
            mass: MassProps::default(),
            span,
        });
        self.inertials.push(None);
        self.body_contents(w, 0, "main");
    }

    /// The geoms, joints, sites, inertial and child bodies of body `id`.
    fn body_contents(&mut self, n: Node<'a, 'i>, id: usize, class: &str) {
        let mut children = vec![];
        for c in self.elements(n) {
            let cls = c.attribute("class").unwrap_or(class);
            match c.tag_name().name() {
                "geom" => {
                    if let Some(g) = self.geom(c, cls) {
                        self.bodies[id].geoms.push(g);
                    }
                }
                "joint" | "freejoint" if id == 0 => {
                    let s = self.tag_span(c);
                    self.invalid(
                        s,
                        "the world body cannot have joints".into(),
                        "joint in worldbody",
                        "put the joint inside a `<body>`",
                    );
                }
                "joint" | "freejoint" => {
                    if let Some(j) = self.joint(c, cls) {
                        self.bodies[id].joints.push(j);
                    }
                }
                "site" => {
                    self.check_attrs(
                        c,
                        &[&["pos"][..], ORIENTATION].concat(),
                        &["type", "size", "fromto"],
                    );
                    let name = c.attribute("name").map(str::to_string);
                    let pos = self.vec3(c, cls, "pos", [0.0; 3]);
                    let quat = self.orientation(c);
                    if let Some(name) = name {
                        self.bodies[id].sites.push(Site { name, pos, quat });
                    }
                }
                "inertial" if id > 0 => self.inertial(c, id),
                "body" => children.push(c),
                t if IGNORED_IN_BODY.contains(&t) => {}
                _ => self.unsupported_element(c),
            }
        }
        // Planes are static: in the world or in bodies welded to it.
        let mut moving = false;
        let mut b = id;
        while b != 0 {
            moving |= !self.bodies[b].joints.is_empty();
            b = self.bodies[b].parent;
        }
        if moving {
            let planes: Vec<Span> = self.bodies[id]
                .geoms
                .iter()
                .filter(|g| g.kind == GeomKind::Plane)
                .map(|g| g.span)
                .collect();
            for span in planes {
                self.unsupported(
                    span,
                    "a plane geom inside a moving body".into(),
                    "planes belong to the worldbody or bodies without joints",
                );
            }
            self.bodies[id].geoms.retain(|g| g.kind != GeomKind::Plane);
        }
        let b = &self.bodies[id];
        let (xpos, xquat) = (b.xpos, b.xquat);
        let geom_mass = MassProps::combine(
            &b.geoms
                .iter()
                .map(|g| g.kind.mass_props(g.mass).moved(g.pos, g.quat))
                .collect::<Vec<_>>(),
        );
        self.bodies[id].mass = match (self.from_geom, self.inertials[id]) {
            // As in MuJoCo, the world has no mass (its geoms are static).
            _ if id == 0 => MassProps::default(),
            (FromGeom::Always, _) | (FromGeom::Auto, None) => geom_mass,
            (_, Some(m)) => m,
            (FromGeom::Never, None) => MassProps::default(),
        };
        for c in children {
            self.body(c, id, xpos, xquat, class);
        }
    }

    fn body(&mut self, n: Node<'a, 'i>, parent: usize, ppos: V3, pquat: Q, class: &str) {
        self.check_attrs(
            n,
            &[&["pos"][..], ORIENTATION, &["childclass"]].concat(),
            &[],
        );
        if n.attribute("mocap") == Some("true") {
            let s = self.attr_span(n, "mocap");
            self.unsupported(s, "a mocap body".into(), "mocap");
        }
        let class = n.attribute("childclass").unwrap_or(class).to_string();
        let pos = self.vec3(n, &class, "pos", [0.0; 3]);
        let quat = self.orientation(n);
        let id = self.bodies.len();
        let name = n
            .attribute("name")
            .map_or_else(|| format!("body{id}"), str::to_string);
        let span = self.tag_span(n);
        self.bodies.push(Body {
            name,
            parent,
            xpos: add(ppos, rotate(pquat, pos)),
            xquat: qnormalize(qmul(pquat, quat)).unwrap_or(IDENTITY),
            geoms: vec![],
            joints: vec![],
            sites: vec![],
            mass: MassProps::default(),
            span,
        });
        self.inertials.push(None);
        self.body_contents(n, id, &class);
    }

    fn inertial(&mut self, n: Node<'a, 'i>, id: usize) {
        self.check_attrs(
            n,
            &[
                &["pos"][..],
                ORIENTATION,
                &["mass", "diaginertia", "fullinertia"],
            ]
            .concat(),
            &[],
        );
        let pos = self.vec3(n, "main", "pos", [0.0; 3]);
        let q = self.orientation(n);
        let mass = self.amount(n, "main", "mass", 0.0);
        let tensor = match (n.attribute("diaginertia"), n.attribute("fullinertia")) {
            (Some(v), None) => {
                let s = self.attr_span(n, "diaginertia");
                self.numbers(v, s, "diaginertia", 3, false)
                    .map(|d| diag([d[0], d[1], d[2]]))
            }
            (None, Some(v)) => {
                let s = self.attr_span(n, "fullinertia");
                self.numbers(v, s, "fullinertia", 6, false)
                    .map(|f| [[f[0], f[3], f[4]], [f[3], f[1], f[5]], [f[4], f[5], f[2]]])
            }
            _ => {
                let s = self.tag_span(n);
                self.invalid(
                    s,
                    "`<inertial>` needs exactly one of `diaginertia` and `fullinertia`".into(),
                    "inertia missing",
                    "e.g. `diaginertia=\"0.01 0.01 0.02\"`",
                );
                None
            }
        };
        if let Some(t) = tensor {
            let principal = MassProps {
                mass,
                com: [0.0; 3],
                inertia: t,
            };
            self.inertials[id] = Some(principal.moved(pos, q));
        }
    }

    fn geom(&mut self, n: Node<'a, 'i>, class: &str) -> Option<Geom> {
        self.check_attrs(
            n,
            &[
                &["type", "size", "fromto", "pos"][..],
                ORIENTATION,
                &[
                    "density",
                    "mass",
                    "contype",
                    "conaffinity",
                    "friction",
                    "fluidshape",
                ],
            ]
            .concat(),
            &[
                "condim",
                "solimp",
                "solref",
                "solmix",
                "margin",
                "gap",
                "priority",
                "fluidcoef",
                // Only meaningful with their geom types, which are reported.
                "mesh",
                "hfield",
            ],
        );
        if let Some(("ellipsoid", s)) = self.get(n, class, "fluidshape") {
            self.unsupported(
                s,
                "the ellipsoid fluid model (`fluidshape`)".into(),
                "fluid model",
            );
        }
        let (kind, kspan) = self
            .get(n, class, "type")
            .unwrap_or(("sphere", self.tag_span(n)));
        let need = match kind {
            "sphere" => 1,
            "capsule" | "cylinder" => 2,
            "box" | "ellipsoid" => 3,
            "plane" | "mesh" => 0,
            "hfield" => {
                self.flat_hfield(n, class, kspan)?;
                0
            }
            other => {
                self.unsupported(
                    kspan,
                    format!("geom type `{other}`"),
                    "unsupported geom type",
                );
                return None;
            }
        };
        if let Some((_, s)) = self.get(n, class, "mesh").filter(|_| kind != "mesh") {
            self.unsupported(
                s,
                format!("a `{kind}` geom fitted to a mesh"),
                "MuJoCo fits the primitive to the mesh",
            );
            return None;
        }
        let fromto = match self.get(n, class, "fromto") {
            Some((v, s)) if matches!(kind, "capsule" | "cylinder") => {
                Some(self.numbers(v, s, "fromto", 6, false)?)
            }
            Some((_, s)) => {
                self.unsupported(s, format!("`fromto` on a `{kind}` geom"), "fromto");
                return None;
            }
            None => None,
        };
        let size = match (self.get(n, class, "size"), need) {
            (_, 0) => vec![],
            (Some((v, s)), _) => self.numbers(v, s, "size", 3, true)?,
            (None, _) => vec![],
        };
        let need = if fromto.is_some() { 1 } else { need };
        if size.len() < need || size[..need].iter().any(|x| *x <= 0.0) {
            let s = self.get(n, class, "size").map_or(self.tag_span(n), |g| g.1);
            self.invalid(
                s,
                format!("a `{kind}` geom needs {need} positive size(s)"),
                "size",
                "sizes are radii and half lengths in metres",
            );
            return None;
        }
        let (pos, quat, half) = match &fromto {
            Some(f) => {
                let (a, b) = ([f[0], f[1], f[2]], [f[3], f[4], f[5]]);
                let d = sub(b, a);
                let Some(axis) = normalize(d) else {
                    let s = self
                        .get(n, class, "fromto")
                        .map_or(self.tag_span(n), |g| g.1);
                    self.invalid(
                        s,
                        "`fromto` has equal end points".into(),
                        "zero length",
                        "give two different points",
                    );
                    return None;
                };
                (scale(add(a, b), 0.5), z_to(axis), norm(d) / 2.0)
            }
            None => (
                self.vec3(n, class, "pos", [0.0; 3]),
                self.orientation(n),
                size.get(1).copied().unwrap_or(0.0),
            ),
        };
        let (mut pos, mut quat) = (pos, quat);
        let mesh = if kind == "mesh" {
            let frame = self.mesh_frame(n, class)?;
            // MuJoCo's geom frame: at the mesh's centre of mass, along its
            // principal axes.
            pos = add(pos, rotate(quat, frame.pos));
            quat = qmul(quat, frame.quat);
            Some(GeomKind::Mesh {
                half: frame.half,
                volume: frame.volume,
            })
        } else {
            None
        };
        let kind = match kind {
            _ if mesh.is_some() => mesh?,
            "sphere" => GeomKind::Sphere { radius: size[0] },
            "capsule" => GeomKind::Capsule {
                radius: size[0],
                half,
            },
            "cylinder" => GeomKind::Cylinder {
                radius: size[0],
                half,
            },
            "box" => GeomKind::Box {
                half: [size[0], size[1], size[2]],
            },
            "ellipsoid" => GeomKind::Ellipsoid {
                radii: [size[0], size[1], size[2]],
            },
            _ => GeomKind::Plane,
        };
        let mass = match self.get(n, class, "mass") {
            Some(_) => self.amount(n, class, "mass", 0.0),
            None => self.amount(n, class, "density", 1000.0) * kind.volume(),
        };
        let friction = match self.get(n, class, "friction") {
            Some((v, s)) => self
                .numbers(v, s, "friction", 3, true)
                .map_or(1.0, |f| f[0]),
            None => 1.0,
        };
        let (contype, conaffinity) = (
            self.int(n, class, "contype", 1),
            self.int(n, class, "conaffinity", 1),
        );
        let solref = self.padded(n, class, "solref", &DEFAULT_SOLREF)?;
        let solimp = self.padded(n, class, "solimp", &DEFAULT_SOLIMP)?;
        if contype | conaffinity != 0 && self.contact_softness.is_none() && !self.honours_softness {
            self.contact_softness = self.differs(n, class, ("solref", "solimp"), &solref, &solimp);
        }
        // `gap` is read for its diagnostics alone: MuJoCo 4 widens its
        // collision detection by it and excludes the contacts beyond the
        // margin, so the dynamics do not change with it.
        self.real(n, class, "gap", 0.0);
        let contact = GeomContact {
            condim: self.int(n, class, "condim", 3),
            solref: [solref[0], solref[1]],
            solimp: [solimp[0], solimp[1], solimp[2], solimp[3], solimp[4]],
            solmix: self.real(n, class, "solmix", 1.0),
            margin: self.real(n, class, "margin", 0.0),
            priority: self.int(n, class, "priority", 0),
        };
        Some(Geom {
            name: n.attribute("name").map(str::to_string),
            kind,
            pos,
            quat,
            mass,
            contype,
            conaffinity,
            friction,
            contact,
            span: self.tag_span(n),
        })
    }

    /// The mass frame of the mesh a `mesh` geom names (read and computed
    /// once per mesh); `None` when that is reported.
    fn mesh_frame(&mut self, n: Node<'a, 'i>, class: &str) -> Option<mesh::MeshFrame> {
        let Some((name, nspan)) = self.get(n, class, "mesh") else {
            let s = self.tag_span(n);
            self.invalid(
                s,
                "a `mesh` geom needs `mesh`, the name of a mesh asset".into(),
                "no mesh",
                "name a `<mesh>` of `<asset>`",
            );
            return None;
        };
        if let Some(frame) = self.mesh_frames.get(name) {
            return *frame;
        }
        let frame = match self.mesh_nodes.get(name).copied() {
            Some(m) => self.mesh_asset(m),
            None => {
                self.invalid(
                    nspan,
                    format!("no mesh asset named `{name}`"),
                    "unknown mesh",
                    "declare it as `<asset><mesh name=\"...\" file=\"...\"/></asset>`",
                );
                None
            }
        };
        self.mesh_frames.insert(name, frame);
        frame
    }

    /// A `<mesh>` asset's triangles, placed, and their mass frame.
    fn mesh_asset(&mut self, m: Node<'a, 'i>) -> Option<mesh::MeshFrame> {
        self.check_attrs(
            m,
            &[
                "file", "vertex", "face", "scale", "refpos", "refquat", "inertia",
            ],
            &[
                "content_type",
                "normal",
                "texcoord",
                "smoothnormal",
                "maxhullvert",
            ],
        );
        let class = m.attribute("class").unwrap_or("main");
        let inertia = match self.get(m, class, "inertia") {
            None | Some(("legacy", _)) => mesh::MeshInertia::Legacy,
            Some(("exact", _)) => mesh::MeshInertia::Exact,
            Some(("shell", _)) => mesh::MeshInertia::Shell,
            Some((v, s)) => {
                self.unsupported(s, format!("mesh inertia `{v}`"), "legacy, exact or shell");
                return None;
            }
        };
        let mut triangles = match (m.attribute("file"), m.attribute("vertex")) {
            (Some(file), None) => self.mesh_file(m, file)?,
            (None, Some(v)) => {
                let vs = self.numbers_any(v, self.attr_span(m, "vertex"), "vertex", 3)?;
                let Some(f) = m.attribute("face") else {
                    let s = self.attr_span(m, "vertex");
                    self.unsupported(
                        s,
                        "a mesh of vertices without faces (MuJoCo takes their convex hull)".into(),
                        "no `face`",
                    );
                    return None;
                };
                let fs = self.numbers_any(f, self.attr_span(m, "face"), "face", 3)?;
                if fs.iter().any(|&i| i < 0.0 || i.fract() != 0.0) {
                    let s = self.attr_span(m, "face");
                    self.invalid(
                        s,
                        "`face` must be vertex indices".into(),
                        "not an index",
                        "three indices from 0 per face",
                    );
                    return None;
                }
                mesh::Triangles {
                    // Single precision, as MuJoCo stores them (and files hold them).
                    vertices: vs
                        .chunks_exact(3)
                        .map(|c| [c[0], c[1], c[2]].map(|x| x as f32 as f64))
                        .collect(),
                    faces: fs
                        .chunks_exact(3)
                        .map(|c| [c[0] as usize, c[1] as usize, c[2] as usize])
                        .collect(),
                }
            }
            _ => {
                let s = self.tag_span(m);
                self.invalid(
                    s,
                    "a mesh needs exactly one of `file` and `vertex`".into(),
                    "no vertices",
                    "e.g. `<mesh name=\"part\" file=\"part.stl\"/>`",
                );
                return None;
            }
        };
        let refpos = self.vec3(m, class, "refpos", [0.0; 3]);
        let refquat = match self.get(m, class, "refquat") {
            Some((v, s)) => self
                .numbers(v, s, "refquat", 4, false)
                .map_or([1.0, 0.0, 0.0, 0.0], |q| [q[0], q[1], q[2], q[3]]),
            None => [1.0, 0.0, 0.0, 0.0],
        };
        let scale_by = self.vec3(m, class, "scale", [1.0; 3]);
        triangles.place(refpos, refquat, scale_by);
        match triangles.mass_frame(inertia) {
            Ok(f) => Some(f),
            Err(e) => {
                let s = self.tag_span(m);
                let name = m.attribute("name").unwrap_or("mesh");
                self.invalid(
                    s,
                    format!("mesh `{name}`: {e}"),
                    "its mass cannot be computed",
                    "MuJoCo's compiler refuses it too: check its vertices and faces",
                );
                None
            }
        }
    }

    /// Reads a mesh asset's `file` (relative to the model's folder and
    /// `meshdir`, as in MuJoCo).
    fn mesh_file(&mut self, m: Node<'a, 'i>, file: &str) -> Option<mesh::Triangles> {
        let at = self.attr_span(m, "file");
        let Some(folder) = self.folder.clone() else {
            self.invalid(
                at,
                format!("cannot read `{file}`: this model was not read from a file"),
                "mesh file",
                "import the model from its file (`joule import model.xml`), so its mesh files can be found",
            );
            return None;
        };
        let path = folder.join(&self.meshdir).join(file);
        let read = crate::read_input(&path, crate::MAX_INPUT_BYTES)
            .map_err(|e| {
                let help = crate::read_help(&e).unwrap_or_else(|| {
                    format!(
                        "looked for as `{}` (the model's folder and `meshdir`, as MuJoCo does)",
                        path.display()
                    )
                });
                (format!("cannot read the mesh file `{file}`: {e}"), help)
            })
            .and_then(|bytes| {
                mesh::read(&path, &bytes).map_err(|e| {
                    (
                        format!("mesh file `{file}`: {e}"),
                        "MuJoCo's binary `.msh` and other formats are not read: convert it to STL or OBJ".into(),
                    )
                })
            });
        match read {
            Ok(t) => Some(t),
            Err((message, help)) => {
                self.diags.push(
                    Diagnostic::error("mjcf::mesh", message, at, "mesh file").with_help(help),
                );
                None
            }
        }
    }

    /// A height field geom whose asset has no elevation data (MuJoCo's are
    /// then zero): its surface is the plane of the geom's x-y axes, written
    /// as that plane with a warning (MuJoCo's ends at the field's `size`, a
    /// plane does not); one with elevation data is refused.
    fn flat_hfield(&mut self, n: Node<'a, 'i>, class: &str, span: Span) -> Option<()> {
        let Some((name, nspan)) = self.get(n, class, "hfield") else {
            self.invalid(
                span,
                "an `hfield` geom needs `hfield`, the name of a height field asset".into(),
                "no hfield",
                "name an `<hfield>` of `<asset>`",
            );
            return None;
        };
        let asset = n.document().descendants().find(|a| {
            a.has_tag_name("hfield")
                && a.parent_element().is_some_and(|p| p.has_tag_name("asset"))
                && a.attribute("name") == Some(name)
        });
        let Some(asset) = asset else {
            self.invalid(
                nspan,
                format!("no height field asset named `{name}`"),
                "unknown hfield",
                "declare it as `<asset><hfield name=\"...\" .../></asset>`",
            );
            return None;
        };
        let data = ["file", "elevation"]
            .into_iter()
            .find_map(|a| asset.attribute(a).map(|v| (a, v)));
        if let Some((attr, v)) = data {
            let zeros =
                attr == "elevation" && v.split_whitespace().all(|x| x.parse::<f64>() == Ok(0.0));
            if !zeros {
                let s = self.attr_span(asset, attr);
                self.unsupported(s, "a height field with elevation data".into(), "elevations");
                return None;
            }
        }
        self.diags.push(
            Diagnostic::error(
                "mjcf::flat_hfield",
                format!("height field `{name}` has no elevation data: imported as the plane of its surface"),
                span,
                "a flat height field",
            )
            .warning()
            .with_help("MuJoCo's height field ends at its `size` in x and y; the plane does not"),
        );
        Some(())
    }

    fn joint(&mut self, n: Node<'a, 'i>, class: &str) -> Option<Joint> {
        let index = self.joint_count;
        self.joint_count += 1;
        let name = n
            .attribute("name")
            .map_or_else(|| format!("joint{index}"), str::to_string);
        let span = self.tag_span(n);
        if n.has_tag_name("freejoint") {
            self.check_attrs(n, &[], &["align"]);
            return Some(Joint {
                name,
                kind: JointKind::Free,
                pos: [0.0; 3],
                axis: [0.0, 0.0, 1.0],
                range: None,
                damping: 0.0,
                stiffness: 0.0,
                springref: 0.0,
                armature: 0.0,
                frictionloss: 0.0,
                reference: 0.0,
                limit: LimitLaw::DEFAULT,
                span,
            });
        }
        self.check_attrs(
            n,
            &[
                "type",
                "pos",
                "axis",
                "range",
                "limited",
                "damping",
                "stiffness",
                "springref",
                "armature",
                "ref",
                "frictionloss",
            ],
            &[
                "solreflimit",
                "solimplimit",
                "solreffriction",
                "solimpfriction",
                "margin",
                "actuatorfrclimited",
                "actuatorgravcomp",
            ],
        );
        let kind = match self.get(n, class, "type") {
            None | Some(("hinge", _)) => JointKind::Hinge,
            Some(("slide", _)) => JointKind::Slide,
            Some(("ball", _)) => JointKind::Ball,
            Some(("free", _)) => JointKind::Free,
            Some((t, s)) => {
                self.invalid(
                    s,
                    format!("unknown joint type `{t}`"),
                    "unknown",
                    "joint types are hinge, slide, ball and free",
                );
                return None;
            }
        };
        for attr in ["actuatorfrcrange"] {
            if let Some((_, s)) = self.get(n, class, attr) {
                if self.real(n, class, attr, 0.0) != 0.0 {
                    self.unsupported(
                        s,
                        format!("joint attribute `{attr}` (non-zero)"),
                        "unsupported attribute",
                    );
                }
            }
        }
        let axis = self.vec3(n, class, "axis", [0.0, 0.0, 1.0]);
        let axis = normalize(axis).unwrap_or_else(|| {
            let s = self.attr_span(n, "axis");
            self.invalid(
                s,
                "the joint axis is zero".into(),
                "zero axis",
                "give a non-zero direction",
            );
            [0.0, 0.0, 1.0]
        });
        let range = match (self.flag(n, class, "limited"), self.get(n, class, "range")) {
            (Some(false), _) | (None, None) => None,
            (Some(true), None) => {
                self.invalid(
                    span,
                    format!("joint `{name}` is limited but has no `range`"),
                    "no range",
                    "give `range=\"lo hi\"` or `limited=\"false\"`",
                );
                None
            }
            (_, Some((v, s))) => {
                let r = self.numbers(v, s, "range", 2, false)?;
                let r = match kind {
                    JointKind::Hinge => (self.angle(r[0]), self.angle(r[1])),
                    _ => (r[0], r[1]),
                };
                if r.0 >= r.1 {
                    self.invalid(
                        s,
                        "`range` must be increasing".into(),
                        "lo >= hi",
                        "write `range=\"lo hi\"` with lo < hi",
                    );
                    return None;
                }
                if matches!(kind, JointKind::Ball | JointKind::Free) {
                    self.unsupported(
                        s,
                        "a range on a ball or free joint".into(),
                        "unsupported limit",
                    );
                    None
                } else {
                    Some(r)
                }
            }
        };
        let solref = self.padded(n, class, "solreflimit", &DEFAULT_SOLREF)?;
        let solimp = self.padded(n, class, "solimplimit", &DEFAULT_SOLIMP)?;
        if range.is_some() && self.limit_softness.is_none() && !self.honours_softness {
            let names = ("solreflimit", "solimplimit");
            self.limit_softness = self.differs(n, class, names, &solref, &solimp);
        }
        let limit = LimitLaw {
            solref: [solref[0], solref[1]],
            solimp: [solimp[0], solimp[1], solimp[2], solimp[3], solimp[4]],
            margin: self.real(n, class, "margin", 0.0),
        };
        let springref = self.real(n, class, "springref", 0.0);
        // MuJoCo reads `ref` on hinges and slides only.
        let reference = match kind {
            JointKind::Hinge => {
                let r = self.real(n, class, "ref", 0.0);
                self.angle(r)
            }
            JointKind::Slide => self.real(n, class, "ref", 0.0),
            JointKind::Ball | JointKind::Free => 0.0,
        };
        Some(Joint {
            name,
            kind,
            pos: self.vec3(n, class, "pos", [0.0; 3]),
            axis,
            range,
            damping: self.amount(n, class, "damping", 0.0),
            stiffness: self.amount(n, class, "stiffness", 0.0),
            springref: if kind == JointKind::Hinge {
                self.angle(springref)
            } else {
                springref
            },
            armature: self.amount(n, class, "armature", 0.0),
            frictionloss: self.amount(n, class, "frictionloss", 0.0),
            reference,
            limit,
            span,
        })
    }

    /// The joint named `name`: its body and index among the body's joints.
    fn find_joint(&self, name: &str) -> Option<(usize, usize)> {
        self.bodies.iter().enumerate().find_map(|(b, body)| {
            body.joints
                .iter()
                .position(|j| j.name == name)
                .map(|j| (b, j))
        })
    }

    /// The hinge or slide `name` (written at `span`), or a diagnostic: an
    /// unknown name is an error, a ball or free joint unsupported (`what`
    /// names the element that refers to it).
    fn scalar_joint(&mut self, name: &str, span: Span, what: &str) -> Option<(usize, usize)> {
        let Some(joint) = self.find_joint(name) else {
            self.invalid(
                span,
                format!("no joint named `{name}`"),
                "unknown joint",
                "name a joint declared in the worldbody",
            );
            return None;
        };
        if matches!(
            self.bodies[joint.0].joints[joint.1].kind,
            JointKind::Ball | JointKind::Free
        ) {
            self.unsupported(
                span,
                format!("{what} on a ball or free joint"),
                "multi-DOF joint",
            );
            return None;
        }
        Some(joint)
    }

    /// A `<fixed>` tendon, or a `<spatial>` one through sites only, with
    /// its passive spring and damper and its soft limit; anything else is
    /// unsupported (wrapping geoms and pulleys, friction, armature, a spring
    /// with a dead band: they change the motion).
    fn tendon(&mut self, n: Node<'a, 'i>, name: &str) -> Option<Tendon> {
        let spatial = n.has_tag_name("spatial");
        if !spatial && !n.has_tag_name("fixed") {
            self.unsupported_element(n);
            return None;
        }
        let class = n.attribute("class").unwrap_or("main");
        self.check_attrs(
            n,
            &[
                "limited",
                "range",
                "stiffness",
                "damping",
                "frictionloss",
                "springlength",
                "armature",
                "solreflimit",
                "solimplimit",
            ],
            &["width", "margin", "solreffriction", "solimpfriction"],
        );
        let forces = ["frictionloss", "armature"]
            .into_iter()
            .find(|a| self.real(n, class, a, 0.0) != 0.0);
        if let Some(what) = forces {
            let span = self.get(n, class, what).map_or(self.tag_span(n), |g| g.1);
            self.unsupported(
                span,
                format!("a tendon's `{what}`"),
                "a passive tendon force",
            );
            return None;
        }
        let limited = match self.flag(n, class, "limited") {
            Some(l) => l,
            None => self.get(n, class, "range").is_some(),
        };
        let limit = if limited {
            Some(self.tendon_limit(n, class, name)?)
        } else {
            None
        };
        let path = if spatial {
            Path::Spatial(self.tendon_sites(n, name)?)
        } else {
            Path::Fixed(self.tendon_joints(n, class, name)?)
        };
        // MuJoCo's `springlength`: one length, or a dead band `lo hi`; both
        // negative (the default) is the length at the joints' springref.
        let springlength = match self.get(n, class, "springlength") {
            Some((v, s)) => {
                let l = self.numbers(v, s, "springlength", 2, true)?;
                let (lo, hi) = (l[0], *l.get(1).unwrap_or(&l[0]));
                if lo != hi && (lo >= 0.0 || hi >= 0.0) {
                    self.unsupported(s, "a tendon spring with a dead band".into(), "dead band");
                    return None;
                }
                (lo >= 0.0).then_some(lo)
            }
            None => None,
        };
        let stiffness = self.real(n, class, "stiffness", 0.0);
        let springlength = match (springlength, &path) {
            (Some(l), _) => l,
            (None, Path::Fixed(joints)) => {
                let springref = |(b, j): (usize, usize)| self.bodies[b].joints[j].springref;
                joints.iter().map(|&(j, c)| c * springref(j)).sum()
            }
            (None, Path::Spatial(sites)) => {
                let moved = (self.bodies.iter().flat_map(|b| &b.joints))
                    .any(|j| j.springref != j.reference);
                if moved && stiffness != 0.0 {
                    let span = self
                        .get(n, class, "stiffness")
                        .map_or(self.tag_span(n), |g| g.1);
                    self.unsupported(
                        span,
                        "a spatial tendon's spring at the joints' springref (give `springlength`)"
                            .into(),
                        "rest length",
                    );
                    return None;
                }
                spatial_length(&self.bodies, sites)
            }
        };
        Some(Tendon {
            name: name.to_string(),
            path,
            limit,
            stiffness,
            springlength,
            damping: self.real(n, class, "damping", 0.0),
            span: self.tag_span(n),
        })
    }

    /// A limited tendon's `range` with its `solreflimit` and `solimplimit`.
    fn tendon_limit(&mut self, n: Node<'a, 'i>, class: &str, name: &str) -> Option<Limit> {
        let Some((v, s)) = self.get(n, class, "range") else {
            let span = self.tag_span(n);
            self.invalid(
                span,
                format!("the limited tendon `{name}` has no `range`"),
                "no range",
                "give its range: `range=\"0 0.3\"`",
            );
            return None;
        };
        let r = self.numbers(v, s, "range", 2, false)?;
        if r[0] >= r[1] {
            self.invalid(
                s,
                format!("the tendon `{name}`'s range is empty"),
                "lo >= hi",
                "give `range=\"lo hi\"` with lo < hi",
            );
            return None;
        }
        let (solref, solimp) = self.soft(n, class, ("solreflimit", "solimplimit"), s)?;
        Some(Limit {
            lo: r[0],
            hi: r[1],
            solref,
            solimp,
        })
    }

    /// A fixed tendon's joints with their coefficients.
    fn tendon_joints(
        &mut self,
        n: Node<'a, 'i>,
        class: &str,
        name: &str,
    ) -> Option<Vec<((usize, usize), f64)>> {
        let mut joints = vec![];
        for c in self.elements(n) {
            if !c.has_tag_name("joint") {
                self.unsupported_element(c);
                return None;
            }
            self.check_attrs(c, &["joint", "coef"], &[]);
            if c.attribute("joint").is_none() {
                let span = self.tag_span(c);
                self.invalid(
                    span,
                    "a tendon's `<joint>` needs `joint`".into(),
                    "no joint",
                    "name the joint: `<joint joint=\"hip\" coef=\"1\"/>`",
                );
                return None;
            }
            let span = self.attr_span(c, "joint");
            let joint = self.scalar_joint(c.attribute("joint")?, span, "a tendon")?;
            joints.push((joint, self.real(c, class, "coef", 1.0)));
        }
        if joints.is_empty() {
            let span = self.tag_span(n);
            self.invalid(
                span,
                format!("the fixed tendon `{name}` has no joints"),
                "empty tendon",
                "list its joints: `<joint joint=\"hip\" coef=\"1\"/>`",
            );
            return None;
        }
        Some(joints)
    }

    /// A spatial tendon's sites (at least two; wrapping geoms and pulleys
    /// are unsupported).
    fn tendon_sites(&mut self, n: Node<'a, 'i>, name: &str) -> Option<Vec<(usize, usize)>> {
        let mut sites = vec![];
        for c in self.elements(n) {
            if !c.has_tag_name("site") {
                self.unsupported(
                    self.tag_span(c),
                    format!("a spatial tendon's `<{}>`", c.tag_name().name()),
                    "sites only",
                );
                return None;
            }
            self.check_attrs(c, &["site"], &[]);
            let Some(s) = c.attribute("site") else {
                let span = self.tag_span(c);
                self.invalid(
                    span,
                    "a tendon's `<site>` needs `site`".into(),
                    "no site",
                    "name the site: `<site site=\"anchor\"/>`",
                );
                return None;
            };
            let found = (self.bodies.iter().enumerate())
                .find_map(|(b, body)| body.sites.iter().position(|x| x.name == s).map(|i| (b, i)));
            let Some(site) = found else {
                let span = self.attr_span(c, "site");
                self.invalid(
                    span,
                    format!("no site named `{s}`"),
                    "unknown site",
                    "name a site declared in a body",
                );
                return None;
            };
            sites.push(site);
        }
        if sites.len() < 2 {
            let span = self.tag_span(n);
            self.invalid(
                span,
                format!("the spatial tendon `{name}` has fewer than two sites"),
                "no path",
                "list the sites it passes through: `<site site=\"a\"/><site site=\"b\"/>`",
            );
            return None;
        }
        Some(sites)
    }

    /// A sensor the importer writes as an output, or `None` with a warning
    /// (strict or not: a sensor reads the motion and does not change it).
    fn sensor(&mut self, n: Node<'a, 'i>, k: usize, tendons: &[Tendon]) -> Option<Sensor> {
        let tag = n.tag_name().name();
        let span = self.tag_span(n);
        let skip = |p: &mut Self, why: &str| {
            p.diags.push(
                Diagnostic::error(
                    "mjcf::sensor_skipped",
                    format!("sensor `<{tag}>` is not imported: {why}"),
                    span,
                    "not imported",
                )
                .warning()
                .with_help("sensors do not change the motion, so the model is imported without it; Joule writes jointpos, jointvel, tendonpos, tendonvel, framepos, framelinvel, frameangvel (bodies and sites), subtreecom, subtreelinvel, velocimeter and gyro as `observe` items"),
            );
            None
        };
        let known = [
            "name", "joint", "tendon", "site", "body", "objtype", "objname", "noise", "user",
            "class",
        ];
        if let Some(a) = n.attributes().find(|a| !known.contains(&a.name())) {
            return skip(self, &format!("its attribute `{}`", a.name()));
        }
        let name = n
            .attribute("name")
            .map_or_else(|| format!("sensor{k}"), str::to_string);
        let site = |p: &Self, s: &str| {
            p.bodies
                .iter()
                .enumerate()
                .find_map(|(b, body)| body.sites.iter().position(|x| x.name == s).map(|i| (b, i)))
        };
        let body = |p: &Self, s: &str| p.bodies.iter().position(|b| b.name == s);
        let kind = match tag {
            "jointpos" | "jointvel" => {
                let Some(name) = n.attribute("joint") else {
                    return skip(self, "it names no joint");
                };
                let span = self.attr_span(n, "joint");
                let (b, j) = self.scalar_joint(name, span, "a sensor")?;
                if tag == "jointpos" {
                    SensorKind::JointPos(b, j)
                } else {
                    SensorKind::JointVel(b, j)
                }
            }
            "tendonpos" | "tendonvel" => {
                let Some(t) = n
                    .attribute("tendon")
                    .and_then(|t| tendons.iter().position(|x| x.name == t))
                else {
                    return skip(self, "it reads no imported fixed tendon");
                };
                if tag == "tendonpos" {
                    SensorKind::TendonPos(t)
                } else {
                    SensorKind::TendonVel(t)
                }
            }
            "framepos" | "framelinvel" | "frameangvel" => {
                let frame = match (n.attribute("objtype"), n.attribute("objname")) {
                    (Some("xbody"), Some(o)) => body(self, o).map(Frame::Body),
                    (Some("body"), Some(o)) => body(self, o).map(Frame::Inertial),
                    (Some("site"), Some(o)) => site(self, o).map(|(b, i)| Frame::Site(b, i)),
                    _ => None,
                };
                let Some(frame) = frame else {
                    return skip(self, "it reads no body or site of the model");
                };
                match tag {
                    "framepos" => SensorKind::FramePos(frame),
                    "framelinvel" => SensorKind::FrameLinVel(frame),
                    _ => SensorKind::FrameAngVel(frame),
                }
            }
            "subtreecom" | "subtreelinvel" => {
                let Some(b) = n.attribute("body").and_then(|o| body(self, o)) else {
                    return skip(self, "it reads no body of the model");
                };
                if tag == "subtreecom" {
                    SensorKind::SubtreeCom(b)
                } else {
                    SensorKind::SubtreeLinVel(b)
                }
            }
            "velocimeter" | "gyro" => {
                let Some((b, i)) = n.attribute("site").and_then(|o| site(self, o)) else {
                    return skip(self, "it reads no site of the model");
                };
                if tag == "velocimeter" {
                    SensorKind::Velocimeter(b, i)
                } else {
                    SensorKind::Gyro(b, i)
                }
            }
            _ => return skip(self, "Joule has no output of this kind"),
        };
        Some(Sensor { name, kind })
    }

    fn actuator(
        &mut self,
        n: Node<'a, 'i>,
        tendons: &[Tendon],
        tendon_names: &[String],
    ) -> Option<Actuator> {
        let tag = n.tag_name().name();
        if !matches!(tag, "motor" | "position" | "general") {
            self.unsupported_element(n);
            return None;
        }
        let class = n.attribute("class").unwrap_or("main");
        let own: &[&str] = match tag {
            "position" => &["kp", "kv"],
            "general" => &[
                "gaintype", "gainprm", "biastype", "biasprm", "dyntype", "dynprm",
            ],
            _ => &[],
        };
        let common = [
            "joint",
            "tendon",
            "gear",
            "ctrlrange",
            "ctrllimited",
            "forcelimited",
            "forcerange",
        ];
        self.check_attrs(n, &[&common[..], own].concat(), &[]);
        let span = self.tag_span(n);
        let target = if let Some((jname, jspan)) = self.get(n, class, "joint") {
            let (b, j) = self.scalar_joint(jname, jspan, "an actuator")?;
            Transmission::Joint(b, j)
        } else if let Some(named) = self.get(n, class, "tendon") {
            Transmission::Tendon(self.tendon_named(named, tendons, tendon_names, "an actuator")?)
        } else {
            self.unsupported(
                span,
                format!("a `<{tag}>` without `joint` or `tendon` (site or body transmission)"),
                "no joint",
            );
            return None;
        };
        let forcelimited = self.flag(n, class, "forcelimited");
        if let (Some(true) | None, Some((_, s))) = (forcelimited, self.get(n, class, "forcerange"))
        {
            self.unsupported(s, "an actuator force range".into(), "force limit");
        }
        let gear = match self.get(n, class, "gear") {
            Some((v, s)) => self.numbers(v, s, "gear", 6, true)?[0],
            None => 1.0,
        };
        let mut filter = None;
        let kind = if tag == "motor" {
            ActuatorKind::Motor { gear }
        } else if tag == "general" {
            let (kind, dynamics) = self.general(n, class, gear)?;
            filter = dynamics;
            kind
        } else {
            if gear != 1.0 {
                let s = self.get(n, class, "gear").map_or(span, |g| g.1);
                self.unsupported(
                    s,
                    "a position actuator with `gear` other than 1".into(),
                    "gear",
                );
                return None;
            }
            ActuatorKind::Position {
                kp: self.amount(n, class, "kp", 1.0),
                kv: self.amount(n, class, "kv", 0.0),
            }
        };
        let ctrlrange = match (
            self.flag(n, class, "ctrllimited"),
            self.get(n, class, "ctrlrange"),
        ) {
            (Some(false), _) | (None, None) => None,
            (Some(true), None) => {
                self.invalid(
                    span,
                    "`ctrllimited` without `ctrlrange`".into(),
                    "no range",
                    "give `ctrlrange=\"lo hi\"`",
                );
                None
            }
            (_, Some((v, s))) => {
                let r = self.numbers(v, s, "ctrlrange", 2, false)?;
                if r[0] >= r[1] {
                    self.invalid(
                        s,
                        "`ctrlrange` must be increasing".into(),
                        "lo >= hi",
                        "write `ctrlrange=\"lo hi\"` with lo < hi",
                    );
                    return None;
                }
                Some((r[0], r[1]))
            }
        };
        Some(Actuator {
            name: n.attribute("name").map(str::to_string),
            kind,
            target,
            ctrlrange,
            filter,
            span,
        })
    }

    /// A `<general>` actuator as the motor or position servo it is (fixed
    /// gain; no bias, or a servo's affine bias `0 -kp -kv`), and its
    /// activation dynamics (none, or a filter of time constant `dynprm`).
    fn general(
        &mut self,
        n: Node<'a, 'i>,
        class: &str,
        gear: f64,
    ) -> Option<(ActuatorKind, Option<(f64, bool)>)> {
        let span = self.tag_span(n);
        let word = |p: &Self, attr: &str, default: &'a str| {
            p.get(n, class, attr)
                .map_or((default, span), |(v, s)| (v.trim(), s))
        };
        let prm = |p: &mut Self, attr: &str, default: f64| -> Option<Vec<f64>> {
            let mut v = match p.get(n, class, attr) {
                Some((v, s)) => p.numbers(v, s, attr, 10, true)?,
                None => vec![default],
            };
            v.resize(10, 0.0);
            Some(v)
        };
        let (gaintype, s) = word(self, "gaintype", "fixed");
        if gaintype != "fixed" {
            self.unsupported(s, format!("gain type `{gaintype}`"), "gaintype");
            return None;
        }
        let gain = prm(self, "gainprm", 1.0)?[0];
        let bias = prm(self, "biasprm", 0.0)?;
        let kind = match word(self, "biastype", "none") {
            ("none", _) => ActuatorKind::Motor { gear: gear * gain },
            ("affine", _)
                if gear == 1.0 && bias[0] == 0.0 && bias[1] == -gain && bias[2] <= 0.0 =>
            {
                ActuatorKind::Position {
                    kp: gain,
                    kv: -bias[2],
                }
            }
            ("affine", s) => {
                self.unsupported(
                    s,
                    "an affine bias other than a position servo's (`gear` 1, `biasprm=\"0 -kp -kv\"` with `gainprm=\"kp\"`)".into(),
                    "affine bias",
                );
                return None;
            }
            (other, s) => {
                self.unsupported(s, format!("bias type `{other}`"), "biastype");
                return None;
            }
        };
        let dynamics = match word(self, "dyntype", "none") {
            ("none", _) => None,
            (kind @ ("filter" | "filterexact"), _) => {
                let tau = prm(self, "dynprm", 1.0)?[0];
                if tau <= 0.0 {
                    let s = self.get(n, class, "dynprm").map_or(span, |d| d.1);
                    self.invalid(
                        s,
                        "a filter's time constant `dynprm` must be positive".into(),
                        "not positive",
                        "give the time constant in seconds, e.g. `dynprm=\"0.1\"`",
                    );
                    return None;
                }
                Some((tau, kind == "filterexact"))
            }
            (other, s) => {
                self.unsupported(s, format!("activation dynamics `{other}`"), "dyntype");
                return None;
            }
        };
        Some((kind, dynamics))
    }

    fn exclude(&mut self, n: Node<'a, 'i>) -> Option<(usize, usize)> {
        if !n.has_tag_name("exclude") {
            self.unsupported_element(n);
            return None;
        }
        self.check_attrs(n, &["body1", "body2"], &[]);
        let mut ids = [0; 2];
        for (k, attr) in ["body1", "body2"].into_iter().enumerate() {
            let Some(name) = n.attribute(attr) else {
                let s = self.tag_span(n);
                self.invalid(
                    s,
                    format!("`<exclude>` needs `{attr}`"),
                    "missing body",
                    "name two bodies",
                );
                return None;
            };
            match self.bodies.iter().position(|b| b.name == name) {
                Some(i) => ids[k] = i,
                None => {
                    let s = self.attr_span(n, attr);
                    self.invalid(
                        s,
                        format!("no body named `{name}`"),
                        "unknown body",
                        "name a body of the worldbody",
                    );
                    return None;
                }
            }
        }
        Some((ids[0].min(ids[1]), ids[0].max(ids[1])))
    }

    /// `compiler settotalmass`: scales every body's mass and inertia.
    fn settotalmass(&mut self, root: Node<'a, 'i>) {
        let Some(c) = self
            .elements(root)
            .into_iter()
            .find(|c| c.has_tag_name("compiler"))
        else {
            return;
        };
        let target = self.real(c, "main", "settotalmass", -1.0);
        let total: f64 = self.bodies.iter().map(|b| b.mass.mass).sum();
        if target > 0.0 && total > 0.0 {
            for b in &mut self.bodies {
                b.mass = b.mass.scaled(target / total);
            }
        }
    }
}
