//! Names the language reserves, in one place for the resolver and the MJCF
//! importer (which must not pick them for the identifiers it writes): the
//! calls the evaluator handles itself, built-in constants, the collections
//! every scene has, the type names of parameter lists, and the standard
//! prelude with the names of its items. Keywords are the grammar's
//! (`joule_grammar::KEYWORDS`); built-in functions are [`Builtin::ALL`].

use crate::model::Builtin;

/// Call names handled by the evaluator itself (not [`Builtin`]s).
pub const SPECIAL_CALLS: &[&str] = &[
    "vec2",
    "vec3",
    "vec4",
    "mat2",
    "mat3",
    "quat",
    "axis_angle",
    "rest",
    "prev",
    "held",
    "sphere",
    "box",
    "capsule",
    "cylinder",
    "grid",
    "tetgrid",
    "load",
    "len",
    "sum",
    "contact_points",
    "may_touch",
    "compound",
];

/// Collections every scene has: all bodies, all particles (declared so far).
pub const COLLECTIONS: &[&str] = &["bodies", "particles"];

/// Names of built-in constants.
pub const CONSTANTS: &[(&str, f64)] = &[("pi", std::f64::consts::PI)];

/// Whether `name` is reserved by a built-in function or constant.
pub fn is_builtin_name(name: &str) -> bool {
    Builtin::from_name(name).is_some()
        || SPECIAL_CALLS.contains(&name)
        || CONSTANTS.iter().any(|(n, _)| *n == name)
}

/// Type names accepted in `fn` and `energy` parameter lists.
pub const TYPE_NAMES: &[&str] = &[
    "particle", "body", "tet", "tri", "edge", "control", "scalar", "vec2", "vec3", "vec4", "mat2",
    "mat3", "quat", "int", "bool",
];

/// The standard prelude, always in scope.
pub const PRELUDE: &str = include_str!("prelude.joule");

/// Names of the prelude's items (energies, dissipations, functions and
/// constants), read from the first words of its lines.
pub fn prelude_items() -> impl Iterator<Item = &'static str> {
    PRELUDE.lines().filter_map(|line| {
        let mut words = line.split(|c: char| !(c.is_alphanumeric() || c == '_'));
        match (words.next(), words.next()) {
            (Some("energy" | "fn" | "dissipation" | "const"), Some(name)) => Some(name),
            _ => None,
        }
    })
}
