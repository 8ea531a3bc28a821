//! Helpers shared by the integration tests.

use std::path::PathBuf;
use std::process::{Command, Output};

/// Runs the `joule` binary built for the tests.
pub fn joule(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_joule"))
        .args(args)
        .output()
        .expect("the joule binary runs")
}

/// A command's standard error as words only: miette wraps lines and draws
/// a margin (`│`), which move with the terminal width.
pub fn stderr_words(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr)
        .split_whitespace()
        .filter(|w| *w != "│")
        .collect::<Vec<_>>()
        .join(" ")
}

/// The words of a failed command's standard error ([`stderr_words`]),
/// which must name `what`, give a `help:` hint, and show no panic.
pub fn fails_with_hint(o: &Output, what: &str) -> String {
    let err = stderr_words(o);
    assert!(!o.status.success(), "succeeded: {err}");
    assert!(
        err.contains(what) && err.contains("help:") && !err.contains("panicked"),
        "{err}"
    );
    err
}

/// A path in this test process's own temporary folder.
pub fn temp(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("joule-test-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    dir.join(name)
}

/// The path of a shipped scene from its file stem (`"ant"` is
/// `scenes/ant.joule`); `scene_list.rs` lists them all.
pub fn shipped(name: &str) -> PathBuf {
    PathBuf::from(format!("scenes/{name}.joule"))
}

/// A small deterministic generator (xorshift64*), so failures reproduce.
pub struct Rng(pub u64);

impl Rng {
    /// Uniform in [-1, 1).
    pub fn next(&mut self) -> f64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        let r = self.0.wrapping_mul(0x2545_F491_4F6C_DD1D);
        (r >> 11) as f64 / (1u64 << 53) as f64 * 2.0 - 1.0
    }
}

/// Rewrites the `.npz` at `from` into `to`, array by array, through `edit`
/// (name, shape, values) and in Fortran order when `fortran`.
pub fn rewrite_npz(
    from: &std::path::Path,
    to: &std::path::Path,
    fortran: bool,
    edit: &dyn Fn(&str, &mut Vec<f64>),
) {
    use npyz::WriterBuilder;
    let mut zip = zip::ZipArchive::new(std::fs::File::open(from).unwrap()).unwrap();
    let mut out = zip::ZipWriter::new(std::fs::File::create(to).unwrap());
    for i in 0..zip.len() {
        let mut entry = zip.by_index(i).unwrap();
        let name = entry.name().to_string();
        let mut bytes = vec![];
        std::io::Read::read_to_end(&mut entry, &mut bytes).unwrap();
        let npy = npyz::NpyFile::new(&bytes[..]).unwrap();
        let shape = npy.shape().to_vec();
        let mut data = npy.into_vec::<f64>().unwrap();
        edit(name.trim_end_matches(".npy"), &mut data);
        out.start_file(name, zip::write::SimpleFileOptions::default())
            .unwrap();
        let order = if fortran {
            npyz::Order::Fortran
        } else {
            npyz::Order::C
        };
        let options = npyz::WriteOptions::<f64>::new()
            .default_dtype()
            .shape(&shape)
            .order(order);
        let mut w = options.writer(&mut out).begin_nd().unwrap();
        w.extend(data).unwrap();
        w.finish().unwrap();
    }
    out.finish().unwrap();
}

/// Standard base64 (with padding) to bytes.
pub fn unbase64(text: &str) -> Vec<u8> {
    let digit = |c: u8| -> u32 {
        match c {
            b'A'..=b'Z' => (c - b'A') as u32,
            b'a'..=b'z' => (c - b'a') as u32 + 26,
            b'0'..=b'9' => (c - b'0') as u32 + 52,
            b'+' => 62,
            b'/' => 63,
            _ => panic!("not base64: {c}"),
        }
    };
    assert_eq!(text.len() % 4, 0, "padded");
    let mut out = vec![];
    for quad in text.as_bytes().chunks(4) {
        let n = quad
            .iter()
            .enumerate()
            .filter(|(_, c)| **c != b'=')
            .fold(0u32, |n, (i, &c)| n | digit(c) << (18 - 6 * i));
        let bytes = quad.iter().filter(|c| **c != b'=').count() - 1;
        out.extend((0..bytes).map(|k| (n >> (16 - 8 * k)) as u8));
    }
    out
}

/// A `joule run --html` page's frames (its embedded data `d`) decoded as its script decodes them: per value, the
/// coordinate and the quantisation error bound of its DOF (half a level).
/// Frame-major, then environment, then DOF.
pub fn html_frames(d: &serde_json::Value) -> Vec<(f64, f64)> {
    let f = &d["frames"];
    let numbers = |v: &serde_json::Value| -> Vec<f64> {
        v.as_array()
            .expect("an array")
            .iter()
            .map(|x| x.as_f64().expect("a number"))
            .collect()
    };
    let (lo, hi) = (numbers(&f["lo"]), numbers(&f["hi"]));
    let levels = f["levels"].as_f64().expect("levels");
    let dofs = d["dofs"].as_u64().unwrap() as usize;
    unbase64(f["data"].as_str().expect("base64"))
        .chunks(2)
        .enumerate()
        .map(|(i, b)| {
            let q = u16::from_le_bytes([b[0], b[1]]);
            let k = i % dofs;
            let step = (hi[k] - lo[k]) / levels;
            let v = if q == u16::MAX {
                f64::NAN
            } else {
                lo[k] + q as f64 * step
            };
            (v, step / 2.0)
        })
        .collect()
}

/// The gradient of the `loss` after `steps` steps of a fresh batch of one
/// through a closed-loop tape (zero controls): the steps taped, the loss
/// seeded at the end, every step reversed.
pub fn taped_loss_gradient(scene: &joule::Scene, loss: &str, steps: usize) -> joule::TapeGradient {
    let layout = scene.compiled.layout();
    let rows = layout.output_rows();
    let mut sim = scene.batch_threads(1, 1);
    let mut tape = sim.tape();
    for _ in 0..steps {
        sim.step_taped(&mut tape);
    }
    let mut seed = vec![vec![0.0]; rows];
    seed[layout.output(loss).expect("the loss").offset][0] = 1.0;
    sim.seed_outputs(&mut tape, &seed).expect("seeds");
    for _ in 0..steps {
        sim.reverse_step(&mut tape);
        sim.seed_outputs(&mut tape, &vec![vec![0.0]; rows])
            .expect("seeds");
    }
    sim.tape_gradient(&tape)
}
