//! The abstract syntax tree of a scene file. Every node keeps its byte span.

use std::fmt;

/// Identifies a source file within one compilation (index into the source map).
pub type FileId = u32;

/// A byte range in one source file.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct Span {
    /// The file the range belongs to.
    pub file: FileId,
    /// First byte.
    pub start: u32,
    /// One past the last byte.
    pub end: u32,
}

impl Span {
    /// A span in `file` covering `start..end`.
    pub fn new(file: FileId, start: usize, end: usize) -> Self {
        Span {
            file,
            start: start as u32,
            end: end as u32,
        }
    }

    /// The smallest span covering both (same file assumed).
    pub fn to(self, other: Span) -> Span {
        Span {
            file: self.file,
            start: self.start.min(other.start),
            end: self.end.max(other.end),
        }
    }

    /// Length in bytes.
    pub fn len(self) -> usize {
        (self.end - self.start) as usize
    }

    /// Whether the span is empty.
    pub fn is_empty(self) -> bool {
        self.end == self.start
    }
}

/// A name with its location.
#[derive(Debug, Clone, PartialEq)]
pub struct Ident {
    /// The name as written.
    pub name: String,
    /// Where it was written.
    pub span: Span,
}

/// Unary operators.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum UnOp {
    /// `-x`
    Neg,
    /// `!b`
    Not,
}

/// Binary operators.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum BinOp {
    Add,
    Sub,
    Mul,
    Div,
    Rem,
    Pow,
    Eq,
    Ne,
    Lt,
    Le,
    Gt,
    Ge,
    And,
    Or,
}

impl BinOp {
    /// The operator as written in source.
    pub fn symbol(self) -> &'static str {
        match self {
            BinOp::Add => "+",
            BinOp::Sub => "-",
            BinOp::Mul => "*",
            BinOp::Div => "/",
            BinOp::Rem => "%",
            BinOp::Pow => "^",
            BinOp::Eq => "==",
            BinOp::Ne => "!=",
            BinOp::Lt => "<",
            BinOp::Le => "<=",
            BinOp::Gt => ">",
            BinOp::Ge => ">=",
            BinOp::And => "&&",
            BinOp::Or => "||",
        }
    }

    /// Binding strength as the parser's Pratt table has it (higher binds
    /// tighter; prefix operators sit at 6, between `*` and `^`).
    pub fn precedence(self) -> u8 {
        match self {
            BinOp::Or => 1,
            BinOp::And => 2,
            BinOp::Eq | BinOp::Ne | BinOp::Lt | BinOp::Le | BinOp::Gt | BinOp::Ge => 3,
            BinOp::Add | BinOp::Sub => 4,
            BinOp::Mul | BinOp::Div | BinOp::Rem => 5,
            BinOp::Pow => 7,
        }
    }
}

/// An expression with its span.
#[derive(Debug, Clone, PartialEq)]
pub struct Expr {
    /// What the expression is.
    pub kind: ExprKind,
    /// Where it was written.
    pub span: Span,
}

/// The expression forms of the language.
#[derive(Debug, Clone, PartialEq)]
pub enum ExprKind {
    /// A number literal; `int` when written without `.` or exponent; optional unit suffix.
    Num {
        /// The value as written (before any unit conversion).
        value: f64,
        /// Written as an integer (`3`, not `3.0`).
        is_int: bool,
        /// Suffix such as `deg` in `30deg`.
        unit: Option<Ident>,
    },
    /// `true` / `false`.
    Bool(bool),
    /// A string literal.
    Str(String),
    /// A name.
    Name(String),
    /// A prefix operator.
    Unary(UnOp, Box<Expr>),
    /// An infix operator.
    Binary(BinOp, Box<Expr>, Box<Expr>),
    /// `f(args)`.
    Call { func: Ident, args: Vec<Arg> },
    /// `recv.name(args)`.
    Method {
        recv: Box<Expr>,
        name: Ident,
        args: Vec<Arg>,
    },
    /// `recv.name`.
    Field { recv: Box<Expr>, name: Ident },
    /// `recv[i, j]`.
    Index { recv: Box<Expr>, indices: Vec<Expr> },
    /// `(a, b, c)`.
    Tuple(Vec<Expr>),
    /// `[a, b, c]`.
    List(Vec<Expr>),
    /// `sum(body for gens)`.
    Sum { body: Box<Expr>, gens: Generators },
    /// `{ let a = ..; expr }`.
    Block { lets: Vec<Let>, result: Box<Expr> },
}

