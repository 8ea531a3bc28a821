//! pest pairs to AST. Expressions go through a PrattParser; syntax errors are
//! turned into diagnostics, and after an error the parser resynchronises at the
//! next line that starts an item, so all syntax errors of a file are reported.

use crate::ast::*;
use crate::diag::Diagnostic;
use crate::trivia;
use pest::error::{ErrorVariant, InputLocation};
use pest::iterators::{Pair, Pairs};
use pest::pratt_parser::{Assoc, Op, PrattParser};
use pest::Parser;
use pest_derive::Parser;
use std::sync::LazyLock;

#[derive(Parser)]
#[grammar = "joule.pest"]
struct JouleParser;

/// Reserved words of the language.
pub const KEYWORDS: &[&str] = &[
    "scene",
    "use",
    "const",
    "fn",
    "settings",
    "param",
    "control",
    "particle",
    "body",
    "mesh",
    "fix",
    "energy",
    "dissipation",
    "if",
    "else",
    "observe",
    "reward",
    "loss",
    "done",
    "policy",
    "reset",
    "for",
    "in",
    "let",
    "backward",
    "true",
    "false",
];

/// Largest accepted source file, in bytes. Large structures come from generators.
pub const MAX_SOURCE_BYTES: usize = 1 << 20;
/// Deepest accepted bracket nesting.
pub const MAX_NESTING: usize = 128;

static PRATT: LazyLock<PrattParser<Rule>> = LazyLock::new(|| {
    PrattParser::new()
        .op(Op::infix(Rule::or, Assoc::Left))
        .op(Op::infix(Rule::and, Assoc::Left))
        .op(Op::infix(Rule::eq, Assoc::Left)
            | Op::infix(Rule::ne, Assoc::Left)
            | Op::infix(Rule::lt, Assoc::Left)
            | Op::infix(Rule::le, Assoc::Left)
            | Op::infix(Rule::gt, Assoc::Left)
            | Op::infix(Rule::ge, Assoc::Left))
        .op(Op::infix(Rule::add, Assoc::Left) | Op::infix(Rule::sub, Assoc::Left))
        .op(Op::infix(Rule::mul, Assoc::Left)
            | Op::infix(Rule::div, Assoc::Left)
            | Op::infix(Rule::rem, Assoc::Left))
        .op(Op::prefix(Rule::neg) | Op::prefix(Rule::not))
        .op(Op::infix(Rule::pow, Assoc::Right))
        .op(Op::postfix(Rule::index) | Op::postfix(Rule::method) | Op::postfix(Rule::field))
});

/// Parses one file. Returns the items that parsed and a diagnostic per syntax error.
pub fn parse(file: FileId, src: &str) -> (SceneFile, Vec<Diagnostic>) {
    if src.len() > MAX_SOURCE_BYTES {
        let d = Diagnostic::error(
            "joule::file_too_large",
            format!(
                "this file is {} bytes; scene files are limited to {} bytes",
                src.len(),
                MAX_SOURCE_BYTES
            ),
            Span::new(file, 0, 0),
            "file starts here",
        )
        .with_help(
            "generate large structures with `for` generators or `mesh` instead of writing them out",
        );
        return (SceneFile::default(), vec![d]);
    }
    if let Some(d) = check_nesting(file, src) {
        return (SceneFile::default(), vec![d]);
    }
    match JouleParser::parse(Rule::file, src) {
        Ok(mut pairs) => {
            let file_pair = pairs.next().expect("the file rule always yields one pair");
            let b = Builder { file };
            let items = file_pair
                .into_inner()
                .filter(|p| p.as_rule() != Rule::EOI)
                .map(|p| b.item(p))
                .collect();
            (SceneFile { items }, vec![])
        }
        Err(_) => parse_recovering(file, src),
    }
}

/// After a syntax error, parse again from the next line that starts an item,
/// so every broken item of the file is reported (the AST is then not used).
fn parse_recovering(file: FileId, src: &str) -> (SceneFile, Vec<Diagnostic>) {
    let mut diags = Vec::new();
    if let Some(d) = unterminated_comment(file, src) {
        return (SceneFile::default(), vec![d]);
    }
    let mut pos = 0;
    while pos < src.len() {
        match JouleParser::parse(Rule::file, &src[pos..]) {
            Ok(_) => break,
            Err(e) => {
                let (at, d) = syntax_error(file, src, pos, e);
                diags.push(d);
                pos = resync(src, at.max(pos + 1));
            }
        }
    }
    (SceneFile::default(), diags)
}

