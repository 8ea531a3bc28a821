//! The resolver's expansion limits (`joule_compiler::resolve::MAX_TERM_DEPTH`
//! and friends) against the passes after it: an expression just inside the
//! limits goes through every pass (lowering, differentiation, printing, code
//! generation, dropping, all recursive over the expression) on a test
//! thread's stack, and one just past them is refused where it stops growing.
//! (The refusals' messages are in the invalid-scene corpus, 51 to 54.)

use joule_compiler::compiled::Backend;
use joule_compiler::resolve::MAX_TERM_DEPTH;
use joule_compiler::{check_source, compile, Emit};

/// A scene observing a runtime `sum` of `n` terms (an expression `n` deep).
fn sum_scene(n: u32) -> String {
    format!("particle a {{ x = vec3(0, 0, 1), mass = 1 }}\nobserve q = sum(a.x.z * i for i in 0..{n})\n")
}

#[test]
fn the_deepest_accepted_expression_passes_every_pass() {
    // The sum's terms are each 3 deep (`*` of a component of an input).
    let checked = check_source("deep.joule", &sum_scene(MAX_TERM_DEPTH - 3));
    assert!(checked.ok(), "{}", checked.render_diagnostics(false, 100));
    for what in [Emit::Model, Emit::Ir, Emit::GradIr] {
        assert!(checked.emit(what).is_some_and(|t| !t.is_empty()));
    }
    let model = checked.model.expect("a model when ok");
    let compiled = compile(model, Backend::Jit, Default::default());
    assert!(compiled.is_ok());
}

#[test]
fn a_longer_sum_stops_at_the_limit() {
    // 9 million terms are within the generator limit; the sum is refused
    // after MAX_TERM_DEPTH of them, not after building all of them.
    let checked = check_source("long.joule", &sum_scene(9_000_000));
    let codes: Vec<_> = checked.diagnostics.iter().map(|d| d.code).collect();
    assert_eq!(codes, ["joule::too_large"]);
    let stopped_at = MAX_TERM_DEPTH + 1;
    assert!(
        checked.diagnostics[0]
            .message
            .contains(&format!("at least {stopped_at} levels")),
        "{}",
        checked.diagnostics[0].message
    );
}
