//! `joule run --html`: the page's embedded data matches the run, and (where a
//! Chromium binary is installed; under CI it must be) the page renders the scene
//! in a headless browser.

use serde_json::Value;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

#[allow(dead_code)] // each test crate uses a different part of the shared helpers
mod common;
use common::{joule, temp};

/// Runs `joule run SCENE --html PAGE ARGS...` and returns the page's embedded data.
fn page_data(scene: &str, page: &Path, args: &[&str]) -> (Value, Output) {
    let mut all = vec!["run", scene, "--html", page.to_str().unwrap()];
    all.extend_from_slice(args);
    let o = joule(&all);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let html = std::fs::read_to_string(page).expect("page written");
    let open = r#"<script id="joule-data" type="application/json">"#;
    let start = html.find(open).expect("the data element") + open.len();
    let len = html[start..].find("</script>").expect("closed");
    let data = serde_json::from_str(&html[start..start + len]).expect("JSON data");
    assert!(
        !html.contains("src=\"http") && !html.contains("href=\"http"),
        "self-contained"
    );
    (data, o)
}

fn numbers(v: &Value) -> Vec<f64> {
    v.as_array()
        .expect("an array")
        .iter()
        .map(|x| x.as_f64().expect("a number"))
        .collect()
}

#[test]
fn page_embeds_every_frame_point_and_spring_of_the_run() {
    let page = temp("chain.html");
    let (d, o) = page_data(
        "scenes/spring_chain.joule",
        &page,
        &["--steps", "40", "--batch", "2", "--html-env", "1", "--json"],
    );
    assert_eq!(d["title"], "spring chain");
    assert_eq!(d["env"], 1);
    // Steps 0..=40, each frame all free DOFs (19 free particles; chain[0] is fixed).
    let frames = d["frames"].as_array().expect("frames");
    assert_eq!(frames.len(), 41);
    assert_eq!(
        numbers(&d["steps"]),
        (0..=40).map(f64::from).collect::<Vec<_>>()
    );
    assert_eq!(d["dofs"], 57);
    assert!(frames.iter().all(|f| f.as_array().unwrap().len() == 57));
    // 20 points; 19 neighbour springs (their dampers coincide) and 18 second-neighbour springs.
    let points = d["points"]["dof"].as_array().expect("points");
    assert_eq!(points.len(), 20);
    assert_eq!(numbers(&points[0]), [-1.0; 3], "chain[0] is fixed");
    assert_eq!(d["points"]["x"][0][2], 2.5);
    assert_eq!(d["edges"].as_array().unwrap().len(), 37);
    assert_eq!(d["ground"], false);
    // The tip's position in the last frame is what the run reports (f32-rounded).
    let run: Value = serde_json::from_slice(&o.stdout).expect("run JSON");
    let tip = numbers(&run["observe"]["tip"][1]);
    let last = numbers(&frames[40]);
    for (k, dof) in numbers(&points[19]).iter().enumerate() {
        let shown = last[*dof as usize];
        assert!(
            (shown - tip[k]).abs() <= 1e-6 * tip[k].abs().max(1.0),
            "{shown} vs {}",
            tip[k]
        );
    }
    // The chain moved: the last frame differs from the first.
    assert_ne!(frames[0], frames[40]);
}

