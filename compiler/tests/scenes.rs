//! Every shipped scene (`scenes/*.joule`) checks without errors or warnings,
//! and its `--emit model` form is snapshot-tested, one test per scene (so any
//! change in resolution shows up in review, named by its scene). Also the AST
//! dump of one scene and the IR dumps of another.

use joule_compiler::{check_path, Emit};
use std::path::Path;

#[macro_use]
#[path = "../../tests/common/scene_list.rs"]
mod scene_list;

/// The shipped scenes folder, relative to this package (the tests' working
/// directory).
const SCENES: &str = "../scenes";

/// The model of one shipped scene, which must check without diagnostics
/// but the importer's warning that a model it `use`s has its own contact
/// softness, which Joule does not honour (scenes/hopper.xml, a copy of
/// Gymnasium's, keeps its `solimp`: the warning says what Joule simulates).
fn model_text(name: &str) -> String {
    let path = Path::new(SCENES).join(format!("{name}.joule"));
    let checked = check_path(&path).expect("readable scene");
    assert!(checked.ok(), "{}", checked.render_diagnostics(false, 100));
    assert!(
        checked
            .diagnostics
            .iter()
            .all(|d| d.code == "mjcf::softness"),
        "shipped scenes compile without warnings:\n{}",
        checked.render_diagnostics(false, 100)
    );
    checked.emit(Emit::Model).expect("model")
}

macro_rules! model_snapshots {
    ($($scene:ident)*) => {
        /// One test per shipped scene: its model matches `snapshots/scenes__model__NAME.snap`.
        mod model {
            $(
                #[test]
                fn $scene() {
                    insta::assert_snapshot!(
                        stringify!($scene),
                        super::model_text(stringify!($scene))
                    );
                }
            )*
        }
    };
}
shipped_scenes!(model_snapshots);

macro_rules! names {
    ($($scene:ident)*) => {
        &[$(stringify!($scene)),*]
    };
}

/// The generated per-scene tests cover exactly the files in `scenes/`.
#[test]
fn the_scene_list_is_the_scenes_folder() {
    let listed: &[&str] = shipped_scenes!(names);
    let mut files: Vec<String> = std::fs::read_dir(SCENES)
        .expect("scenes folder")
        .map(|e| e.expect("entry").path())
        .filter(|p| p.extension().is_some_and(|e| e == "joule"))
        .map(|p| {
            p.file_stem()
                .expect("a name")
                .to_string_lossy()
                .into_owned()
        })
        .collect();
    files.sort();
    assert_eq!(
        listed, files,
        "tests/common/scene_list.rs must list every scene in scenes/, sorted"
    );
}

#[test]
fn ast_dump_of_the_hanging_cloth() {
    let checked = check_path(&Path::new(SCENES).join("hanging_cloth.joule")).expect("scene");
    insta::assert_snapshot!(checked.emit(Emit::Ast).expect("ast"));
}

#[test]
fn ir_dumps_of_the_pendulum() {
    let checked = check_path(&Path::new(SCENES).join("pendulum.joule")).expect("scene");
    insta::assert_snapshot!("pendulum_ir", checked.emit(Emit::Ir).expect("ir"));
    insta::assert_snapshot!(
        "pendulum_grad_ir",
        checked.emit(Emit::GradIr).expect("grad-ir")
    );
}
