//! The files the commands read and write: input files read whole (with a
//! hint on failure), atomic writes (a temporary file in the same folder,
//! renamed into place), trajectories as `.csv`, `.npy` or `.npz`, and arrays
//! read back from an `.npz` archive.

use joule_compiler::kernels::OutputInfo;
use joule_compiler::model::ObjectiveKind;
use miette::{miette, Result};
use npyz::WriterBuilder;
use std::io::Write;
use std::path::Path;

/// Array names of the recorded free DOFs' positions and velocities in an `.npz` trajectory.
pub const STATE_X: &str = "state.x";
/// See [`STATE_X`].
pub const STATE_V: &str = "state.v";

/// Array name of the controls each step applied in an `.npz` trajectory:
/// shape (steps, environments, controls), the scene's controls in order.
pub const CONTROLS: &str = "control.applied";

/// Every environment's free DOFs at one step: positions and velocities, `[env][dof]`.
pub type States = (Vec<Vec<f64>>, Vec<Vec<f64>>);

/// The most bytes a data file (weights, checkpoint, trajectory) may have: 4 GiB.
pub const MAX_DATA_BYTES: u64 = 4 << 30;

/// The bytes of a data file (a regular file of at most [`MAX_DATA_BYTES`],
/// read by [`joule_compiler::read_input`]), or a diagnostic naming it with
/// `help` (or the reader's own hint when it refused the file).
pub fn read_file(path: &Path, help: &str) -> Result<Vec<u8>> {
    joule_compiler::read_input(path, MAX_DATA_BYTES).map_err(|e| read_error(path, &e, help))
}

/// The text of an input file (a scene, a CSV): a regular file of at most
/// [`joule_compiler::MAX_INPUT_BYTES`], UTF-8; else a diagnostic naming it
/// with a hint (`help` when the reader has none of its own).
pub fn read_text(path: &Path, help: &str) -> Result<String> {
    let bytes = joule_compiler::read_input(path, joule_compiler::MAX_INPUT_BYTES)
        .map_err(|e| read_error(path, &e, help))?;
    String::from_utf8(bytes).map_err(|e| {
        miette!(
            help = "give a text file (UTF-8)",
            "`{}` is not UTF-8 text: invalid byte at {}",
            path.display(),
            e.utf8_error().valid_up_to()
        )
    })
}

/// "cannot read `path`: why", with the reader's hint when it refused the
/// file (not a regular file, too large), else `help`.
pub fn read_error(path: &Path, e: &std::io::Error, help: &str) -> miette::Report {
    miette!(
        help = joule_compiler::read_help(e).unwrap_or_else(|| help.to_string()),
        "cannot read `{}`: {e}",
        path.display()
    )
}

/// Writes through a temporary file `.NAME.tmp-PID` in the target's folder,
/// renamed into place, so a reader never sees half a file and a failed write
/// leaves the old one (the temporary is removed on failure).
///
/// The target must be a regular file or not exist yet: a folder, device,
/// pipe or socket is refused with a hint (renaming would replace it with a
/// regular file). A symbolic link is followed deliberately: the file it
/// points to is replaced and the link stays (a dangling link is refused).
/// Temporaries of the same target left by processes that are no longer
/// alive (killed mid-write) are removed first.
pub fn write_atomically(
    path: &Path,
    write: impl FnOnce(&mut std::io::BufWriter<std::fs::File>) -> std::io::Result<()>,
) -> Result<()> {
    let cannot = |why: String, help: &str| {
        miette!(
            help = help.to_string(),
            "cannot write `{}`: {why}",
            path.display()
        )
    };
    let target = match std::fs::symlink_metadata(path) {
        Ok(m) if m.file_type().is_symlink() => std::fs::canonicalize(path).map_err(|e| {
            cannot(
                format!("it is a symbolic link whose target cannot be resolved ({e})"),
                "point the link at a file in an existing folder, or write elsewhere",
            )
        })?,
        _ => path.to_path_buf(),
    };
    match std::fs::metadata(&target) {
        Ok(m) if !m.is_file() => {
            let kind = if m.is_dir() {
                "a folder"
            } else {
                "not a regular file"
            };
            return Err(cannot(
                format!("it is {kind}"),
                "write to a regular file (new or existing): folders, devices and pipes are never replaced",
            ));
        }
        _ => {}
    }
    let dir = target
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let stem = format!(
        ".{}.tmp-",
        target.file_name().and_then(|n| n.to_str()).unwrap_or("out")
    );
    remove_stale_temporaries(dir, &stem);
    let tmp = dir.join(format!("{stem}{}", std::process::id()));
    let result = (|| {
        let _ = std::fs::remove_file(&tmp); // our own, from an earlier failed write
        let file = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(&tmp)?;
        let mut w = std::io::BufWriter::new(file);
        write(&mut w)?;
        w.flush()?;
        w.get_ref().sync_all()?;
        drop(w);
        std::fs::rename(&tmp, &target)
    })();
    if result.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    result.map_err(|e| {
        cannot(
            e.to_string(),
            "check that the folder exists and is writable and that the disk has space",
        )
    })
}