#[test]
fn page_draws_bodies_as_their_shapes_and_the_ground_when_touched() {
    let page = temp("drop.html");
    let (d, _) = page_data(
        "scenes/rigid_drop.joule",
        &page,
        &["--steps", "2", "--quiet"],
    );
    let kinds: Vec<&str> = d["bodies"]
        .as_array()
        .expect("bodies")
        .iter()
        .map(|b| b["shape"]["kind"].as_str().expect("a shape"))
        .collect();
    assert_eq!(kinds, ["box", "sphere", "capsule"]);
    assert_eq!(
        d["bodies"][0]["shape"]["size"],
        serde_json::json!([0.3, 0.2, 0.1])
    );
    assert_eq!(d["ground"], true, "floor penalties on z");
    let (soft, _) = page_data(
        "scenes/soft_block.joule",
        &temp("block.html"),
        &["--steps", "1", "--quiet"],
    );
    assert_eq!(soft["ground"], true, "IPC barrier on z");
    // 5^3 vertices; the tets' edges are lines.
    assert_eq!(soft["points"]["dof"].as_array().unwrap().len(), 125);
    assert!(soft["edges"].as_array().unwrap().len() > 300);
    let (cloth, _) = page_data(
        "scenes/cloth_drape.joule",
        &temp("drape.html"),
        &["--steps", "1", "--quiet"],
    );
    assert_eq!(cloth["ground"], false, "contact with a ball only");
}

#[test]
fn long_runs_keep_at_most_600_frames_including_the_last() {
    let page = temp("long.html");
    let (d, _) = page_data(
        "scenes/pendulum.joule",
        &page,
        &["--steps", "1300", "--quiet"],
    );
    let steps = numbers(&d["steps"]);
    assert!(steps.len() <= 600, "{}", steps.len());
    assert_eq!(steps.len(), d["frames"].as_array().unwrap().len());
    assert_eq!(steps[0], 0.0);
    assert_eq!(*steps.last().unwrap(), 1300.0);
    assert_eq!(steps[1], 3.0, "every third step");
}

#[test]
fn a_title_cannot_close_the_data_element() {
    let scene = temp("odd_title.joule");
    std::fs::write(
        &scene,
        "scene \"a </script><b>bold</b>\"\nparticle p { x = vec3(0, 0, 1), mass = 1 }\n",
    )
    .unwrap();
    let (d, _) = page_data(
        scene.to_str().unwrap(),
        &temp("odd.html"),
        &["--steps", "3", "--quiet"],
    );
    assert_eq!(d["title"], "a </script><b>bold</b>");
}

#[test]
fn an_environment_outside_the_batch_is_an_error_and_writes_nothing() {
    let page = temp("none.html");
    let o = joule(&[
        "run",
        "scenes/pendulum.joule",
        "--steps",
        "5",
        "--batch",
        "2",
        "--html",
        page.to_str().unwrap(),
        "--html-env",
        "2",
    ]);
    assert!(!o.status.success());
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        err.contains("`--html-env 2` is not an environment"),
        "{err}"
    );
    assert!(err.contains("environments are numbered 0 to 1"), "{err}");
    assert!(!page.exists());
    // A batch of one has one environment, and the hint says so.
    let o = joule(&[
        "run",
        "scenes/pendulum.joule",
        "--steps",
        "5",
        "--html",
        page.to_str().unwrap(),
        "--html-env",
        "3",
    ]);
    assert!(!o.status.success());
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(err.contains("only environment 0 exists"), "{err}");
    assert!(!err.contains("0..0"), "{err}");
    assert!(!page.exists());
}

/// The Chromium binary, if one is installed. Without one the browser tests
/// skip with a notice, except under CI (`CI` set, as `.ci/run` does), where a
/// missing browser fails them instead of letting them pass untested.
fn chromium() -> Option<PathBuf> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    let found = ["chromium", "chromium-browser", "google-chrome"]
        .iter()
        .flat_map(|name| std::env::split_paths(&path).map(move |dir| dir.join(name)))
        .find(|p| p.is_file());
    if found.is_none() {
        let ci = std::env::var("CI").is_ok_and(|v| !matches!(v.as_str(), "" | "0" | "false"));
        assert!(
            !ci,
            "no chromium binary on PATH and CI is set: the browser tests cannot run \
             (Debian: apt-get install chromium)"
        );
        println!("skipping: no chromium binary on PATH (Debian: apt-get install chromium)");
    }
    found
}

