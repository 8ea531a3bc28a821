//! The resolved scene: DOF layout, parameter and control tables, and per energy
//! template a table of instances. Everything static is decided here; what is
//! left is runtime arithmetic over DOFs, params, controls and per-instance
//! constants, held as [`Term`] trees (lowered to scalar IR by the next pass).

use joule_grammar::ast::Span;
use std::sync::Arc;

/// A prefix operator of a runtime expression (resolve converts the AST's).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum UnOp {
    /// Negation, `-x`.
    Neg,
    /// Logical not, `!b`.
    Not,
}

/// An infix operator of an expression (resolve converts the AST's).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum BinOp {
    /// `+`
    Add,
    /// `-`
    Sub,
    /// `*` (also matrix products)
    Mul,
    /// `/`
    Div,
    /// `%` (compile-time integers only)
    Rem,
    /// `^`
    Pow,
    /// `==`
    Eq,
    /// `!=`
    Ne,
    /// `<`
    Lt,
    /// `<=`
    Le,
    /// `>`
    Gt,
    /// `>=`
    Ge,
    /// `&&`
    And,
    /// `||`
    Or,
}

impl BinOp {
    /// The operator's symbol, as messages and the model's text dump write it
    /// (the language's own, from the grammar).
    pub fn symbol(self) -> &'static str {
        joule_grammar::ast::BinOp::from(self).symbol()
    }

    /// Binding strength, as the language's parser has it (higher binds
    /// tighter; prefix operators sit at 6, between `*` and `^`).
    pub fn precedence(self) -> u8 {
        joule_grammar::ast::BinOp::from(self).precedence()
    }
}

/// Whether a template is a potential or a dissipation potential.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum EnergyKind {
    /// A potential in positions.
    Energy,
    /// A dissipation potential in velocities.
    Dissipation,
}

/// What a per-environment output is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ObjectiveKind {
    /// An observation (`observe`).
    Observe,
    /// A reward to maximise (`reward`).
    Reward,
    /// A loss to minimise (`loss`).
    Loss,
    /// An episode's end condition (`done`).
    Done,
}

impl ObjectiveKind {
    /// The keyword that declares it.
    pub fn keyword(self) -> &'static str {
        match self {
            ObjectiveKind::Observe => "observe",
            ObjectiveKind::Reward => "reward",
            ObjectiveKind::Loss => "loss",
            ObjectiveKind::Done => "done",
        }
    }
}

/// The numeric shape of a value at run time (also used for compile-time numbers).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Shape {
    /// A runtime truth value (only inside `select` and `done`).
    Bool,
    /// One number.
    Scalar,
    /// A column vector of length 2..=4.
    Vec(u8),
    /// A square matrix of size 2 or 3, stored column-major.
    Mat(u8),
    /// A quaternion `(w, x, y, z)`.
    Quat,
}

impl Shape {
    /// Number of scalar components.
    pub fn size(self) -> usize {
        match self {
            Shape::Bool | Shape::Scalar => 1,
            Shape::Vec(n) => n as usize,
            Shape::Mat(n) => (n * n) as usize,
            Shape::Quat => 4,
        }
    }

    /// The language's name for the shape.
    pub fn name(self) -> String {
        match self {
            Shape::Bool => "bool".into(),
            Shape::Scalar => "scalar".into(),
            Shape::Vec(n) => format!("vec{n}"),
            Shape::Mat(n) => format!("mat{n}"),
            Shape::Quat => "quat".into(),
        }
    }
}

/// A compile-time number, vector, matrix or quaternion (column-major).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Tensor {
    /// Its shape.
    pub shape: Shape,
    /// Components; only the first `shape.size()` are meaningful.
    pub data: [f64; 9],
}

impl Tensor {
    /// A scalar.
    pub fn scalar(x: f64) -> Self {
        let mut data = [0.0; 9];
        data[0] = x;
        Tensor {
            shape: Shape::Scalar,
            data,
        }
    }

    /// A tensor of the given shape from components.
    pub fn new(shape: Shape, comps: &[f64]) -> Self {
        let mut data = [0.0; 9];
        data[..comps.len()].copy_from_slice(comps);
        Tensor { shape, data }
    }

    /// The meaningful components.
    pub fn comps(&self) -> &[f64] {
        &self.data[..self.shape.size()]
    }

    /// The first component (the value of a scalar).
    pub fn x(&self) -> f64 {
        self.data[0]
    }
}

