//! MJCF import: MuJoCo XML models to Joule scene text.
//!
//! `include.rs` reads the model's files (`<include>`), `parse.rs` reads the XML (roxmltree) into an [`Mjcf`]: bodies with world
//! poses, geoms, joints, sites and mass properties computed as MuJoCo's
//! compiler does, defaults and `childclass` applied, angles in radians.
//! [`write`] turns that into readable Joule source that keeps the MJCF names
//! (`sensors.rs` writes the sensors it can compute as outputs, `fluid.rs`
//! MuJoCo's fluid drag);
//! it then goes through the normal compiler. Problems are [`Diagnostic`]s
//! located in the XML; what the importer does not support is an error naming
//! the element or attribute, or (lenient) a warning, and it is skipped.
//!
//! Used by `joule import` and by `use "model.xml"` in scenes.

mod constraint;
mod fluid;
mod include;
mod mesh;
mod parse;
mod sensors;
mod weight;
pub use weight::invweight0;
mod write;

use crate::mass::{mujoco, MassProps};
use crate::model::LimitLaw;
use joule_grammar::ast::{FileId, Span};
use joule_grammar::{Diagnostic, SourceMap};

/// A geom's shape (MJCF sizes: radii and half lengths).
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum GeomKind {
    /// `sphere`: radius.
    Sphere { radius: f64 },
    /// `capsule`: radius and half length of the cylinder part, along z.
    Capsule { radius: f64, half: f64 },
    /// `cylinder`: radius and half length, along z.
    Cylinder { radius: f64, half: f64 },
    /// `box`: half sizes.
    Box { half: [f64; 3] },
    /// `ellipsoid`: radii along its axes (mass and drawing only: one that
    /// may collide is refused when written).
    Ellipsoid { radii: [f64; 3] },
    /// `plane`: the half-space below the geom's x-y plane (the world's
    /// bodies only: a plane in a moving body is refused when written).
    Plane,
    /// `mesh`, placed as MuJoCo places it: the geom's frame at the mesh's
    /// centre of mass and principal axes, its volume, and the half sides of
    /// the box with its principal moments (mass and drawing only: one that
    /// may collide is refused when written).
    Mesh { half: [f64; 3], volume: f64 },
}

impl GeomKind {
    /// Its volume (zero for planes).
    pub fn volume(&self) -> f64 {
        match *self {
            GeomKind::Sphere { radius } => crate::mass::sphere_volume(radius),
            GeomKind::Capsule { radius, half } => mujoco::capsule_volume(radius, half),
            GeomKind::Cylinder { radius, half } => mujoco::cylinder_volume(radius, half),
            GeomKind::Box { half } => mujoco::box_volume(half),
            GeomKind::Ellipsoid { radii } => mujoco::ellipsoid_volume(radii),
            GeomKind::Plane => 0.0,
            GeomKind::Mesh { volume, .. } => volume,
        }
    }

    /// Its mass properties for a mass `m`, in its own frame (centred, axis
    /// along z), computed as MuJoCo's compiler does (uniform density).
    pub fn mass_props(&self, m: f64) -> MassProps {
        let d = match *self {
            GeomKind::Sphere { radius } => mujoco::sphere_inertia(m, radius),
            GeomKind::Capsule { radius, half } => mujoco::capsule_inertia(m, radius, half),
            GeomKind::Cylinder { radius, half } => mujoco::cylinder_inertia(m, radius, half),
            GeomKind::Box { half } | GeomKind::Mesh { half, .. } => mujoco::box_inertia(m, half),
            GeomKind::Ellipsoid { radii } => mujoco::ellipsoid_inertia(m, radii),
            GeomKind::Plane => [0.0; 3],
        };
        MassProps::principal(m, d)
    }
}

/// A geom, placed in its body's frame.
#[derive(Debug, Clone, PartialEq)]
pub struct Geom {
    /// Its name (`None` when unnamed).
    pub name: Option<String>,
    /// Shape.
    pub kind: GeomKind,
    /// Position and orientation in the body frame.
    pub pos: [f64; 3],
    pub quat: [f64; 4],
    /// Mass (from `mass`, or `density` times volume).
    pub mass: f64,
    /// Collision bitmasks.
    pub contype: u32,
    pub conaffinity: u32,
    /// Sliding friction coefficient (first of `friction`).
    pub friction: f64,
    /// Its contacts' softness and reach: `condim`, `solref`, `solimp`,
    /// `solmix`, `margin` and `priority` (MuJoCo's defaults where
    /// absent).
    pub contact: GeomContact,
    /// Where it is declared.
    pub span: Span,
}

