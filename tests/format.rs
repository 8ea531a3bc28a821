//! `joule fmt` on the command line: `--check` changes nothing, `--stdout`
//! prints, a plain run rewrites, and a file that cannot be formatted is
//! never touched. (The layout itself is tested in `grammar/tests/format.rs`.)

use std::path::{Path, PathBuf};
use std::process::Command;

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