/// Which copy of a DOF a term reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum State {
    /// Position: the unknown of the step.
    Pos,
    /// Velocity.
    Vel,
    /// Position at the start of the step (`prev(...)`).
    PrevPos,
    /// Velocity at the start of the step.
    PrevVel,
    /// Position at the step's solution, held fixed in the step's potential
    /// (`held(...)`): the solver alternates minimising with it held and
    /// updating it, to the fixed point.
    Held,
}

impl State {
    /// The state buffer's name (IR dumps, the model's text form).
    pub fn name(self) -> &'static str {
        match self {
            State::Pos => "x",
            State::Vel => "v",
            State::PrevPos => "prev_x",
            State::PrevVel => "prev_v",
            State::Held => "held_x",
        }
    }
}

/// Where a DOF read points.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum DofAt {
    /// The `offset`-th DOF of template argument `arg` (looked up per instance).
    Arg { arg: u16, offset: u16 },
    /// A free DOF of the model.
    Global(u32),
}

/// A scalar leaf of a term.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Input {
    /// A DOF.
    Dof { at: DofAt, state: State },
    /// A runtime parameter (per environment).
    Param(u32),
    /// A control component (per environment, per step).
    Control(u32),
    /// The control bound to template argument `arg` (looked up per instance).
    ArgControl(u16),
    /// A constant slot: per instance of a template (from its constant
    /// table), or a `reset` item's draw or `let` value (per episode, see
    /// [`Reset`]).
    Const(u32),
}

/// A runtime expression. Children are shared (`Arc`); shapes are checked.
#[derive(Debug, Clone, PartialEq)]
pub struct Term {
    /// The shape of the value.
    pub shape: Shape,
    /// What it computes.
    pub kind: TermKind,
    /// Nodes of the term as a tree (a shared child counted at each use, as
    /// lowering visits it), saturating.
    size: u64,
    /// Nodes on the longest path to a leaf.
    depth: u32,
}

/// Built-in functions that survive to run time.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Builtin {
    Norm,
    Normalize,
    Dot,
    Cross,
    Outer,
    Det,
    Inv,
    Transpose,
    Trace,
    Sqrt,
    Exp,
    Log,
    Sin,
    Cos,
    Tan,
    Tanh,
    Atan2,
    Abs,
    Min,
    Max,
    Clamp,
    Select,
    Softplus,
    Smoothstep,
    Barrier,
    Penalty,
}

impl Builtin {
    /// Every built-in with its source name.
    pub const ALL: &'static [(&'static str, Builtin)] = &[
        ("norm", Builtin::Norm),
        ("normalize", Builtin::Normalize),
        ("dot", Builtin::Dot),
        ("cross", Builtin::Cross),
        ("outer", Builtin::Outer),
        ("det", Builtin::Det),
        ("inv", Builtin::Inv),
        ("transpose", Builtin::Transpose),
        ("trace", Builtin::Trace),
        ("sqrt", Builtin::Sqrt),
        ("exp", Builtin::Exp),
        ("log", Builtin::Log),
        ("sin", Builtin::Sin),
        ("cos", Builtin::Cos),
        ("tan", Builtin::Tan),
        ("tanh", Builtin::Tanh),
        ("atan2", Builtin::Atan2),
        ("abs", Builtin::Abs),
        ("min", Builtin::Min),
        ("max", Builtin::Max),
        ("clamp", Builtin::Clamp),
        ("select", Builtin::Select),
        ("softplus", Builtin::Softplus),
        ("smoothstep", Builtin::Smoothstep),
        ("barrier", Builtin::Barrier),
        ("penalty", Builtin::Penalty),
    ];

    /// The source name.
    pub fn name(self) -> &'static str {
        Builtin::ALL
            .iter()
            .find(|(_, b)| *b == self)
            .map(|(n, _)| *n)
            .expect("every builtin is listed in ALL")
    }

    /// Looks a built-in up by name.
    pub fn from_name(name: &str) -> Option<Builtin> {
        Builtin::ALL
            .iter()
            .find(|(n, _)| *n == name)
            .map(|(_, b)| *b)
    }
}

/// The forms of a runtime expression.
#[derive(Debug, Clone, PartialEq)]
pub enum TermKind {
    /// A compile-time constant.
    Lit(Tensor),
    /// A scalar leaf.
    Input(Input),
    /// Builds a vector/matrix/quaternion from scalar terms (column-major).
    Pack(Vec<Arc<Term>>),
    /// The `i`-th scalar component.
    Get(Arc<Term>, u8),
    /// A prefix operator.
    Unary(UnOp, Arc<Term>),
    /// An infix operator (shapes already checked; `*` covers matrix products).
    Binary(BinOp, Arc<Term>, Arc<Term>),
    /// A built-in function.
    Call(Builtin, Vec<Arc<Term>>),
    /// A `let`-bound value in scope of `body`.
    Let {
        local: u32,
        name: String,
        value: Arc<Term>,
        body: Arc<Term>,
    },
    /// A reference to a `let`-bound value.
    Local(u32),
}

