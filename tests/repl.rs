//! `joule repl` driven by scripts on standard input: commands, expressions
//! evaluated at the current state, items added (also over several lines),
//! errors that never end the session, and gradients checked against finite
//! differences taken through the REPL itself.

use std::io::Write;
use std::process::{Command, Stdio};

/// Runs a REPL script on `scene`; returns (success, stdout).
fn repl(scene: &str, script: &str) -> (bool, String) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_joule"))
        .args(["repl", scene])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("the joule binary runs");
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(script.as_bytes())
        .expect("write the script");
    let o = child.wait_with_output().expect("repl exits");
    let out = String::from_utf8(o.stdout).expect("utf-8");
    eprintln!("{}", String::from_utf8_lossy(&o.stderr));
    (o.status.success(), out)
}

/// The numbers in the reply lines, in order.
fn numbers(line: &str) -> Vec<f64> {
    line.split(|c: char| !(c.is_ascii_digit() || "+-.eE".contains(c)))
        .filter_map(|w| w.parse().ok())
        .collect()
}

fn lines(out: &str) -> Vec<&str> {
    out.lines().collect()
}

#[test]
fn expressions_read_the_current_state() {
    let (ok, out) = repl(
        "scenes/pendulum.joule",
        "norm(bob.x - pivot(length))\n:get g\n:step 200\nnorm(bob.x - pivot(length))\nbob.x.z < pivot(length).z\n:get position\nbob.x\n",
    );
    assert!(ok, "{out}");
    let l = lines(&out);
    // At rest the rod has its rest length.
    assert!((numbers(l[0])[0] - 1.0).abs() < 1e-12, "{out}");
    assert_eq!(l[1], "9.81");
    assert_eq!(l[2], "t = 0.2 s (200 steps)");
    // A stiff rod (k = 1e4 N/m, m = 1 kg) stretches by about m g / k under load.
    let stretched = numbers(l[3])[0];
    assert!(
        stretched > 1.0 && stretched < 1.0 + 3.0 * 9.81 / 1e4,
        "{out}"
    );
    assert_eq!(l[4], "true");
    // An observation and the same expression typed in agree exactly.
    assert_eq!(l[5], l[6]);
}

#[test]
fn typed_items_recompile_and_keep_the_state() {
    let (ok, out) = repl(
        "scenes/pendulum.joule",
        ":step 50\nbob.x\nparam extra = 3 in 0..10\nobserve twice = 2 * extra\nbob.x\n:get twice\n:set extra 4\n:get twice\n",
    );
    assert!(ok, "{out}");
    let l = lines(&out);
    assert_eq!(l[1], l[4], "the state survives recompiling: {out}");
    assert!(l[2].starts_with("ok: 3 DOFs"));
    assert_eq!(l[5], "6");
    assert_eq!(l[7], "8");
}

#[test]
fn gradients_agree_with_finite_differences_through_the_repl() {
    let (ok, out) = repl("scenes/pendulum.joule", ":step 30\n:grad miss 40 wrt g\n");
    assert!(ok, "{out}");
    let l = lines(&out);
    let loss = numbers(l[1])[0];
    let grad = *numbers(l[2]).last().expect("a derivative");
    let h = 1e-5;
    let at = |g: f64| {
        // The same 30 steps at g = 9.81, then 40 more at the perturbed g.
        let script = format!(":step 30\n:set g {g}\n:step 40\n:get miss\n");
        let (ok, out) = repl("scenes/pendulum.joule", &script);
        assert!(ok, "{out}");
        numbers(lines(&out)[3])[0]
    };
    assert!(
        (at(9.81) - loss).abs() <= 1e-12 * loss.abs().max(1.0),
        "{out}"
    );
    let fd = (at(9.81 + h) - at(9.81 - h)) / (2.0 * h);
    assert!(
        (fd - grad).abs() <= 1e-6 * grad.abs().max(1.0),
        "adjoint {grad} vs central differences {fd}"
    );
}

#[test]
fn multi_line_items_and_save() {
    let script = std::fs::read_to_string("tests/repl/multiline.txt").expect("script");
    let saved = std::env::temp_dir().join(format!("joule-repl-{}.joule", std::process::id()));
    let script = format!("{script}:save {}\n", saved.display());
    let (ok, out) = repl("scenes/pendulum.joule", &script);
    assert!(ok, "{out}");
    let l = lines(&out);
    assert_eq!(l[0], "ok: 12 DOFs, 2 energies"); // the pendulum's weight and rod
    assert_eq!(l[2], "ok: 12 DOFs, 3 energies");
    assert_eq!(l[3], "3");
    let text = std::fs::read_to_string(&saved).expect("saved scene");
    assert!(
        text.contains("tie(bead[i], bead[i + 1], 100) for i in 0..2"),
        "{text}"
    );
    let o = Command::new(env!("CARGO_BIN_EXE_joule"))
        .args(["check", saved.to_str().expect("utf-8 path")])
        .output()
        .expect("check runs");
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    std::fs::remove_file(saved).expect("cleanup");
}

#[test]
fn errors_are_reported_and_the_session_goes_on() {
    let script = std::fs::read_to_string("tests/repl/errors.txt").expect("script");
    let (ok, out) = repl("scenes/pendulum.joule", &script);
    assert!(!ok, "a failed command makes the exit status 1");
    // The last commands after all the errors still ran.
    assert!(out.contains(":quit"), "{out}");
    // Typed items are shown as typed (`<input>`, `<input 1>` for the first
    // item typed earlier), never as lines the scene file does not have.
    let file_lines = std::fs::read_to_string("scenes/pendulum.joule")
        .expect("scene")
        .lines()
        .count();
    for (at, _) in out.match_indices("[scenes/pendulum.joule:") {
        let line: usize = out[at + 23..]
            .split(':')
            .next()
            .and_then(|n| n.parse().ok())
            .expect("a line number");
        assert!(
            line <= file_lines,
            "line {line} of a {file_lines}-line file:\n{out}"
        );
    }
    assert!(out.contains("[<input>:1:1]"), "{out}");
    assert!(out.contains("[<input 1>:1:7]"), "{out}");
    insta::assert_snapshot!(out);
}

#[test]
fn load_reload_and_reset() {
    let dir = std::env::temp_dir().join(format!("joule-repl-load-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("dir");
    let file = dir.join("ball.joule");
    std::fs::write(&file, "particle ball { x = vec3(0, 0, 1), mass = 1 }\n").expect("write");
    let f = file.display();
    let script = format!(
        ":load {f}\n:step 100\nball.x.z\n:reset\nball.x.z\n:reload\n:load {}/missing.joule\nball.x.z\n",
        dir.display()
    );
    let (ok, out) = repl("scenes/pendulum.joule", &script);
    assert!(!ok, "loading a missing file is an error");
    let l = lines(&out);
    assert_eq!(l[0], format!("loaded {f}: 3 DOFs"));
    // Free fall for 0.1 s with symplectic Euler at the default dt: below the start.
    assert!(numbers(l[2])[0] < 1.0, "{out}");
    assert_eq!(l[4], "1");
    assert!(l[5].starts_with("reloaded"));
    assert!(l[6].starts_with("error: cannot read"), "{out}");
    assert_eq!(l[7], "1", "a failed :load keeps the session");
    std::fs::remove_dir_all(dir).expect("cleanup");
}