/// A `/*` without a closing `*/` (outside line comments and strings).
fn unterminated_comment(file: FileId, src: &str) -> Option<Diagnostic> {
    let open = trivia::comments(src).into_iter().find(|c| !c.closed)?;
    Some(
        Diagnostic::error(
            "joule::syntax",
            "unterminated comment",
            Span::new(file, open.start, open.start + 2),
            "this `/*` is never closed",
        )
        .with_help("close the comment with `*/`"),
    )
}

/// The start of the next line (after `from`) that begins, at column 0, an item.
fn resync(src: &str, mut from: usize) -> usize {
    while from < src.len() && !src.is_char_boundary(from) {
        from += 1;
    }
    let mut line_start = src[from.min(src.len())..]
        .find('\n')
        .map_or(src.len(), |n| from + n + 1);
    while line_start < src.len() {
        let line = &src[line_start..];
        let word: String = line
            .chars()
            .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
            .collect();
        let starts_item = !word.is_empty()
            && !word.starts_with(|c: char| c.is_ascii_digit())
            && (KEYWORDS.contains(&word.as_str())
                && !matches!(
                    word.as_str(),
                    "else" | "in" | "let" | "backward" | "for" | "true" | "false"
                )
                || line[word.len()..].trim_start().starts_with('('));
        if starts_item {
            return line_start;
        }
        line_start = line.find('\n').map_or(src.len(), |n| line_start + n + 1);
    }
    src.len()
}

/// Rejects bracket nesting deeper than [`MAX_NESTING`] before pest recurses into it.
fn check_nesting(file: FileId, src: &str) -> Option<Diagnostic> {
    let mut depth = 0usize;
    for (i, c) in src.char_indices() {
        match c {
            '(' | '[' | '{' => {
                depth += 1;
                if depth > MAX_NESTING {
                    return Some(
                        Diagnostic::error(
                            "joule::too_deep",
                            format!("brackets are nested more than {MAX_NESTING} levels deep"),
                            Span::new(file, i, i + 1),
                            "too deep here",
                        )
                        .with_help("split the expression with `let` bindings or `fn` helpers"),
                    );
                }
            }
            ')' | ']' | '}' => depth = depth.saturating_sub(1),
            _ => {}
        }
    }
    None
}

/// A readable name for what the grammar expected.
fn rule_name(r: Rule) -> Option<&'static str> {
    Some(match r {
        Rule::expr
        | Rule::operand
        | Rule::name
        | Rule::number
        | Rule::num_lit
        | Rule::string
        | Rule::bool_lit
        | Rule::call
        | Rule::list
        | Rule::tuple
        | Rule::paren
        | Rule::sum
        | Rule::neg
        | Rule::not => "an expression",
        Rule::ident => "a name",
        Rule::type_name => "a type",
        Rule::fields => "`{`",
        Rule::field_def => "a field `name = value`",
        Rule::call_args | Rule::call_arg => "an argument",
        Rule::fn_params | Rule::fn_param => "a parameter `name: type`",
        Rule::generators | Rule::generator => "a generator `i in lo..hi`",
        Rule::range => "a range `lo..hi`",
        Rule::item_block => "`{`",
        Rule::block => "`{` or `=`",
        Rule::bounds => "`in lo..hi`",
        Rule::dims => "`[`",
        Rule::for_clause => "`for`",
        Rule::backward => "`backward`",
        Rule::EOI => "the end of the file",
        Rule::or | Rule::and => "a logical operator",
        Rule::eq | Rule::ne | Rule::lt | Rule::le | Rule::gt | Rule::ge => "a comparison",
        Rule::add | Rule::sub | Rule::mul | Rule::div | Rule::rem | Rule::pow => "an operator",
        Rule::index | Rule::method | Rule::field => "`.` or `[`",
        Rule::scene_item
        | Rule::use_item
        | Rule::const_item
        | Rule::fn_item
        | Rule::settings_item
        | Rule::param_item
        | Rule::control_item
        | Rule::particle_item
        | Rule::body_item
        | Rule::mesh_item
        | Rule::fix_item
        | Rule::energy_item
        | Rule::dissipation_item
        | Rule::if_item
        | Rule::observe_item
        | Rule::reward_item
        | Rule::loss_item
        | Rule::done_item
        | Rule::policy_item
        | Rule::reset_item
        | Rule::instance_item => "an item (`const`, `particle`, `energy`, ...)",
        _ => return None,
    })
}