impl Term {
    /// A shared term.
    pub fn rc(shape: Shape, kind: TermKind) -> Arc<Term> {
        let (mut size, mut depth) = (1u64, 1u32);
        let mut child = |c: &Arc<Term>| {
            size = size.saturating_add(c.size);
            depth = depth.max(c.depth.saturating_add(1));
        };
        match &kind {
            TermKind::Lit(_) | TermKind::Input(_) | TermKind::Local(_) => {}
            TermKind::Pack(v) | TermKind::Call(_, v) => v.iter().for_each(child),
            TermKind::Get(t, _) | TermKind::Unary(_, t) => child(t),
            TermKind::Binary(_, a, b) => {
                child(a);
                child(b);
            }
            TermKind::Let { value, body, .. } => {
                child(value);
                child(body);
            }
        }
        Arc::new(Term {
            shape,
            kind,
            size,
            depth,
        })
    }

    /// Nodes of the term as a tree: what lowering it visits.
    pub fn size(&self) -> u64 {
        self.size
    }

    /// Nodes on the longest path from the root to a leaf: how deep the
    /// recursive passes over it (lowering, printing, dropping) go.
    pub fn depth(&self) -> u32 {
        self.depth
    }

    /// Visits every input leaf.
    pub fn for_each_input(&self, f: &mut impl FnMut(Input)) {
        match &self.kind {
            TermKind::Lit(_) | TermKind::Local(_) => {}
            TermKind::Input(i) => f(*i),
            TermKind::Pack(v) | TermKind::Call(_, v) => v.iter().for_each(|t| t.for_each_input(f)),
            TermKind::Get(t, _) | TermKind::Unary(_, t) => t.for_each_input(f),
            TermKind::Binary(_, a, b) => {
                a.for_each_input(f);
                b.for_each_input(f);
            }
            TermKind::Let { value, body, .. } => {
                value.for_each_input(f);
                body.for_each_input(f);
            }
        }
    }
}

/// One entry of a template's DOF table: a free DOF or a fixed value.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum DofRef {
    /// Index into the free DOF vector.
    Free(u32),
    /// A fixed (Dirichlet) DOF with its constant position; its velocity is 0.
    Fixed(f64),
}

/// The time integrator chosen in `settings`.
#[derive(Debug, Clone, PartialEq)]
pub enum Integrator {
    /// Explicit symplectic Euler.
    SymplecticEuler,
    /// Implicit Euler as incremental-potential minimisation.
    ImplicitEuler {
        iterations: u32,
        tolerance: f64,
        /// How a joint tree's kinematics enter the step.
        kinematics: Kinematics,
    },
    /// The classic fourth-order Runge-Kutta method over joint coordinates
    /// (MuJoCo's `RK4`): four stages, each the accelerations at a stage's
    /// state from the constraint solve of implicit Euler with linear
    /// kinematics (Newton's `iterations` and `tolerance`), combined with
    /// the weights 1/6, 1/3, 1/3, 1/6.
    RungeKutta4 { iterations: u32, tolerance: f64 },
}

impl Integrator {
    /// Whether the step minimises the incremental potential (implicit
    /// Euler, and each stage of `rk4`): its kernels take the step's energy
    /// terms and Hessians.
    pub fn is_implicit(&self) -> bool {
        !matches!(self, Integrator::SymplecticEuler)
    }
}

/// How implicit Euler takes a joint tree's forward kinematics over a step.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Kinematics {
    /// Exact: the potential is minimised over the trees' configurations,
    /// `y = K(z)` (docs/joints.md).
    #[default]
    Exact,
    /// Linear about the step's start, `y = y_t + J_t (z - z_t)`, with the
    /// velocity-product (Coriolis, centripetal) accelerations explicit in
    /// the prediction: MuJoCo's `Euler` step with its constraint solve.
    Linear,
}

/// Floating-point precision of the kernels.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Precision {
    /// Double precision (default).
    F64,
    /// Single precision.
    F32,
}

/// How the adjoint uses the `backward =` surrogates of a scene's energies.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum SurrogateMode {
    /// The adjoint differentiates each surrogate energy at the simulated
    /// states (the step's implicit function theorem with the surrogates'
    /// Hessian at the simulated end of the step).
    #[default]
    Energy,
    /// The adjoint differentiates a step of the surrogate model (every
    /// `backward =` energy in place of its forward energy) taken from each
    /// simulated state: the surrogate is re-aligned with the simulation every
    /// step and its own step map is differentiated exactly.
    Model,
}