/// A geom's contact parameters, as MuJoCo mixes them for a pair.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct GeomContact {
    /// Contact dimensionality (1: frictionless, 3: sliding friction, 4 and
    /// 6: torsional and rolling friction besides).
    pub condim: u32,
    /// Time constant and damping ratio (standard form: both positive), or
    /// minus the stiffness and damping (MuJoCo's direct form).
    pub solref: [f64; 2],
    /// Impedance: dmin, dmax, width, midpoint, power.
    pub solimp: [f64; 5],
    /// The weight of this geom's `solref`/`solimp` in a pair's mix.
    pub solmix: f64,
    /// Distance at which contact begins (m); a pair's is the sum of its
    /// geoms' (MuJoCo 4: `gap` widens only the collision detection, whose
    /// contacts beyond the margin are excluded, so it changes nothing).
    pub margin: f64,
    /// Of two geoms, the one of higher priority gives a pair's parameters.
    pub priority: u32,
}

impl Default for GeomContact {
    fn default() -> GeomContact {
        GeomContact {
            condim: 3,
            solref: DEFAULT_SOLREF,
            solimp: DEFAULT_SOLIMP,
            solmix: 1.0,
            margin: 0.0,
            priority: 0,
        }
    }
}

/// A joint's type.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum JointKind {
    Hinge,
    Slide,
    Ball,
    Free,
}

/// A joint, in its body's frame.
#[derive(Debug, Clone, PartialEq)]
pub struct Joint {
    /// Its name (MJCF's, or `joint{k}` by joint index when unnamed).
    pub name: String,
    pub kind: JointKind,
    /// Anchor and unit axis in the body frame.
    pub pos: [f64; 3],
    pub axis: [f64; 3],
    /// Limits (radians or metres) when limited.
    pub range: Option<(f64, f64)>,
    pub damping: f64,
    pub stiffness: f64,
    pub springref: f64,
    pub armature: f64,
    /// Dry friction (MJCF `frictionloss`): the most force or torque it holds.
    pub frictionloss: f64,
    /// MuJoCo's `ref` (hinges and slides): the coordinate's value in the
    /// reference pose, where Joule's coordinate is 0.
    pub reference: f64,
    /// Its limit's softness: `solreflimit`, `solimplimit` and `margin` as
    /// written (MuJoCo's defaults where absent).
    pub limit: LimitLaw,
    /// Where it is declared.
    pub span: Span,
}

/// A named frame of a body.
#[derive(Debug, Clone, PartialEq)]
pub struct Site {
    pub name: String,
    /// Position and orientation in the body frame.
    pub pos: [f64; 3],
    pub quat: [f64; 4],
}

/// An MJCF body with its pose and contents.
#[derive(Debug, Clone, PartialEq)]
pub struct Body {
    /// MJCF name, or `body{k}` by body index when unnamed (`world` for body 0).
    pub name: String,
    /// Parent body index (0 for children of the world; body 0 is its own parent).
    pub parent: usize,
    /// World position and orientation in the model's reference pose.
    pub xpos: [f64; 3],
    pub xquat: [f64; 4],
    pub geoms: Vec<Geom>,
    pub joints: Vec<Joint>,
    pub sites: Vec<Site>,
    /// Mass properties in the body frame (after `settotalmass`).
    pub mass: MassProps,
    /// Where it is declared.
    pub span: Span,
}

/// An actuator's type.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum ActuatorKind {
    /// Force or torque `gear * u`.
    Motor { gear: f64 },
    /// Position servo with gain `kp` (and velocity gain `kv`) toward `u`.
    Position { kp: f64, kv: f64 },
}

/// What an actuator drives.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Transmission {
    /// A joint: its body index and index among the body's joints.
    Joint(usize, usize),
    /// A tendon (index into [`Mjcf::tendons`]): a motor's force `gear u`
    /// along the tendon (on a fixed tendon: `coef gear u` on each of its
    /// joints); a position servo's acts on the tendon's length.
    Tendon(usize),
}