/// Turns a pest error at `base` into a diagnostic; returns the absolute error offset.
fn syntax_error(
    file: FileId,
    src: &str,
    base: usize,
    e: pest::error::Error<Rule>,
) -> (usize, Diagnostic) {
    let at = base
        + match e.location {
            InputLocation::Pos(p) => p,
            InputLocation::Span((s, _)) => s,
        };
    if let Some(d) = unterminated_string(file, src, at) {
        return (at, d);
    }
    let found = token_at(src, at);
    let expected = match &e.variant {
        ErrorVariant::ParsingError { positives, .. } => {
            let mut names: Vec<&str> = positives.iter().filter_map(|r| rule_name(*r)).collect();
            names.sort_unstable();
            names.dedup();
            if names.contains(&"an expression") {
                names.retain(|n| *n != "a name"); // a name is an expression
            }
            names
        }
        ErrorVariant::CustomError { .. } => vec![],
    };
    let expected_text = match expected.len() {
        0 => "something else".to_string(),
        1 => expected[0].to_string(),
        n => format!("{} or {}", expected[..n - 1].join(", "), expected[n - 1]),
    };
    let (message, span) = match &found {
        None => (
            "unexpected end of file".to_string(),
            Span::new(file, src.len(), src.len()),
        ),
        Some(tok) => (
            format!("unexpected `{tok}`"),
            Span::new(file, at, at + tok.len()),
        ),
    };
    let mut d = Diagnostic::error(
        "joule::syntax",
        message,
        span,
        format!("expected {expected_text}"),
    );
    let line_start = src[..at].rfind('\n').map_or(0, |n| n + 1);
    let first_on_line = line_start > 0 && src[line_start..at].trim().is_empty();
    // A `}` after a complete expression, where an expression was expected:
    // a block that ends with a `let` (not `dt = }`, an operand missing).
    let after_operand = src[..at]
        .trim_end()
        .ends_with(|c: char| c.is_alphanumeric() || matches!(c, ')' | ']' | '_'));
    if found.as_deref() == Some("}") && expected.contains(&"an expression") && after_operand {
        return (at, block_without_value(file, src, at));
    }
    if let Some((open, close)) = unclosed_bracket(src, at) {
        let label = format!("this `{}` is never closed", &src[open..open + 1]);
        let d = Diagnostic::error(
            "joule::syntax",
            format!("unclosed `{}`", &src[open..open + 1]),
            Span::new(file, open, open + 1),
            label,
        )
        .with_help(format!("add the missing `{close}`"));
        return (at, d);
    }
    if let Some(tok) = &found {
        if first_on_line && expected.contains(&"an expression") {
            d = d.with_help(
                "the expression on the previous line is incomplete (it ends with an operator)",
            );
        } else if KEYWORDS.contains(&tok.as_str()) && expected.contains(&"a name") {
            d = d.with_help(format!(
                "`{tok}` is a reserved word of the language; choose another name"
            ));
        } else if tok == "=" && expected.iter().any(|e| e.contains("comparison")) {
            d = d.with_help("to compare, write `==`");
        } else if tok == "**" || (tok == "*" && src[..at].ends_with('*')) {
            d = d.with_help("powers are written `x^2`");
        }
    }
    if d.help.is_none() {
        d = d.with_help(format!("the parser expected {expected_text} here"));
    }
    (at, d)
}

/// A bracket opened in the item around `at` (from the last line that starts at
/// column 0) and not closed before `at`: its offset and the closing bracket.
fn unclosed_bracket(src: &str, at: usize) -> Option<(usize, char)> {
    let line_of = |p: usize| src[..p].rfind('\n').map_or(0, |n| n + 1);
    let mut start = line_of(at);
    if start > 0 && src[start..at].trim().is_empty() {
        start = line_of(start - 1); // the error opens a line: the item is above it
    }
    // Walk back to the line that starts the item (a line beginning at column 0).
    while start > 0 && src[start..].starts_with([' ', '\t', '\n', '\r', '}', ')', ']']) {
        start = line_of(start - 1);
    }
    let mut stack = vec![];
    let mut in_comment = false;
    for (i, c) in src[start..at].char_indices() {
        let i = start + i;
        match c {
            '\n' => in_comment = false,
            _ if in_comment => {}
            '/' if src[i..].starts_with("//") => in_comment = true,
            '(' | '[' | '{' => stack.push(i),
            ')' | ']' | '}' => {
                stack.pop();
            }
            _ => {}
        }
    }
    let open = *stack.last()?;
    // Only a bracket on an earlier line: on the error's own line the parser's message is better.
    if src[open..at].contains('\n') {
        let close = match &src[open..open + 1] {
            "(" => ')',
            "[" => ']',
            _ => '}',
        };
        Some((open, close))
    } else {
        None
    }
}

