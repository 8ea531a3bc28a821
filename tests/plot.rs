//! `joule plot`: trajectories and learning curves to PNG, and its diagnostics.

use std::path::Path;
use std::process::Output;

#[allow(dead_code)] // each test crate uses a different part of the shared helpers
mod common;
use common::{fails_with_hint, joule, temp};

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// A decoded RGB image.
struct Image {
    width: u32,
    height: u32,
    rgb: Vec<[u8; 3]>,
}

impl Image {
    fn read(path: &Path) -> Image {
        let decoder = png::Decoder::new(std::io::BufReader::new(
            std::fs::File::open(path).expect("a PNG written"),
        ));
        let mut reader = decoder.read_info().expect("a PNG");
        let mut buf = vec![0; reader.output_buffer_size().expect("size")];
        let info = reader.next_frame(&mut buf).expect("decodes");
        let n = info.color_type.samples();
        Image {
            width: info.width,
            height: info.height,
            rgb: buf[..info.buffer_size()]
                .chunks(n)
                .map(|p| [p[0], p[1], p[2]])
                .collect(),
        }
    }

    /// Pixels close to a colour (lines are anti-aliased at their edges).
    fn count(&self, c: [u8; 3]) -> usize {
        self.rgb
            .iter()
            .filter(|p| (0..3).all(|k| p[k].abs_diff(c[k]) <= 8))
            .count()
    }

    /// Dark (text) pixels in rows `rows`.
    fn dark_in_rows(&self, rows: std::ops::Range<u32>) -> usize {
        rows.flat_map(|y| (0..self.width).map(move |x| (x, y)))
            .filter(|&(x, y)| {
                let p = self.rgb[(y * self.width + x) as usize];
                p.iter().all(|&v| v < 128)
            })
            .count()
    }
}

/// Palette99's first two series colours.
const FIRST: [u8; 3] = [230, 25, 75];
const SECOND: [u8; 3] = [60, 180, 75];

