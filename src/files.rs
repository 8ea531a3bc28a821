//! The files the commands read and write: input files read whole (with a
//! hint on failure), atomic writes (a temporary file in the same folder,
//! renamed into place), trajectories as `.csv`, `.npy` or `.npz`, and arrays
//! read back from an `.npz` archive.

use joule_compiler::kernels::OutputInfo;
use joule_compiler::model::ObjectiveKind;
use miette::{miette, IntoDiagnostic, Result, WrapErr};
use npyz::WriterBuilder;
use std::io::Write;
use std::path::Path;

/// Array names of the recorded free DOFs' positions and velocities in an `.npz` trajectory.
pub const STATE_X: &str = "state.x";
/// See [`STATE_X`].
pub const STATE_V: &str = "state.v";

/// Every environment's free DOFs at one step: positions and velocities, `[env][dof]`.
pub type States = (Vec<Vec<f64>>, Vec<Vec<f64>>);

/// The bytes of a file, or a diagnostic naming it with `help`.
pub fn read_file(path: &Path, help: &str) -> Result<Vec<u8>> {
    std::fs::read(path).map_err(|e| {
        miette!(
            help = help.to_string(),
            "cannot read `{}`: {e}",
            path.display()
        )
    })
}

/// Writes through a temporary file in the same folder, renamed into place.
pub fn write_atomically(
    path: &Path,
    write: impl FnOnce(&mut std::io::BufWriter<std::fs::File>) -> std::io::Result<()>,
) -> Result<()> {
    let dir = path
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let tmp = dir.join(format!(
        ".{}.tmp-{}",
        path.file_name().and_then(|n| n.to_str()).unwrap_or("out"),
        std::process::id()
    ));
    let result = (|| {
        let file = std::fs::File::create(&tmp)?;
        let mut w = std::io::BufWriter::new(file);
        write(&mut w)?;
        w.flush()?;
        w.get_ref().sync_all()?;
        drop(w);
        std::fs::rename(&tmp, path)
    })();
    if result.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    result
        .into_diagnostic()
        .wrap_err_with(|| format!("cannot write `{}`", path.display()))
}

/// Column names of an output: `name` for scalars, `name.x` ... for vectors.
fn columns(o: &OutputInfo) -> Vec<String> {
    match o.len {
        1 => vec![o.name.clone()],
        2..=4 => ["x", "y", "z", "w"][..o.len]
            .iter()
            .map(|c| format!("{}.{c}", o.name))
            .collect(),
        n => (0..n).map(|k| format!("{}[{k}]", o.name)).collect(),
    }
}