/// A block `{ .. }` closed (at `at`) where its value was expected: it ends
/// with a `let`. When its last line begins with `-` or `+`, that line
/// continued the `let` above it (a newline does not end an expression).
fn block_without_value(file: FileId, src: &str, at: usize) -> Diagnostic {
    let d = Diagnostic::error(
        "joule::syntax",
        "this block has no value",
        Span::new(file, at, at + 1),
        "the block's value, an expression after its `let`s, belongs before this `}`",
    );
    let mut lines = src[..at]
        .lines()
        .rev()
        .map(str::trim)
        .filter(|l| !l.is_empty());
    let last = lines.next().unwrap_or_default();
    match (last.chars().next(), lines.next()) {
        (Some(sign @ ('-' | '+')), Some(above)) if above.starts_with("let ") => {
            d.with_help(format!(
                "the line `{last}` continued the `let` above it (a line that begins with \
                 `{sign}` continues the expression before it); end the `let` with `;` \
                 (`{};`) to make `{last}` the block's value",
                above.trim_end_matches(';')
            ))
        }
        _ => d.with_help(
            "end the block with the value it computes, e.g. `{ let d = a.x.z; 0.5 * d^2 }`",
        ),
    }
}

/// An odd number of `"` on the line before `at` means a string runs off its line.
fn unterminated_string(file: FileId, src: &str, at: usize) -> Option<Diagnostic> {
    let at = at.min(src.len());
    let line_start = src[..at].rfind('\n').map_or(0, |n| n + 1);
    let line_end = src[at..].find('\n').map_or(src.len(), |n| at + n);
    let before = &src[line_start..at];
    let code = before.split("//").next().unwrap_or("");
    let q = if code.matches('"').count() % 2 == 1 && !src[at..line_end].contains('"') {
        Some(line_start + code.rfind('"').expect("odd count"))
    } else if src[at..].starts_with('"') && !src[at + 1..line_end].contains('"') {
        Some(at)
    } else {
        None
    };
    if let Some(q) = q {
        return Some(
            Diagnostic::error(
                "joule::syntax",
                "unterminated string",
                Span::new(file, q, line_end),
                "this string has no closing `\"`",
            )
            .with_help("strings end on the line they start: add the closing `\"`"),
        );
    }
    None
}

/// The token starting at `at`: a word, a number, or a single character.
fn token_at(src: &str, at: usize) -> Option<String> {
    let rest = src.get(at..)?;
    let mut chars = rest.chars();
    let c = chars.next()?;
    if c.is_alphanumeric() || c == '_' {
        Some(
            rest.chars()
                .take_while(|c| c.is_alphanumeric() || *c == '_' || *c == '.')
                .collect::<String>()
                .trim_end_matches('.')
                .to_string(),
        )
    } else if rest.starts_with("**") {
        Some("**".into())
    } else {
        Some(c.to_string())
    }
}

/// Converts pairs into AST nodes.
struct Builder {
    file: FileId,
}

impl Builder {
    /// The pair's span without the trailing whitespace pest includes after
    /// optional parts that did not match.
    fn span(&self, p: &Pair<Rule>) -> Span {
        let s = p.as_span();
        let text = s.as_str();
        let end = s.start() + trivia::trim_end(text).len();
        Span::new(self.file, s.start(), end)
    }

    fn ident(&self, p: Pair<Rule>) -> Ident {
        Ident {
            name: p.as_str().to_string(),
            span: self.span(&p),
        }
    }