/// Simulation settings.
#[derive(Debug, Clone, PartialEq)]
pub struct Settings {
    /// Time step in seconds.
    pub dt: f64,
    /// Substeps per step.
    pub substeps: u32,
    /// Gravity acceleration.
    pub gravity: [f64; 3],
    /// The integrator.
    pub integrator: Integrator,
    /// Kernel precision.
    pub precision: Precision,
    /// How gradients use the `backward =` surrogates.
    pub surrogate: SurrogateMode,
    /// The kinematics the surrogate model's implicit Euler steps take
    /// (`surrogate = model(kinematics = exact)`; `None`: the scene's own):
    /// MuJoCo's Euler forward, implicit Euler on the trees'
    /// configurations in the gradients.
    pub surrogate_kinematics: Option<Kinematics>,
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            dt: 0.01,
            substeps: 1,
            gravity: [0.0, 0.0, -9.81],
            integrator: Integrator::SymplecticEuler,
            precision: Precision::F64,
            surrogate: SurrogateMode::Energy,
            surrogate_kinematics: None,
        }
    }
}

impl Settings {
    /// Substeps per step, at least 1 (a model built by hand may hold 0).
    pub fn substep_count(&self) -> usize {
        self.substeps.max(1) as usize
    }

    /// The substep length `dt / substeps`.
    pub fn substep(&self) -> f64 {
        self.dt / self.substep_count() as f64
    }
}

/// A differentiable runtime parameter.
#[derive(Debug, Clone, PartialEq)]
pub struct ParamDecl {
    /// Its name.
    pub name: String,
    /// Default value.
    pub value: f64,
    /// Allowed range, if declared.
    pub bounds: Option<(f64, f64)>,
    /// Declaration site.
    pub span: Span,
}

/// One scalar control input.
#[derive(Debug, Clone, PartialEq)]
pub struct ControlDecl {
    /// Its name, with index (`u[3]`).
    pub name: String,
    /// Clamping range, if declared.
    pub bounds: Option<(f64, f64)>,
}

/// A point mass.
#[derive(Debug, Clone, PartialEq)]
pub struct Particle {
    /// Its name, with index (`cloth[3, 4]`).
    pub name: String,
    /// Initial position.
    pub x: [f64; 3],
    /// Initial velocity.
    pub v: [f64; 3],
    /// Mass.
    pub mass: f64,
    /// First of its 3 free DOFs, or `None` when fixed.
    pub dof: Option<u32>,
}

/// A rigid-body shape.
#[derive(Debug, Clone, PartialEq)]
pub enum BodyShape {
    /// `sphere(radius)`.
    Sphere { radius: f64 },
    /// `box(size)`: full edge lengths.
    Box { size: [f64; 3] },
    /// `capsule(radius, length)` along the local z axis (length of the cylinder part).
    Capsule { radius: f64, length: f64 },
    /// `cylinder(radius, length)` along the local z axis.
    Cylinder { radius: f64, length: f64 },
    /// `compound(shape, offset[, rotation], ...)`: parts of one density
    /// placed in the body frame, each at its offset and turned by its unit
    /// quaternion `(w, x, y, z)` (assumed not to overlap).
    Compound {
        parts: Vec<(BodyShape, [f64; 3], [f64; 4])>,
    },
}

impl BodyShape {
    /// Radius of the smallest origin-centred sphere containing the shape.
    pub fn bounding_radius(&self) -> f64 {
        match *self {
            BodyShape::Compound { ref parts } => parts
                .iter()
                .map(|(p, c, _)| {
                    (c[0] * c[0] + c[1] * c[1] + c[2] * c[2]).sqrt() + p.bounding_radius()
                })
                .fold(0.0, f64::max),
            BodyShape::Sphere { radius } => radius,
            BodyShape::Box { size } => {
                0.5 * (size[0].powi(2) + size[1].powi(2) + size[2].powi(2)).sqrt()
            }
            BodyShape::Capsule { radius, length } => length / 2.0 + radius,
            BodyShape::Cylinder { radius, length } => {
                (radius.powi(2) + (length / 2.0).powi(2)).sqrt()
            }
        }
    }
}

