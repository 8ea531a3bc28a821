//! The parser and resolver never panic: on arbitrary token soup, on arbitrary
//! bytes, and on shipped scenes mutated by deletions, insertions and swaps.

use proptest::prelude::*;

/// Tokens of the language (and some that are not) to build plausible input from.
const TOKENS: &[&str] = &[
    "scene",
    "\"s\"",
    "const",
    "N",
    "=",
    "3",
    "2.5",
    "1e-3",
    "30deg",
    "5kg",
    "fn",
    "f",
    "(",
    ")",
    "{",
    "}",
    "[",
    "]",
    ",",
    ";",
    ":",
    "..",
    ".",
    "x",
    "v",
    "mass",
    "particle",
    "p",
    "body",
    "mesh",
    "grid",
    "tetgrid",
    "cells",
    "size",
    "at",
    "vec3",
    "vec2",
    "mat3",
    "quat",
    "param",
    "k",
    "control",
    "u",
    "in",
    "for",
    "i",
    "j",
    "if",
    "else",
    "true",
    "false",
    "fix",
    "energy",
    "dissipation",
    "backward",
    "rest",
    "prev",
    "norm",
    "select",
    "sum",
    "let",
    "observe",
    "reward",
    "loss",
    "done",
    "policy",
    "mlp",
    "use",
    "\"nothing.joule\"",
    "+",
    "-",
    "*",
    "/",
    "^",
    "%",
    "==",
    "<",
    ">=",
    "&&",
    "||",
    "!",
    "\n",
    " ",
    "//c\n",
    "/*",
    "*/",
    "settings",
    "dt",
    "integrator",
    "implicit_euler",
    "a",
    "b",
    "t",
    "particle",
    "scalar",
    "tet",
    "A",
    "point",
];

fn check(text: &str) {
    // Run on a thread with a generous stack, as the CLI does.
    let text = text.to_string();
    std::thread::Builder::new()
        .stack_size(64 << 20)
        .spawn(move || {
            // Whatever parses formats, idempotently (`format_source` itself
            // refuses output that changes the tree or loses a comment).
            if let Ok(out) = joule_grammar::format::format_source(0, &text) {
                assert_eq!(
                    joule_grammar::format::format_source(0, &out).ok().as_ref(),
                    Some(&out)
                );
            }
            let c = joule_compiler::check_source("fuzz.joule", &text);
            if !c.ok() {
                // Rendering must not panic either.
                let _ = c.render_diagnostics(false, 80);
            }
        })
        .expect("thread")
        .join()
        .expect("the compiler panicked");
}

fn scenes() -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir("../scenes")
        .expect("scenes")
        .map(|e| e.expect("entry").path())
        .filter(|p| p.extension().is_some_and(|e| e == "joule"))
        .map(|p| std::fs::read_to_string(p).expect("utf-8 scene"))
        .collect();
    v.sort();
    v
}

/// One mutation: delete a range, insert a token, or swap two chunks.
#[derive(Debug, Clone)]
enum Mutation {
    Delete(usize, usize),
    Insert(usize, usize),
    Swap(usize, usize, usize),
}

fn apply(src: &str, muts: &[Mutation], tokens: &[&str]) -> String {
    let mut s = src.as_bytes().to_vec();
    for m in muts {
        let n = s.len().max(1);
        match *m {
            Mutation::Delete(at, len) => {
                let a = at % n;
                let b = (a + len % 16).min(s.len());
                s.drain(a.min(s.len())..b);
            }
            Mutation::Insert(at, tok) => {
                let a = (at % n).min(s.len());
                let t = tokens[tok % tokens.len()].as_bytes();
                s.splice(a..a, t.iter().copied());
            }
            Mutation::Swap(a, b, len) => {
                let (a, b, len) = (a % n, b % n, len % 24);
                if a + len <= b && b + len <= s.len() {
                    for k in 0..len {
                        s.swap(a + k, b + k);
                    }
                }
            }
        }
    }
    // Mutations work on bytes; the compiler only sees valid UTF-8 (from files it decodes).
    String::from_utf8_lossy(&s).into_owned()
}