/// A call argument, positional or named (`name = value`).
#[derive(Debug, Clone, PartialEq)]
pub struct Arg {
    /// The name, for named arguments.
    pub name: Option<Ident>,
    /// The value.
    pub value: Expr,
}

/// `let name = value` inside a block.
#[derive(Debug, Clone, PartialEq)]
pub struct Let {
    /// The bound name.
    pub name: Ident,
    /// Its value.
    pub value: Expr,
}

/// An entry of a `reset` item.
#[derive(Debug, Clone, PartialEq)]
pub enum ResetEntry {
    /// `let name = value`: drawn once per episode.
    Let(Let),
    /// `target = value` or `target += value` (`add`).
    Set {
        /// What is set: joint coordinates, rates or a param.
        target: Expr,
        /// `+=` (added to the initial value) rather than `=`.
        add: bool,
        /// The value, drawn anew per component of the target.
        value: Expr,
    },
}

impl ResetEntry {
    /// From the entry's first token to its last.
    pub fn span(&self) -> Span {
        match self {
            ResetEntry::Let(l) => l.name.span.to(l.value.span),
            ResetEntry::Set { target, value, .. } => target.span.to(value.span),
        }
    }
}

/// One generator: `i in lo..hi` or `t in collection`.
#[derive(Debug, Clone, PartialEq)]
pub struct Generator {
    /// The bound variable.
    pub var: Ident,
    /// What it ranges over.
    pub source: GenSource,
    /// The whole generator.
    pub span: Span,
}

/// What a generator ranges over.
#[derive(Debug, Clone, PartialEq)]
pub enum GenSource {
    /// A half-open integer range.
    Range(Expr, Expr),
    /// The elements of a list (mesh elements, particles, bodies).
    Collection(Expr),
}

/// `i in 0..N, j in 0..M if GUARD`.
#[derive(Debug, Clone, PartialEq)]
pub struct Generators {
    /// The generators, outermost first.
    pub gens: Vec<Generator>,
    /// Optional compile-time guard.
    pub guard: Option<Box<Expr>>,
    /// The whole clause.
    pub span: Span,
}

/// A typed (or untyped) parameter of a `fn`, `energy` or `dissipation`.
#[derive(Debug, Clone, PartialEq)]
pub struct Param {
    /// The parameter name.
    pub name: Ident,
    /// The declared type, if any.
    pub ty: Option<Ident>,
}

/// `name = value [in lo..hi]` inside braces.
#[derive(Debug, Clone, PartialEq)]
pub struct FieldDef {
    /// The field name.
    pub name: Ident,
    /// Its value.
    pub value: Expr,
    /// `in lo..hi` after the value (a body's `joint` range; an error elsewhere).
    pub bounds: Option<(Expr, Expr)>,
}

impl FieldDef {
    /// The span from the name to the end of the value or its bounds.
    pub fn span(&self) -> Span {
        let end = self
            .bounds
            .as_ref()
            .map_or(self.value.span, |(_, hi)| hi.span);
        self.name.span.to(end)
    }
}

/// Array dimensions of a declaration: `[i in 0..N, j in 0..M]` or `[8]`.
#[derive(Debug, Clone, PartialEq)]
pub enum Dims {
    /// Generators binding index names usable in the fields.
    Gens(Generators),
    /// Plain sizes.
    Sizes(Vec<Expr>),
}

