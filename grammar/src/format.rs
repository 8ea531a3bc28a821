//! `joule fmt`: prints a parsed scene file back in its canonical layout.
//!
//! The layout is a function of the syntax tree, the comments and the blank
//! lines between items, nothing else: four-space indentation, one item per
//! line, spaces around infix operators (none around `^` and `..`), minimal
//! parentheses, fields on one line (`{ a = 1, b = 2 }`) when they fit in
//! [`WIDTH`] columns and one per line otherwise (settings always one per
//! line), `let`s one per line, a long `name = value` broken after the `=`, a
//! long instance or `fix` broken before its `for`, and `backward` one level
//! deeper than its energy. Number literals are kept as written. Blank lines between items
//! are kept, at most one in a row.
//!
//! Comments are never lost: a comment between items, fields or `let`s stays
//! there; one at the end of a line stays at the end of that line (trailing
//! comments of consecutive lines are aligned); a comment inside an
//! expression moves to its own line just before the item, field or `let` it
//! was in. Formatting is idempotent and the result parses to the same tree.

use crate::ast::*;
use crate::trivia::{comments, Comment};
use crate::{parse, print, Diagnostic};

/// Lines longer than this are laid out over several lines where the layout allows.
pub const WIDTH: usize = 100;

const INDENT: &str = "    ";

/// Formats `src` canonically. Syntax errors are returned as diagnostics and nothing is formatted.
pub fn format_source(file: FileId, src: &str) -> Result<String, Vec<Diagnostic>> {
    let (ast, diags) = parse(file, src);
    if diags.iter().any(Diagnostic::is_error) {
        return Err(diags);
    }
    let mut f = Formatter {
        src,
        comments: comments(src),
        emitted: vec![],
        lines: vec![],
        last_end: 0,
    };
    f.emitted = vec![false; f.comments.len()];
    f.items(&ast.items, 0, src.len());
    let out = render(&f.lines);
    verify(file, src, &ast, &out)?;
    Ok(out)
}

/// Refuses output that would change the meaning or lose a comment (a
/// formatter bug must never cost a user their file).
fn verify(file: FileId, src: &str, ast: &SceneFile, out: &str) -> Result<(), Vec<Diagnostic>> {
    let (again, diags) = parse(file, out);
    let texts = |s: &str| {
        let mut t: Vec<String> = comments(s)
            .iter()
            .map(|c| s[c.start..c.end].trim_end().to_string())
            .collect();
        t.sort();
        t
    };
    let same_tree = diags.is_empty() && print::without_spans(&again) == print::without_spans(ast);
    if same_tree && texts(src) == texts(out) {
        return Ok(());
    }
    Err(vec![Diagnostic::error(
        "joule::fmt_internal",
        "the formatter would change this file's meaning or lose a comment; it was left as it is",
        Span::new(file, 0, 0),
        "in this file",
    )
    .with_help(
        "this is a bug in `joule fmt`: please report it with the file",
    )])
}

/// One output line: indentation depth, code, and a trailing comment.
#[derive(Debug, Default)]
struct Line {
    depth: usize,
    code: String,
    trailing: Option<String>,
}

/// Joins lines, aligning the trailing comments of consecutive lines.
fn render(lines: &[Line]) -> String {
    let width = |l: &Line| l.depth * INDENT.len() + l.code.chars().count();
    let mut out = String::new();
    let mut i = 0;
    while i < lines.len() {
        let mut j = i;
        while j < lines.len() && lines[j].trailing.is_some() {
            j += 1;
        }
        let column = lines[i..j].iter().map(width).max().unwrap_or(0) + 2;
        for l in &lines[i..j.max(i + 1)] {
            let mut s = INDENT.repeat(l.depth) + &l.code;
            if l.code.is_empty() && l.trailing.is_none() {
                s.clear();
            }
            if let Some(c) = &l.trailing {
                let pad = column - width(l);
                s.push_str(&" ".repeat(pad));
                s.push_str(c);
            }
            out.push_str(s.trim_end());
            out.push('\n');
        }
        i = j.max(i + 1);
    }
    out
}

/// Operator precedence as the parser's Pratt table has it (higher binds tighter).
fn prec(e: &Expr) -> u8 {
    match &e.kind {
        ExprKind::Binary(op, ..) => op.precedence(),
        ExprKind::Unary(..) => 6,
        _ => 9,
    }
}