/// An actuator on a joint or a fixed tendon.
#[derive(Debug, Clone, PartialEq)]
pub struct Actuator {
    /// MJCF name, or `None`.
    pub name: Option<String>,
    pub kind: ActuatorKind,
    /// What it drives.
    pub target: Transmission,
    /// Control range when limited.
    pub ctrlrange: Option<(f64, f64)>,
    /// Activation dynamics: a first-order filter of the control with this
    /// time constant (s; `<general dyntype="filter">`, or with
    /// `filterexact` its exact integration: `true`), whose activation then
    /// drives the actuator in place of the control.
    pub filter: Option<(f64, bool)>,
    pub span: Span,
}

/// What a tendon's length is made of.
#[derive(Debug, Clone, PartialEq)]
pub enum Path {
    /// A fixed tendon's joints (body index, index among the body's joints:
    /// hinges and slides) with their coefficients: the length is `sum coef
    /// qpos`.
    Fixed(Vec<((usize, usize), f64)>),
    /// A spatial tendon's sites in order (body index, index among the
    /// body's sites): the length is the sum of the straight segments
    /// between consecutive sites.
    Spatial(Vec<(usize, usize)>),
}

/// Whether body `b` is `root` or one of its descendants (every body is in
/// the world's subtree, body 0).
fn in_subtree(bodies: &[Body], root: usize, mut b: usize) -> bool {
    loop {
        if b == root {
            return true;
        }
        if b == 0 {
            return false;
        }
        b = bodies[b].parent;
    }
}

/// A site's world position in the reference pose (body index, index among
/// the body's sites).
fn site_position(bodies: &[Body], (b, i): (usize, usize)) -> [f64; 3] {
    let body = &bodies[b];
    crate::math::add(
        body.xpos,
        crate::math::rotate(body.xquat, body.sites[i].pos),
    )
}

/// A spatial tendon's length in the reference pose.
fn spatial_length(bodies: &[Body], sites: &[(usize, usize)]) -> f64 {
    sites
        .windows(2)
        .map(|w| {
            let (a, b) = (site_position(bodies, w[0]), site_position(bodies, w[1]));
            crate::math::norm(crate::math::sub(b, a))
        })
        .sum()
}

/// A tendon's range: MuJoCo's soft limit on its length.
#[derive(Debug, Clone, PartialEq)]
pub struct Limit {
    pub lo: f64,
    pub hi: f64,
    /// `solreflimit`: time constant (s) and damping ratio.
    pub solref: (f64, f64),
    /// `solimplimit`: the impedance at no violation, its largest, the
    /// violation where it reaches it, and the curve's midpoint and power.
    pub solimp: [f64; 5],
}

/// A fixed tendon, or a spatial one through sites: its length is a
/// readout, actuators may drive it, and it may carry MuJoCo's passive
/// spring and damper and a soft limit on its length (no friction or
/// armature).
#[derive(Debug, Clone, PartialEq)]
pub struct Tendon {
    /// MJCF name, or `tendon{k}` by tendon index.
    pub name: String,
    pub path: Path,
    /// The soft limit of a limited tendon.
    pub limit: Option<Limit>,
    /// The spring `stiffness (L - springlength)` on its length.
    pub stiffness: f64,
    /// The spring's rest length: MJCF `springlength`, or (MuJoCo's default)
    /// the length at the joints' `springref` (a spatial tendon's: the
    /// reference pose's, where every `springref` is the joint's `ref`).
    pub springlength: f64,
    /// The damper `damping dL/dt` on its length.
    pub damping: f64,
    pub span: Span,
}

/// MuJoCo's default `solref` and `solimp` of equalities and limits.
pub(crate) const DEFAULT_SOLREF: [f64; 2] = [0.02, 1.0];
pub(crate) const DEFAULT_SOLIMP: [f64; 5] = [0.9, 0.95, 0.001, 0.5, 2.0];

