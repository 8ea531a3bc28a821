//! A body's `joint` field: its place in a joint-coordinate tree
//! (docs/joints.md). The joints are read with their body; their parents,
//! which may be declared later in the scene, are resolved once every body is
//! declared (before `fix` and DOF numbering), and the tree is then checked
//! for cycles.

use super::eval::{describe_value, Ctx};
use super::value::Value;
use super::{suggest, ArrayKind, Global, Resolver};
use crate::model::*;
use joule_grammar::ast::*;
use joule_grammar::Diagnostic;
use std::collections::HashSet;

/// A hinge's or slider's arguments: `parent`, `at`, `axis` (also by
/// position), then the options on its one coordinate.
const HINGE_ARGS: &[&str] = &[
    "parent",
    "at",
    "axis",
    "range",
    "soft",
    "solref",
    "solimp",
    "margin",
    "armature",
    "damping",
    "stiffness",
    "motor",
    "gear",
    "servo",
    "kp",
];

/// The joint constructors, as written.
const CONSTRUCTORS: &[&str] = &["free", "ball", "hinge", "slider", "weld"];

/// The reserved parent name for the world frame.
const WORLD: &str = "world";

/// How to write a joint.
const USAGE: &str = "a joint is `free`, `ball(parent, at = ..)`, `hinge(parent, at = .., axis = ..)`, `slider(parent, at = .., axis = ..)`, `weld(parent)`, or a list `[hinge(..), ..]` of hinges, sliders and balls; `parent` is a body or `world`";

/// A body's joints whose parent is still to be resolved.
pub(super) struct PendingParent {
    /// The body.
    body: u32,
    /// The parent as written, per joint (one for a single joint or a weld).
    parents: Vec<Expr>,
    /// The generator variables of the body's declaration (for parents such
    /// as `leg[k]`).
    locals: Vec<(String, Value)>,
}

/// The constructor a joint expression names, if it is one (`list` for a list).
pub(super) fn written_kind(e: &Expr) -> Option<&str> {
    match &e.kind {
        ExprKind::Name(n) => CONSTRUCTORS.contains(&n.as_str()).then_some(n.as_str()),
        ExprKind::Call { func, .. } => CONSTRUCTORS
            .contains(&func.name.as_str())
            .then_some(func.name.as_str()),
        ExprKind::List(_) => Some("list"),
        _ => None,
    }
}

/// One joint as read, before its parent is resolved.
struct Written {
    /// The joint; `None` for a weld.
    joint: Option<Joint>,
    /// The parent expression; `None` for `free` (always the world).
    parent: Option<Expr>,
}

