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