/// An affine rigid body (12 DOFs: origin, then the 3x3 matrix column-major).
#[derive(Debug, Clone, PartialEq)]
pub struct Body {
    /// Its name, with index.
    pub name: String,
    /// Shape.
    pub shape: BodyShape,
    /// Mass (given, or density times volume).
    pub mass: f64,
    /// Initial origin.
    pub x: [f64; 3],
    /// Initial orientation `(w, x, y, z)`, normalised.
    pub rotation: [f64; 4],
    /// Initial linear velocity.
    pub v: [f64; 3],
    /// Initial angular velocity.
    pub w: [f64; 3],
    /// An explicit mass distribution (`com` and `inertia` fields); `None`
    /// derives it from the shape.
    pub inertia: Option<Inertia>,
    /// First of its 12 free DOFs, or `None` when fixed. For a body in a
    /// joint tree these rows hold its pose as forward kinematics computes it
    /// (the `joint` field), not unknowns of the step.
    pub dof: Option<u32>,
    /// How the body hangs in a joint-coordinate tree (`joint = ..`); `None`
    /// for an affine body (12 DOFs, kept rigid by `rigidity`).
    pub joint: Option<Attachment>,
}

/// A body's attachment to its parent in a joint-coordinate tree: the joints
/// in sequence from the parent's frame to the body's. The body's pose is
/// `parent pose * (joint motions, in order) * offset`, with every joint at
/// coordinate 0 in the initial pose (the bodies' `x` and `rotation`).
#[derive(Debug, Clone, PartialEq)]
pub struct Attachment {
    /// The parent body (an index into [`Model::bodies`]); `None` is the world.
    pub parent: Option<u32>,
    /// The joints, parent side first; empty for a weld.
    pub joints: Vec<Joint>,
    /// The first of the rows that hold the joints' coordinates and their
    /// velocities (one per coordinate, in joint order, after every body's
    /// rows), set when DOFs are numbered. A hinge's or slider's row holds its
    /// coordinate; a ball's three its rotation vector (relative to the
    /// initial pose, parent frame) and angular velocity in the parent frame; a
    /// free joint's six the body origin's displacement and the rotation
    /// vector (world) from the initial pose, with the velocity and the angular
    /// velocity (world).
    pub coord: u32,
    /// The `joint` field.
    pub span: Span,
}

impl Attachment {
    /// How many coordinates its joints have (a free joint 6, a ball 3, a
    /// hinge or slider 1, a weld none).
    pub fn coordinates(&self) -> u32 {
        self.joints.iter().map(|j| j.kind.dofs() as u32).sum()
    }

    /// The state rows of its coordinates (and of their velocities).
    pub fn rows(&self) -> std::ops::Range<u32> {
        self.coord..self.coord + self.coordinates()
    }
}

/// The kind of a joint.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum JointKind {
    /// Translation and rotation: 6 coordinates (only to the world).
    Free,
    /// Rotation about `at`: 3 coordinates.
    Ball,
    /// Rotation about `axis` through `at`: 1 coordinate (radians).
    Hinge,
    /// Translation along `axis`: 1 coordinate (metres).
    Slider,
}

impl JointKind {
    /// Number of coordinates (and velocities).
    pub fn dofs(self) -> usize {
        match self {
            JointKind::Free => 6,
            JointKind::Ball => 3,
            JointKind::Hinge | JointKind::Slider => 1,
        }
    }

    /// The language's name.
    pub fn name(self) -> &'static str {
        match self {
            JointKind::Free => "free",
            JointKind::Ball => "ball",
            JointKind::Hinge => "hinge",
            JointKind::Slider => "slider",
        }
    }
}

/// One joint of an [`Attachment`]. Anchor and axis are world coordinates in
/// the initial pose; the compiler has checked them (unit axis, finite).
#[derive(Debug, Clone, PartialEq)]
pub struct Joint {
    /// Its kind.
    pub kind: JointKind,
    /// The anchor (hinge, ball: the pivot; free: the body's origin).
    pub at: [f64; 3],
    /// Unit axis (hinge, slider; zero for the others).
    pub axis: [f64; 3],
    /// Range of a hinge or slider coordinate, `lo < hi`.
    pub range: Option<(f64, f64)>,
    /// A soft range (`None`: the range is a barrier): a one-sided spring or
    /// MuJoCo's limit constraint instead of a barrier, which need not
    /// contain the initial coordinate 0.
    pub soft: Option<SoftRange>,
    /// Rotor inertia added to the coordinate's mass (kg m^2 or kg).
    pub armature: f64,
    /// Viscous damping on the coordinate's velocity (N m s or N s).
    pub damping: f64,
    /// Spring pulling the coordinate to 0 (its initial value).
    pub stiffness: f64,
    /// A motor on the coordinate: (control index, gear); its generalised
    /// force is `gear * u` (the energy `-gear u q`).
    pub motor: Option<(u32, f64)>,
    /// A position servo on the coordinate: (control index, kp); the energy
    /// `kp (q - u)^2 / 2` pulls the coordinate toward the control.
    pub servo: Option<(u32, f64)>,
    /// Where it is written.
    pub span: Span,
}