    fn item(&self, p: Pair<Rule>) -> Item {
        let span = self.span(&p);
        let rule = p.as_rule();
        let mut it = p.into_inner();
        let kind = match rule {
            Rule::scene_item => ItemKind::Scene(self.string(it.next().unwrap())),
            Rule::use_item => {
                let s = it.next().unwrap();
                ItemKind::Use {
                    path_span: self.span(&s),
                    path: self.string(s),
                    args: it.next().map(|a| self.call_args(a)).unwrap_or_default(),
                }
            }
            Rule::const_item => ItemKind::Const {
                name: self.ident(it.next().unwrap()),
                value: self.expr(it.next().unwrap()),
            },
            Rule::fn_item => {
                let name = self.ident(it.next().unwrap());
                let (params, body) = self.params_and_body(&mut it);
                ItemKind::Fn { name, params, body }
            }
            Rule::settings_item => ItemKind::Settings(self.fields(it.next().unwrap())),
            Rule::param_item => {
                let name = self.ident(it.next().unwrap());
                let mut next = it.next().unwrap();
                let dims = if next.as_rule() == Rule::dims {
                    let d = self.dims(next);
                    next = it.next().unwrap();
                    Some(d)
                } else {
                    None
                };
                ItemKind::Param {
                    name,
                    dims,
                    value: self.expr(next),
                    bounds: it.next().map(|b| self.bounds(b)),
                }
            }
            Rule::control_item => {
                let name = self.ident(it.next().unwrap());
                let mut dims = None;
                let mut bounds = None;
                for p in it {
                    match p.as_rule() {
                        Rule::dims => dims = Some(self.dims(p)),
                        _ => bounds = Some(self.bounds(p)),
                    }
                }
                ItemKind::Control { name, dims, bounds }
            }
            Rule::particle_item | Rule::body_item => {
                let name = self.ident(it.next().unwrap());
                let mut dims = None;
                let mut fields = vec![];
                for p in it {
                    match p.as_rule() {
                        Rule::dims => dims = Some(self.dims(p)),
                        _ => fields = self.fields(p),
                    }
                }
                if rule == Rule::particle_item {
                    ItemKind::Particle { name, dims, fields }
                } else {
                    ItemKind::Body { name, dims, fields }
                }
            }
            Rule::mesh_item => ItemKind::Mesh {
                name: self.ident(it.next().unwrap()),
                source: self.expr(it.next().unwrap()),
                fields: it.next().map(|f| self.fields(f)).unwrap_or_default(),
            },
            Rule::fix_item => {
                let mut targets = vec![];
                let mut gens = None;
                for p in it {
                    match p.as_rule() {
                        Rule::for_clause => gens = Some(self.for_clause(p)),
                        _ => targets.push(self.expr(p)),
                    }
                }
                ItemKind::Fix { targets, gens }
            }
            Rule::energy_item | Rule::dissipation_item => {
                let name = self.ident(it.next().unwrap());
                let (params, body) = self.params_and_body(&mut it);
                let backward = it.next().map(|b| {
                    let inner = b.into_inner().next().unwrap();
                    self.body_expr(inner)
                });
                ItemKind::Energy(EnergyDef {
                    kind: if rule == Rule::energy_item {
                        EnergyKind::Energy
                    } else {
                        EnergyKind::Dissipation
                    },
                    name,
                    params,
                    body,
                    backward,
                })
            }
            Rule::if_item => {
                let cond = self.expr(it.next().unwrap());
                let then = self.item_block(it.next().unwrap());
                let otherwise = match it.next() {
                    None => vec![],
                    Some(p) if p.as_rule() == Rule::if_item => vec![self.item(p)],
                    Some(p) => self.item_block(p),
                };
                ItemKind::If {
                    cond,
                    then,
                    otherwise,
                }
            }
            Rule::observe_item | Rule::reward_item | Rule::loss_item | Rule::done_item => {
                let kind = match rule {
                    Rule::observe_item => ObjectiveKind::Observe,
                    Rule::reward_item => ObjectiveKind::Reward,
                    Rule::loss_item => ObjectiveKind::Loss,
                    _ => ObjectiveKind::Done,
                };
                ItemKind::Objective {
                    kind,
                    name: self.ident(it.next().unwrap()),
                    value: self.expr(it.next().unwrap()),
                }
            }
            Rule::policy_item => ItemKind::Policy {
                name: self.ident(it.next().unwrap()),
                value: self.expr(it.next().unwrap()),
            },
            Rule::reset_item => ItemKind::Reset(
                it.map(|q| match q.as_rule() {
                    Rule::let_stmt => {
                        let mut i = q.into_inner();
                        ResetEntry::Let(Let {
                            name: self.ident(i.next().unwrap()),
                            value: self.expr(i.next().unwrap()),
                        })
                    }
                    _ => {
                        let mut i = q.into_inner();
                        let target = self.expr(i.next().unwrap());
                        let add = i.next().unwrap().as_rule() == Rule::reset_add;
                        let value = self.expr(i.next().unwrap());
                        ResetEntry::Set { target, add, value }
                    }
                })
                .collect(),
            ),
            Rule::instance_item => {
                let template = self.ident(it.next().unwrap());
                let mut args = vec![];
                let mut gens = None;
                for p in it {
                    match p.as_rule() {
                        Rule::call_args => args = self.call_args(p),
                        _ => gens = Some(self.for_clause(p)),
                    }
                }
                ItemKind::Instance {
                    template,
                    args,
                    gens,
                }
            }
            r => unreachable!("not an item rule: {r:?}"),
        };
        Item { kind, span }
    }

