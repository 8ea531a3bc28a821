//! `joule run --html`: the page is self-contained with three.js inlined once,
//! its quantised frames decode to the run within the stated error, its size
//! stays under the stated bound, and (where a Chromium binary is installed;
//! under CI it must be) headless Chromium draws the shapes in their colours,
//! one cell per environment.

use serde_json::Value;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

#[allow(dead_code)] // each test crate uses a different part of the shared helpers
mod common;
use common::{fails_with_hint, html_frames as frames, joule, temp};

/// three.js as vendored, inlined once into every page.
const THREE: &str = include_str!("../src/vendor/three.min.js");
/// The page's stated bound: at most this many 16-bit values over all frames,
/// environments and DOFs (`MAX_VALUES` in src/viewer.rs, README).
const MAX_VALUES: usize = 1_000_000;

/// Runs `joule run SCENE --html PAGE ARGS...` and returns the page's text and
/// embedded data, checking that the page is self-contained.
fn page_text(scene: &str, page: &Path, args: &[&str]) -> (String, Value, Output) {
    let mut all = vec!["run", scene, "--html", page.to_str().unwrap()];
    all.extend_from_slice(args);
    let o = joule(&all);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let html = std::fs::read_to_string(page).expect("page written");
    let open = r#"<script id="joule-data" type="application/json">"#;
    let start = html.find(open).expect("the data element") + open.len();
    let len = html[start..].find("</script>").expect("closed");
    let data = serde_json::from_str(&html[start..start + len]).expect("JSON data");
    // The library once, verbatim; outside it no address of any kind and
    // nothing that loads a file: the page needs no network.
    assert_eq!(html.matches(THREE).count(), 1, "three.js inlined once");
    let rest = html.replacen(THREE, "", 1);
    for loads in [
        "http:", "https:", "//cdn", "src=", "<link", "import(", "fetch(",
    ] {
        assert!(!rest.contains(loads), "the page holds `{loads}`");
    }
    assert_eq!(rest.matches("<script").count(), 3, "library, data, viewer");
    assert!(html.starts_with("<!DOCTYPE html>") && html.trim_end().ends_with("</html>"));
    (html, data, o)
}

/// [`page_text`] without the text.
fn page_data(scene: &str, page: &Path, args: &[&str]) -> (Value, Output) {
    let (_, data, o) = page_text(scene, page, args);
    (data, o)
}

fn numbers(v: &Value) -> Vec<f64> {
    v.as_array()
        .expect("an array")
        .iter()
        .map(|x| x.as_f64().expect("a number"))
        .collect()
}

/// Whether `shown` (decoded, with its error bound) is the simulated `exact`
/// within the quantisation error and f32 rounding.
fn close(shown: (f64, f64), exact: f64) -> bool {
    (shown.0 - exact).abs() <= shown.1 + 1e-6 * exact.abs().max(1.0)
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
    assert_eq!(d["envs"], serde_json::json!([1]));
    // Steps 0..=40, each frame all free DOFs (19 free particles; chain[0] is fixed).
    assert_eq!(
        numbers(&d["steps"]),
        (0..=40).map(f64::from).collect::<Vec<_>>()
    );
    assert_eq!(d["dofs"], 57);
    let values = frames(&d);
    assert_eq!(values.len(), 41 * 57);
    // 20 points; 19 neighbour springs (their dampers coincide) and 18 second-neighbour springs.
    let points = d["points"]["dof"].as_array().expect("points");
    assert_eq!(points.len(), 20);
    assert_eq!(numbers(&points[0]), [-1.0; 3], "chain[0] is fixed");
    assert_eq!(d["points"]["x"][0][2], 2.5);
    assert_eq!(d["edges"].as_array().unwrap().len(), 37);
    assert_eq!(d["tris"].as_array().unwrap().len(), 0);
    assert_eq!(d["ground"], false);
    // The tip's position in the last frame is what the run reports for environment 1.
    let run: Value = serde_json::from_slice(&o.stdout).expect("run JSON");
    let tip = numbers(&run["observe"]["tip"][1]);
    let last = &values[40 * 57..];
    for (k, dof) in numbers(&points[19]).iter().enumerate() {
        let shown = last[*dof as usize];
        assert!(close(shown, tip[k]), "{shown:?} vs {}", tip[k]);
    }
    // The quantisation is fine: a 2.5 m chain to well under a millimetre.
    assert!(values.iter().all(|v| v.1 < 1e-4), "levels of 16 bits");
    // The chain moved: the last frame differs from the first.
    assert_ne!(values[..57], values[40 * 57..]);
}