/// The law of a soft joint range (docs/joints.md).
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum SoftRange {
    /// `soft = t`: a spring-damper past each end with time constant `t`
    /// seconds (stiffness `I_eff / (0.95 t)^2`, critical damping; `I_eff`
    /// the coordinate's effective inertia in the initial pose).
    Spring(f64),
    /// `solref`, `solimp`, `margin`: MuJoCo's limit constraint, the cost
    /// MuJoCo's solver minimises for it, as a term of the step's potential.
    Mujoco(LimitLaw),
}

/// MuJoCo's soft limit on a joint coordinate (its `jnt_solref`,
/// `jnt_solimp`, `jnt_margin`), checked by the compiler: `solref` both
/// positive (time constant, damping ratio) or both negative (minus the
/// stiffness and the damping); `solimp` with `0 < d0, dmax < 1`, `width >=
/// 0`, `0 < mid < 1`, `power >= 1`; `margin >= 0`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct LimitLaw {
    pub solref: [f64; 2],
    pub solimp: [f64; 5],
    /// The distance from an end at which the limit engages.
    pub margin: f64,
}

impl LimitLaw {
    /// MuJoCo's defaults: `solref` (0.02 s, critical), `solimp` (0.9, 0.95,
    /// 0.001, 0.5, 2), no margin.
    pub const DEFAULT: LimitLaw = LimitLaw {
        solref: [0.02, 1.0],
        solimp: [0.9, 0.95, 0.001, 0.5, 2.0],
        margin: 0.0,
    };
}

/// A body's mass distribution given directly: its centre of mass and its
/// inertia tensor about the centre of mass, both in the body frame.
#[derive(Debug, Clone, PartialEq)]
pub struct Inertia {
    /// Centre of mass (body frame).
    pub com: [f64; 3],
    /// Inertia tensor about the centre of mass, body axes (symmetric, rows).
    pub tensor: [[f64; 3]; 3],
}

/// How a template argument is bound.
#[derive(Debug, Clone, PartialEq)]
pub enum ArgBinding {
    /// A particle/body/element handle: `width` entries of the DOF table per instance.
    Handle { kind: &'static str, width: u16 },
    /// A control: one entry of the control table per instance.
    Control,
    /// A compile-time value stored per instance in constant slots `first..first+len`.
    Const { shape: Shape, first: u32 },
    /// The same runtime expression for every instance of this template.
    Runtime(Arc<Term>),
    /// A compile-time `int`/`bool` the template is specialised on.
    Static(String),
}

/// One template argument.
#[derive(Debug, Clone, PartialEq)]
pub struct TemplateArg {
    /// Its name in the energy definition.
    pub name: String,
    /// How instances bind it.
    pub binding: ArgBinding,
}

/// An energy or dissipation template: code, with its instances as data.
#[derive(Debug, Clone, PartialEq)]
pub struct Template {
    /// Unique name: the energy name, with `#k` for its k-th specialisation.
    pub name: String,
    /// Energy or dissipation.
    pub kind: EnergyKind,
    /// The arguments.
    pub args: Vec<TemplateArg>,
    /// Names of the scalar constant slots (`k`, `rest0.x`, ...).
    pub const_names: Vec<String>,
    /// The forward expression (a scalar).
    pub body: Arc<Term>,
    /// The `backward =` surrogate for adjoint kernels, if any.
    pub backward: Option<Arc<Term>>,
    /// DOF table, row-major: `dof_width` entries per instance.
    pub dofs: Vec<DofRef>,
    /// DOF entries per instance: the handle arguments', then `globals`.
    pub dof_width: usize,
    /// The free rows the body reads by name (a particle's or body's DOFs,
    /// a joint's coordinates, not through an argument), sorted: the last
    /// entries of every instance's DOF table, so that the gradient and
    /// Hessian kernels differentiate them like the arguments' DOFs.
    pub globals: Vec<u32>,
    /// Control table, row-major: `control_width` entries per instance.
    pub controls: Vec<u32>,
    /// Control entries per instance.
    pub control_width: usize,
    /// Constant table, row-major: `const_names.len()` values per instance.
    pub consts: Vec<f64>,
    /// Number of instances.
    pub count: usize,
    /// The energy definition.
    pub span: Span,
}

/// An `observe`, `reward`, `loss` or `done` item.
#[derive(Debug, Clone, PartialEq)]
pub struct Objective {
    /// Which kind.
    pub kind: ObjectiveKind,
    /// Its name.
    pub name: String,
    /// What it computes (global DOF references).
    pub value: Arc<Term>,
    /// Declaration site.
    pub span: Span,
}

/// Activation function of a policy network.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Activation {
    Tanh,
    Relu,
    Elu,
    Sigmoid,
    /// `x sigmoid(x)` (SiLU; Brax's default).
    Swish,
    Identity,
}