    fn item_block(&self, p: Pair<Rule>) -> Vec<Item> {
        p.into_inner().map(|i| self.item(i)).collect()
    }

    fn string(&self, p: Pair<Rule>) -> String {
        p.into_inner()
            .next()
            .map_or(String::new(), |b| b.as_str().to_string())
    }

    fn params_and_body(&self, it: &mut Pairs<Rule>) -> (Vec<Param>, Expr) {
        let mut next = it.next().unwrap();
        let mut params = vec![];
        if next.as_rule() == Rule::fn_params {
            params = next
                .into_inner()
                .map(|fp| {
                    let mut i = fp.into_inner();
                    Param {
                        name: self.ident(i.next().unwrap()),
                        ty: i.next().map(|t| self.ident(t)),
                    }
                })
                .collect();
            next = it.next().unwrap();
        }
        (params, self.body_expr(next))
    }

    fn body_expr(&self, p: Pair<Rule>) -> Expr {
        match p.as_rule() {
            Rule::block => self.block(p),
            _ => self.expr(p),
        }
    }

    fn block(&self, p: Pair<Rule>) -> Expr {
        let span = self.span(&p);
        let mut lets = vec![];
        let mut result = None;
        for q in p.into_inner() {
            match q.as_rule() {
                Rule::let_stmt => {
                    let mut i = q.into_inner();
                    lets.push(Let {
                        name: self.ident(i.next().unwrap()),
                        value: self.expr(i.next().unwrap()),
                    });
                }
                _ => result = Some(self.expr(q)),
            }
        }
        Expr {
            kind: ExprKind::Block {
                lets,
                result: Box::new(result.expect("a block ends in an expression")),
            },
            span,
        }
    }

    fn fields(&self, p: Pair<Rule>) -> Vec<FieldDef> {
        p.into_inner()
            .map(|f| {
                let mut i = f.into_inner();
                FieldDef {
                    name: self.ident(i.next().unwrap()),
                    value: self.expr(i.next().unwrap()),
                    bounds: i.next().map(|b| self.bounds(b)),
                }
            })
            .collect()
    }

    fn bounds(&self, p: Pair<Rule>) -> (Expr, Expr) {
        let mut i = p.into_inner();
        (self.expr(i.next().unwrap()), self.expr(i.next().unwrap()))
    }

    fn dims(&self, p: Pair<Rule>) -> Dims {
        let inner = p.into_inner().next().unwrap();
        match inner.as_rule() {
            Rule::generators => Dims::Gens(self.generators(inner)),
            _ => Dims::Sizes(inner.into_inner().map(|e| self.expr(e)).collect()),
        }
    }

    fn for_clause(&self, p: Pair<Rule>) -> Generators {
        self.generators(p.into_inner().next().unwrap())
    }

    fn generators(&self, p: Pair<Rule>) -> Generators {
        let span = self.span(&p);
        let mut gens = vec![];
        let mut guard = None;
        for q in p.into_inner() {
            match q.as_rule() {
                Rule::generator => {
                    let gspan = self.span(&q);
                    let mut i = q.into_inner();
                    let var = self.ident(i.next().unwrap());
                    let first = self.expr(i.next().unwrap());
                    let source = match i.next() {
                        Some(range) => {
                            GenSource::Range(first, self.expr(range.into_inner().next().unwrap()))
                        }
                        None => GenSource::Collection(first),
                    };
                    gens.push(Generator {
                        var,
                        source,
                        span: gspan,
                    });
                }
                _ => guard = Some(Box::new(self.expr(q.into_inner().next().unwrap()))),
            }
        }
        Generators { gens, guard, span }
    }

