//! The crate rules of docs/ARCHITECTURE.md ("Rules"), checked on the
//! workspace's Cargo.toml files: which crate may depend on which, and which
//! outside crates stay out of which rooms; and the library, without the
//! `cli` feature, compiles none of the command line's dependencies.

use std::collections::BTreeMap;
use std::path::Path;

/// The workspace's crates, their manifest folder, the workspace crates each
/// may depend on, and outside crates it must not depend on.
const RULES: &[(&str, &str, &[&str], &[&str])] = &[
    // The language: nothing of the workspace.
    (
        "joule-grammar",
        "grammar",
        &[],
        &["candle-core", "candle-nn"],
    ),
    // The compiler knows the language, nothing of time stepping or learning.
    (
        "joule-compiler",
        "compiler",
        &["joule-grammar"],
        &["pest", "pest_derive", "candle-core", "candle-nn", "amd"],
    ),
    // The runtime knows nothing of syntax, and networks live outside it.
    (
        "joule-runtime",
        "runtime",
        &["joule-compiler"],
        &[
            "pest",
            "pest_derive",
            "candle-core",
            "candle-nn",
            "safetensors",
        ],
    ),
    // Learning drives the runtime; it names the model through the compiler.
    (
        "joule-learn",
        "learn",
        &["joule-compiler", "joule-runtime"],
        &["pest", "pest_derive"],
    ),
    // Python sees what a Rust program sees: the facade.
    ("joule-python", "python", &["joule"], &[]),
    // The front doors may use everything.
    (
        "joule",
        ".",
        &[
            "joule-grammar",
            "joule-compiler",
            "joule-runtime",
            "joule-learn",
        ],
        &[],
    ),
];

/// Every dependency (normal, dev and build) named in a manifest, with the
/// section it is in. A small reader of the forms the workspace uses:
/// `name.workspace = true`, `name = "1"`, `name = { ... }`.
fn dependencies(manifest: &str) -> BTreeMap<String, String> {
    let mut deps = BTreeMap::new();
    let mut section = String::new();
    for line in manifest.lines() {
        let line = line.trim();
        if line.starts_with('[') {
            section = line.trim_matches(|c| c == '[' || c == ']').to_string();
            continue;
        }
        // `[workspace.dependencies]` only declares versions; members opt in.
        let deps_section = section.ends_with("dependencies") && !section.starts_with("workspace");
        if !deps_section || line.is_empty() || line.starts_with('#') {
            continue;
        }
        let Some((key, _)) = line.split_once('=') else {
            continue;
        };
        let name = key.trim().trim_end_matches(".workspace").trim();
        deps.insert(name.to_string(), section.clone());
    }
    deps
}

#[test]
fn crates_depend_only_as_the_rules_allow() {
    let workspace_crates: Vec<&str> = RULES.iter().map(|r| r.0).collect();
    let mut broken = vec![];
    for (krate, dir, allowed, denied) in RULES {
        let path = Path::new(env!("CARGO_MANIFEST_DIR"))
            .join(dir)
            .join("Cargo.toml");
        let manifest = std::fs::read_to_string(&path)
            .unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()));
        assert!(
            manifest.contains(&format!("name = \"{krate}\"")),
            "{} is not {krate}'s manifest",
            path.display()
        );
        for (dep, section) in dependencies(&manifest) {
            let inside = workspace_crates.contains(&dep.as_str());
            if (inside && !allowed.contains(&dep.as_str())) || denied.contains(&dep.as_str()) {
                broken.push(format!("{krate} depends on {dep} ([{section}])"));
            }
        }
    }
    assert!(
        broken.is_empty(),
        "crate rules broken (see docs/ARCHITECTURE.md, Rules):\n{}",
        broken.join("\n")
    );
}

#[test]
fn the_reader_sees_every_form_of_dependency() {
    let deps = dependencies(
        "[package]\nname = \"x\"\n\n[dependencies]\njoule-grammar.workspace = true\n\
         pest = \"2\"\n# comment = 1\nplotters = { version = \"0.3\" }\n\n\
         [dev-dependencies]\ninsta.workspace = true\n\n\
         [workspace.dependencies]\nrand = \"0.9\"\n",
    );
    let names: Vec<&str> = deps.keys().map(String::as_str).collect();
    assert_eq!(names, ["insta", "joule-grammar", "pest", "plotters"]);
    assert_eq!(deps["insta"], "dev-dependencies");
}

/// The crates in the normal dependency tree of the `joule` package, by
/// `cargo tree` on the lock file (nothing is built or downloaded), with
/// `extra` flags.
fn tree(extra: &[&str]) -> Vec<String> {
    let o = std::process::Command::new(env!("CARGO"))
        .args([
            "tree",
            "-p",
            "joule",
            "-e",
            "normal",
            "--prefix",
            "none",
            "--locked",
            "--offline",
        ])
        .args(extra)
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .expect("cargo runs");
    assert!(
        o.status.success(),
        "cargo tree: {}",
        String::from_utf8_lossy(&o.stderr)
    );
    let mut names: Vec<String> = String::from_utf8_lossy(&o.stdout)
        .lines()
        .filter_map(|l| l.split_whitespace().next().map(String::from))
        .collect();
    names.sort();
    names.dedup();
    names
}

#[test]
fn the_library_compiles_none_of_the_command_lines_dependencies() {
    // The command line's own: plots and their font, the line editor,
    // progress bars, shell completions, argument parsing.
    let cli_only = [
        "plotters",
        "dejavu",
        "rustyline",
        "indicatif",
        "clap_complete",
        "clap",
    ];
    let with_cli = tree(&[]);
    let library = tree(&["--no-default-features"]);
    for name in cli_only {
        assert!(
            with_cli.iter().any(|n| n == name),
            "the CLI does not use {name}: {with_cli:?}"
        );
        assert!(
            !library.iter().any(|n| n == name),
            "`joule` with default-features = false still depends on {name}"
        );
    }
    // The library still has its engine.
    for name in ["joule-compiler", "joule-runtime", "cranelift-jit"] {
        assert!(library.iter().any(|n| n == name), "{name}: {library:?}");
    }
}