/// Energy or dissipation.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum EnergyKind {
    /// A potential in positions.
    Energy,
    /// A dissipation potential in velocities.
    Dissipation,
}

/// Per-environment outputs and objectives.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ObjectiveKind {
    /// `observe`
    Observe,
    /// `reward`
    Reward,
    /// `loss`
    Loss,
    /// `done`
    Done,
}

impl ObjectiveKind {
    /// The keyword.
    pub fn keyword(self) -> &'static str {
        match self {
            ObjectiveKind::Observe => "observe",
            ObjectiveKind::Reward => "reward",
            ObjectiveKind::Loss => "loss",
            ObjectiveKind::Done => "done",
        }
    }
}

/// An energy or dissipation template definition.
#[derive(Debug, Clone, PartialEq)]
pub struct EnergyDef {
    /// Energy or dissipation.
    pub kind: EnergyKind,
    /// The template name.
    pub name: Ident,
    /// Typed arguments.
    pub params: Vec<Param>,
    /// The forward expression.
    pub body: Expr,
    /// The `backward =` surrogate, used by adjoint kernels only.
    pub backward: Option<Expr>,
}

/// A top-level item with its span.
#[derive(Debug, Clone, PartialEq)]
pub struct Item {
    /// What the item is.
    pub kind: ItemKind,
    /// Where it was written.
    pub span: Span,
}

/// The items of the language.
#[derive(Debug, Clone, PartialEq)]
pub enum ItemKind {
    /// `scene "title"`.
    Scene(String),
    /// `use "path.joule"`, or `use "model.xml" (options)` with the MJCF
    /// import's options (`friction = mujoco`).
    Use {
        path: String,
        path_span: Span,
        args: Vec<Arg>,
    },
    /// `const NAME = expr`.
    Const { name: Ident, value: Expr },
    /// `fn NAME(params) = expr`.
    Fn {
        name: Ident,
        params: Vec<Param>,
        body: Expr,
    },
    /// `settings { ... }`.
    Settings(Vec<FieldDef>),
    /// `param NAME[dims] = expr [in lo..hi]`.
    Param {
        name: Ident,
        dims: Option<Dims>,
        value: Expr,
        bounds: Option<(Expr, Expr)>,
    },
    /// `control NAME[dims] [in lo..hi]`.
    Control {
        name: Ident,
        dims: Option<Dims>,
        bounds: Option<(Expr, Expr)>,
    },
    /// `particle NAME[dims] { fields }`.
    Particle {
        name: Ident,
        dims: Option<Dims>,
        fields: Vec<FieldDef>,
    },
    /// `body NAME[dims] { fields }`.
    Body {
        name: Ident,
        dims: Option<Dims>,
        fields: Vec<FieldDef>,
    },
    /// `mesh NAME = generator(...) { fields }`.
    Mesh {
        name: Ident,
        source: Expr,
        fields: Vec<FieldDef>,
    },
    /// `fix a, b for gens`.
    Fix {
        targets: Vec<Expr>,
        gens: Option<Generators>,
    },
    /// `energy` / `dissipation` templates.
    Energy(EnergyDef),
    /// Compile-time `if COND { items } else { items }`.
    If {
        cond: Expr,
        then: Vec<Item>,
        otherwise: Vec<Item>,
    },
    /// `observe` / `reward` / `loss` / `done`.
    Objective {
        kind: ObjectiveKind,
        name: Ident,
        value: Expr,
    },
    /// `policy NAME = mlp(...)`.
    Policy { name: Ident, value: Expr },
    /// `reset { ... }`: how an episode's start is drawn.
    Reset(Vec<ResetEntry>),
    /// `TEMPLATE(args) for gens`.
    Instance {
        template: Ident,
        args: Vec<Arg>,
        gens: Option<Generators>,
    },
}

/// A parsed file: its items in source order.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct SceneFile {
    /// Top-level items.
    pub items: Vec<Item>,
}

impl fmt::Display for SceneFile {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        crate::print::write_file(f, self)
    }
}