#[test]
fn page_draws_bodies_as_their_shapes_meshes_as_surfaces_and_the_ground_when_touched() {
    let page = temp("drop.html");
    let (d, _) = page_data(
        "scenes/rigid_drop.joule",
        &page,
        &["--steps", "2", "--quiet"],
    );
    let bodies = d["bodies"].as_array().expect("bodies");
    let kinds: Vec<&str> = bodies
        .iter()
        .map(|b| b["shape"]["kind"].as_str().expect("a shape"))
        .collect();
    assert_eq!(kinds, ["box", "sphere", "capsule"]);
    assert_eq!(
        d["bodies"][0]["shape"]["size"],
        serde_json::json!([0.3, 0.2, 0.1])
    );
    let colours: std::collections::HashSet<&str> = bodies
        .iter()
        .map(|b| b["colour"].as_str().unwrap())
        .collect();
    assert_eq!(colours.len(), 3, "a colour per body: {colours:?}");
    assert_eq!(d["ground"], true, "floor penalties on z");
    let (soft, _) = page_data(
        "scenes/soft_block.joule",
        &temp("block.html"),
        &["--steps", "1", "--quiet"],
    );
    assert_eq!(soft["ground"], true, "IPC barrier on z");
    let (ant, _) = page_data(
        "scenes/ant.joule",
        &temp("ant_ground.html"),
        &["--steps", "1", "--quiet"],
    );
    assert_eq!(ant["ground"], true, "the soft contact's friction cone");
    // 5^3 vertices; the block's boundary is 6 faces of 4 x 4 squares, two
    // triangles each; the tets' edges inside are lines.
    assert_eq!(soft["points"]["dof"].as_array().unwrap().len(), 125);
    assert_eq!(soft["tris"].as_array().unwrap().len(), 6 * 16 * 2);
    let on_surface: std::collections::HashSet<[u64; 2]> = soft["tris"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|t| {
            let t: Vec<u64> = t
                .as_array()
                .unwrap()
                .iter()
                .map(|v| v.as_u64().unwrap())
                .collect();
            [[t[0], t[1]], [t[1], t[2]], [t[2], t[0]]].map(|[a, b]| [a.min(b), a.max(b)])
        })
        .collect();
    let edges = soft["edges"].as_array().unwrap();
    assert!(!edges.is_empty());
    for e in edges {
        let e = [e[0].as_u64().unwrap(), e[1].as_u64().unwrap()];
        assert!(!on_surface.contains(&e), "{e:?} is drawn by the surface");
    }
    let (cloth, _) = page_data(
        "scenes/cloth_drape.joule",
        &temp("drape.html"),
        &["--steps", "1", "--quiet"],
    );
    assert_eq!(cloth["ground"], false, "contact with a ball only");
    // A 10 x 10 sheet: 200 triangles; only the bending springs are lines.
    assert_eq!(cloth["tris"].as_array().unwrap().len(), 200);
    assert_eq!(cloth["edges"].as_array().unwrap().len(), 2 * 9 * 11);
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
    let dofs = d["dofs"].as_u64().unwrap() as usize;
    assert_eq!(steps.len() * dofs, frames(&d).len());
    assert_eq!(steps[0], 0.0);
    assert_eq!(*steps.last().unwrap(), 1300.0);
    assert_eq!(steps[1], 3.0, "every third step");
}

#[test]
fn six_hundred_cloth_frames_stay_under_the_bound_and_decode_to_the_run() {
    let page = temp("cloth600.html");
    let (html, d, o) = page_text(
        "scenes/cloth_drape.joule",
        &page,
        &["--steps", "599", "--json"],
    );
    let steps = numbers(&d["steps"]);
    assert_eq!(steps.len(), 600, "under both budgets: every step kept");
    let values = frames(&d);
    let dofs = d["dofs"].as_u64().unwrap() as usize;
    assert_eq!(values.len(), 600 * dofs);
    // The corner's last position (the run's own observation) within the quantisation error.
    let run: Value = serde_json::from_slice(&o.stdout).expect("run JSON");
    let corner = numbers(&run["observe"]["corner"][0]);
    let point = &d["points"]["dof"][0];
    for (k, exact) in corner.iter().enumerate() {
        let shown = values[599 * dofs + point[k].as_u64().unwrap() as usize];
        assert!(close(shown, *exact), "{shown:?} vs {exact}");
    }
    // The frames take two bytes a value, in base64; the page is the library,
    // the frames and a little geometry: under 1.5 MB (it was 7.4 MB as JSON).
    let data = d["frames"]["data"].as_str().unwrap().len();
    assert_eq!(data, (2 * values.len()).div_ceil(3) * 4);
    assert!(html.len() < THREE.len() + data + 100_000, "{}", html.len());
    assert!(html.len() < 1_500_000, "{} bytes", html.len());
}

