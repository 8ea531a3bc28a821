//! `policy NAME = trajopt(horizon = H, iters = K, hold = S, cost = .., learn = [..])`:
//! a trajectory-optimisation policy ([`Planner`]). Its cost names a
//! `reward` or a `loss` item declared before it that reads the state or a
//! control; its learned params are declared params.

use super::eval::Ctx;
use super::*;
use crate::model::{Input, ObjectiveKind, MAX_PLAN_VARIABLES as MAX_VARIABLES};

/// How a `trajopt` policy is written, for hints.
const USAGE: &str = "write `policy NAME = trajopt(horizon = 30, iters = 5, cost = REWARD_OR_LOSS, learn = [PARAM, ...])`";

/// Most steps a plan may look ahead.
pub(crate) const MAX_HORIZON: i64 = 1000;
/// Most Newton iterations a plan may take.
pub(crate) const MAX_ITERS: i64 = 100;

impl Resolver<'_> {
    /// Resolves a `trajopt(..)` policy into [`Model::planners`].
    pub(super) fn planner(&mut self, name: &Ident, value: &Expr, args: &[Arg]) {
        let mut planner = Planner {
            name: name.name.clone(),
            horizon: 0,
            iters: 5,
            hold: 1,
            loss: None,
            reward: None,
            learn: vec![],
            span: value.span,
        };
        let (mut has_horizon, mut has_cost) = (false, false);
        for a in args {
            let Some(n) = &a.name else {
                self.err_help(
                    "joule::named_argument",
                    "`trajopt` options are named",
                    a.value.span,
                    "unnamed",
                    USAGE,
                );
                return;
            };
            let ok = match n.name.as_str() {
                "horizon" => {
                    has_horizon = true;
                    self.count(&a.value, "the horizon", MAX_HORIZON, "steps planned ahead")
                        .map(|h| planner.horizon = h)
                }
                "iters" => self
                    .count(
                        &a.value,
                        "the iterations",
                        MAX_ITERS,
                        "Newton iterations per plan",
                    )
                    .map(|k| planner.iters = k),
                "hold" => self
                    .count(
                        &a.value,
                        "the hold",
                        MAX_HORIZON,
                        "steps each planned control is held for",
                    )
                    .map(|k| planner.hold = k),
                "cost" => {
                    has_cost = true;
                    self.cost(&a.value, &mut planner)
                }
                "learn" => self.learned(&a.value, &mut planner),
                other => {
                    let known = ["horizon", "iters", "hold", "cost", "learn"];
                    let help = suggest(other, known.into_iter()).unwrap_or_else(|| USAGE.into());
                    self.err_help(
                        "joule::invalid_value",
                        format!("invalid `trajopt` option `{other}`"),
                        n.span,
                        "not valid here",
                        help,
                    );
                    None
                }
            };
            if ok.is_none() {
                return;
            }
        }
        if !(has_horizon && has_cost) {
            self.err_help(
                "joule::missing_field",
                "a `trajopt` policy needs a `horizon` and a `cost`",
                value.span,
                "missing options",
                USAGE,
            );
            return;
        }
        if planner.hold > planner.horizon {
            self.err_help(
                "joule::invalid_value",
                format!(
                    "a plan's hold ({}) is longer than its horizon ({})",
                    planner.hold, planner.horizon
                ),
                value.span,
                "holds past the horizon",
                "hold each control for at most the horizon's steps, e.g. `horizon = 40, hold = 2`",
            );
            return;
        }
        if self.model.controls.is_empty() {
            self.err_help(
                "joule::invalid_value",
                "a `trajopt` policy plans controls, and the scene has none",
                value.span,
                "nothing to plan",
                "declare the controls it sets, e.g. `control u in -1..1`, before the policy",
            );
            return;
        }
        let variables = planner.horizon.div_ceil(planner.hold) * self.model.controls.len();
        if variables > MAX_VARIABLES {
            self.err_help(
                "joule::too_large",
                format!("a plan of {variables} variables (at most {MAX_VARIABLES})"),
                value.span,
                "too many planned controls",
                format!(
                    "each Newton iteration runs 2 x {variables} + 1 rollouts and factors a {variables} x {variables} matrix: shorten the horizon or hold each control longer (`hold = S`)"
                ),
            );
            return;
        }
        if self.define(name, Global::Policy) {
            self.model.planners.push(planner);
        }
    }

    /// A count in `1..=max` (the horizon, the iterations), `unit` for the hint.
    fn count(&mut self, e: &Expr, what: &str, max: i64, unit: &str) -> Option<usize> {
        let mut ctx = Ctx::declaration();
        let v = self.eval(&mut ctx, e);
        if v == Value::Poison {
            return None;
        }
        let n = self.as_int(&v, e.span, what)?;
        if !(1..=max).contains(&n) {
            self.err_help(
                "joule::invalid_value",
                format!("{what} of a plan must be between 1 and {max}"),
                e.span,
                format!("this is {n}"),
                format!("{what} counts {unit}: from 1 to {max}"),
            );
            return None;
        }
        Some(n as usize)
    }

    /// `cost = NAME`: a `reward` (maximised, summed over the planned steps)
    /// or a `loss` (minimised after the last) declared before, reading the
    /// state or a control.
    fn cost(&mut self, e: &Expr, planner: &mut Planner) -> Option<()> {
        let found = match &e.kind {
            ExprKind::Name(n) => self.model.objectives.iter().find(|o| {
                &o.name == n && matches!(o.kind, ObjectiveKind::Reward | ObjectiveKind::Loss)
            }),
            _ => None,
        };
        let Some(o) = found else {
            let names: Vec<String> = self
                .model
                .objectives
                .iter()
                .filter(|o| matches!(o.kind, ObjectiveKind::Reward | ObjectiveKind::Loss))
                .map(|o| o.name.clone())
                .collect();
            self.not_one_of(
                e.span,
                "a reward or a loss",
                "not a `reward` or `loss` item",
                &names,
                "a plan's cost is one `reward` item (maximised) or one `loss` item (minimised) declared before the policy; sum several terms in one item",
            );
            return None;
        };
        let mut moves = false;
        o.value.for_each_input(&mut |i| {
            moves |= matches!(i, Input::Dof { .. } | Input::Control(_));
        });
        let (kind, name, span) = (o.kind, o.name.clone(), o.span);
        if !moves {
            self.error(
                Diagnostic::error(
                    "joule::invalid_value",
                    format!("the plan's cost `{name}` does not depend on the controls"),
                    e.span,
                    "reads neither the state nor a control",
                )
                .with_label(span, "declared here")
                .with_help("a plan minimises its cost over the controls: the cost must read the state they move or the controls themselves"),
            );
            return None;
        }
        match kind {
            ObjectiveKind::Reward => planner.reward = Some(name),
            _ => planner.loss = Some(name),
        }
        Some(())
    }

    /// `learn = [PARAM, ...]`: declared params, each once.
    fn learned(&mut self, e: &Expr, planner: &mut Planner) -> Option<()> {
        let ExprKind::List(items) = &e.kind else {
            self.err_help(
                "joule::type_mismatch",
                "`learn` is a list of params",
                e.span,
                "not a list",
                "write `learn = [w_effort, mass]`",
            );
            return None;
        };
        for it in items {
            // A param, or every element of a param array.
            let found: Vec<u32> = match &it.kind {
                ExprKind::Name(n) => match self.globals.get(n.as_str()).map(|(g, _)| g.clone()) {
                    Some(Global::Param(p)) => vec![p],
                    Some(Global::Array(a)) if self.arrays[a as usize].kind == ArrayKind::Param => {
                        self.arrays[a as usize]
                            .slots
                            .iter()
                            .flatten()
                            .copied()
                            .collect()
                    }
                    _ => vec![],
                },
                _ => vec![],
            };
            if found.is_empty() {
                let names: Vec<String> = self.model.params.iter().map(|p| p.name.clone()).collect();
                self.not_one_of(
                    it.span,
                    "a param",
                    "not a `param`",
                    &names,
                    "a plan learns `param`s declared before the policy (its cost's weights and targets, its model's masses and lengths)",
                );
                return None;
            }
            if found.iter().any(|&i| planner.learn.contains(&(i as usize))) {
                self.err(
                    "joule::invalid_value",
                    format!("`{}` is learned twice", self.snippet(it.span)),
                    it.span,
                    "named again",
                );
                return None;
            }
            planner.learn.extend(found.iter().map(|&i| i as usize));
        }
        Some(())
    }
}
