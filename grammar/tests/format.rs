//! The canonical layout (`joule fmt`): a fixed point on every scene file the
//! project ships or tests with, keeps the tree and every comment, and prints
//! minimal parentheses. (The CLI's side is tested in the workspace's
//! `tests/format.rs`.)

use joule_grammar::format::format_source;
use joule_grammar::parse;
use joule_grammar::print::without_spans;
use std::path::{Path, PathBuf};

/// Every scene file the project ships or tests with that is meant to be valid.
fn shipped() -> Vec<PathBuf> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let mut v = vec![root.join("compiler/src/prelude.joule")];
    for dir in [
        "scenes",
        "scenes/envs",
        "compiler/tests/frontend",
        "compiler/tests/frontend/lib",
        "compiler/tests/resolve",
        "compiler/tests/resolve/lib",
        "compiler/tests/ir",
        "tests/optimize",
    ] {
        for e in std::fs::read_dir(root.join(dir)).expect("folder") {
            let p = e.expect("entry").path();
            if p.extension().is_some_and(|x| x == "joule") {
                v.push(p);
            }
        }
    }
    v.sort();
    v
}

fn fmt(src: &str) -> String {
    match format_source(0, src) {
        Ok(s) => s,
        Err(d) => panic!("not formatted: {:?}", d[0].message),
    }
}

#[test]
fn shipped_files_are_in_canonical_layout() {
    let files = shipped();
    assert!(files.len() > 15, "found {} files", files.len());
    let mut unformatted = vec![];
    for p in &files {
        let src = std::fs::read_to_string(p).expect("utf-8");
        if fmt(&src) != src {
            unformatted.push(p.display().to_string());
        }
    }
    assert!(
        unformatted.is_empty(),
        "run `joule fmt` on: {}",
        unformatted.join(" ")
    );
}

#[test]
fn a_careless_file_gets_the_canonical_layout() {
    let src = std::fs::read_to_string("tests/format/messy.joule").expect("fixture");
    let out = fmt(&src);
    // Idempotent, the same tree, every comment kept.
    assert_eq!(fmt(&out), out);
    let tree = |s: &str| {
        let (ast, d) = parse(0, s);
        assert!(d.is_empty());
        without_spans(&ast)
    };
    assert_eq!(tree(&src), tree(&out));
    for comment in [
        "// particles",
        "/* a block comment",
        "// distance",
        "// nothing to observe",
        "// the end",
    ] {
        assert_eq!(out.matches(comment).count(), 1, "{comment}");
    }
    insta::assert_snapshot!(out);
}

#[test]
fn parentheses_are_exactly_the_necessary_ones() {
    let cases = [
        ("(-x)^2", "(-x)^2"),
        ("-(x^2)", "-x^2"),
        ("-(a + b)", "-(a + b)"),
        ("a - (b - c)", "a - (b - c)"),
        ("(a - b) - c", "a - b - c"),
        ("a - (b + c)", "a - (b + c)"),
        ("2^(3^4)", "2^3^4"),
        ("(2^3)^4", "(2^3)^4"),
        ("2^(-x)", "2^-x"),
        ("a * (-b)", "a * -b"),
        ("(-a) * b", "-a * b"),
        ("((a + b)).x", "(a + b).x"),
        ("(a * b) / c", "a * b / c"),
        ("a / (b * c)", "a / (b * c)"),
        ("(a < b) == c", "a < b == c"),
        ("a || (b && c)", "a || b && c"),
        ("(a || b) && c", "(a || b) && c"),
        ("!(a && b)", "!(a && b)"),
        ("f((x))[(1)]", "f(x)[1]"),
        ("(30deg)", "30deg"),
        ("1e-3 * (2.50)", "1e-3 * 2.50"),
    ];
    for (input, want) in cases {
        let out = fmt(&format!("const X = {input}\n"));
        assert_eq!(out, format!("const X = {want}\n"), "from {input}");
    }
}

#[test]
fn a_field_keeps_its_bounds() {
    // `in lo..hi` after a field's value (a joint's range) survives parsing,
    // printing and formatting, on one line and broken over several.
    let src = "body b { shape = sphere(1)  joint = hinge(a, at = vec3(0,0,0), axis = vec3(0,0,1)) in -30deg..(30deg) }\n";
    let (ast, d) = parse(0, src);
    assert!(d.is_empty(), "{d:?}");
    let printed = ast.to_string();
    assert!(
        printed.contains(
            "(joint (hinge a (at = (vec3 0 0 0)) (axis = (vec3 0 0 1))) (in (neg 30deg) 30deg))"
        ),
        "{printed}"
    );
    let out = fmt(src);
    assert_eq!(
        out,
        "body b {\n    shape = sphere(1)\n    joint = hinge(a, at = vec3(0, 0, 0), axis = vec3(0, 0, 1)) in -30deg..30deg\n}\n"
    );
    assert_eq!(fmt(&out), out);
    let short = "body b { joint = slider(world, axis = vec3(1, 0, 0)) in -1..1 }\n";
    assert_eq!(fmt(short), short);
    // A comment after the bounds stays on the field's line.
    let commented = "body b {\n    shape = sphere(1)\n    joint = hinge(a, axis = vec3(0, 0, 1)) in -1..1  // knee\n}\n";
    assert_eq!(fmt(commented), commented);
    let tree = |s: &str| without_spans(&parse(0, s).0);
    assert_eq!(tree(src), tree(&out));
}