#[test]
fn headless_chromium_renders_the_scene() {
    let Some(browser) = chromium() else {
        return;
    };
    let page = temp("render.html");
    page_data(
        "scenes/cloth_drape.joule",
        &page,
        &["--steps", "20", "--quiet"],
    );
    let shot = temp("render.png");
    let url = format!("file://{}#frame=last", page.display());
    let o = Command::new(&browser)
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--hide-scrollbars",
            &format!("--screenshot={}", shot.display()),
            "--window-size=640,480",
            &url,
        ])
        .output()
        .expect("chromium runs");
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let decoder = png::Decoder::new(std::io::BufReader::new(
        std::fs::File::open(&shot).expect("screenshot written"),
    ));
    let mut reader = decoder.read_info().expect("a PNG");
    let mut buf = vec![0; reader.output_buffer_size().expect("size")];
    let info = reader.next_frame(&mut buf).expect("decodes");
    assert_eq!((info.width, info.height), (640, 480));
    let channels = info.color_type.samples();
    let pixels: Vec<&[u8]> = buf[..info.buffer_size()].chunks(channels).collect();
    let count = |rgb: [u8; 3]| pixels.iter().filter(|p| p[..3] == rgb).count();
    // The cloth's 121 vertices are drawn in the particle colour, the ball in the body colour.
    let particle = count([0xff, 0x8c, 0x1a]);
    let body = pixels
        .iter()
        .filter(|p| p[1] > 150 && p[0] < 120 && p[2] < 160)
        .count();
    let background = count([0x0f, 0x17, 0x2a]);
    assert!(particle > 121, "particle-coloured pixels: {particle}");
    assert!(body > 50, "body-coloured pixels: {body}");
    assert!(
        background > pixels.len() / 3,
        "mostly background: {background}"
    );
}

/// Script injected into a page: drags, wheels, scrubs and presses play, and
/// reports on the body whether each changed the picture.
const PROBE: &str = r#"<script>
window.addEventListener("load", () => {
  const out = [];
  try {
    const c = document.getElementById("view"), snap = () => c.toDataURL();
    const start = snap();
    const pointer = (type, x) => c.dispatchEvent(new PointerEvent(type, {clientX: x, clientY: 100, pointerId: 1, bubbles: true}));
    pointer("pointerdown", 100); pointer("pointermove", 160); pointer("pointerup", 160);
    const orbited = snap();
    out.push("orbit:" + (orbited !== start));
    c.dispatchEvent(new WheelEvent("wheel", {deltaY: 300, bubbles: true, cancelable: true}));
    const zoomed = snap();
    out.push("zoom:" + (zoomed !== orbited));
    const s = document.getElementById("scrub");
    s.value = "3"; s.dispatchEvent(new Event("input"));
    out.push("scrub:" + (snap() !== zoomed) + ":" + document.getElementById("time").textContent);
    document.getElementById("play").click();
    out.push("play:" + document.getElementById("play").textContent);
  } catch (e) { out.push("error:" + e); }
  document.body.setAttribute("data-probe", out.join(" "));
});
</script>
</body>"#;

#[test]
fn headless_chromium_orbits_zooms_scrubs_and_plays() {
    let Some(browser) = chromium() else {
        return;
    };
    let page = temp("probe.html");
    page_data(
        "scenes/spring_chain.joule",
        &page,
        &["--steps", "8", "--quiet"],
    );
    let html = std::fs::read_to_string(&page)
        .unwrap()
        .replace("</body>", PROBE);
    std::fs::write(&page, html).unwrap();
    // Paused on the last frame; the probe runs once the page has loaded.
    let url = format!("file://{}#frame=last", page.display());
    let o = Command::new(&browser)
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--dump-dom",
            &url,
        ])
        .output()
        .expect("chromium runs");
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let dom = String::from_utf8_lossy(&o.stdout);
    let start = dom.find("data-probe=\"").expect("the probe ran") + 12;
    let probe = &dom[start..start + dom[start..].find('"').unwrap()];
    assert_eq!(
        probe,
        "orbit:true zoom:true scrub:true:t = 0.0125 s  (step 3) play:Pause"
    );
}