/// Writes a trajectory, in the format its extension names: `history` holds
/// the outputs at every step (`[step][row][env]`, rows as in `outputs`),
/// `states` the free DOFs at every step (`.npz` only; empty: not recorded).
/// CSV and `.npy` have one column per output component, observations first,
/// then losses, then rewards; an `.npz` has one array per output.
#[allow(clippy::needless_range_loop)] // rows are [output][env]; loops read env-major
pub fn write_trajectory(
    path: &Path,
    outputs: &[OutputInfo],
    history: &[Vec<Vec<f64>>],
    states: &[States],
    dt: f64,
    batch: usize,
) -> Result<()> {
    let ext = path.extension().and_then(|e| e.to_str()).unwrap_or("");
    // Observations, then losses, then rewards (per step), each in declaration order.
    let order: Vec<&OutputInfo> = [
        ObjectiveKind::Observe,
        ObjectiveKind::Loss,
        ObjectiveKind::Reward,
    ]
    .iter()
    .flat_map(|k| outputs.iter().filter(move |o| o.kind == *k))
    .collect();
    let cols: Vec<String> = order.iter().flat_map(|o| columns(o)).collect();
    let row_ids: Vec<usize> = order
        .iter()
        .flat_map(|o| o.offset..o.offset + o.len)
        .collect();
    let rows = cols.len();
    match ext {
        "csv" => write_atomically(path, |w| {
            writeln!(
                w,
                "step,t,env{}",
                cols.iter().map(|c| format!(",{c}")).collect::<String>()
            )?;
            for (step, out) in history.iter().enumerate() {
                for e in 0..batch {
                    write!(w, "{step},{},{e}", step as f64 * dt)?;
                    for r in &row_ids {
                        write!(w, ",{}", out[*r][e])?;
                    }
                    writeln!(w)?;
                }
            }
            Ok(())
        }),
        "npy" => write_atomically(path, |w| {
            // (steps + 1, batch, columns), columns as in the CSV after step, t, env.
            let shape = [history.len() as u64, batch as u64, rows as u64];
            let mut npy = npyz::WriteOptions::<f64>::new()
                .default_dtype()
                .shape(&shape)
                .writer(w)
                .begin_nd()?;
            for out in history {
                for e in 0..batch {
                    for r in &row_ids {
                        npy.push(&out[*r][e])?;
                    }
                }
            }
            npy.finish()
        }),
        "npz" => write_atomically(path, |w| {
            let mut zip = zip::ZipWriter::new(w);
            let opts = zip::write::SimpleFileOptions::default()
                .compression_method(zip::CompressionMethod::Stored);
            let mut array = |name: &str,
                             shape: &[u64],
                             data: &mut dyn Iterator<Item = f64>|
             -> std::io::Result<()> {
                zip.start_file(npyz::npz::file_name_from_array_name(name), opts)
                    .map_err(std::io::Error::other)?;
                let mut npy = npyz::WriteOptions::<f64>::new()
                    .default_dtype()
                    .shape(shape)
                    .writer(&mut zip)
                    .begin_nd()?;
                for v in data {
                    npy.push(&v)?;
                }
                npy.finish()
            };
            let steps = history.len() as u64;
            array(
                "t",
                &[steps],
                &mut (0..history.len()).map(|s| s as f64 * dt),
            )?;
            for o in outputs {
                let mut it = history.iter().flat_map(|out| {
                    (0..batch).flat_map(move |e| (0..o.len).map(move |c| out[o.offset + c][e]))
                });
                array(&o.name, &[steps, batch as u64, o.len as u64], &mut it)?;
            }
            if let Some((x, _)) = states.first() {
                let dofs = x.first().map_or(0, Vec::len) as u64;
                let shape = [steps, batch as u64, dofs];
                let mut xs = states.iter().flat_map(|(x, _)| x.iter().flatten().copied());
                array(STATE_X, &shape, &mut xs)?;
                let mut vs = states.iter().flat_map(|(_, v)| v.iter().flatten().copied());
                array(STATE_V, &shape, &mut vs)?;
            }
            zip.finish().map_err(std::io::Error::other)?;
            Ok(())
        }),
        other => Err(miette!(
            help = "write `--out FILE.csv`, `FILE.npy` or `FILE.npz`",
            "unknown output format `.{other}`"
        )),
    }
}

/// One array of an `.npz` archive: its shape and values (f64, C order).
pub fn read_npz(path: &Path, name: &str) -> Result<(Vec<u64>, Vec<f64>)> {
    let file = std::fs::File::open(path)
        .into_diagnostic()
        .wrap_err_with(|| format!("cannot read `{}`", path.display()))?;
    let mut zip = zip::ZipArchive::new(file)
        .into_diagnostic()
        .wrap_err_with(|| format!("`{}` is not an .npz archive", path.display()))?;
    let mut entry = zip
        .by_name(&npyz::npz::file_name_from_array_name(name))
        .map_err(|_| {
            miette!(
                help = "the archive holds one array per output of the recorded scene",
                "`{}` has no array `{name}`",
                path.display()
            )
        })?;
    let mut bytes = vec![];
    std::io::Read::read_to_end(&mut entry, &mut bytes).into_diagnostic()?;
    let npy = npyz::NpyFile::new(&bytes[..])
        .into_diagnostic()
        .wrap_err("not a .npy array")?;
    let shape = npy.shape().to_vec();
    let data = npy
        .into_vec::<f64>()
        .into_diagnostic()
        .wrap_err("expected float64 data")?;
    Ok((shape, data))
}