/// How a policy's network (and its value network) starts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Init {
    /// Weights uniform in `+-1/sqrt(fan_in)`, the policy's last layer
    /// scaled by 0.01: every control starts near the middle of its range
    /// (a differentiable method's start).
    Small,
    /// LeCun's uniform, `+-sqrt(3/fan_in)` (unit variance gain) in every
    /// layer, the last included: Brax's (and Flax's) networks, whose first
    /// actions are already varied (PPO's start on Brax's envs).
    Lecun,
}

/// A neural policy driving controls from observations.
#[derive(Debug, Clone, PartialEq)]
pub struct Policy {
    /// Its name.
    pub name: String,
    /// Indices of the `observe` objectives fed in.
    pub inputs: Vec<usize>,
    /// Control indices driven.
    pub outputs: Vec<u32>,
    /// Hidden layer widths.
    pub hidden: Vec<usize>,
    /// Activation.
    pub activation: Activation,
    /// Initial weights.
    pub init: Init,
}

/// Most variables of a plan (held controls x controls): each Newton
/// iteration runs twice as many rollouts and factors a dense matrix of
/// their square.
pub const MAX_PLAN_VARIABLES: usize = 2000;

/// A trajectory-optimisation policy (`policy NAME = trajopt(..)`): from
/// each environment's state it plans every control of the next `horizon`
/// steps by minimising its cost on its own copy of the scene (the model),
/// warm started from its previous plan, and applies the first step's
/// (`joule_runtime::plan`). Its learned params are the model's copies,
/// which training changes and the simulated world does not see.
#[derive(Debug, Clone, PartialEq)]
pub struct Planner {
    /// Its name.
    pub name: String,
    /// Steps planned.
    pub horizon: usize,
    /// Newton iterations per plan, at most.
    pub iters: usize,
    /// Steps each planned control is held for (move blocking).
    pub hold: usize,
    /// The cost when it is a `loss` item (minimised after the last planned step).
    pub loss: Option<String>,
    /// The cost when it is a `reward` item (maximised, summed over the planned steps).
    pub reward: Option<String>,
    /// Indices of the learned params.
    pub learn: Vec<usize>,
    /// Declaration site.
    pub span: Span,
}

/// What a slot of a [`Reset`] holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Slot {
    /// A standard uniform variate on `[0, 1)`.
    Uniform,
    /// A standard normal variate.
    Normal,
    /// A component of a `let`'s value.
    Let,
}

/// What a step of a [`Reset`] writes.
#[derive(Debug, Clone, PartialEq)]
pub enum ResetTarget {
    /// The slots of a `let` (one per component of its value).
    Let(std::ops::Range<u32>),
    /// State rows of the positions (joint coordinates).
    Pos(Vec<u32>),
    /// State rows of the velocities (joint rates).
    Vel(Vec<u32>),
    /// A parameter.
    Param(u32),
}

/// One entry of a `reset` item, resolved.
#[derive(Debug, Clone, PartialEq)]
pub struct ResetStep {
    /// What it writes.
    pub target: ResetTarget,
    /// Added to the initial value (`+=`) rather than replacing it.
    pub add: bool,
    /// The slots of the variates it draws: drawn anew for each component of
    /// the target when `value` is a scalar, once when it has the target's
    /// shape.
    pub draws: std::ops::Range<u32>,
    /// The value, reading slots as [`Input::Const`].
    pub value: Arc<Term>,
}

/// How an episode's start is drawn: the `reset` items' entries in source
/// order, applied to the initial state and parameters at each reset.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Reset {
    /// The slots the values read.
    pub slots: Vec<Slot>,
    /// The entries, in source order.
    pub steps: Vec<ResetStep>,
}

/// Which initial-state field of a particle or body a [`StartField`] gives.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StartKey {
    /// Position (a body's origin).
    X,
    /// Linear velocity.
    V,
    /// A body's orientation (a quaternion, normalised).
    Rotation,
    /// A body's angular velocity (world frame).
    W,
    /// A jointed body's joint coordinates (0: the declared pose).
    Q,
    /// A jointed body's joint rates.
    Qdot,
}