/// A tendon equality: MuJoCo's soft constraint that holds a fixed tendon's
/// length at its length in the reference pose plus `offset`.
#[derive(Debug, Clone, PartialEq)]
pub struct Equality {
    /// The tendon (index into [`Mjcf::tendons`]).
    pub tendon: usize,
    /// `polycoef[0]`: the length it holds, less the reference pose's.
    pub offset: f64,
    /// `solref`: time constant (s) and damping ratio.
    pub solref: (f64, f64),
    /// `solimp`: the impedance at no violation, its largest, the
    /// violation where it reaches it, and the curve's midpoint and power.
    pub solimp: [f64; 5],
    pub span: Span,
}

/// A body's frame, its inertial frame, or a site's.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Frame {
    /// A body's frame (MJCF `xbody`; index).
    Body(usize),
    /// A body's inertial frame, at its centre of mass (MJCF `body`).
    Inertial(usize),
    /// A site: its body's index and its index among the body's sites.
    Site(usize, usize),
}

/// What a sensor reads, in MuJoCo's units and frames.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum SensorKind {
    /// `jointpos`, `jointvel` of a hinge or slide (body, joint index).
    JointPos(usize, usize),
    JointVel(usize, usize),
    /// `tendonpos`, `tendonvel` of a tendon.
    TendonPos(usize),
    TendonVel(usize),
    /// `framepos`, `framelinvel`, `frameangvel`: the frame's origin, its
    /// velocity and angular velocity, in the world frame.
    FramePos(Frame),
    FrameLinVel(Frame),
    FrameAngVel(Frame),
    /// `subtreecom`, `subtreelinvel`: the centre of mass of a body and its
    /// descendants, and its velocity.
    SubtreeCom(usize),
    SubtreeLinVel(usize),
    /// `velocimeter`, `gyro`: a site's velocity and angular velocity in the
    /// site's frame.
    Velocimeter(usize, usize),
    Gyro(usize, usize),
}

/// A sensor the importer writes as an `observe` item.
#[derive(Debug, Clone, PartialEq)]
pub struct Sensor {
    /// MJCF name, or `sensor{k}` by sensor index.
    pub name: String,
    pub kind: SensorKind,
}

/// MuJoCo's fluid (`option density/viscosity/wind`), acting on every
/// moving body through its inertia-equivalent box.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Fluid {
    pub density: f64,
    pub viscosity: f64,
    pub wind: [f64; 3],
}

/// A parsed MJCF model.
#[derive(Debug, Clone, PartialEq)]
pub struct Mjcf {
    /// The `model` attribute.
    pub model: String,
    pub timestep: f64,
    pub gravity: [f64; 3],
    /// The fluid, when `density` or `viscosity` is positive.
    pub fluid: Option<Fluid>,
    /// Bodies in MuJoCo's order (depth-first, body 0 is the world).
    pub bodies: Vec<Body>,
    pub actuators: Vec<Actuator>,
    /// Fixed and spatial tendons.
    pub tendons: Vec<Tendon>,
    /// Tendon equalities.
    pub equalities: Vec<Equality>,
    /// Sensors the importer can write as outputs (the others are skipped
    /// with a warning: they do not change the motion).
    pub sensors: Vec<Sensor>,
    /// Body pairs excluded from contact (`<contact><exclude>`).
    pub excludes: Vec<(usize, usize)>,
    /// `<option impratio>`: the ratio of frictional to normal impedance.
    pub impratio: f64,
    /// `<option cone="elliptic">` (else MuJoCo's default, pyramidal).
    pub elliptic: bool,
    /// `<option integrator>` where it names another integrator than
    /// MuJoCo's default `Euler` (`RK4`, `implicit`, `implicitfast`): its
    /// value and where.
    pub integrator: Option<(String, Span)>,
}

impl Mjcf {
    /// Total mass of all bodies.
    pub fn total_mass(&self) -> f64 {
        self.bodies.iter().map(|b| b.mass.mass).sum()
    }
}

/// What an import produced.
#[derive(Debug)]
pub struct Imported {
    /// The model, when the XML had no errors.
    pub model: Option<Mjcf>,
    /// The Joule source, when the model could be written.
    pub text: Option<String>,
    /// Errors and (lenient) warnings, located in the XML.
    pub diagnostics: Vec<Diagnostic>,
}

