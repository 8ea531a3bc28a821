//! Parsing is linear in the bracket nesting: no grammar alternative re-parses
//! a bracket that another alternative has already parsed. Checked with pest's
//! call limit (a count of rule calls, not time): the deepest accepted nesting
//! parses within a budget that grows linearly with the depth, where a grammar
//! that backtracked would need 2^depth calls. One test per binary, as the call
//! limit is global to the process.

use joule_grammar::ast::{ExprKind, ItemKind};
use joule_grammar::parse;
use std::num::NonZeroUsize;

/// Rule calls allowed per nesting level (a level costs a few dozen).
const CALLS_PER_LEVEL: usize = 400;

/// `nest(depth, open, close, inner)` nests `inner` in `depth` bracket pairs.
fn nest(depth: usize, open: &str, close: &str, inner: &str) -> String {
    format!("{}{inner}{}", open.repeat(depth), close.repeat(depth))
}

#[test]
fn nesting_parses_in_linear_calls_and_too_deep_is_located() {
    let depth = 127; // the deepest accepted (`const X = ...` adds no bracket)
    pest::set_call_limit(NonZeroUsize::new(CALLS_PER_LEVEL * (depth + 1)));
    let cases = [
        nest(depth, "(", ")", "1"),                  // parentheses
        nest(depth, "(", ", 1)", "1"),               // tuples
        nest(depth, "sum(", " for i in 0..2)", "1"), // sums
        nest(depth, "f(", ")", "1"),                 // calls
        nest(depth, "(", ")", "1 +"),                // a syntax error inside
    ];
    for (k, src) in cases.iter().enumerate() {
        let (file, diags) = parse(0, &format!("const X = {src}"));
        if k == cases.len() - 1 {
            // The error is found (within the budget), at the `)` after `+`.
            assert_eq!(diags.len(), 1, "{diags:?}");
            assert_eq!(diags[0].code, "joule::syntax", "{diags:?}");
            continue;
        }
        assert!(diags.is_empty(), "case {k}: {diags:?}");
        // The structure: `depth` nested nodes around the literal.
        let ItemKind::Const { value, .. } = &file.items[0].kind else {
            panic!("case {k}: not a const");
        };
        let mut e = value;
        let mut levels = 0;
        loop {
            e = match &e.kind {
                ExprKind::Tuple(v) => &v[0],
                ExprKind::Sum { body, .. } => body,
                ExprKind::Call { args, .. } => &args[0].value,
                _ => break,
            };
            levels += 1;
        }
        let expect = if k == 0 { 0 } else { depth }; // parentheses leave no node
        assert_eq!(levels, expect, "case {k}");
        assert!(matches!(e.kind, ExprKind::Num { .. }), "case {k}");
    }
    // One level more is a located error, reported before pest runs.
    let src = format!("const X = {}", nest(depth + 2, "(", ")", "1"));
    let (_, diags) = parse(0, &src);
    assert_eq!(diags.len(), 1);
    assert_eq!(diags[0].code, "joule::too_deep");
    let at = diags[0].span().start as usize;
    assert_eq!(at, "const X = ".len() + 128, "at the 129th `(`");
}