impl StartKey {
    /// The field's name in the source.
    pub fn name(self) -> &'static str {
        match self {
            StartKey::X => "x",
            StartKey::V => "v",
            StartKey::Rotation => "rotation",
            StartKey::W => "w",
            StartKey::Q => "q",
            StartKey::Qdot => "qdot",
        }
    }
}

/// An initial-state field that reads parameters (or, for joint coordinates
/// and rates, any initial value): evaluated from each environment's
/// parameters when the environment starts, and differentiated (the gradient
/// of a parameter includes its effect through the start).
#[derive(Debug, Clone, PartialEq)]
pub struct StartField {
    /// The body ([`Model::bodies`]) or, with `particle`, the particle.
    pub owner: u32,
    /// Whether `owner` is a particle.
    pub particle: bool,
    /// Which field.
    pub key: StartKey,
    /// Its value, reading parameters only (or a literal).
    pub value: Arc<Term>,
    /// The field's value in the source.
    pub span: Span,
}

/// A particle's or affine body's mass that reads parameters.
#[derive(Debug, Clone, PartialEq)]
pub struct MassField {
    /// The body ([`Model::bodies`]) or, with `particle`, the particle.
    pub owner: u32,
    /// Whether `owner` is a particle.
    pub particle: bool,
    /// The mass, reading parameters only.
    pub value: Arc<Term>,
    /// Its value at the declared parameters (the mass matrix's).
    pub declared: f64,
    /// A body's centre of mass (vec3) and inertia tensor about it (mat3,
    /// body axes) where they read params; `None`: its distribution scales
    /// with the mass (and for particles).
    pub distribution: Option<(Arc<Term>, Arc<Term>)>,
}

/// A fully resolved scene.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Model {
    /// Title from `scene "..."`.
    pub title: Option<String>,
    /// Settings.
    pub settings: Settings,
    /// Parameters, in declaration order.
    pub params: Vec<ParamDecl>,
    /// Scalar controls, in declaration order.
    pub controls: Vec<ControlDecl>,
    /// Particles, in declaration order.
    pub particles: Vec<Particle>,
    /// Rigid bodies, in declaration order.
    pub bodies: Vec<Body>,
    /// Number of free DOFs.
    pub dof_count: usize,
    /// Energy and dissipation templates.
    pub templates: Vec<Template>,
    /// Observations and objectives, in declaration order.
    pub objectives: Vec<Objective>,
    /// Policies.
    pub policies: Vec<Policy>,
    /// Trajectory-optimisation policies.
    pub planners: Vec<Planner>,
    /// How an episode's start is drawn (no steps: the initial state).
    pub reset: Reset,
    /// The initial-state fields that read parameters, in declaration order
    /// (their values at the declared parameters are in the particles and
    /// bodies); see [`crate::start`].
    pub start: Vec<StartField>,
    /// The masses that read parameters in an explicit step, which scales
    /// their forces' accelerations (an implicit step adds their inertia as
    /// energies instead); see [`crate::start::MassScales`].
    pub masses: Vec<MassField>,
    /// The triangles of every mesh as particle ids: all faces of a sheet, the
    /// outward-wound boundary of a solid. Drawn by viewers; no energy of its own.
    pub surfaces: Vec<[u32; 3]>,
}

impl Model {
    /// The surrogate model: this model with every `backward =` surrogate in
    /// place of its forward energy (and no surrogates left), its implicit
    /// Euler on the surrogate's kinematics where the settings name them,
    /// whose steps [`SurrogateMode::Model`] differentiates. `None` when no
    /// energy has a surrogate and the kinematics are the step's own.
    pub fn surrogate_model(&self) -> Option<Model> {
        // Kinematics other than the step's own (implicit Euler's alone).
        let kinematics = match self.settings.integrator {
            Integrator::ImplicitEuler { kinematics, .. } => self
                .settings
                .surrogate_kinematics
                .filter(|k| *k != kinematics),
            _ => None,
        };
        if kinematics.is_none() && self.templates.iter().all(|t| t.backward.is_none()) {
            return None;
        }
        let mut m = self.clone();
        m.settings.surrogate = SurrogateMode::Energy;
        m.settings.surrogate_kinematics = None;
        if let (Some(k), Integrator::ImplicitEuler { kinematics, .. }) =
            (kinematics, &mut m.settings.integrator)
        {
            *kinematics = k;
        }
        for t in &mut m.templates {
            if let Some(b) = t.backward.take() {
                t.body = b;
            }
        }
        Some(m)
    }
}
