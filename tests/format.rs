//! `joule fmt`: the canonical layout is a fixed point on every shipped file,
//! keeps the tree and every comment, prints minimal parentheses, and the CLI
//! never touches a file it cannot format.

use joule_grammar::format::format_source;
use joule_grammar::parse;
use joule_grammar::print::without_spans;
use std::path::{Path, PathBuf};
use std::process::Command;

/// Every scene file the project ships or tests with that is meant to be valid.
fn shipped() -> Vec<PathBuf> {
    let mut v = vec![PathBuf::from("compiler/src/prelude.joule")];
    for dir in [
        "scenes",
        "tests/frontend",
        "tests/frontend/lib",
        "tests/optimize",
    ] {
        for e in std::fs::read_dir(dir).expect("folder") {
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

fn joule(args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_joule"))
        .args(args)
        .output()
        .expect("the joule binary runs")
}

fn temp(name: &str, text: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("joule-fmt-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    let p = dir.join(name);
    std::fs::write(&p, text).expect("write");
    p
}

fn path(p: &Path) -> &str {
    p.to_str().expect("utf-8 path")
}

#[test]
fn cli_checks_rewrites_and_refuses_broken_files() {
    let messy = "const A=1   // one\nparticle p { x = vec3(0,0,A), mass = 1 }\n";
    let p = temp("messy.joule", messy);
    let o = joule(&["fmt", "--check", path(&p)]);
    assert_eq!(o.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&o.stdout).contains("not formatted"));
    assert_eq!(
        std::fs::read_to_string(&p).expect("read"),
        messy,
        "--check changes nothing"
    );

    let o = joule(&["fmt", "--stdout", path(&p)]);
    assert!(o.status.success());
    let want = "const A = 1  // one\nparticle p { x = vec3(0, 0, A), mass = 1 }\n";
    assert_eq!(String::from_utf8_lossy(&o.stdout), want);

    let o = joule(&["fmt", path(&p)]);
    assert!(o.status.success());
    assert_eq!(std::fs::read_to_string(&p).expect("read"), want);
    assert!(joule(&["fmt", "--check", path(&p)]).status.success());

    let broken = "const A = (1 +\nparticle p { x = vec3(0, 0, 1) mass = 1 }\n";
    let b = temp("broken.joule", broken);
    let o = joule(&["fmt", "--color", "never", path(&b)]);
    assert_eq!(o.status.code(), Some(1));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        err.contains("joule::syntax") && err.contains("not formatted"),
        "{err}"
    );
    assert_eq!(
        std::fs::read_to_string(&b).expect("read"),
        broken,
        "left as it was"
    );
}