    fn call_args(&self, p: Pair<Rule>) -> Vec<Arg> {
        p.into_inner()
            .map(|a| {
                let mut i = a.into_inner().peekable();
                let first = i.next().unwrap();
                if first.as_rule() == Rule::ident {
                    Arg {
                        name: Some(self.ident(first)),
                        value: self.expr(i.next().unwrap()),
                    }
                } else {
                    Arg {
                        name: None,
                        value: self.expr(first),
                    }
                }
            })
            .collect()
    }

    fn expr(&self, p: Pair<Rule>) -> Expr {
        debug_assert_eq!(p.as_rule(), Rule::expr);
        PRATT
            .map_primary(|q| self.primary(q))
            .map_prefix(|op, rhs| {
                let s = self.span(&op);
                let o = match op.as_rule() {
                    Rule::neg => UnOp::Neg,
                    _ => UnOp::Not,
                };
                let span = s.to(rhs.span);
                Expr {
                    kind: ExprKind::Unary(o, Box::new(rhs)),
                    span,
                }
            })
            .map_infix(|lhs, op, rhs| {
                let o = match op.as_rule() {
                    Rule::or => BinOp::Or,
                    Rule::and => BinOp::And,
                    Rule::eq => BinOp::Eq,
                    Rule::ne => BinOp::Ne,
                    Rule::lt => BinOp::Lt,
                    Rule::le => BinOp::Le,
                    Rule::gt => BinOp::Gt,
                    Rule::ge => BinOp::Ge,
                    Rule::add => BinOp::Add,
                    Rule::sub => BinOp::Sub,
                    Rule::mul => BinOp::Mul,
                    Rule::div => BinOp::Div,
                    Rule::rem => BinOp::Rem,
                    _ => BinOp::Pow,
                };
                let span = lhs.span.to(rhs.span);
                Expr {
                    kind: ExprKind::Binary(o, Box::new(lhs), Box::new(rhs)),
                    span,
                }
            })
            .map_postfix(|lhs, op| {
                let span = lhs.span.to(self.span(&op));
                let rule = op.as_rule();
                let mut i = op.into_inner();
                let kind = match rule {
                    Rule::index => ExprKind::Index {
                        recv: Box::new(lhs),
                        indices: i.map(|e| self.expr(e)).collect(),
                    },
                    Rule::method => ExprKind::Method {
                        recv: Box::new(lhs),
                        name: self.ident(i.next().unwrap()),
                        args: i.next().map(|a| self.call_args(a)).unwrap_or_default(),
                    },
                    _ => ExprKind::Field {
                        recv: Box::new(lhs),
                        name: self.ident(i.next().unwrap()),
                    },
                };
                Expr { kind, span }
            })
            .parse(p.into_inner())
    }

