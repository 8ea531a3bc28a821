//! The invalid-scene corpus: every `tests/invalid/*.joule` must fail to
//! check, report the diagnostic code it declares, and render exactly as in
//! its snapshot (`tests/snapshots/diagnostics__invalid@NAME.snap`; paths are
//! relative to this package, `compiler/`).
//!
//! Each scene declares what it expects in its leading comments:
//!
//! ```text
//! // expect: joule::unknown_name     (a diagnostic with this code is reported)
//! // expect-count: 2                 (optional: exactly this many diagnostics)
//! ```
//!
//! Files that cannot carry a comment (binary input) are listed in
//! [`EXPECT_TABLE`]. Helper files used by the corpus (`use` targets) live in
//! `tests/invalid/helpers/`, which the glob does not descend into.

use std::path::Path;

/// Expectations for files that cannot hold an `// expect:` comment.
const EXPECT_TABLE: &[(&str, &str)] = &[("47_binary.joule", "joule::invalid_utf8")];

/// The fewest files the corpus may have (one per error class).
const MIN_CORPUS: usize = 34;

struct Expect {
    code: String,
    count: Option<usize>,
}

/// Reads the expectation of one corpus file from its leading `//` comments,
/// or from [`EXPECT_TABLE`].
fn expectation(name: &str, bytes: &[u8]) -> Result<Expect, String> {
    if let Some((_, code)) = EXPECT_TABLE.iter().find(|(n, _)| *n == name) {
        return Ok(Expect {
            code: code.to_string(),
            count: None,
        });
    }
    let text = std::str::from_utf8(bytes)
        .map_err(|_| format!("{name}: not UTF-8; list it in EXPECT_TABLE"))?;
    let (mut code, mut count) = (None, None);
    for line in text.lines().map(str::trim) {
        let Some(comment) = line.strip_prefix("//") else {
            break; // only the leading comment block counts
        };
        let comment = comment.trim();
        if let Some(c) = comment.strip_prefix("expect:") {
            code = Some(c.trim().to_string());
        } else if let Some(n) = comment.strip_prefix("expect-count:") {
            let n = n
                .trim()
                .parse()
                .map_err(|_| format!("{name}: bad `// expect-count:` line"))?;
            count = Some(n);
        }
    }
    let code = code
        .ok_or_else(|| format!("{name}: no `// expect: joule::...` line at the top of the file"))?;
    if !code.starts_with("joule::") {
        return Err(format!(
            "{name}: expected code `{code}` is not a `joule::` code"
        ));
    }
    Ok(Expect { code, count })
}

/// Runs the front end on one corpus file; returns the rendered diagnostics,
/// or the reasons the file does not meet its expectation.
fn check_one(rel: &Path, failures: &mut Vec<String>) -> String {
    let name = rel.file_name().unwrap().to_string_lossy().into_owned();
    let bytes = std::fs::read(rel).unwrap_or_else(|e| panic!("{}: {e}", rel.display()));
    let expect = match expectation(&name, &bytes) {
        Ok(e) => Some(e),
        Err(why) => {
            failures.push(why);
            None
        }
    };
    let checked =
        joule_compiler::check_path(rel).unwrap_or_else(|e| panic!("{}: {e}", rel.display()));
    let codes: Vec<&str> = checked.diagnostics.iter().map(|d| d.code).collect();
    if checked.ok() {
        failures.push(format!("{name}: checked without errors"));
    }
    if codes.is_empty() {
        failures.push(format!("{name}: no diagnostics"));
    }
    if let Some(expect) = expect {
        if !codes.contains(&expect.code.as_str()) {
            failures.push(format!(
                "{name}: expected a `{}` diagnostic, got {codes:?}",
                expect.code
            ));
        }
        if let Some(n) = expect.count {
            if codes.len() != n {
                failures.push(format!(
                    "{name}: expected {n} diagnostics, got {}: {codes:?}",
                    codes.len()
                ));
            }
        }
    }
    // Paths the compiler prints for `use`d files are absolute; make them
    // relative to the package root so that the snapshots are portable.
    let root = format!("{}/", env!("CARGO_MANIFEST_DIR"));
    checked.render_diagnostics(false, 100).replace(&root, "")
}

#[test]
fn invalid() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut failures = vec![];
    let mut seen = 0;
    insta::glob!("invalid/*.joule", |path| {
        seen += 1;
        // Relative paths keep the file names in the rendered output stable
        // (cargo runs integration tests in the package root).
        let rel = path.strip_prefix(root).unwrap_or(path);
        let rendered = check_one(rel, &mut failures);
        insta::assert_snapshot!(rendered);
    });
    assert!(
        seen >= MIN_CORPUS || std::env::var_os("INSTA_GLOB_FILTER").is_some(),
        "only {seen} corpus files; there should be at least {MIN_CORPUS}"
    );
    assert!(
        failures.is_empty(),
        "{} corpus file(s) do not meet their expectations:\n  {}",
        failures.len(),
        failures.join("\n  ")
    );
}

/// Every entry of the table names a file that exists.
#[test]
fn expect_table_is_current() {
    for (name, _) in EXPECT_TABLE {
        let p = Path::new("tests/invalid").join(name);
        assert!(
            p.is_file(),
            "EXPECT_TABLE names a missing file {}",
            p.display()
        );
    }
}

/// The cycle is also found when checking from inside it.
#[test]
fn use_cycle_from_a_helper() {
    let checked =
        joule_compiler::check_path(Path::new("tests/invalid/helpers/cycle_a.joule")).unwrap();
    assert!(!checked.ok());
    assert!(
        checked
            .diagnostics
            .iter()
            .any(|d| d.code == "joule::use_cycle"),
        "{}",
        checked.render_diagnostics(false, 100)
    );
}
