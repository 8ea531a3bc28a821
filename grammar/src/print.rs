//! The `--emit ast` text form: one S-expression per item, spans as `@line`-free
//! byte ranges so the output is stable under edits elsewhere in other files.

use crate::ast::*;
use std::fmt::{self, Write};

/// Writes a whole file, one item per line (nested items indented).
pub fn write_file(f: &mut fmt::Formatter<'_>, file: &SceneFile) -> fmt::Result {
    for item in &file.items {
        write_item(f, item, 0)?;
    }
    Ok(())
}

/// The `--emit ast` form without item spans: equal exactly for trees that
/// differ only in layout (what `joule fmt` must preserve).
#[doc(hidden)] // used by `format` and the layout tests, not a user API
pub fn without_spans(file: &SceneFile) -> String {
    let text = file.to_string();
    let mut out = String::with_capacity(text.len());
    let mut chars = text.chars().peekable();
    while let Some(c) = chars.next() {
        if c == '@' && chars.peek().is_some_and(char::is_ascii_digit) {
            while chars
                .peek()
                .is_some_and(|c| c.is_ascii_digit() || *c == '.')
            {
                chars.next();
            }
        } else {
            out.push(c);
        }
    }
    out
}

fn write_item(f: &mut fmt::Formatter<'_>, item: &Item, depth: usize) -> fmt::Result {
    let pad = "  ".repeat(depth);
    let s = item_sexp(item, depth);
    writeln!(f, "{pad}{s}")
}

fn item_sexp(item: &Item, depth: usize) -> String {
    let mut s = String::new();
    let at = format!("@{}..{}", item.span.start, item.span.end);
    match &item.kind {
        ItemKind::Scene(t) => write!(s, "(scene {t:?} {at})"),
        ItemKind::Use { path, args, .. } => write!(s, "(use {path:?}{} {at})", args_s(args)),
        ItemKind::Const { name, value } => {
            write!(s, "(const {} {} {at})", name.name, expr(value))
        }
        ItemKind::Fn { name, params, body } => write!(
            s,
            "(fn {} ({}) {} {at})",
            name.name,
            params_s(params),
            expr(body)
        ),
        ItemKind::Settings(fields) => write!(s, "(settings{} {at})", fields_s(fields)),
        ItemKind::Param {
            name,
            dims,
            value,
            bounds,
        } => write!(
            s,
            "(param {}{} {}{} {at})",
            name.name,
            dims_s(dims),
            expr(value),
            bounds_s(bounds)
        ),
        ItemKind::Control { name, dims, bounds } => write!(
            s,
            "(control {}{}{} {at})",
            name.name,
            dims_s(dims),
            bounds_s(bounds)
        ),
        ItemKind::Particle { name, dims, fields } => write!(
            s,
            "(particle {}{}{} {at})",
            name.name,
            dims_s(dims),
            fields_s(fields)
        ),
        ItemKind::Body { name, dims, fields } => write!(
            s,
            "(body {}{}{} {at})",
            name.name,
            dims_s(dims),
            fields_s(fields)
        ),
        ItemKind::Mesh {
            name,
            source,
            fields,
        } => write!(
            s,
            "(mesh {} {}{} {at})",
            name.name,
            expr(source),
            fields_s(fields)
        ),
        ItemKind::Fix { targets, gens } => {
            let t: Vec<String> = targets.iter().map(expr).collect();
            write!(s, "(fix {}{} {at})", t.join(" "), opt_gens(gens))
        }
        ItemKind::Energy(def) => {
            let kw = match def.kind {
                EnergyKind::Energy => "energy",
                EnergyKind::Dissipation => "dissipation",
            };
            let bw = def
                .backward
                .as_ref()
                .map(|b| format!(" (backward {})", expr(b)))
                .unwrap_or_default();
            write!(
                s,
                "({kw} {} ({}) {}{bw} {at})",
                def.name.name,
                params_s(&def.params),
                expr(&def.body)
            )
        }
        ItemKind::If {
            cond,
            then,
            otherwise,
        } => {
            let pad = "  ".repeat(depth + 1);
            let _ = write!(s, "(if {} {at}", expr(cond));
            for i in then {
                let _ = write!(s, "\n{pad}{}", item_sexp(i, depth + 1));
            }
            if !otherwise.is_empty() {
                let _ = write!(s, "\n{pad}else");
                for i in otherwise {
                    let _ = write!(s, "\n{pad}{}", item_sexp(i, depth + 1));
                }
            }
            write!(s, ")")
        }
        ItemKind::Objective { kind, name, value } => {
            write!(s, "({} {} {} {at})", kind.keyword(), name.name, expr(value))
        }
        ItemKind::Policy { name, value } => {
            write!(s, "(policy {} {} {at})", name.name, expr(value))
        }
        ItemKind::Reset(entries) => {
            let e: Vec<String> = entries
                .iter()
                .map(|e| match e {
                    ResetEntry::Let(l) => format!("(let {} {})", l.name.name, expr(&l.value)),
                    ResetEntry::Set { target, add, value } => format!(
                        "({} {} {})",
                        if *add { "+=" } else { "=" },
                        expr(target),
                        expr(value)
                    ),
                })
                .collect();
            write!(s, "(reset {} {at})", e.join(" "))
        }
        ItemKind::Instance {
            template,
            args,
            gens,
        } => write!(
            s,
            "(instance {}{}{} {at})",
            template.name,
            args_s(args),
            opt_gens(gens)
        ),
    }
    .expect("writing to a String cannot fail");
    s
}

