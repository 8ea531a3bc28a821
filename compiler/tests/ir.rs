//! IR and differentiation, one built-in or rule per file: every
//! `tests/ir/*.joule` (paths relative to this package) checks without
//! diagnostics, and its `--emit ir` and `--emit grad-ir` texts match
//! `tests/snapshots/ir__ir@NAME.joule.snap` and `ir__grad_ir@NAME.joule.snap`.

use joule_compiler::{check_path, Emit};

/// The fewest cases the folder may have.
const MIN_CASES: usize = 10;

#[test]
fn ir_and_grad_ir() {
    let mut seen = 0;
    insta::glob!("ir/*.joule", |path| {
        seen += 1;
        let checked = check_path(path).expect("readable case");
        assert!(
            checked.diagnostics.is_empty(),
            "{}: checks without diagnostics:\n{}",
            path.display(),
            checked.render_diagnostics(false, 100)
        );
        insta::assert_snapshot!("ir", checked.emit(Emit::Ir).expect("IR"));
        insta::assert_snapshot!("grad_ir", checked.emit(Emit::GradIr).expect("gradient IR"));
    });
    assert!(
        seen >= MIN_CASES || std::env::var_os("INSTA_GLOB_FILTER").is_some(),
        "only {seen} cases; there should be at least {MIN_CASES}"
    );
}