struct Formatter<'a> {
    src: &'a str,
    comments: Vec<Comment>,
    emitted: Vec<bool>,
    lines: Vec<Line>,
    /// End of the last source text placed in the output (for blank lines).
    last_end: usize,
}

impl Formatter<'_> {
    // ------------------------------------------------------------ comments

    /// The next significant byte at or after `pos` (skipping whitespace and comments).
    fn next_token(&self, mut pos: usize) -> usize {
        let b = self.src.as_bytes();
        loop {
            while pos < b.len() && b[pos].is_ascii_whitespace() {
                pos += 1;
            }
            match self.comments.iter().find(|c| c.start == pos) {
                Some(c) => pos = c.end,
                None => return pos,
            }
        }
    }

    /// Whether the source has an empty line between `from` and `to`.
    fn blank_between(&self, from: usize, to: usize) -> bool {
        let gap = &self.src[from.min(to)..to];
        let mut lines = gap.split('\n');
        lines.next();
        let mut inner: Vec<&str> = lines.collect();
        inner.pop();
        inner.iter().any(|l| l.trim().is_empty())
    }

    /// Starts a new element at source position `start`: a blank line if the
    /// source had one (and this is not the first line of a container).
    fn gap(&mut self, start: usize, first: bool) {
        if !first && self.blank_between(self.last_end, start) {
            self.lines.push(Line::default());
        }
    }

    /// Emits, each on its own line, the unemitted comments starting in `range`
    /// (outside the excluded sub-ranges).
    fn comments_in(
        &mut self,
        range: std::ops::Range<usize>,
        exclude: &[(usize, usize)],
        depth: usize,
        first: &mut bool,
    ) {
        for k in 0..self.comments.len() {
            let c = self.comments[k];
            if self.emitted[k]
                || !range.contains(&c.start)
                || exclude.iter().any(|&(a, b)| c.start > a && c.start < b)
            {
                continue;
            }
            self.emitted[k] = true;
            self.gap(c.start, *first);
            *first = false;
            self.lines.push(Line {
                depth,
                code: self.src[c.start..c.end].trim_end().to_string(),
                trailing: None,
            });
            self.last_end = self.last_end.max(c.end);
        }
    }

    /// The comment on the same source line right after `end`, if any, taken.
    fn trailing_comment(&mut self, end: usize) -> Option<String> {
        let rest = &self.src[end..];
        let line = &rest[..rest.find('\n').unwrap_or(rest.len())];
        let k = self.comments.iter().position(|c| {
            c.start >= end && c.start < end + line.len() && !self.src[c.start..c.end].contains('\n')
        })?;
        let between = self.src[end..self.comments[k].start].trim();
        if self.emitted[k] || !(between.is_empty() || between == "," || between == ";") {
            return None;
        }
        self.emitted[k] = true;
        self.last_end = self.comments[k].end;
        Some(self.src[self.comments[k].start..self.comments[k].end].to_string())
    }

    /// Places one element spanning `start..end` whose nested containers are
    /// `inner`: its leading comments, and the comments inside it that are not
    /// inside a nested container (moved before it).
    fn open_element(
        &mut self,
        start: usize,
        end: usize,
        inner: &[(usize, usize)],
        depth: usize,
        first: &mut bool,
    ) {
        self.comments_in(0..start, &[], depth, first);
        self.comments_in(start..end, inner, depth, first);
        self.gap(start, *first);
        *first = false;
        self.last_end = start;
    }

    /// Finishes the element ending at `end`: attaches its trailing comment.
    fn close_element(&mut self, end: usize) {
        self.last_end = self.last_end.max(end);
        let t = self.trailing_comment(end);
        if let Some(l) = self.lines.last_mut() {
            l.trailing = t;
        }
    }

    fn push(&mut self, depth: usize, code: String) {
        self.lines.push(Line {
            depth,
            code,
            trailing: None,
        });
    }

    // ------------------------------------------------------------- items

    /// Formats a sequence of items; `close` is where their container ends.
    fn items(&mut self, items: &[Item], depth: usize, close: usize) {
        let mut first = true;
        for item in items {
            let inner = self.containers(item);
            let (s, e) = (item.span.start as usize, item.span.end as usize);
            self.open_element(s, e, &inner, depth, &mut first);
            self.item(item, depth);
            self.close_element(e);
        }
        self.comments_in(0..close, &[], depth, &mut first);
    }

    /// The `{ }` regions nested in an item that hold their own comments.
    fn containers(&self, item: &Item) -> Vec<(usize, usize)> {
        let end = item.span.end as usize;
        match &item.kind {
            ItemKind::Settings(_) | ItemKind::Reset(_) => vec![(
                self.next_token_char(item.span.start as usize, b'{'),
                end - 1,
            )],
            ItemKind::Particle { name, fields, .. }
            | ItemKind::Body { name, fields, .. }
            | ItemKind::Mesh { name, fields, .. }
                if !fields.is_empty() =>
            {
                vec![(self.next_token_char(name.span.end as usize, b'{'), end - 1)]
            }
            ItemKind::Fn { body, .. } => block_region(body).into_iter().collect(),
            ItemKind::Energy(def) => block_region(&def.body)
                .into_iter()
                .chain(def.backward.as_ref().and_then(block_region))
                .collect(),
            ItemKind::If { otherwise, .. } => {
                let (then, else_form) = self.if_regions(item);
                let mut regions = vec![then];
                match else_form {
                    Else::Block(open, close) => regions.push((open, close)),
                    // `else if`: the nested item's own blocks.
                    Else::If => regions.extend(self.containers(&otherwise[0])),
                    Else::None => {}
                }
                regions
            }
            _ => vec![],
        }
    }

    /// The first occurrence of the byte `ch` as a token at or after `pos`.
    fn next_token_char(&self, mut pos: usize, ch: u8) -> usize {
        loop {
            pos = self.next_token(pos);
            if pos >= self.src.len() || self.src.as_bytes()[pos] == ch {
                return pos;
            }
            pos += 1;
        }
    }

    /// The braces of an `if` item's then-block, and what follows it.
    fn if_regions(&self, item: &Item) -> ((usize, usize), Else) {
        let ItemKind::If {
            cond,
            then,
            otherwise,
        } = &item.kind
        else {
            unreachable!("if_regions is called on if items")
        };
        let open = self.next_token_char(cond.span.end as usize, b'{');
        let after = then.last().map_or(open + 1, |i| i.span.end as usize);
        let close = self.next_token_char(after, b'}');
        let e = self.next_token(close + 1);
        if !self.src[e..].starts_with("else") {
            return ((open, close), Else::None);
        }
        let after_else = self.next_token(e + "else".len());
        if !otherwise.is_empty() && self.src[after_else..].starts_with("if") {
            return ((open, close), Else::If);
        }
        (
            (open, close),
            Else::Block(after_else, item.span.end as usize - 1),
        )
    }

    fn item(&mut self, item: &Item, depth: usize) {
        match &item.kind {
            ItemKind::Scene(title) => self.push(depth, format!("scene \"{title}\"")),
            ItemKind::Use { path, args, .. } if args.is_empty() => {
                self.push(depth, format!("use \"{path}\""))
            }
            ItemKind::Use { path, args, .. } => {
                self.push(depth, format!("use \"{path}\" ({})", self.args(args)))
            }
            ItemKind::Const { name, value } => {
                self.assign(depth, format!("const {} =", name.name), value)
            }
            ItemKind::Fn { name, params, body } => {
                let head = format!("fn {}({})", name.name, self.params(params));
                self.body(depth, head, body);
            }
            ItemKind::Settings(fields) => self.fields(
                depth,
                "settings".into(),
                fields,
                item.span.end as usize,
                true,
            ),
            ItemKind::Param {
                name,
                dims,
                value,
                bounds,
            } => {
                let b = bounds.as_ref().map(|b| self.bounds(b)).unwrap_or_default();
                self.push(
                    depth,
                    format!(
                        "param {}{} = {}{b}",
                        name.name,
                        self.dims(dims),
                        self.expr(value)
                    ),
                );
            }
            ItemKind::Control { name, dims, bounds } => {
                let b = bounds.as_ref().map(|b| self.bounds(b)).unwrap_or_default();
                self.push(
                    depth,
                    format!("control {}{}{b}", name.name, self.dims(dims)),
                );
            }
            ItemKind::Particle { name, dims, fields } | ItemKind::Body { name, dims, fields } => {
                let kw = if matches!(item.kind, ItemKind::Body { .. }) {
                    "body"
                } else {
                    "particle"
                };
                let head = format!("{kw} {}{}", name.name, self.dims(dims));
                self.fields(depth, head, fields, item.span.end as usize, false);
            }
            ItemKind::Mesh {
                name,
                source,
                fields,
            } => {
                let head = format!("mesh {} = {}", name.name, self.expr(source));
                if fields.is_empty() {
                    self.push(depth, head);
                } else {
                    self.fields(depth, head, fields, item.span.end as usize, false);
                }
            }
            ItemKind::Fix { targets, gens } => {
                let t: Vec<String> = targets.iter().map(|t| self.expr(t)).collect();
                self.with_for(depth, format!("fix {}", t.join(", ")), gens);
            }
            ItemKind::Energy(def) => self.energy(def, depth),
            ItemKind::If { .. } => self.if_item(item, depth),
            ItemKind::Objective { kind, name, value } => {
                self.assign(depth, format!("{} {} =", kind.keyword(), name.name), value)
            }
            ItemKind::Policy { name, value } => {
                self.assign(depth, format!("policy {} =", name.name), value)
            }
            ItemKind::Reset(entries) => self.reset(depth, entries, item.span.end as usize),
            ItemKind::Instance {
                template,
                args,
                gens,
            } => {
                let head = format!("{}({})", template.name, self.args(args));
                self.with_for(depth, head, gens);
            }
        }
    }

    /// `head value` on one line, or broken after `head` (ending in `=`) when too long.
    fn assign(&mut self, depth: usize, head: String, value: &Expr) {
        let v = self.expr(value);
        self.assign_text(depth, head, v);
    }

    /// `head v` on one line, or `v` on the next line one level deeper when too long.
    fn assign_text(&mut self, depth: usize, head: String, v: String) {
        if depth * INDENT.len() + head.len() + 1 + v.chars().count() <= WIDTH {
            self.push(depth, format!("{head} {v}"));
        } else {
            self.push(depth, head);
            self.push(depth + 1, v);
        }
    }

    /// A `let` or a field on its own line (`head` ends in `=`), with its
    /// comments: `value` is its text, `span` from the name to the end.
    fn binding(&mut self, depth: usize, head: String, span: Span, value: String, first: &mut bool) {
        let (s, e) = (span.start as usize, span.end as usize);
        self.open_element(s, e, &[], depth, first);
        self.assign_text(depth, head, value);
        self.close_element(e);
    }

    /// `head for gens` on one line, or broken before `for` when too long.
    fn with_for(&mut self, depth: usize, head: String, gens: &Option<Generators>) {
        let Some(g) = gens else {
            return self.push(depth, head);
        };
        let tail = format!("for {}", self.generators(g));
        if depth * INDENT.len() + head.chars().count() + 1 + tail.chars().count() <= WIDTH {
            self.push(depth, format!("{head} {tail}"));
        } else {
            self.push(depth, head);
            self.push(depth + 1, tail);
        }
    }

    /// A `fn`/`energy` body: `head = expr` or `head {` block `}`.
    fn body(&mut self, depth: usize, head: String, body: &Expr) {
        match &body.kind {
            ExprKind::Block { lets, result } => {
                self.push(depth, format!("{head} {{"));
                let mut first = true;
                for l in lets {
                    let head = format!("let {} =", l.name.name);
                    let span = l.name.span.to(l.value.span);
                    let v = self.expr(&l.value);
                    self.binding(depth + 1, head, span, v, &mut first);
                }
                let (s, e) = (result.span.start as usize, result.span.end as usize);
                self.open_element(s, e, &[], depth + 1, &mut first);
                let r = self.expr(result);
                self.push(depth + 1, r);
                self.close_element(e);
                self.comments_in(0..body.span.end as usize, &[], depth + 1, &mut first);
                self.push(depth, "}".into());
                self.last_end = body.span.end as usize;
            }
            _ => self.assign(depth, format!("{head} ="), body),
        }
    }

    fn energy(&mut self, def: &EnergyDef, depth: usize) {
        let kw = match def.kind {
            EnergyKind::Energy => "energy",
            EnergyKind::Dissipation => "dissipation",
        };
        let head = format!("{kw} {}({})", def.name.name, self.params(&def.params));
        self.body(depth, head, &def.body);
        if let Some(b) = &def.backward {
            // The surrogate continues the item: one level deeper.
            self.body(depth + 1, "backward".into(), b);
        }
    }

    fn if_item(&mut self, item: &Item, depth: usize) {
        let ItemKind::If {
            cond,
            then,
            otherwise,
        } = &item.kind
        else {
            unreachable!("if_item is called on if items")
        };
        let ((_, then_close), else_form) = self.if_regions(item);
        let c = self.expr(cond);
        self.push(depth, format!("if {c} {{"));
        self.items(then, depth + 1, then_close);
        match else_form {
            Else::None => self.push(depth, "}".into()),
            Else::If => {
                // The nested if item continues the closing line.
                self.push(depth, "} else".into());
                let at = self.lines.len();
                self.item(&otherwise[0], depth);
                let rest = self.lines.remove(at);
                self.lines[at - 1].code.push(' ');
                self.lines[at - 1].code.push_str(&rest.code);
            }
            Else::Block(_, close) => {
                self.push(depth, "} else {".into());
                self.items(otherwise, depth + 1, close);
                self.push(depth, "}".into());
            }
        }
        self.last_end = item.span.end as usize;
    }

    /// A `{ fields }` list after `head`; `end` is the closing brace's end.
    fn fields(&mut self, depth: usize, head: String, fields: &[FieldDef], end: usize, tall: bool) {
        let parts: Vec<String> = fields
            .iter()
            .map(|f| format!("{} = {}", f.name.name, self.field_value(f)))
            .collect();
        let one_line = format!("{head} {{ {} }}", parts.join(", "));
        let has_comment = self
            .comments
            .iter()
            .enumerate()
            .any(|(k, c)| !self.emitted[k] && c.start > self.last_end && c.start < end);
        if !tall && !has_comment && depth * INDENT.len() + one_line.chars().count() <= WIDTH {
            self.push(depth, one_line);
            return;
        }
        self.push(depth, format!("{head} {{"));
        let mut first = true;
        for f in fields {
            let head = format!("{} =", f.name.name);
            let v = self.field_value(f);
            self.binding(depth + 1, head, f.span(), v, &mut first);
        }
        self.comments_in(0..end, &[], depth + 1, &mut first);
        self.push(depth, "}".into());
    }

    /// `reset { entries }`: on one line when it is one short entry without
    /// comments, else an entry per line.
    fn reset(&mut self, depth: usize, entries: &[ResetEntry], end: usize) {
        let entry = |f: &Self, e: &ResetEntry| match e {
            ResetEntry::Let(l) => (format!("let {} =", l.name.name), f.expr(&l.value)),
            ResetEntry::Set { target, add, value } => (
                format!("{} {}", f.expr(target), if *add { "+=" } else { "=" }),
                f.expr(value),
            ),
        };
        let has_comment = self
            .comments
            .iter()
            .enumerate()
            .any(|(k, c)| !self.emitted[k] && c.start > self.last_end && c.start < end);
        if let [e] = entries {
            let (head, v) = entry(self, e);
            let one_line = format!("reset {{ {head} {v} }}");
            if !has_comment && depth * INDENT.len() + one_line.chars().count() <= WIDTH {
                self.push(depth, one_line);
                return;
            }
        }
        self.push(depth, "reset {".into());
        let mut first = true;
        for e in entries {
            let (head, v) = entry(self, e);
            self.binding(depth + 1, head, e.span(), v, &mut first);
        }
        self.comments_in(0..end, &[], depth + 1, &mut first);
        self.push(depth, "}".into());
    }

    // -------------------------------------------------------- expressions

    fn expr(&self, e: &Expr) -> String {
        match &e.kind {
            ExprKind::Num { .. } => {
                self.src[e.span.start as usize..e.span.end as usize].to_string()
            }
            ExprKind::Bool(b) => b.to_string(),
            ExprKind::Str(s) => format!("\"{s}\""),
            ExprKind::Name(n) => n.clone(),
            ExprKind::Unary(op, x) => {
                let sym = match op {
                    UnOp::Neg => "-",
                    UnOp::Not => "!",
                };
                // The operand of a prefix operator binds at least as tight unless it is looser
                // than the prefix level (a sum, a product, a comparison...).
                let inner = self.expr(x);
                if prec(x) < 6 {
                    format!("{sym}({inner})")
                } else {
                    format!("{sym}{inner}")
                }
            }
            ExprKind::Binary(op, l, r) => {
                let p = op.precedence();
                let right_assoc = *op == BinOp::Pow;
                let lp = prec(l);
                let ls = self.expr(l);
                let ls = if lp < p || (lp == p && right_assoc) || (lp == 6 && p > 6) {
                    format!("({ls})")
                } else {
                    ls
                };
                let rp = prec(r);
                let rs = self.expr(r);
                let unary = matches!(r.kind, ExprKind::Unary(..));
                let rs = if !unary && (rp < p || (rp == p && !right_assoc)) {
                    format!("({rs})")
                } else {
                    rs
                };
                if *op == BinOp::Pow {
                    format!("{ls}^{rs}")
                } else {
                    format!("{ls} {} {rs}", op.symbol())
                }
            }
            ExprKind::Call { func, args } => format!("{}({})", func.name, self.args(args)),
            ExprKind::Method { recv, name, args } => {
                format!(
                    "{}.{}({})",
                    self.postfix_recv(recv),
                    name.name,
                    self.args(args)
                )
            }
            ExprKind::Field { recv, name } => format!("{}.{}", self.postfix_recv(recv), name.name),
            ExprKind::Index { recv, indices } => {
                let i: Vec<String> = indices.iter().map(|x| self.expr(x)).collect();
                format!("{}[{}]", self.postfix_recv(recv), i.join(", "))
            }
            ExprKind::Tuple(xs) => {
                let i: Vec<String> = xs.iter().map(|x| self.expr(x)).collect();
                format!("({})", i.join(", "))
            }
            ExprKind::List(xs) => {
                let i: Vec<String> = xs.iter().map(|x| self.expr(x)).collect();
                format!("[{}]", i.join(", "))
            }
            ExprKind::Sum { body, gens } => {
                format!("sum({} for {})", self.expr(body), self.generators(gens))
            }
            ExprKind::Block { lets, result } => {
                let mut s = String::from("{ ");
                for l in lets {
                    s += &format!("let {} = {}; ", l.name.name, self.expr(&l.value));
                }
                s + &self.expr(result) + " }"
            }
        }
    }

    /// The receiver of `.field`, `.method()` or `[index]`: parenthesised unless atomic.
    fn postfix_recv(&self, e: &Expr) -> String {
        let s = self.expr(e);
        let atomic = prec(e) == 9 && !matches!(e.kind, ExprKind::Num { .. });
        if atomic {
            s
        } else {
            format!("({s})")
        }
    }

    fn args(&self, args: &[Arg]) -> String {
        let a: Vec<String> = args
            .iter()
            .map(|a| match &a.name {
                Some(n) => format!("{} = {}", n.name, self.expr(&a.value)),
                None => self.expr(&a.value),
            })
            .collect();
        a.join(", ")
    }

    fn params(&self, params: &[Param]) -> String {
        let p: Vec<String> = params
            .iter()
            .map(|p| match &p.ty {
                Some(t) => format!("{}: {}", p.name.name, t.name),
                None => p.name.name.clone(),
            })
            .collect();
        p.join(", ")
    }

    /// A field's value and its `in lo..hi`, if any.
    fn field_value(&self, f: &FieldDef) -> String {
        let b = f
            .bounds
            .as_ref()
            .map(|b| self.bounds(b))
            .unwrap_or_default();
        self.expr(&f.value) + &b
    }

    fn bounds(&self, (lo, hi): &(Expr, Expr)) -> String {
        format!(" in {}..{}", self.expr(lo), self.expr(hi))
    }

    fn dims(&self, dims: &Option<Dims>) -> String {
        match dims {
            None => String::new(),
            Some(Dims::Gens(g)) => format!("[{}]", self.generators(g)),
            Some(Dims::Sizes(s)) => {
                let i: Vec<String> = s.iter().map(|x| self.expr(x)).collect();
                format!("[{}]", i.join(", "))
            }
        }
    }

    fn generators(&self, g: &Generators) -> String {
        let parts: Vec<String> = g
            .gens
            .iter()
            .map(|gen| match &gen.source {
                GenSource::Range(lo, hi) => {
                    format!("{} in {}..{}", gen.var.name, self.expr(lo), self.expr(hi))
                }
                GenSource::Collection(c) => format!("{} in {}", gen.var.name, self.expr(c)),
            })
            .collect();
        let guard = g
            .guard
            .as_ref()
            .map(|c| format!(" if {}", self.expr(c)))
            .unwrap_or_default();
        parts.join(", ") + &guard
    }
}

/// What follows the then-block of an `if` item.
enum Else {
    /// Nothing.
    None,
    /// `else if ...`: one nested if item.
    If,
    /// `else { ... }` with the byte positions of its braces.
    Block(usize, usize),
}

/// The braces of a block body.
fn block_region(e: &Expr) -> Option<(usize, usize)> {
    matches!(e.kind, ExprKind::Block { .. })
        .then(|| (e.span.start as usize, e.span.end as usize - 1))
}