fn params_s(params: &[Param]) -> String {
    params
        .iter()
        .map(|p| match &p.ty {
            Some(t) => format!("{}: {}", p.name.name, t.name),
            None => p.name.name.clone(),
        })
        .collect::<Vec<_>>()
        .join(", ")
}

fn fields_s(fields: &[FieldDef]) -> String {
    fields
        .iter()
        .map(|fd| {
            format!(
                " ({} {}{})",
                fd.name.name,
                expr(&fd.value),
                bounds_s(&fd.bounds)
            )
        })
        .collect()
}

fn bounds_s(bounds: &Option<(Expr, Expr)>) -> String {
    match bounds {
        Some((lo, hi)) => format!(" (in {} {})", expr(lo), expr(hi)),
        None => String::new(),
    }
}

fn dims_s(dims: &Option<Dims>) -> String {
    match dims {
        None => String::new(),
        Some(Dims::Sizes(s)) => {
            let v: Vec<String> = s.iter().map(expr).collect();
            format!(" [{}]", v.join(" "))
        }
        Some(Dims::Gens(g)) => format!(" [{}]", gens_s(g)),
    }
}

fn opt_gens(gens: &Option<Generators>) -> String {
    gens.as_ref()
        .map(|g| format!(" (for {})", gens_s(g)))
        .unwrap_or_default()
}

fn gens_s(g: &Generators) -> String {
    let mut parts: Vec<String> = g
        .gens
        .iter()
        .map(|gen| match &gen.source {
            GenSource::Range(lo, hi) => format!("({} {}..{})", gen.var.name, expr(lo), expr(hi)),
            GenSource::Collection(c) => format!("({} in {})", gen.var.name, expr(c)),
        })
        .collect();
    if let Some(guard) = &g.guard {
        parts.push(format!("(if {})", expr(guard)));
    }
    parts.join(" ")
}

fn args_s(args: &[Arg]) -> String {
    args.iter()
        .map(|a| match &a.name {
            Some(n) => format!(" ({} = {})", n.name, expr(&a.value)),
            None => format!(" {}", expr(&a.value)),
        })
        .collect()
}

/// An expression as an S-expression.
pub fn expr(e: &Expr) -> String {
    match &e.kind {
        ExprKind::Num {
            value,
            is_int,
            unit,
        } => {
            let u = unit.as_ref().map(|u| u.name.as_str()).unwrap_or("");
            if *is_int {
                format!("{}{u}", *value as i64)
            } else {
                format!("{value:?}{u}")
            }
        }
        ExprKind::Bool(b) => b.to_string(),
        ExprKind::Str(s) => format!("{s:?}"),
        ExprKind::Name(n) => n.clone(),
        ExprKind::Unary(op, x) => {
            let o = match op {
                UnOp::Neg => "neg",
                UnOp::Not => "not",
            };
            format!("({o} {})", expr(x))
        }
        ExprKind::Binary(op, a, b) => format!("({} {} {})", op.symbol(), expr(a), expr(b)),
        ExprKind::Call { func, args } => format!("({}{})", func.name, args_s(args)),
        ExprKind::Method { recv, name, args } => {
            format!("(.{} {}{})", name.name, expr(recv), args_s(args))
        }
        ExprKind::Field { recv, name } => format!("(. {} {})", expr(recv), name.name),
        ExprKind::Index { recv, indices } => {
            let v: Vec<String> = indices.iter().map(expr).collect();
            format!("([] {} {})", expr(recv), v.join(" "))
        }
        ExprKind::Tuple(v) => {
            let v: Vec<String> = v.iter().map(expr).collect();
            format!("(tuple {})", v.join(" "))
        }
        ExprKind::List(v) => {
            let v: Vec<String> = v.iter().map(expr).collect();
            format!("(list {})", v.join(" "))
        }
        ExprKind::Sum { body, gens } => format!("(sum {} (for {}))", expr(body), gens_s(gens)),
        ExprKind::Block { lets, result } => {
            let l: String = lets
                .iter()
                .map(|l| format!("(let {} {}) ", l.name.name, expr(&l.value)))
                .collect();
            format!("(block {l}{})", expr(result))
        }
    }
}