    fn primary(&self, p: Pair<Rule>) -> Expr {
        let span = self.span(&p);
        let kind = match p.as_rule() {
            Rule::number => {
                let mut i = p.into_inner();
                let lit = i.next().unwrap().as_str();
                let is_int = !lit.contains(['.', 'e', 'E']);
                ExprKind::Num {
                    value: lit.parse().unwrap_or(f64::INFINITY),
                    is_int,
                    unit: i.next().map(|u| self.ident(u)),
                }
            }
            Rule::bool_lit => ExprKind::Bool(p.as_str() == "true"),
            Rule::string => ExprKind::Str(self.string(p)),
            Rule::name => ExprKind::Name(p.as_str().to_string()),
            Rule::paren => {
                let mut i = p.into_inner();
                let first = self.expr(i.next().unwrap());
                match i.next() {
                    // `(a, b, ...)`: the rest of the elements follow the first.
                    Some(rest) => ExprKind::Tuple(
                        std::iter::once(first)
                            .chain(rest.into_inner().map(|e| self.expr(e)))
                            .collect(),
                    ),
                    None => return first,
                }
            }
            Rule::list => ExprKind::List(p.into_inner().map(|e| self.expr(e)).collect()),
            Rule::call => {
                let mut i = p.into_inner();
                ExprKind::Call {
                    func: self.ident(i.next().unwrap()),
                    args: i.next().map(|a| self.call_args(a)).unwrap_or_default(),
                }
            }
            Rule::sum => {
                let mut i = p.into_inner();
                let first = self.expr(i.next().unwrap());
                let rest = i.next().unwrap();
                match rest.as_rule() {
                    Rule::generators => ExprKind::Sum {
                        body: Box::new(first),
                        gens: self.generators(rest),
                    },
                    // `sum(x, ..)` without `for`: a call of `sum`.
                    _ => ExprKind::Call {
                        func: Ident {
                            name: "sum".into(),
                            span: Span {
                                end: span.start + 3,
                                ..span
                            },
                        },
                        args: std::iter::once(Arg {
                            name: None,
                            value: first,
                        })
                        .chain(self.call_args(rest))
                        .collect(),
                    },
                }
            }
            Rule::block => return self.block(p),
            r => unreachable!("not a primary rule: {r:?}"),
        };
        Expr { kind, span }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::print;

    fn e(src: &str) -> String {
        let (f, d) = parse(0, &format!("const X = {src}"));
        assert!(d.is_empty(), "{d:?}");
        match &f.items[0].kind {
            ItemKind::Const { value, .. } => print::expr(value),
            _ => unreachable!(),
        }
    }

    #[test]
    fn precedence() {
        assert_eq!(e("-x^2"), "(neg (^ x 2))");
        assert_eq!(e("2^3^2"), "(^ 2 (^ 3 2))");
        assert_eq!(e("2^-1*3"), "(* (^ 2 (neg 1)) 3)");
        assert_eq!(e("a + b * c - d"), "(- (+ a (* b c)) d)");
        assert_eq!(e("a < b && c || !d"), "(|| (&& (< a b) c) (not d))");
        assert_eq!(e("-a.x.z"), "(neg (. (. a x) z))");
        assert_eq!(e("30deg"), "30deg");
        assert_eq!(e("1e-8"), "1e-8");
        assert_eq!(e("p[i, j + 1].x"), "(. ([] p i (+ j 1)) x)");
        assert_eq!(e("A.point(vec3(0, 0, 1))"), "(.point A (vec3 0 0 1))");
        assert_eq!(
            e("sum(x[k] for k in 0..3)"),
            "(sum ([] x k) (for (k 0..3)))"
        );
        assert_eq!(e("f(a = 1, 2)"), "(f (a = 1) 2)");
        assert_eq!(e("sum(1, 2)"), "(sum 1 2)"); // a call (an error later)
        assert_eq!(e("(1, 2, 3)"), "(tuple 1 2 3)");
        assert_eq!(e("a == b"), "(== a b)");
    }

    #[test]
    fn recovers_and_reports_every_syntax_error() {
        let src = "const A = 1 +\nconst B = 2\nparam k = )\nconst C = (3\n";
        let (_, d) = parse(0, src);
        let at: Vec<_> = d
            .iter()
            .map(|d| (d.span().start, d.labels[0].message.as_str()))
            .collect();
        // After the trailing `+` (at the next line's `const`), at the `)`, and at the unclosed `(`.
        assert_eq!(at.len(), 3, "{d:?}");
        assert_eq!(at[0].0 as usize, src.find("const B").unwrap());
        assert_eq!(at[1].0 as usize, src.find(')').unwrap());
        assert_eq!(at[2].0 as usize, src.rfind('(').unwrap()); // the unclosed bracket
        assert!(at[1].1.contains("an expression"), "{}", at[1].1);
    }

    #[test]
    fn unterminated_comments_and_strings_are_named() {
        let (_, d) = parse(0, "const A = 1\n/* open\nconst B = 2\n");
        assert_eq!(d[0].message, "unterminated comment");
        let (_, d) = parse(0, "scene \"title\nconst B = 2\n");
        assert_eq!(d[0].message, "unterminated string");
    }

    #[test]
    fn spans_exclude_trailing_whitespace_and_comments() {
        let src = "const A = 1   // one\n\nconst B = 2\n";
        let (f, d) = parse(0, src);
        assert!(d.is_empty());
        assert_eq!(f.items[0].span.end as usize, src.find("   //").unwrap());
    }

    #[test]
    fn deep_nesting_is_an_error_not_a_crash() {
        let src = format!("const X = {}1{}", "(".repeat(5000), ")".repeat(5000));
        let (_, d) = parse(0, &src);
        assert_eq!(d[0].code, "joule::too_deep");
    }
}