#[test]
fn a_grid_of_environments_holds_each_environment_within_the_value_budget() {
    // 8 cloths of 363 DOFs for 301 frames are 874k values: every step kept.
    let page = temp("grid.html");
    let (d, o) = page_data(
        "scenes/cloth_drape.joule",
        &page,
        &[
            "--steps",
            "300",
            "--batch",
            "8",
            "--html-envs",
            "8",
            "--json",
        ],
    );
    assert_eq!(d["envs"], serde_json::json!([0, 1, 2, 3, 4, 5, 6, 7]));
    let dofs = d["dofs"].as_u64().unwrap() as usize;
    let values = frames(&d);
    assert_eq!(values.len(), 301 * 8 * dofs);
    let run: Value = serde_json::from_slice(&o.stdout).expect("run JSON");
    let point = &d["points"]["dof"][0];
    for e in 0..8 {
        let corner = numbers(&run["observe"]["corner"][e]);
        for (k, exact) in corner.iter().enumerate() {
            let at = (300 * 8 + e) * dofs + point[k].as_u64().unwrap() as usize;
            assert!(
                close(values[at], *exact),
                "environment {e}: {:?} vs {exact}",
                values[at]
            );
        }
    }
    // Twice the steps are over the budget: every other step, and the last.
    let (d, _) = page_data(
        "scenes/cloth_drape.joule",
        &temp("grid2.html"),
        &[
            "--steps",
            "601",
            "--batch",
            "8",
            "--html-envs",
            "8",
            "--quiet",
        ],
    );
    let steps = numbers(&d["steps"]);
    assert_eq!(steps[1], 2.0);
    assert_eq!(*steps.last().unwrap(), 601.0);
    let n = frames(&d).len();
    assert_eq!(n, steps.len() * 8 * dofs);
    assert!(n <= MAX_VALUES, "{n} values");
    // By default the page shows the batch up to four environments.
    let (d, _) = page_data(
        "scenes/pendulum.joule",
        &temp("three.html"),
        &["--steps", "2", "--batch", "3", "--quiet"],
    );
    assert_eq!(d["envs"], serde_json::json!([0, 1, 2]));
    let (d, _) = page_data(
        "scenes/pendulum.joule",
        &temp("many.html"),
        &["--steps", "2", "--batch", "20", "--quiet"],
    );
    assert_eq!(d["envs"], serde_json::json!([0, 1, 2, 3]));
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
    let run = |args: &[&str]| {
        let mut all = vec!["run", "scenes/pendulum.joule", "--steps", "5"];
        all.extend_from_slice(&["--html", page.to_str().unwrap()]);
        all.extend_from_slice(args);
        joule(&all)
    };
    let err = fails_with_hint(
        &run(&["--batch", "2", "--html-env", "2"]),
        "`--html-env 2` is not an environment of this batch of 2",
    );
    assert!(err.contains("environments are numbered 0 to 1"), "{err}");
    assert!(!page.exists());
    // A batch of one has one environment, and the hint says so.
    let err = fails_with_hint(&run(&["--html-env", "3"]), "`--html-env 3`");
    assert!(err.contains("only environment 0 exists"), "{err}");
    assert!(!err.contains("0..0"), "{err}");
    assert!(!page.exists());
    // A grid larger than the batch, empty, or over the limit.
    let err = fails_with_hint(
        &run(&["--batch", "3", "--html-envs", "5"]),
        "`--html-envs 5` cannot be shown from this batch of 3",
    );
    assert!(err.contains("environments are numbered 0 to 2"), "{err}");
    assert!(err.contains("from 1 to 3"), "{err}");
    let err = fails_with_hint(&run(&["--html-envs", "0"]), "`--html-envs 0`");
    assert!(err.contains("at least one"), "{err}");
    let err = fails_with_hint(
        &run(&["--batch", "40", "--html-envs", "17"]),
        "`--html-envs 17`",
    );
    assert!(
        err.contains("at most 16") && err.contains("from 1 to 16"),
        "{err}"
    );
    // One environment alone, or a grid: not both.
    let o = run(&["--batch", "4", "--html-env", "1", "--html-envs", "2"]);
    assert!(!o.status.success());
    assert!(String::from_utf8_lossy(&o.stderr).contains("cannot be used with"));
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

/// A screenshot of `page` (with `hash`) at 640 x 480: the pixels, RGB, row by row.
fn screenshot(browser: &Path, page: &Path, hash: &str) -> Vec<[u8; 3]> {
    let shot = page.with_extension("png");
    let url = format!("file://{}#{hash}", page.display());
    let o = Command::new(browser)
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            // WebGL on the CPU, where newer releases no longer fall back to it unasked.
            "--enable-unsafe-swiftshader",
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
    buf[..info.buffer_size()]
        .chunks(channels)
        .map(|p| [p[0], p[1], p[2]])
        .collect()
}

/// Hue in turns (0..1) and saturation of a colour.
fn hue(c: [u8; 3]) -> (f64, f64) {
    let [r, g, b] = c.map(|v| v as f64 / 255.0);
    let (max, min) = (r.max(g).max(b), r.min(g).min(b));
    let d = max - min;
    if d == 0.0 {
        return (0.0, 0.0);
    }
    let h = if max == r {
        ((g - b) / d).rem_euclid(6.0)
    } else if max == g {
        (b - r) / d + 2.0
    } else {
        (r - g) / d + 4.0
    };
    (h / 6.0, d / max)
}

/// Whether a pixel is a shade of `colour` (`#rrggbb`): its hue within 0.04
/// turns, clearly saturated.
fn shade_of(p: [u8; 3], colour: &str) -> bool {
    let c = u32::from_str_radix(&colour[1..], 16).unwrap();
    let (want, _) = hue([(c >> 16) as u8, (c >> 8) as u8, c as u8]);
    let (h, s) = hue(p);
    let gap = (h - want).abs();
    s > 0.3 && gap.min(1.0 - gap) < 0.04
}

/// A fixed box alone: the camera looks at its centre.
const ONE_BOX: &str =
    "scene \"one box\"\nbody b { shape = box(vec3(0.6, 0.6, 0.6)), mass = 1, x = vec3(0, 0, 1) }\nfix b\n";

/// The box of [`ONE_BOX`] drawn in a picture `width` pixels wide: shades of
/// `colour` at `centre` and 20 pixels either way diagonally, background at
/// `corner`, and lit (at least three shades: its faces differ in brightness).
fn assert_lit_box(
    pixels: &[[u8; 3]],
    width: usize,
    centre: (usize, usize),
    corner: (usize, usize),
    colour: &str,
) {
    let at = |x: usize, y: usize| pixels[y * width + x];
    let (cx, cy) = centre;
    for (x, y) in [(cx, cy), (cx - 20, cy - 20), (cx + 20, cy + 20)] {
        assert!(
            shade_of(at(x, y), colour),
            "{:?} at ({x}, {y}) is not {colour}",
            at(x, y)
        );
    }
    assert_eq!(
        at(corner.0, corner.1),
        [0x0f, 0x17, 0x2a],
        "background in the corner"
    );
    let faces: std::collections::HashSet<[u8; 3]> = pixels
        .iter()
        .copied()
        .filter(|p| shade_of(*p, colour))
        .collect();
    assert!(faces.len() >= 3, "shaded faces: {faces:?}");
}

#[test]
fn headless_chromium_shades_a_box_in_its_colour_at_the_centre() {
    let Some(browser) = chromium() else {
        return;
    };
    let scene = temp("one_box.joule");
    std::fs::write(&scene, ONE_BOX).unwrap();
    let page = temp("one_box.html");
    let (d, _) = page_data(scene.to_str().unwrap(), &page, &["--steps", "2", "--quiet"]);
    let colour = d["bodies"][0]["colour"].as_str().unwrap().to_string();
    let pixels = screenshot(&browser, &page, "frame=last");
    // The canvas is the window less the 40-pixel bar: its centre is (320, 220).
    assert_lit_box(&pixels, 640, (320, 220), (5, 470 - 40), &colour);
}

#[test]
fn headless_chromium_draws_each_environment_in_its_own_cell() {
    let Some(browser) = chromium() else {
        return;
    };
    let page = temp("grid_ant.html");
    let (d, _) = page_data(
        "scenes/ant.joule",
        &page,
        &["--steps", "3", "--batch", "4", "--quiet"],
    );
    let torso = d["bodies"][0]["colour"].as_str().unwrap().to_string();
    let pixels = screenshot(&browser, &page, "frame=last");
    // Four cells of 320 x 220 over the 440-pixel-high canvas: the torso in each.
    for (cx, cy) in [(0, 0), (1, 0), (0, 1), (1, 1)] {
        let n = (cy * 220..(cy + 1) * 220)
            .flat_map(|y| (cx * 320..(cx + 1) * 320).map(move |x| (x, y)))
            .filter(|&(x, y)| shade_of(pixels[y * 640 + x], &torso))
            .count();
        assert!(n > 100, "cell ({cx}, {cy}): {n} torso pixels");
    }
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
    const scrubbed = snap();
    out.push("scrub:" + (scrubbed !== zoomed) + ":" + document.getElementById("time").textContent);
    const f = document.getElementById("follow");
    f.checked = true; f.dispatchEvent(new Event("change"));
    out.push("follow:" + (snap() !== scrubbed));
    document.getElementById("play").click();
    out.push("play:" + document.getElementById("play").textContent);
  } catch (e) { out.push("error:" + e); }
  document.body.setAttribute("data-probe", out.join(" "));
});
</script>
</body>"#;