// The most bytes of Joule text an import may produce: the parser's limit
// on a scene file.
use joule_grammar::MAX_SOURCE_BYTES as MAX_TEXT_BYTES;

/// Whether a path names an MJCF model (`.xml`), which `use` imports.
pub fn is_mjcf_path(path: &std::path::Path) -> bool {
    path.extension()
        .is_some_and(|e| e.eq_ignore_ascii_case("xml"))
}

/// The ground contact's friction an import writes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Friction {
    /// MuJoCo's: Coulomb friction in one (elliptic) cone with the normal
    /// force (`contact_soft`), whose sliding contacts push out of the ground.
    #[default]
    Cone,
    /// Coulomb's bound by the same step's normal force, held at the step's
    /// solution (`contact_coulomb`): not dilatant, ~3x the Newton iterations.
    Coulomb,
    /// MuJoCo's own contact law (`contact_mujoco`): its soft constraint
    /// (the reference acceleration of `solref`, the impedance of `solimp`,
    /// the regulariser from the bodies' inverse weights) minimised in the
    /// step with its pyramidal friction cone; honours each geom's
    /// `solref`, `solimp`, `solmix`, `margin` (summed over a pair, as
    /// MuJoCo 4), `priority` and `condim` 1 or 3.
    Mujoco,
}

/// How to import.
#[derive(Debug, Clone, Copy, Default)]
pub struct Options {
    /// Skip unsupported elements and attributes with a warning instead of an error.
    pub lenient: bool,
    /// The ground contact's friction.
    pub friction: Friction,
    /// With MuJoCo's laws (`friction = mujoco`): gradients through the
    /// default import's smooth step (`surrogate = cone`): the ground
    /// contacts carry the cone of `contact_soft` as their `backward =`
    /// surrogate and the scene's surrogate model steps implicit Euler on
    /// the trees' configurations (`surrogate = model(kinematics = exact)`),
    /// re-aligned with MuJoCo's step every substep.
    pub surrogate_cone: bool,
}

/// Reads and imports an MJCF file; the source map holds it for rendering
/// the diagnostics.
pub fn import_path(
    path: &std::path::Path,
    options: Options,
) -> std::io::Result<(SourceMap, Imported)> {
    let bytes = crate::read_input(path, crate::MAX_INPUT_BYTES)?;
    let text = crate::decode_source(&bytes).map_err(|(at, why)| {
        std::io::Error::new(
            std::io::ErrorKind::InvalidData,
            format!("{why} at byte {at}"),
        )
    })?;
    let mut sources = SourceMap::new();
    let file = sources.add(path.display().to_string(), Some(path), &text);
    let imported = import(&mut sources, file, options);
    Ok((sources, imported))
}

/// Imports the MJCF file `file` of `sources`; the files it includes are
/// added to `sources`. With `options.lenient`, unsupported elements and
/// attributes are skipped with a warning instead of an error.
pub fn import(sources: &mut SourceMap, file: FileId, options: Options) -> Imported {
    let files = match include::load(sources, file) {
        Ok(f) => f,
        Err(diagnostics) => {
            return Imported {
                model: None,
                text: None,
                diagnostics,
            }
        }
    };
    let source = sources.get(file);
    let (model, mut diagnostics) = parse::parse(sources, &files, options);
    let text = match &model {
        Some(m) if !diagnostics.iter().any(Diagnostic::is_error) => {
            match write::write(m, &source.name, options) {
                Ok((text, _)) if text.len() > MAX_TEXT_BYTES => {
                    diagnostics.push(
                        Diagnostic::without_span(
                            crate::Severity::Error,
                            "mjcf::too_large",
                            format!(
                                "the imported scene would be {} bytes, more than a scene file may have ({} bytes)",
                                text.len(),
                                MAX_TEXT_BYTES
                            ),
                        )
                        .with_help("import a smaller model, or generate the repeated parts in Joule (`for` generators)"),
                    );
                    None
                }
                Ok((text, warnings)) => {
                    diagnostics.extend(warnings);
                    Some(text)
                }
                Err(d) => {
                    diagnostics.extend(d);
                    None
                }
            }
        }
        _ => None,
    };
    Imported {
        model: model.filter(|_| !diagnostics.iter().any(Diagnostic::is_error)),
        text,
        diagnostics,
    }
}