#[test]
fn a_run_trajectory_plots_against_time_with_labelled_axes() {
    let csv = temp("pendulum.csv");
    let o = joule(&[
        "run",
        "scenes/pendulum.joule",
        "--steps",
        "200",
        "--batch",
        "2",
        "--out",
        csv.to_str().unwrap(),
        "--quiet",
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let png = temp("pendulum.png");
    let o = joule(&[
        "plot",
        csv.to_str().unwrap(),
        "-o",
        png.to_str().unwrap(),
        "--width",
        "640",
        "--height",
        "400",
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let img = Image::read(&png);
    assert_eq!((img.width, img.height), (640, 400));
    let white = img.count([255, 255, 255]);
    assert!(
        white < img.rgb.len() * 97 / 100,
        "not blank: {white} white pixels"
    );
    assert!(img.count(FIRST) > 100, "the first series (angle) is drawn");
    assert!(
        img.count(SECOND) > 100,
        "the second series (position.x) is drawn"
    );
    // Tick labels and the axis name under the plot: text renders without system fonts.
    let text = img.dark_in_rows(350..400);
    assert!(text > 50, "x-axis text: {text} dark pixels");
}

#[test]
fn a_learning_curve_plots_the_chosen_columns_only() {
    let csv = temp("curve.csv");
    let rows: String = (0..50)
        .map(|i| format!("{i},{},{}\n", (-0.1 * i as f64).exp(), 0.01 * i as f64))
        .collect();
    std::fs::write(&csv, format!("iteration,loss,reward\n{rows}")).unwrap();
    let both = temp("both.png");
    let o = joule(&["plot", csv.to_str().unwrap(), "-o", both.to_str().unwrap()]);
    assert!(o.status.success(), "{}", stderr(&o));
    let img = Image::read(&both);
    assert_eq!((img.width, img.height), (1000, 600), "the default size");
    assert!(img.count(FIRST) > 100 && img.count(SECOND) > 100);
    let one = temp("loss.png");
    let o = joule(&[
        "plot",
        csv.to_str().unwrap(),
        "-o",
        one.to_str().unwrap(),
        "--x",
        "iteration",
        "--y",
        "loss",
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let img = Image::read(&one);
    assert!(img.count(FIRST) > 100, "loss drawn");
    assert_eq!(img.count(SECOND), 0, "reward not drawn");
}

#[test]
fn several_files_draw_into_one_plot() {
    let (a, b) = (temp("seed0.csv"), temp("seed1.csv"));
    let curve = |scale: f64| -> String {
        (0..40)
            .map(|i| format!("{},{},{}\n", 512 * i, scale * i as f64, 1.0))
            .collect()
    };
    std::fs::write(&a, format!("env_steps,reward,loss\n{}", curve(1.0))).unwrap();
    std::fs::write(&b, format!("env_steps,reward,loss\n{}", curve(2.0))).unwrap();
    let png = temp("seeds.png");
    let (a, b) = (a.to_str().unwrap(), b.to_str().unwrap());
    let o = joule(&[
        "plot",
        a,
        b,
        "-o",
        png.to_str().unwrap(),
        "--x",
        "env_steps",
        "--y",
        "reward",
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let img = Image::read(&png);
    assert!(
        img.count(FIRST) > 100 && img.count(SECOND) > 100,
        "one line per file: {} and {} pixels",
        img.count(FIRST),
        img.count(SECOND)
    );
    // Files whose default x columns differ are refused, nothing written.
    let c = temp("by_iteration.csv");
    std::fs::write(&c, "iteration,reward\n0,1\n1,2\n").unwrap();
    let other = temp("mixed.png");
    let o = joule(&[
        "plot",
        a,
        c.to_str().unwrap(),
        "-o",
        other.to_str().unwrap(),
    ]);
    fails_with_hint(
        &o,
        "plots against `iteration` where the files before it plot against `env_steps`",
    );
    assert!(!other.exists(), "nothing written");
}

#[test]
fn many_columns_are_capped_with_a_note() {
    let csv = temp("wide.csv");
    let header: Vec<String> = (0..12).map(|k| format!("c{k}")).collect();
    let row: Vec<String> = (0..12).map(|k| k.to_string()).collect();
    std::fs::write(
        &csv,
        format!(
            "step,{}\n0,{}\n1,{}\n",
            header.join(","),
            row.join(","),
            row.join(",")
        ),
    )
    .unwrap();
    let png = temp("wide.png");
    let o = joule(&[
        "plot",
        csv.to_str().unwrap(),
        "--out",
        png.to_str().unwrap(),
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(
        stderr(&o).contains("plotting the first 10 of 12 columns"),
        "{}",
        stderr(&o)
    );
    assert_eq!(Image::read(&png).width, 1000);
}

/// Runs a failing `joule plot` and returns its diagnostic; no image is written.
fn fails(csv: &Path, extra: &[&str]) -> String {
    let png = temp("never.png");
    let mut args = vec!["plot", csv.to_str().unwrap(), "-o", png.to_str().unwrap()];
    args.extend_from_slice(extra);
    let o = joule(&args);
    assert!(!o.status.success(), "should fail");
    assert!(!png.exists(), "nothing written");
    stderr(&o)
}

#[test]
fn bad_input_gets_a_located_diagnostic_and_a_failing_exit() {
    let err = fails(&temp("missing.csv"), &[]);
    assert!(
        err.contains("cannot read") && err.contains("missing.csv"),
        "{err}"
    );

    let csv = temp("text.csv");
    std::fs::write(&csv, "step,loss\n0,1.5\n1,oops\n").unwrap();
    let err = fails(&csv, &[]);
    assert!(
        err.contains("column `loss` is not numeric: `oops`"),
        "{err}"
    );
    assert!(
        err.contains("not a number") && err.contains("text.csv:"),
        "{err}"
    );

    std::fs::write(&csv, "step,loss,reward\n0,1,2\n").unwrap();
    let err = fails(&csv, &["--y", "los"]);
    assert!(err.contains("unknown column `los` in `--y`"), "{err}");
    assert!(err.contains("did you mean `loss`?"), "{err}");
    assert!(err.contains("the columns: step, loss, reward"), "{err}");
    let err = fails(&csv, &["--x", "epoch"]);
    assert!(err.contains("unknown column `epoch` in `--x`"), "{err}");

    std::fs::write(&csv, "step,loss\n0,1\n1\n").unwrap();
    let err = fails(&csv, &[]);
    assert!(err.contains("not a well-formed CSV file"), "{err}");

    std::fs::write(&csv, "step,env,loss\n0,0,1\n").unwrap();
    let err = fails(&csv, &["--env", "3"]);
    assert!(err.contains("no rows for environment 3"), "{err}");
}