#[test]
fn headless_chromium_orbits_zooms_scrubs_follows_and_plays() {
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
            // WebGL on the CPU, where newer releases no longer fall back to it unasked.
            "--enable-unsafe-swiftshader",
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
        "orbit:true zoom:true scrub:true:t = 0.0125 s  (step 3) follow:true play:Pause"
    );
}

/// A GIF frame: RGB pixels row by row, and its delay in hundredths of a second.
type GifFrame = (Vec<[u8; 3]>, u16);

/// The frames of a GIF as RGB pixels (row by row), with their delays in
/// hundredths of a second, and the image's width and height.
fn gif_frames(path: &Path) -> (Vec<GifFrame>, [usize; 2]) {
    let mut options = gif::DecodeOptions::new();
    options.set_color_output(gif::ColorOutput::Indexed);
    let mut d = options
        .read_info(std::fs::File::open(path).expect("GIF written"))
        .expect("a GIF");
    let palette = d.global_palette().expect("a global palette").to_vec();
    let size = [d.width() as usize, d.height() as usize];
    let mut out = vec![];
    while let Some(f) = d.read_next_frame().expect("a frame decodes") {
        assert_eq!([f.width as usize, f.height as usize], size, "whole frames");
        let rgb = f
            .buffer
            .iter()
            .map(|&i| {
                let i = 3 * i as usize;
                [palette[i], palette[i + 1], palette[i + 2]]
            })
            .collect();
        out.push((rgb, f.delay));
    }
    (out, size)
}

