//! Every shipped scene passes `joule check`, and its `--emit model` form is
//! snapshot-tested (so any change in resolution shows up in review).

use joule::Emit;

#[test]
fn shipped_scenes_resolve_to_their_snapshot() {
    insta::glob!("../scenes", "*.joule", |path| {
        let rel = path
            .strip_prefix(env!("CARGO_MANIFEST_DIR"))
            .expect("scenes live in the package");
        let checked = joule::check_path(rel).expect("readable scene");
        assert!(checked.ok(), "{}", checked.render_diagnostics(false, 100));
        assert!(
            checked.diagnostics.is_empty(),
            "shipped scenes compile without warnings:\n{}",
            checked.render_diagnostics(false, 100)
        );
        insta::assert_snapshot!(checked.emit(Emit::Model).expect("model"));
    });
}

#[test]
fn ast_dump_of_the_hanging_cloth() {
    let checked = joule::check_path("scenes/hanging_cloth.joule".as_ref()).expect("scene");
    insta::assert_snapshot!(checked.emit(Emit::Ast).expect("ast"));
}

#[test]
fn ir_dumps_of_the_pendulum() {
    let checked = joule::check_path("scenes/pendulum.joule".as_ref()).expect("scene");
    insta::assert_snapshot!("pendulum_ir", checked.emit(Emit::Ir).expect("ir"));
    insta::assert_snapshot!(
        "pendulum_grad_ir",
        checked.emit(Emit::GradIr).expect("grad-ir")
    );
}
