//! The resolver, one language feature per file: every `tests/resolve/*.joule`
//! (paths relative to this package) checks without diagnostics, and its
//! `--emit model` text matches `tests/snapshots/resolve__model@NAME.joule.snap`.
//! Files `use`d by the cases live in `tests/resolve/lib/`, which the glob
//! does not descend into.

use joule_compiler::{check_path, Emit};

/// The fewest cases the folder may have.
const MIN_CASES: usize = 15;

#[test]
fn model() {
    let mut seen = 0;
    insta::glob!("resolve/*.joule", |path| {
        seen += 1;
        let checked = check_path(path).expect("readable case");
        assert!(
            checked.diagnostics.is_empty(),
            "{}: resolves without diagnostics:\n{}",
            path.display(),
            checked.render_diagnostics(false, 100)
        );
        insta::assert_snapshot!(checked.emit(Emit::Model).expect("a model"));
    });
    assert!(
        seen >= MIN_CASES || std::env::var_os("INSTA_GLOB_FILTER").is_some(),
        "only {seen} cases; there should be at least {MIN_CASES}"
    );
}