#[test]
fn gif_draws_a_box_in_its_colour_at_the_centre_in_simulated_time() {
    let scene = temp("gif_box.joule");
    std::fs::write(&scene, ONE_BOX).unwrap();
    let (gif, page) = (temp("box.gif"), temp("box_gif.html"));
    // The page gives the box's colour; the GIF is written beside it.
    let (d, _) = page_data(
        scene.to_str().unwrap(),
        &page,
        &["--steps", "4", "--gif", gif.to_str().unwrap(), "--quiet"],
    );
    let colour = d["bodies"][0]["colour"].as_str().unwrap().to_string();
    let (frames, [w, h]) = gif_frames(&gif);
    assert_eq!((w, h), (640, 400));
    assert_eq!(frames.len(), 5, "steps 0..=4");
    // dt = 0.01 s per frame: 1 hundredth, shown as 2 (the shortest browsers keep).
    assert!(frames.iter().all(|f| f.1 == 2), "delays");
    let (last, _) = frames.last().unwrap();
    assert_lit_box(last, w, (320, 200), (5, 395), &colour);
}

#[test]
fn gif_alone_draws_each_environment_in_its_cell_and_keeps_at_most_150_frames() {
    let gif = temp("ant.gif");
    let o = joule(&[
        "run",
        "scenes/ant.joule",
        "--steps",
        "400",
        "--batch",
        "4",
        "--gif",
        gif.to_str().unwrap(),
        "--quiet",
    ]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let (frames, [w, h]) = gif_frames(&gif);
    // 401 frames: every third, and the last: 135; 3 steps of 0.01 s apart.
    assert!(frames.len() <= 150, "{}", frames.len());
    assert_eq!(frames.len(), 401usize.div_ceil(3) + 1);
    assert_eq!(frames[0].1, 3);
    // The torso (body 0; colour as the page gives it) in each of the 2 x 2 cells.
    let (d, _) = page_data(
        "scenes/ant.joule",
        &temp("ant_colours.html"),
        &["--steps", "1", "--quiet"],
    );
    let torso = d["bodies"][0]["colour"].as_str().unwrap().to_string();
    let (last, _) = frames.last().unwrap();
    let (cw, ch) = (w / 2, h / 2);
    for (cx, cy) in [(0, 0), (1, 0), (0, 1), (1, 1)] {
        let n = (cy * ch..(cy + 1) * ch)
            .flat_map(|y| (cx * cw..(cx + 1) * cw).map(move |x| (x, y)))
            .filter(|&(x, y)| shade_of(last[y * w + x], &torso))
            .count();
        assert!(n > 100, "cell ({cx}, {cy}): {n} torso pixels");
    }
}

#[test]
fn a_gif_that_cannot_be_written_is_an_error_with_a_hint() {
    let o = joule(&[
        "run",
        "scenes/pendulum.joule",
        "--steps",
        "3",
        "--gif",
        "/nonexistent-folder/run.gif",
    ]);
    let err = fails_with_hint(&o, "cannot write `/nonexistent-folder/run.gif`");
    assert!(!err.contains("panicked"), "{err}");
    // Without `--html` or `--gif` there is nothing to choose environments for.
    let o = joule(&[
        "run",
        "scenes/pendulum.joule",
        "--steps",
        "3",
        "--html-envs",
        "1",
    ]);
    assert!(!o.status.success());
    assert!(
        String::from_utf8_lossy(&o.stderr).contains("--html"),
        "names the flags"
    );
}

#[test]
fn frames_are_a_folder_of_pngs_of_the_gif_pictures_written_whole_or_not_at_all() {
    let (dir, gif) = (temp("drop_frames"), temp("drop.gif"));
    let _ = std::fs::remove_dir_all(&dir);
    let args = |dir: &Path| {
        joule(&[
            "run",
            "scenes/rigid_drop.joule",
            "--steps",
            "20",
            "--gif",
            gif.to_str().unwrap(),
            "--frames",
            dir.to_str().unwrap(),
            "--quiet",
        ])
    };
    let o = args(&dir);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let mut names: Vec<String> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    let expected: Vec<String> = (0..=20).map(|k| format!("frame_{k:04}.png")).collect();
    assert_eq!(names, expected, "a PNG per step");
    // The last PNG is the GIF's last picture, pixel for pixel.
    let (gif_frames, [w, h]) = gif_frames(&gif);
    let decoder = png::Decoder::new(std::io::BufReader::new(
        std::fs::File::open(dir.join("frame_0020.png")).unwrap(),
    ));
    let mut reader = decoder.read_info().expect("a PNG");
    let palette = reader.info().palette.as_ref().expect("indexed").to_vec();
    let mut buf = vec![0; reader.output_buffer_size().expect("size")];
    let info = reader.next_frame(&mut buf).expect("decodes");
    assert_eq!((info.width as usize, info.height as usize), (w, h));
    let rgb: Vec<[u8; 3]> = buf[..w * h]
        .iter()
        .map(|&i| {
            let i = 3 * i as usize;
            [palette[i], palette[i + 1], palette[i + 2]]
        })
        .collect();
    assert!(rgb == gif_frames.last().unwrap().0, "the same picture");
    // An existing folder is refused before the run; a missing parent leaves nothing.
    fails_with_hint(&args(&dir), "already exists");
    let missing = temp("no_such_parent").join("frames");
    let err = fails_with_hint(&args(&missing), "cannot write the frames");
    assert!(err.contains("parent folder"), "{err}");
    assert!(!missing.exists() && !missing.parent().unwrap().exists());
}

#[test]
fn marked_outputs_are_drawn_where_the_run_puts_them_seen_through_bodies() {
    // The guide's thrown ball, its `position` marked: the page's mark frames
    // decode to the output (the last to the run's final observation), and
    // the GIF shows the mark's colour.
    let (page, gif) = (temp("marked.html"), temp("marked.gif"));
    let (d, o) = page_data(
        "docs/guide/ball.joule",
        &page,
        &[
            "--steps",
            "120",
            "--mark",
            "position",
            "--gif",
            gif.to_str().unwrap(),
            "--json",
        ],
    );
    let run: Value = serde_json::from_slice(&o.stdout).expect("JSON");
    let last = numbers(&run["observe"]["position"][0]);
    assert_eq!(d["marks"]["names"], serde_json::json!(["position"]));
    let colour = d["marks"]["colours"][0].as_str().unwrap().to_string();
    let marks = frames(&serde_json::json!({"frames": d["marks"]["frames"], "dofs": 3}));
    let kept = d["steps"].as_array().unwrap().len();
    assert_eq!(marks.len(), 3 * kept, "a point per kept frame");
    for k in 0..3 {
        let shown = marks[3 * (kept - 1) + k];
        assert!(close(shown, last[k]), "{k}: {shown:?} vs {}", last[k]);
    }
    assert!(marks[2].0 > 0.4 && marks[3 * (kept - 1)].0 > 0.3, "it flew");
    let (pictures, _) = gif_frames(&gif);
    let (pixels, _) = pictures.last().unwrap();
    let marked = pixels.iter().filter(|p| shade_of(**p, &colour)).count();
    assert!(marked >= 4, "{marked} pixels of the mark's colour");
}

#[test]
fn a_mark_that_is_not_a_point_is_an_error_and_writes_nothing() {
    let page = temp("not_marked.html");
    let _ = std::fs::remove_file(&page);
    for (mark, says) in [("far", "is a number"), ("nothing", "no output `nothing`")] {
        let o = joule(&[
            "run",
            "docs/guide/ball.joule",
            "--steps",
            "5",
            "--html",
            page.to_str().unwrap(),
            "--mark",
            mark,
        ]);
        let err = fails_with_hint(&o, says);
        assert!(
            err.contains("three-component outputs are: position"),
            "{err}"
        );
        assert!(!page.exists(), "nothing written");
    }
}

#[test]
fn headless_chromium_draws_a_mark_inside_a_box_over_it() {
    let Some(browser) = chromium() else {
        return;
    };
    // A mark at the box's centre, inside it: drawn through the box.
    let scene = temp("marked_box.joule");
    std::fs::write(&scene, format!("{ONE_BOX}observe centre = b.x\n")).unwrap();
    let page = temp("marked_box.html");
    let (d, _) = page_data(
        scene.to_str().unwrap(),
        &page,
        &["--steps", "2", "--mark", "centre", "--quiet"],
    );
    let mark = d["marks"]["colours"][0].as_str().unwrap().to_string();
    let pixels = screenshot(&browser, &page, "frame=last");
    // The canvas's centre (320, 220) shows the mark; the box 40 pixels off it.
    let at = |x: usize, y: usize| pixels[y * 640 + x];
    assert!(shade_of(at(320, 220), &mark), "centre {:?}", at(320, 220));
    let box_colour = d["bodies"][0]["colour"].as_str().unwrap().to_string();
    assert!(
        shade_of(at(360, 260), &box_colour),
        "box {:?}",
        at(360, 260)
    );
}

#[test]
fn planes_other_than_the_ground_are_drawn_where_the_contacts_put_them() {
    // A box over a floor tilted by 15 degrees and raised to 0.2 m (MJCF's
    // `<geom type="plane" euler=..>` imports as `ground_plane_point`): the
    // page holds that plane and not the ground z = 0; the GIF paints it.
    let (s, c) = (15f64.to_radians().sin(), 15f64.to_radians().cos());
    let scene = temp("tilted.joule");
    std::fs::write(
        &scene,
        format!(
            "scene \"tilted floor\"\nbody b {{ shape = box(vec3(0.2, 0.2, 0.2)), mass = 1, x = vec3(0, 0, 1) }}\n\
             ground_plane_point(b, vec3(0, 0, -0.1), 0, vec3(0, {}, {c}), 0.2, 1e-3, 1e4)\n",
            -s
        ),
    )
    .unwrap();
    let (page, gif) = (temp("tilted.html"), temp("tilted.gif"));
    let (d, _) = page_data(
        scene.to_str().unwrap(),
        &page,
        &["--steps", "3", "--gif", gif.to_str().unwrap(), "--quiet"],
    );
    assert_eq!(d["ground"], false);
    let planes = d["planes"].as_array().expect("planes");
    assert_eq!(planes.len(), 1);
    let p = numbers(&planes[0]);
    for (got, want) in p.iter().zip([0.0, -s, c, 0.2]) {
        assert!((got - want).abs() < 1e-12, "{p:?}");
    }
    // The plane fills the picture's lower half (the ground's colour).
    let (pictures, [w, h]) = gif_frames(&gif);
    let (pixels, _) = pictures.last().unwrap();
    let slate = [0x33, 0x41, 0x55];
    let floor = pixels[h / 2 * w..].iter().filter(|p| **p == slate).count();
    assert!(floor > w * h / 8, "{floor} pixels of the plane");
}

#[test]
fn the_planes_of_mujocos_contact_law_are_drawn() {
    // `contact_mujoco` (`joule import --friction mujoco`) names its plane:
    // on a tilted floor the page holds that plane and not the ground, on
    // z = 0 the ground and no other plane.
    let (s, c) = (10f64.to_radians().sin(), 10f64.to_radians().cos());
    for (n, on_ground) in [([s, 0.0, c], false), ([0.0, 0.0, 1.0], true)] {
        let scene = temp(&format!("mujoco_law_{on_ground}.joule"));
        std::fs::write(
            &scene,
            format!(
                "scene \"ball\"\nbody b {{ shape = sphere(0.1), mass = 1, x = vec3(0, 0, 0.3), joint = free }}\n\
                 contact_mujoco(b, vec3(0, 0, 0), 0.1, vec3({}, {}, {}), 0, vec3(0, 0, 0), vec3(0, 1, 0), 1, 4, 2770, 105, 0.9, 0.95, 0.001, 0.5, 2, 0, 0.01)\n",
                n[0], n[1], n[2]
            ),
        )
        .unwrap();
        let page = temp(&format!("mujoco_law_{on_ground}.html"));
        let (d, _) = page_data(scene.to_str().unwrap(), &page, &["--steps", "3", "--quiet"]);
        assert_eq!(d["ground"], on_ground);
        let planes = d["planes"].as_array().expect("planes");
        if on_ground {
            assert!(planes.is_empty(), "{planes:?}");
        } else {
            assert_eq!(planes.len(), 1);
            let p = numbers(&planes[0]);
            for (got, want) in p.iter().zip([s, 0.0, c, 0.0]) {
                assert!((got - want).abs() < 1e-12, "{p:?}");
            }
        }
    }
}

#[test]
fn contact_points_are_drawn_on_request() {
    // A box with a contact at each corner: `--contacts` puts the eight body
    // points (and radii) on the page, none without it.
    let scene = temp("cornered.joule");
    std::fs::write(
        &scene,
        "scene \"cornered\"\nbody b { shape = box(vec3(0.2, 0.4, 0.6)), mass = 1, x = vec3(0, 0, 1) }\n\
         ground_point(b, c[0], c[1], 1e-3, 1e4) for c in contact_points(b)\n",
    )
    .unwrap();
    let page = temp("cornered.html");
    let (d, _) = page_data(
        scene.to_str().unwrap(),
        &page,
        &["--steps", "2", "--contacts", "--quiet"],
    );
    let points = d["bodies"][0]["contacts"].as_array().expect("contacts");
    assert_eq!(points.len(), 8, "{points:?}");
    for p in points {
        let p = numbers(p);
        let half = [0.1, 0.2, 0.3];
        assert!(
            (0..3).all(|k| (p[k].abs() - half[k]).abs() < 1e-12),
            "{p:?}"
        );
    }
    let (d, _) = page_data(scene.to_str().unwrap(), &page, &["--steps", "2", "--quiet"]);
    assert_eq!(d["bodies"][0]["contacts"], serde_json::json!([]));
}

/// `--html-three`: the page loads three.js from a path relative to its
/// folder instead of holding it, with the same data, and (where Chromium is
/// installed) still draws the box; addresses that would break the page or
/// name no copy of the vendored build are refused before the run.
#[test]
fn a_page_linking_three_loads_it_from_its_folder() {
    let scene = temp("linked_box.joule");
    std::fs::write(&scene, ONE_BOX).unwrap();
    let shared = temp("linked");
    let pages = shared.join("pages");
    std::fs::create_dir_all(&pages).unwrap();
    std::fs::write(shared.join("three.min.js"), THREE).unwrap();
    let (inline, linked) = (temp("inline_box.html"), pages.join("box.html"));
    let (data, _) = page_data(
        scene.to_str().unwrap(),
        &inline,
        &["--steps", "2", "--quiet"],
    );
    let o = joule(&[
        "run",
        scene.to_str().unwrap(),
        "--steps",
        "2",
        "--quiet",
        "--html",
        linked.to_str().unwrap(),
        "--html-three",
        "../three.min.js",
    ]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let html = std::fs::read_to_string(&linked).unwrap();
    assert!(!html.contains(THREE), "three.js is not inlined");
    assert_eq!(
        html.matches(r#"<script src="../three.min.js"></script>"#)
            .count(),
        1
    );
    let inline_html = std::fs::read_to_string(&inline).unwrap();
    assert_eq!(
        html.replacen(r#"<script src="../three.min.js"></script>"#, "", 1),
        inline_html.replacen(&format!("<script>{THREE}</script>"), "", 1),
        "the same page but for the library's element"
    );
    if let Some(browser) = chromium() {
        let colour = data["bodies"][0]["colour"].as_str().unwrap().to_string();
        let pixels = screenshot(&browser, &linked, "frame=last");
        assert_lit_box(&pixels, 640, (320, 220), (5, 470 - 40), &colour);
    }
    // Refused before anything is written: no file there, another file, an
    // address that would end the element early.
    std::fs::write(shared.join("other.js"), "var THREE = {};").unwrap();
    let refused = pages.join("refused.html");
    for (src, what) in [
        ("three.min.js", "would not find three.js"),
        ("../other.js", "not the three.js build"),
        ("a\"><script>x.js", "cannot be written into the page"),
    ] {
        let o = joule(&[
            "run",
            scene.to_str().unwrap(),
            "--steps",
            "2",
            "--html",
            refused.to_str().unwrap(),
            "--html-three",
            src,
        ]);
        fails_with_hint(&o, what);
        assert!(!refused.exists(), "{src}: nothing written");
    }
}

/// Following (`#follow`, or the checkbox), the camera fits one frame of an
/// environment, not the whole run: a box that flies 20 m fills far more of
/// the picture, at its centre, than in the view of the whole run.
#[test]
fn headless_chromium_following_fits_one_frame_not_the_whole_run() {
    let Some(browser) = chromium() else {
        return;
    };
    let scene = temp("glide.joule");
    std::fs::write(
        &scene,
        "scene \"glide\"\nbody b { shape = box(vec3(0.6, 0.6, 0.6)), mass = 1, x = vec3(0, 0, 1), v = vec3(20, 0, 5) }\n",
    )
    .unwrap();
    let page = temp("glide.html");
    let (d, _) = page_data(
        scene.to_str().unwrap(),
        &page,
        &["--steps", "100", "--quiet"],
    );
    let colour = d["bodies"][0]["colour"].as_str().unwrap().to_string();
    let count = |pixels: &[[u8; 3]]| pixels.iter().filter(|p| shade_of(**p, &colour)).count();
    let whole = count(&screenshot(&browser, &page, "frame=last"));
    let followed = screenshot(&browser, &page, "follow&frame=last");
    assert!(
        count(&followed) > 20 * whole.max(1),
        "following {} box pixels, the whole run {whole}",
        count(&followed)
    );
    assert_lit_box(&followed, 640, (320, 220), (5, 470 - 40), &colour);
}