impl Resolver<'_> {
    /// Reads the `joint` field `f` of the body `body` (initial position `x`)
    /// under `ctx`: the attachment (its parent still unset) and, unless the
    /// joint is `free`, the parents left to resolve.
    pub(super) fn joint_field(
        &mut self,
        ctx: &mut Ctx,
        f: &FieldDef,
        body: u32,
        x: [f64; 3],
    ) -> Option<(Attachment, Option<PendingParent>)> {
        let mut joints = vec![];
        let mut parents = vec![];
        if let ExprKind::List(items) = &f.value.kind {
            if let Some((lo, hi)) = &f.bounds {
                self.error(
                    Diagnostic::error(
                        "joule::joint",
                        "`in lo..hi` gives the range of a single hinge or slider",
                        lo.span.to(hi.span),
                        "after a list of joints",
                    )
                    .with_help("give each joint of the list its own `range = [lo, hi]`"),
                );
                return None;
            }
            if items.is_empty() {
                self.error(
                    Diagnostic::error(
                        "joule::joint",
                        "the joint list is empty",
                        f.value.span,
                        "no joints",
                    )
                    .with_help(USAGE),
                );
                return None;
            }
            for e in items {
                let w = self.one_joint(ctx, e, x, true)?;
                joints.extend(w.joint);
                parents.extend(w.parent);
            }
        } else {
            let w = self.one_joint(ctx, &f.value, x, false)?;
            let mut joint = w.joint;
            if let Some((lo, hi)) = &f.bounds {
                let span = lo.span.to(hi.span);
                match &mut joint {
                    Some(j) if matches!(j.kind, JointKind::Hinge | JointKind::Slider) => {
                        if j.range.is_some() {
                            self.error(
                                Diagnostic::error(
                                    "joule::joint",
                                    "the joint's range is given twice",
                                    span,
                                    "second range",
                                )
                                .with_label(j.span, "this joint has `range = ..`")
                                .with_help("keep `range = [lo, hi]` or `in lo..hi`, not both"),
                            );
                            return None;
                        }
                        j.range = Some(self.joint_range(ctx, lo, hi, j.soft.is_some())?);
                    }
                    _ => {
                        let what = joint.as_ref().map_or("weld", |j| j.kind.name());
                        self.error(
                            Diagnostic::error(
                                "joule::joint",
                                format!("a `{what}` joint has no range"),
                                span,
                                "range of a joint without one coordinate",
                            )
                            .with_help("`in lo..hi` bounds the one coordinate of a `hinge` (radians) or a `slider` (metres)"),
                        );
                        return None;
                    }
                }
            }
            joints.extend(joint);
            parents.extend(w.parent);
        }
        if let Some(j) = joints
            .iter()
            .find(|j| j.soft.is_some() && j.range.is_none())
        {
            self.error(
                Diagnostic::error(
                    "joule::joint",
                    "a soft range's law without a range",
                    j.span,
                    "no range to soften",
                )
                .with_help("`soft = t` (or MuJoCo's `solref`, `solimp`, `margin`) makes the joint's range soft: give the range too, `range = [lo, hi]` or `in lo..hi` after the joint"),
            );
            return None;
        }
        for j in &joints {
            if let (Some(SoftRange::Mujoco(l)), Some((lo, hi))) = (j.soft, j.range) {
                if 2.0 * l.margin >= hi - lo {
                    self.err_help(
                        "joule::invalid_value",
                        "the limit's margin spans the range",
                        j.span,
                        format!("margin {} on a range of width {}", l.margin, hi - lo),
                        "MuJoCo's limit engages within `margin` of each end: keep it below half the range's width",
                    );
                    return None;
                }
            }
        }
        let attachment = Attachment {
            parent: None,
            joints,
            coord: 0, // numbered with the DOFs
            span: f.span(),
        };
        let pending = (!parents.is_empty()).then(|| PendingParent {
            body,
            parents,
            locals: ctx.locals.clone(),
        });
        Some((attachment, pending))
    }

    /// One joint constructor `e` (an element of a list when `in_list`).
    fn one_joint(
        &mut self,
        ctx: &mut Ctx,
        e: &Expr,
        x: [f64; 3],
        in_list: bool,
    ) -> Option<Written> {
        let (name, name_span, args): (&str, Span, &[Arg]) = match &e.kind {
            ExprKind::Name(n) => (n, e.span, &[]),
            ExprKind::Call { func, args } => (&func.name, func.span, args),
            ExprKind::List(_) => {
                self.error(
                    Diagnostic::error(
                        "joule::joint",
                        "joint lists do not nest",
                        e.span,
                        "a list inside the list",
                    )
                    .with_help("list the joints in sequence in one list, parent side first"),
                );
                return None;
            }
            _ => {
                self.error(
                    Diagnostic::error(
                        "joule::joint",
                        "`joint` must be a joint constructor",
                        e.span,
                        "not a joint",
                    )
                    .with_help(USAGE),
                );
                return None;
            }
        };
        let kind = match name {
            "free" => Some(JointKind::Free),
            "ball" => Some(JointKind::Ball),
            "hinge" => Some(JointKind::Hinge),
            "slider" => Some(JointKind::Slider),
            "weld" => None,
            _ => {
                let help =
                    suggest(name, CONSTRUCTORS.iter().copied()).unwrap_or_else(|| USAGE.into());
                self.error(
                    Diagnostic::error(
                        "joule::joint",
                        format!("unknown joint `{name}`"),
                        name_span,
                        "not a joint constructor",
                    )
                    .with_help(help),
                );
                return None;
            }
        };
        if in_list && matches!(kind, None | Some(JointKind::Free)) {
            let help = if kind.is_none() {
                "a weld has no coordinates: write `joint = weld(parent)` on its own"
            } else {
                "a free body hangs from the world by its 6 coordinates alone: write `joint = free`, or build the motion from `ball` and `slider` joints"
            };
            self.error(
                Diagnostic::error(
                    "joule::joint",
                    format!("`{name}` cannot be part of a joint list"),
                    e.span,
                    "inside a list",
                )
                .with_help(help),
            );
            return None;
        }
        if matches!(e.kind, ExprKind::Name(_)) && kind != Some(JointKind::Free) {
            self.error(
                Diagnostic::error(
                    "joule::arity",
                    format!("`{name}` needs its parent"),
                    e.span,
                    "no arguments",
                )
                .with_help(format!("write `{name}(parent, ..)`; {USAGE}")),
            );
            return None;
        }
        // The arguments each constructor takes; the first ones also by position.
        let (allowed, positional): (&[&str], usize) = match kind {
            Some(JointKind::Free) => (&[], 0),
            None => (&["parent"], 1),
            Some(JointKind::Ball) => (&["parent", "at"], 2),
            Some(JointKind::Hinge | JointKind::Slider) => (HINGE_ARGS, 3),
        };
        let mut given: Vec<(&str, &Expr)> = vec![];
        for (i, a) in args.iter().enumerate() {
            let key = match &a.name {
                None if i < positional && given.len() == i => allowed[i],
                None => {
                    let help = if kind == Some(JointKind::Free) {
                        "a free joint always hangs from the world: write `joint = free`".to_string()
                    } else if i < positional {
                        "positional arguments come before named ones".to_string()
                    } else {
                        format!(
                            "`{name}` takes {} by position; name the others (`{} = ..`)",
                            allowed[..positional]
                                .iter()
                                .map(|a| format!("`{a}`"))
                                .collect::<Vec<_>>()
                                .join(", "),
                            allowed.get(positional).unwrap_or(&allowed[0])
                        )
                    };
                    self.error(
                        Diagnostic::error(
                            "joule::arity",
                            format!("too many arguments to `{name}`"),
                            a.value.span,
                            "unexpected argument",
                        )
                        .with_help(help),
                    );
                    return None;
                }
                Some(n) if allowed.contains(&n.name.as_str()) => n.name.as_str(),
                Some(n) => {
                    let help = if HINGE_ARGS[3..].contains(&n.name.as_str()) {
                        format!(
                            "only hinges and sliders take `{}`: it acts on their one coordinate",
                            n.name
                        )
                    } else if allowed.is_empty() {
                        "a free joint always hangs from the world: write `joint = free`".into()
                    } else {
                        suggest(&n.name, allowed.iter().copied()).unwrap_or_else(|| {
                            format!(
                                "`{name}` takes {}",
                                allowed
                                    .iter()
                                    .map(|a| format!("`{a}`"))
                                    .collect::<Vec<_>>()
                                    .join(", ")
                            )
                        })
                    };
                    self.error(
                        Diagnostic::error(
                            "joule::named_argument",
                            format!("`{name}` has no argument `{}`", n.name),
                            n.span,
                            "unknown argument",
                        )
                        .with_help(help),
                    );
                    return None;
                }
            };
            if let Some((_, old)) = given.iter().find(|(k, _)| *k == key) {
                self.error(
                    Diagnostic::error(
                        "joule::duplicate_name",
                        format!("`{key}` is given twice"),
                        a.value.span,
                        "second value",
                    )
                    .with_label(old.span, "first value"),
                );
                return None;
            }
            given.push((key, &a.value));
        }
        let get = |k: &str| given.iter().find(|(n, _)| *n == k).map(|(_, e)| *e);
        let required: &[&str] = match kind {
            Some(JointKind::Free) => &[],
            None => &["parent"],
            Some(JointKind::Ball) => &["parent", "at"],
            Some(JointKind::Hinge) => &["parent", "at", "axis"],
            Some(JointKind::Slider) => &["parent", "axis"],
        };
        if let Some(missing) = required.iter().find(|k| get(k).is_none()) {
            self.error(
                Diagnostic::error(
                    "joule::arity",
                    format!("`{name}` needs `{missing}`"),
                    e.span,
                    format!("no `{missing}`"),
                )
                .with_help(USAGE),
            );
            return None;
        }
        let parent = get("parent").cloned();
        let Some(kind) = kind else {
            return Some(Written {
                joint: None,
                parent,
            });
        };
        let at = match get("at") {
            Some(v) => vec3(&self.const_value(ctx, "at", v, Shape::Vec(3), true)?),
            None => x,
        };
        let axis = match get("axis") {
            Some(v) => {
                let a = vec3(&self.const_value(ctx, "axis", v, Shape::Vec(3), true)?);
                let n = a.iter().map(|c| c * c).sum::<f64>().sqrt();
                if !(n > 0.0 && n.is_finite()) {
                    self.error(
                        Diagnostic::error(
                            "joule::invalid_value",
                            "the joint axis has length 0",
                            v.span,
                            "zero vector",
                        )
                        .with_help("give the axis direction in world coordinates of the initial pose, such as `axis = vec3(0, 0, 1)`; any nonzero length will do"),
                    );
                    return None;
                }
                a.map(|c| c / n)
            }
            None => [0.0; 3],
        };
        let soft = self.soft_range(ctx, &get)?;
        let range = match get("range") {
            None => None,
            Some(v) => match &v.kind {
                ExprKind::List(b) if b.len() == 2 => {
                    Some(self.joint_range(ctx, &b[0], &b[1], soft.is_some())?)
                }
                _ => {
                    self.error(
                        Diagnostic::error(
                            "joule::type_mismatch",
                            "`range` is a list of two bounds",
                            v.span,
                            "not `[lo, hi]`",
                        )
                        .with_help("write `range = [lo, hi]` (radians for a hinge, such as `[-30deg, 30deg]`; metres for a slider), or `in lo..hi` after the joint"),
                    );
                    return None;
                }
            },
        };
        let mut coef = |r: &mut Self, key: &str| -> Option<f64> {
            let Some(v) = get(key) else { return Some(0.0) };
            let c = r.const_value(ctx, key, v, Shape::Scalar, true)?.x();
            if c < 0.0 {
                r.error(
                    Diagnostic::error(
                        "joule::invalid_value",
                        format!("`{key}` cannot be negative"),
                        v.span,
                        format!("this is {c}"),
                    )
                    .with_help("armature, damping and stiffness are numbers >= 0 in SI units (per radian for a hinge, per metre for a slider)"),
                );
                return None;
            }
            Some(c)
        };
        let armature = coef(self, "armature")?;
        let damping = coef(self, "damping")?;
        let stiffness = coef(self, "stiffness")?;
        let motor = self.joint_actuator(ctx, get("motor"), get("gear"), "motor", "gear", 1.0)?;
        let servo = self.joint_actuator(ctx, get("servo"), get("kp"), "servo", "kp", f64::NAN)?;
        Some(Written {
            joint: Some(Joint {
                kind,
                at,
                axis,
                range,
                soft,
                armature,
                damping,
                stiffness,
                motor,
                servo,
                span: e.span,
            }),
            parent,
        })
    }

    /// A hinge's or slider's soft range law: `soft = t` (a spring-damper
    /// with time constant `t`), or MuJoCo's limit where any of `solref`,
    /// `solimp`, `margin` is given (MuJoCo's defaults for the others);
    /// `Some(None)` for neither, `None` after reporting an error.
    fn soft_range<'e>(
        &mut self,
        ctx: &mut Ctx,
        get: &impl Fn(&str) -> Option<&'e Expr>,
    ) -> Option<Option<SoftRange>> {
        let mujoco = ["solref", "solimp", "margin"].map(get);
        if let Some(v) = get("soft") {
            if let Some(m) = mujoco.iter().flatten().next() {
                self.error(
                    Diagnostic::error(
                        "joule::joint",
                        "a range with two laws",
                        m.span,
                        "MuJoCo's limit",
                    )
                    .with_label(v.span, "a spring-damper")
                    .with_help("keep `soft = t` (a spring-damper past the ends) or MuJoCo's limit (`solref`, `solimp`, `margin`), not both"),
                );
                return None;
            }
            let t = self.const_value(ctx, "soft", v, Shape::Scalar, true)?.x();
            if !(t > 0.0 && t.is_finite()) {
                self.err_help(
                    "joule::invalid_value",
                    "`soft` must be a positive time",
                    v.span,
                    format!("this is {t}"),
                    "`soft = 0.02` makes the range a spring that pushes the coordinate back within about 0.02 s",
                );
                return None;
            }
            return Some(Some(SoftRange::Spring(t)));
        }
        if mujoco.iter().all(Option::is_none) {
            return Some(None);
        }
        let mut law = LimitLaw::DEFAULT;
        if let Some(v) = mujoco[0] {
            let r = self.number_list(ctx, "solref", v, 2)?;
            let r = [r[0], r[1]];
            let standard = r[0] > 0.0 && r[1] > 0.0;
            let direct = r[0] < 0.0 && r[1] < 0.0;
            if !(r.iter().all(|x| x.is_finite()) && (standard || direct)) {
                self.err_help(
                    "joule::invalid_value",
                    "`solref` is two positive or two negative numbers",
                    v.span,
                    format!("this is [{}, {}]", r[0], r[1]),
                    "`solref = [t, zeta]`: the time constant (s) and damping ratio, as MuJoCo's `solreflimit` (0.02 and 1 by default); `[-k, -b]` gives the stiffness and damping directly",
                );
                return None;
            }
            law.solref = r;
        }
        if let Some(v) = mujoco[1] {
            let c = self.number_list(ctx, "solimp", v, 5)?;
            let i = [c[0], c[1], c[2], c[3], c[4]];
            let unit = |x: f64| x > 0.0 && x < 1.0;
            if !(unit(i[0])
                && unit(i[1])
                && i[2] >= 0.0
                && i[2].is_finite()
                && unit(i[3])
                && i[4] >= 1.0
                && i[4].is_finite())
            {
                self.err_help(
                    "joule::invalid_value",
                    "`solimp` is out of range",
                    v.span,
                    format!("this is [{}, {}, {}, {}, {}]", i[0], i[1], i[2], i[3], i[4]),
                    "`solimp = [d0, dmax, width, mid, power]`, as MuJoCo's `solimplimit` ([0.9, 0.95, 0.001, 0.5, 2] by default): impedances d0 and dmax and the midpoint strictly between 0 and 1, the width (m or rad) >= 0, the power >= 1",
                );
                return None;
            }
            law.solimp = i;
        }
        if let Some(v) = mujoco[2] {
            let m = self.const_value(ctx, "margin", v, Shape::Scalar, true)?.x();
            if !(m >= 0.0 && m.is_finite()) {
                self.err_help(
                    "joule::invalid_value",
                    "`margin` cannot be negative",
                    v.span,
                    format!("this is {m}"),
                    "`margin` is the distance from an end (radians or metres) at which the limit engages, 0 by default",
                );
                return None;
            }
            law.margin = m;
        }
        Some(Some(SoftRange::Mujoco(law)))
    }

    /// The option `name`'s list of `n` compile-time numbers, `[a, b, ..]`,
    /// or `None` after reporting an error.
    fn number_list(&mut self, ctx: &mut Ctx, name: &str, v: &Expr, n: usize) -> Option<Vec<f64>> {
        match &v.kind {
            ExprKind::List(items) if items.len() == n => items
                .iter()
                .map(|e| Some(self.const_value(ctx, name, e, Shape::Scalar, false)?.x()))
                .collect(),
            _ => {
                self.err_help(
                    "joule::type_mismatch",
                    format!("`{name}` is a list of {n} numbers"),
                    v.span,
                    format!("not a list of {n}"),
                    format!("write `{name} = [..]` with {n} numbers, as MuJoCo's `{name}limit`"),
                );
                None
            }
        }
    }

    /// A joint's `motor = u[k], gear = g` (gear 1 by default) or `servo =
    /// u[k], kp = k` (kp required: `default` NaN): `Some(Some((control,
    /// coefficient)))`, `Some(None)` when no control is given, `None` after
    /// reporting an error (the coefficient alone, a value that is not a
    /// control, a servo without a positive `kp`).
    fn joint_actuator(
        &mut self,
        ctx: &mut Ctx,
        control: Option<&Expr>,
        coef: Option<&Expr>,
        what: &str,
        coef_name: &str,
        default: f64,
    ) -> Option<Option<(u32, f64)>> {
        let Some(c) = control else {
            if let Some(k) = coef {
                self.err_help(
                    "joule::joint",
                    format!("`{coef_name}` without `{what}`"),
                    k.span,
                    format!("no `{what}` to scale"),
                    format!("give the control it scales: `{what} = u[k], {coef_name} = ..`"),
                );
                return None;
            }
            return Some(None);
        };
        let index = match self.eval(ctx, c) {
            Value::Control(i) => i,
            Value::Poison => return None,
            v => {
                self.err_help(
                    "joule::type_mismatch",
                    format!("`{what}` is a control, not {}", describe_value(&v)),
                    c.span,
                    "not a control",
                    "declare `control u[k in 0..n] in lo..hi` and write `u[k]`",
                );
                return None;
            }
        };
        let k = match coef {
            Some(k) => self
                .const_value(ctx, coef_name, k, Shape::Scalar, true)?
                .x(),
            None if default.is_nan() => {
                self.err_help(
                    "joule::missing_field",
                    format!("a `{what}` needs `{coef_name}`"),
                    c.span,
                    format!("no `{coef_name}`"),
                    format!("give its stiffness: `{what} = u[k], {coef_name} = 50` (N m per radian, or N per metre)"),
                );
                return None;
            }
            None => default,
        };
        if what == "servo" && k <= 0.0 {
            self.err_help(
                "joule::invalid_value",
                format!("`{coef_name}` must be positive"),
                coef.map_or(c.span, |e| e.span),
                format!("this is {k}"),
                "a servo's stiffness is a number > 0",
            );
            return None;
        }
        Some(Some((index, k)))
    }

    /// A joint's range `lo..hi`: finite compile-time numbers, `lo < 0 < hi`
    /// (the initial pose, coordinate 0, strictly inside), or only `lo < hi`
    /// for a `soft` range (a spring, which the initial pose may violate).
    fn joint_range(
        &mut self,
        ctx: &mut Ctx,
        lo: &Expr,
        hi: &Expr,
        soft: bool,
    ) -> Option<(f64, f64)> {
        let l = self.const_value(ctx, "the lower bound", lo, Shape::Scalar, false);
        let h = self.const_value(ctx, "the upper bound", hi, Shape::Scalar, false);
        let (l, h) = (l?.x(), h?.x());
        if (l < 0.0 && 0.0 < h) || (soft && l < h) {
            return Some((l, h));
        }
        if l < h {
            self.error(
                Diagnostic::error(
                    "joule::invalid_value",
                    "the joint's range does not contain its initial coordinate, 0",
                    lo.span.to(hi.span),
                    format!("0 is not strictly inside {l}..{h}"),
                )
                .with_help("joint coordinates are 0 in the body's initial pose (its `x` and `rotation`), and a range is a barrier that is never crossed: pose the body inside its range and give the range relative to that pose, or make the range a spring with `soft = 0.02` (seconds to push the coordinate back)"),
            );
            return None;
        }
        self.error(
            Diagnostic::error(
                "joule::invalid_value",
                "the joint's range is empty",
                lo.span.to(hi.span),
                format!("{l} is not below {h}"),
            )
            .with_help("write the range as `lo..hi` (or `[lo, hi]`) with lo < hi; hinge angles in radians (`30deg` converts), slider offsets in metres"),
        );
        None
    }

    /// Resolves the parents of every jointed body, then checks the tree for
    /// cycles; bodies and their parents do not get contact with each other.
    pub(super) fn joint_parents(&mut self) {
        let pending = std::mem::take(&mut self.pending_parents);
        // A body array's joint field is reported once, not per element.
        let mut failed: HashSet<Span> = HashSet::new();
        for p in pending {
            let b = p.body as usize;
            let span = self.model.bodies[b]
                .joint
                .as_ref()
                .expect("a jointed body")
                .span;
            if failed.contains(&span) {
                continue;
            }
            let mut ctx = Ctx::declaration();
            ctx.locals = p.locals;
            let mut first: Option<(Option<u32>, Span)> = None;
            for e in &p.parents {
                let Some(parent) = self.joint_parent(&mut ctx, e) else {
                    failed.insert(span);
                    break;
                };
                if parent == Some(p.body) {
                    self.error(
                        Diagnostic::error(
                            "joule::joint",
                            format!("`{}` is its own parent", self.model.bodies[b].name),
                            e.span,
                            "the body itself",
                        )
                        .with_help("a joint attaches its body to another body, or to `world`"),
                    );
                    failed.insert(span);
                    break;
                }
                match first {
                    None => first = Some((parent, e.span)),
                    Some((q, qs)) if q != parent => {
                        self.error(
                            Diagnostic::error(
                                "joule::joint",
                                format!("the joints of `{}` name two parents", self.model.bodies[b].name),
                                e.span,
                                format!("parent {}", self.body_name(parent)),
                            )
                            .with_label(qs, format!("parent {}", self.body_name(q)))
                            .with_help("a body hangs from one parent: the joints of a list act in sequence between that parent and the body"),
                        );
                        failed.insert(span);
                        break;
                    }
                    Some(_) => {}
                }
            }
            if failed.contains(&span) {
                continue;
            }
            let parent = first.and_then(|(q, _)| q);
            if let Some(q) = parent {
                self.connected.insert((p.body.min(q), p.body.max(q)));
            }
            if let Some(a) = self.model.bodies[b].joint.as_mut() {
                a.parent = parent;
            }
        }
        self.joint_cycles();
    }

    /// Reports each cycle of the parent relation once, naming its bodies.
    fn joint_cycles(&mut self) {
        let n = self.model.bodies.len();
        let parent = |r: &Self, b: usize| {
            r.model.bodies[b]
                .joint
                .as_ref()
                .and_then(|a| a.parent)
                .map(|q| q as usize)
        };
        // 0: not seen, 1: on the current walk, 2: done.
        let mut state = vec![0u8; n];
        for start in 0..n {
            let mut path = vec![];
            let mut cur = Some(start);
            while let Some(b) = cur {
                if state[b] != 0 {
                    break;
                }
                state[b] = 1;
                path.push(b);
                cur = parent(self, b);
            }
            if let Some(b) = cur.filter(|b| state[*b] == 1) {
                let cycle = &path[path.iter().position(|x| *x == b).expect("on the walk")..];
                let names: Vec<&str> = cycle
                    .iter()
                    .chain([&b])
                    .map(|c| self.model.bodies[*c].name.as_str())
                    .collect();
                let span_of = |c: usize| self.model.bodies[c].joint.as_ref().expect("jointed").span;
                let mut d = Diagnostic::error(
                    "joule::joint",
                    format!("the joint parents form a cycle: {}", names.join(" -> ")),
                    span_of(b),
                    format!("`{}` hangs from `{}`", names[0], names[1]),
                );
                for &c in &cycle[1..] {
                    let q = parent(self, c).expect("on a cycle");
                    let label = format!(
                        "`{}` hangs from `{}`",
                        self.model.bodies[c].name, self.model.bodies[q].name
                    );
                    d = d.with_label(span_of(c), label);
                }
                self.error(d.with_help("following the parents from any body must reach `world` or a body without a joint; change one of these parents"));
            }
            for b in path {
                state[b] = 2;
            }
        }
    }

    /// The parent a joint names: `Some(None)` for the world, `None` after an error.
    fn joint_parent(&mut self, ctx: &mut Ctx, e: &Expr) -> Option<Option<u32>> {
        if let ExprKind::Name(n) = &e.kind {
            if n == WORLD {
                return Some(None);
            }
            if ctx.lookup(n).is_none() && !self.globals.contains_key(n) {
                let bodies = self.globals.iter().filter_map(|(k, (g, _))| {
                    let body = match g {
                        Global::Body(_) => true,
                        Global::Array(a) => self.arrays[*a as usize].kind == ArrayKind::Body,
                        _ => false,
                    };
                    body.then_some(k.as_str())
                });
                let help = suggest(n, bodies.chain([WORLD])).unwrap_or_else(|| {
                    "a joint's parent is a body declared in the scene, or `world`".into()
                });
                self.error(
                    Diagnostic::error(
                        "joule::unknown_name",
                        format!("unknown name `{n}`"),
                        e.span,
                        "not a body",
                    )
                    .with_help(help),
                );
                return None;
            }
        }
        match self.eval(ctx, e) {
            Value::Body(b) => Some(Some(b)),
            Value::Poison => None,
            v => {
                let help = if matches!(v, Value::Array(_)) {
                    "index the array to name one body: `name[i]`"
                } else {
                    "a joint's parent is a body or `world`"
                };
                self.error(
                    Diagnostic::error(
                        "joule::joint",
                        format!(
                            "a joint's parent must be a body, not {}",
                            describe_value(&v)
                        ),
                        e.span,
                        "not a body",
                    )
                    .with_help(help),
                );
                None
            }
        }
    }

    /// A parent for messages: `` `name` `` or `world`.
    fn body_name(&self, b: Option<u32>) -> String {
        match b {
            Some(b) => format!("`{}`", self.model.bodies[b as usize].name),
            None => format!("`{WORLD}`"),
        }
    }
}

/// The components of a vec3 tensor.
fn vec3(t: &Tensor) -> [f64; 3] {
    [t.data[0], t.data[1], t.data[2]]
}