/// Removes `dir/{stem}PID` files whose process is gone (no `/proc/PID`),
/// left by writers that were killed. Does nothing where `/proc` is absent.
fn remove_stale_temporaries(dir: &Path, stem: &str) {
    if !Path::new("/proc/self").exists() {
        return;
    }
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        let name = entry.file_name();
        let Some(pid) = name.to_str().and_then(|n| n.strip_prefix(stem)) else {
            continue;
        };
        let is_file = entry.file_type().is_ok_and(|t| t.is_file());
        if is_file && pid.parse::<u32>().is_ok() && !Path::new("/proc").join(pid).exists() {
            let _ = std::fs::remove_file(entry.path());
        }
    }
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
/// `states` the free DOFs at every step and `applied` the controls of every
/// step, environment-major (`.npz` only; empty: not recorded).
/// CSV and `.npy` have one column per output component, observations first,
/// then losses, then rewards; an `.npz` has one array per output.
#[allow(clippy::needless_range_loop)] // rows are [output][env]; loops read env-major
pub fn write_trajectory(
    path: &Path,
    outputs: &[OutputInfo],
    history: &[Vec<Vec<f64>>],
    states: &[States],
    applied: &[Vec<f64>],
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
            if let Some(first) = applied.first().filter(|u| !u.is_empty()) {
                let shape = [
                    applied.len() as u64,
                    batch as u64,
                    (first.len() / batch) as u64,
                ];
                array(CONTROLS, &shape, &mut applied.iter().flatten().copied())?;
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

/// The controls a recording applied (`joule run --out FILE.npz`), in its
/// environment 0: the environment `--match` compares with.
pub fn read_applied(path: &Path, controls: usize) -> Result<Vec<Vec<f64>>> {
    let (shape, data) = read_npz(path, CONTROLS)?;
    if shape.len() != 3 || shape[2] as usize != controls || shape[1] == 0 {
        return Err(miette!(
            help = format!("`joule run --out FILE.npz` records `{CONTROLS}` as (steps, environments, controls), here {controls} controls"),
            "`{}`: `{CONTROLS}` has shape {shape:?}",
            path.display()
        ));
    }
    let batch = shape[1] as usize;
    Ok(data
        .chunks(batch * controls)
        .map(|step| step[..controls].to_vec())
        .collect())
}

/// One array of an `.npz` archive: its shape and values (f64, C order), all
/// finite. Arrays in Fortran order, of another type or with a NaN or an
/// infinity are refused with an error naming the file, the array (and the
/// first bad value's index).
pub fn read_npz(path: &Path, name: &str) -> Result<(Vec<u64>, Vec<f64>)> {
    let bytes = read_file(path, "give an .npz file written by `joule run --out`")?;
    let not_npz = |e: &dyn std::fmt::Display| {
        miette!(
            help = "give an .npz file written by `joule run --out FILE.npz`",
            "`{}` is not an .npz archive: {e}",
            path.display()
        )
    };
    let mut zip = zip::ZipArchive::new(std::io::Cursor::new(bytes)).map_err(|e| not_npz(&e))?;
    let mut entry = zip
        .by_name(&npyz::npz::file_name_from_array_name(name))
        .map_err(|_| {
            miette!(
                help = "the archive holds one array per output of the recorded scene",
                "`{}` has no array `{name}`",
                path.display()
            )
        })?;
    if entry.size() > MAX_DATA_BYTES {
        return Err(not_npz(&format!("array `{name}` is larger than 4 GiB")));
    }
    let mut bytes = vec![];
    std::io::Read::read_to_end(
        &mut std::io::Read::take(&mut entry, MAX_DATA_BYTES),
        &mut bytes,
    )
    .map_err(|e| not_npz(&e))?;
    let bad_array = |why: String| {
        miette!(
            help = "give an .npz file written by `joule run --out FILE.npz`",
            "`{}`: array `{name}` {why}",
            path.display()
        )
    };
    let npy = npyz::NpyFile::new(&bytes[..])
        .map_err(|e| bad_array(format!("is not a .npy array: {e}")))?;
    if npy.order() == npyz::Order::Fortran {
        return Err(bad_array(
            "is in Fortran order (`fortran_order: True`); only C order is read".into(),
        ));
    }
    let shape = npy.shape().to_vec();
    let data = npy
        .into_vec::<f64>()
        .map_err(|e| bad_array(format!("is not float64 data: {e}")))?;
    if let Some(k) = data.iter().position(|v| !v.is_finite()) {
        return Err(bad_array(format!(
            "has a non-finite value ({}) at flat index {k}",
            data[k]
        )));
    }
    Ok((shape, data))
}

/// Environment 0's free DOFs at every step of a recording (a demonstration)
/// made with `joule run --out FILE.npz --state`; `flag` names the option that
/// starts from them, for the error where the recording has no states.
pub fn read_states(path: &Path, dofs: usize, flag: &str) -> Result<Vec<(Vec<f64>, Vec<f64>)>> {
    let read = |name: &str| {
        read_npz(path, name).map_err(|e| {
            if !e.to_string().contains("has no array") {
                return e; // unreadable or damaged: its own error
            }
            miette!(
                help = "record it with `joule run SCENE --out rec.npz --state`",
                "`{flag}` starts from the recording's states, and `{}` has no `{name}`",
                path.display()
            )
        })
    };
    let (shape, x) = read(STATE_X)?;
    let (shape_v, v) = read(STATE_V)?;
    let [steps, envs, n] = shape[..] else {
        return Err(miette!(
            "`{}` is not a [steps][environments][DOFs] array",
            STATE_X
        ));
    };
    let (steps, envs, n) = (steps as usize, envs as usize, n as usize);
    if n != dofs || shape_v != shape || envs == 0 {
        return Err(miette!(
            help = "record it from this scene",
            "the recorded states have {n} DOFs in {envs} environments; the scene has {dofs}"
        ));
    }
    Ok((0..steps)
        .map(|s| {
            let at = s * envs * n;
            (x[at..at + n].to_vec(), v[at..at + n].to_vec())
        })
        .collect())
}