/// Pieces of MJCF (and some that are not) to insert into the shipped models.
const MJCF_TOKENS: &[&str] = &[
    "<body>",
    "</body>",
    "<body name=\"b\" pos=\"0 0 1\">",
    "<joint type=\"hinge\" axis=\"0 0 1\"/>",
    "<joint type=\"free\"/>",
    "<geom type=\"capsule\" fromto=\"0 0 0 0 0 1\" size=\"0.1\"/>",
    "<geom size=\"-1\"/>",
    "<include file=\"x.xml\"/>",
    "<default class=\"c\">",
    "childclass=\"c\"",
    "<motor joint=\"j\" gear=\"nan\"/>",
    "range=\"1 -1\"",
    "quat=\"0 0 0 0\"",
    "axisangle=\"0 0 0 90\"",
    "euler=\"1e400 0 0\"",
    "<!--",
    "-->",
    "<![CDATA[",
    "&lt;",
    "&#0;",
    "\"",
    "=",
    "/>",
    ">",
    "<",
];

/// The MJCF models the import tests use.
fn mjcf_models() -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir("../tests/mjcf")
        .expect("tests/mjcf")
        .map(|e| e.expect("entry").path())
        .filter(|p| p.extension().is_some_and(|e| e == "xml"))
        .map(|p| std::fs::read_to_string(p).expect("utf-8 model"))
        .collect();
    v.sort();
    v
}

/// Imports MJCF text strictly and leniently; whatever it writes goes through
/// the front end, and every diagnostic renders, without a panic.
fn check_mjcf(xml: &str) {
    let xml = xml.to_string();
    std::thread::Builder::new()
        .stack_size(64 << 20)
        .spawn(move || {
            for lenient in [false, true] {
                let mut sources = joule_compiler::SourceMap::new();
                let file = sources.add("fuzz.xml", None, &xml);
                let imported = joule_compiler::mjcf::import(
                    &mut sources,
                    file,
                    joule_compiler::mjcf::Options {
                        lenient,
                        ..Default::default()
                    },
                );
                for d in &imported.diagnostics {
                    let _ = d.render(&sources, false, 80);
                }
                if let Some(text) = &imported.text {
                    check(text);
                }
            }
        })
        .expect("thread")
        .join()
        .expect("the importer panicked");
}

fn mutation() -> impl Strategy<Value = Mutation> {
    prop_oneof![
        (any::<usize>(), any::<usize>()).prop_map(|(a, l)| Mutation::Delete(a, l)),
        (any::<usize>(), any::<usize>()).prop_map(|(a, t)| Mutation::Insert(a, t)),
        (any::<usize>(), any::<usize>(), any::<usize>())
            .prop_map(|(a, b, l)| Mutation::Swap(a, b, l)),
    ]
}

proptest! {

    #[test]
    fn token_soup_never_panics(toks in prop::collection::vec(0..TOKENS.len(), 0..80)) {
        let text: Vec<&str> = toks.iter().map(|t| TOKENS[*t]).collect();
        check(&text.join(" "));
    }

    #[test]
    fn arbitrary_text_never_panics(text in "\\PC{0,200}") {
        check(&text);
    }

    #[test]
    fn mutated_mjcf_models_never_panic(pick in any::<usize>(), muts in prop::collection::vec(mutation(), 1..6)) {
        let models = mjcf_models();
        check_mjcf(&apply(&models[pick % models.len()], &muts, MJCF_TOKENS));
    }

    #[test]
    fn mutated_scenes_never_panic(pick in any::<usize>(), muts in prop::collection::vec(mutation(), 1..6)) {
        let scenes = scenes();
        let src = &scenes[pick % scenes.len()];
        check(&apply(src, &muts, TOKENS));
    }
}

#[test]
fn binary_input_is_a_diagnostic() {
    let dir = std::env::temp_dir().join(format!("joule-fuzz-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    let path = dir.join("binary.joule");
    std::fs::write(&path, [0x7f, b'E', b'L', b'F', 0, 0xff, 0xfe]).expect("write");
    let c = joule_compiler::check_path(&path).expect("readable");
    assert!(!c.ok());
    assert_eq!(c.diagnostics[0].code, "joule::invalid_utf8");
    std::fs::remove_dir_all(&dir).expect("cleanup");
}
