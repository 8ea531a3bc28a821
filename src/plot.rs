//! `joule plot`: CSVs of numeric columns (`joule run --out` trajectories,
//! learning curves) as a PNG line plot, drawn with plotters on a bitmap with
//! an embedded DejaVu Sans font (no system fonts needed). Several files draw
//! into one plot (seeds, algorithms side by side), each series labelled by
//! its file.

use crate::files::write_atomically;
use miette::{miette, LabeledSpan, NamedSource, Report, Result};
use plotters::prelude::*;
use std::io::Write;
use std::ops::Range;
use std::path::PathBuf;

/// Most series drawn from one file when `--y` is not given.
const MAX_SERIES: usize = 10;
/// Most files drawn into one plot.
const MAX_FILES: usize = 64;
/// Columns never plotted by default: the x candidates and the environment index.
const INDEX_COLUMNS: &[&str] = &["t", "time", "step", "steps", "iteration", "epoch", "env"];
/// Preferred x columns, in order.
const X_COLUMNS: &[&str] = &["t", "time", "step", "steps", "iteration", "epoch"];

/// Plot columns of a CSV file (a `run --out` trajectory, a learning curve) as a PNG.
#[derive(clap::Args)]
#[command(
    after_help = "Examples:\n  joule run scenes/pendulum.joule --steps 500 --out pendulum.csv\n  joule plot pendulum.csv -o pendulum.png --y angle\n  joule plot curve.csv -o curve.png --x iteration --y loss,reward\n  joule plot shac0.csv shac1.csv ppo0.csv -o curves.png --x env_steps --y reward"
)]
pub struct PlotArgs {
    /// The CSV files: a header row of column names, then numeric rows.
    /// Several draw into one plot, each series labelled by its file.
    #[arg(required = true, value_name = "INPUT")]
    pub inputs: Vec<PathBuf>,
    /// The PNG image to write (`--out`, as every command writes; `-o` and
    /// `--output` too).
    #[arg(short, long = "out", visible_alias = "output", value_name = "OUT.png")]
    pub output: PathBuf,
    /// The x column (default: `t`, `time`, `step` or `iteration` if present, else the first).
    #[arg(long, value_name = "COLUMN")]
    pub x: Option<String>,
    /// The y columns, comma-separated (default: all others but `env`, at most ten).
    #[arg(long, value_name = "COL1,COL2")]
    pub y: Option<String>,
    /// With an `env` column (a batched trajectory): the environment plotted.
    #[arg(long, value_name = "K", default_value_t = 0)]
    pub env: usize,
    /// Image width in pixels.
    #[arg(long, default_value_t = 1000)]
    pub width: u32,
    /// Image height in pixels.
    #[arg(long, default_value_t = 600)]
    pub height: u32,
}

/// The parsed table: header names with their spans, and rows of cells.
struct Table {
    names: Vec<String>,
    header_spans: Vec<Range<usize>>,
    /// Each row's cells and their byte ranges in the file.
    rows: Vec<Vec<(String, Range<usize>)>>,
}

/// `joule plot`: reads the CSV, picks the columns, writes the PNG.
pub fn plot(p: &PlotArgs) -> Result<()> {
    if p.width < 200 || p.height < 150 || p.width > 10_000 || p.height > 10_000 {
        return Err(miette!(
            help = "use a width of 200..=10000 and a height of 150..=10000 pixels",
            "a {}x{} image is too small or too large to plot",
            p.width,
            p.height
        ));
    }
    if p.output.extension().and_then(|e| e.to_str()) != Some("png") {
        return Err(miette!(
            help = "name the output `FILE.png`",
            "`joule plot` writes PNG images, not `{}`",
            p.output.display()
        ));
    }
    if p.inputs.len() > MAX_FILES {
        return Err(miette!(
            help = "plot at most {MAX_FILES} files at once",
            "{} files are too many for one plot",
            p.inputs.len()
        ));
    }
    let many = p.inputs.len() > 1;
    let mut curves = vec![];
    let mut x_name = String::new();
    for input in &p.inputs {
        let (x, mut from) = read_curves(p, input)?;
        if many {
            let stem = input.file_stem().map_or(input.display().to_string(), |s| {
                s.to_string_lossy().into_owned()
            });
            let columns = from.len();
            for c in &mut from {
                c.label = match columns {
                    1 => stem.clone(),
                    _ => format!("{stem}: {}", c.label),
                };
            }
        }
        if !x_name.is_empty() && x != x_name {
            return Err(miette!(
                help = "choose the x column of every file with `--x COLUMN`",
                "`{}` plots against `{x}` where the files before it plot against `{x_name}`",
                input.display()
            ));
        }
        x_name = x;
        curves.extend(from);
    }
    let names: Vec<String> = p
        .inputs
        .iter()
        .map(|i| {
            i.file_name().map_or(i.display().to_string(), |f| {
                f.to_string_lossy().into_owned()
            })
        })
        .collect();
    let title = match names.as_slice() {
        [one] => one.clone(),
        [first, rest @ ..] => format!("{first} and {} more", rest.len()),
        [] => String::new(),
    };
    let png = draw(p, &title, &x_name, &curves)?;
    write_atomically(&p.output, |w| w.write_all(&png))
}

/// One line of the plot: its label and its points.
struct Curve {
    label: String,
    xs: Vec<f64>,
    ys: Vec<f64>,
}

/// Reads one CSV and picks its columns: the x column's name and a curve per
/// y column (labelled by the column).
fn read_curves(p: &PlotArgs, input: &std::path::Path) -> Result<(String, Vec<Curve>)> {
    let text = crate::files::read_text(
        input,
        "give a CSV file with a header row, e.g. one written by `joule run --out run.csv`",
    )?;
    let name = input.display().to_string();
    let located = |r: Report| r.with_source_code(NamedSource::new(&name, text.clone()));
    let table = parse(&text).map_err(located)?;
    let column = |wanted: &str, flag: &str| -> Result<usize> {
        table
            .names
            .iter()
            .position(|n| n == wanted)
            .ok_or_else(|| unknown_column(&table, wanted, flag))
            .map_err(located)
    };
    let x = match &p.x {
        Some(n) => column(n.trim(), "--x")?,
        None => X_COLUMNS
            .iter()
            .find_map(|c| table.names.iter().position(|n| n == c))
            .unwrap_or(0),
    };
    let ys: Vec<usize> = match &p.y {
        Some(list) => list
            .split(',')
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .map(|n| column(n, "--y"))
            .collect::<Result<_>>()?,
        None => {
            let all: Vec<usize> = (0..table.names.len())
                .filter(|&k| k != x && !INDEX_COLUMNS.contains(&table.names[k].as_str()))
                .collect();
            if all.len() > MAX_SERIES {
                eprintln!(
                    "note: plotting the first {MAX_SERIES} of {} columns of `{name}`; choose others with `--y a,b,...`",
                    all.len()
                );
            }
            all.into_iter().take(MAX_SERIES).collect()
        }
    };
    if ys.is_empty() {
        return Err(miette!(
            help = "name the columns to plot with `--y a,b,...`",
            "`{name}` has no column to plot against `{}`",
            table.names[x]
        ));
    }
    // Rows of one environment when the file holds several.
    let env = table.names.iter().position(|n| n == "env");
    let mut xs = vec![];
    let mut series: Vec<Vec<f64>> = vec![vec![]; ys.len()];
    for row in &table.rows {
        if let Some(e) = env {
            if number(&table, row, e).map_err(located)? != p.env as f64 {
                continue;
            }
        }
        xs.push(number(&table, row, x).map_err(located)?);
        for (s, &y) in series.iter_mut().zip(&ys) {
            s.push(number(&table, row, y).map_err(located)?);
        }
    }
    if xs.is_empty() {
        return Err(match env {
            Some(_) => miette!(
                help = "the file's environments are in its `env` column; choose one with `--env K`",
                "`{name}` has no rows for environment {}",
                p.env
            ),
            None => miette!(
                help = "the first row names the columns; data rows follow",
                "`{name}` has no data rows"
            ),
        });
    }
    let curves = ys
        .iter()
        .zip(series)
        .map(|(&y, ys)| Curve {
            label: table.names[y].clone(),
            xs: xs.clone(),
            ys,
        })
        .collect();
    Ok((table.names[x].clone(), curves))
}

/// Parses the CSV, keeping byte ranges for diagnostics.
fn parse(text: &str) -> Result<Table> {
    let mut reader = csv::ReaderBuilder::new().from_reader(text.as_bytes());
    let csv_error = |e: csv::Error| -> Report {
        let at = e.position().map_or(0, |p| p.byte() as usize);
        let line_end = text[at.min(text.len())..]
            .find('\n')
            .map_or(text.len(), |n| at + n);
        miette!(
            labels = vec![LabeledSpan::at(at..line_end, "this row")],
            help = "every row needs as many comma-separated cells as the header",
            "not a well-formed CSV file: {e}"
        )
    };
    let header = reader.headers().map_err(csv_error)?.clone();
    if header.is_empty() {
        return Err(miette!(
            help = "the first row names the columns: `step,loss,...`",
            "the file has no header row"
        ));
    }
    let header_spans = cell_spans(text, header.position(), header.len());
    let names = header.iter().map(|n| n.trim().to_string()).collect();
    let mut rows = vec![];
    for record in reader.records() {
        let record = record.map_err(csv_error)?;
        let spans = cell_spans(text, record.position(), record.len());
        rows.push(
            record
                .iter()
                .map(|c| c.trim().to_string())
                .zip(spans)
                .collect(),
        );
    }
    Ok(Table {
        names,
        header_spans,
        rows,
    })
}

/// Byte ranges of a record's `n` cells in the file: split at commas when that
/// gives `n` cells, else the whole line for each (quoted commas).
fn cell_spans(text: &str, at: Option<&csv::Position>, n: usize) -> Vec<Range<usize>> {
    let start = at.map_or(0, |p| p.byte() as usize).min(text.len());
    let line = text[start..].lines().next().unwrap_or("");
    let mut spans = vec![];
    let mut from = start;
    for cell in line.split(',') {
        spans.push(from..from + cell.len());
        from += cell.len() + 1;
    }
    if spans.len() != n {
        spans = vec![start..start + line.len(); n];
    }
    spans
}

/// The number in column `k` of a row, or a diagnostic pointing at the cell.
fn number(t: &Table, row: &[(String, Range<usize>)], k: usize) -> Result<f64> {
    let (cell, span) = &row[k];
    cell.parse::<f64>().map_err(|_| {
        miette!(
            labels = vec![
                LabeledSpan::at(t.header_spans[k].clone(), "this column"),
                LabeledSpan::at(span.clone(), "not a number"),
            ],
            help = "`joule plot` draws numeric columns; pick them with `--x` and `--y`",
            "column `{}` is not numeric: `{cell}`",
            t.names[k]
        )
    })
}

/// An unknown `--x`/`--y` column, with the closest name and all of them.
fn unknown_column(t: &Table, wanted: &str, flag: &str) -> Report {
    let closest = t
        .names
        .iter()
        .map(|n| (strsim::jaro_winkler(n, wanted), n))
        .filter(|(s, _)| *s > 0.8)
        .max_by(|a, b| a.0.total_cmp(&b.0))
        .map(|(_, n)| format!("did you mean `{n}`? "))
        .unwrap_or_default();
    let all = t.header_spans.first().map_or(0..0, |f| {
        f.start..t.header_spans.last().map_or(f.end, |l| l.end)
    });
    miette!(
        labels = vec![LabeledSpan::at(all, "the columns")],
        help = format!("{closest}the columns: {}", t.names.join(", ")),
        "unknown column `{wanted}` in `{flag}`"
    )
}

/// A tick label: at most four significant digits, trailing zeros dropped,
/// `k` / `M` for thousands and millions from ten thousand on (`983040` is
/// `983k`, `0.25` is `0.25`).
fn tick(v: f64) -> String {
    let (scaled, suffix) = match v.abs() {
        a if a >= 1e7 => (v / 1e6, "M"),
        a if a >= 1e4 => (v / 1e3, "k"),
        _ => (v, ""),
    };
    let digits = if scaled == 0.0 {
        0
    } else {
        (3 - scaled.abs().log10().floor() as i32).clamp(0, 6) as usize
    };
    let mut text = format!("{scaled:.digits$}");
    if text.contains('.') {
        text = text.trim_end_matches('0').trim_end_matches('.').to_string();
    }
    format!("{text}{suffix}")
}

/// Draws the series and returns the PNG bytes.
fn draw(p: &PlotArgs, title: &str, x_name: &str, curves: &[Curve]) -> Result<Vec<u8>> {
    // An embedded font: text renders without fontconfig or system fonts.
    plotters::style::register_font("sans-serif", FontStyle::Normal, dejavu::sans::regular())
        .map_err(|_| miette!("the embedded font does not load"))?;
    let finite = |v: &[f64]| -> Range<f64> {
        let (lo, hi) = v
            .iter()
            .filter(|x| x.is_finite())
            .fold((f64::INFINITY, f64::NEG_INFINITY), |(lo, hi), &x| {
                (lo.min(x), hi.max(x))
            });
        if lo > hi {
            0.0..1.0
        } else if lo == hi {
            let pad = lo.abs().max(1.0) * 0.05;
            lo - pad..hi + pad
        } else {
            let pad = (hi - lo) * 0.03;
            lo - pad..hi + pad
        }
    };
    let all = |f: fn(&Curve) -> &[f64]| -> Vec<f64> {
        curves.iter().flat_map(|c| f(c).to_vec()).collect()
    };
    let x_range = finite(&all(|c| &c.xs));
    let y_range = finite(&all(|c| &c.ys));
    let (w, h) = (p.width, p.height);
    let mut rgb = vec![0u8; (w * h * 3) as usize];
    let failed = |e: &dyn std::fmt::Display| miette!("cannot draw the plot: {e}");
    {
        let root = BitMapBackend::with_buffer(&mut rgb, (w, h)).into_drawing_area();
        root.fill(&WHITE).map_err(|e| failed(&e))?;
        let y_desc = match (curves, p.inputs.len(), &p.y) {
            ([one], 1, _) => one.label.as_str(),
            (_, _, Some(y)) if !y.contains(',') => y.trim(),
            _ => "value",
        };
        let mut chart = ChartBuilder::on(&root)
            .caption(title, ("sans-serif", 20))
            .margin(12)
            .x_label_area_size(45)
            .y_label_area_size(70)
            .build_cartesian_2d(x_range, y_range)
            .map_err(|e| failed(&e))?;
        chart
            .configure_mesh()
            .x_desc(x_name)
            .y_desc(y_desc)
            .x_label_formatter(&|v| tick(*v))
            .y_label_formatter(&|v| tick(*v))
            .label_style(("sans-serif", 14))
            .axis_desc_style(("sans-serif", 16))
            .draw()
            .map_err(|e| failed(&e))?;
        for (k, curve) in curves.iter().enumerate() {
            let color = Palette99::pick(k).to_rgba();
            // Non-finite values break the line.
            let mut segments: Vec<Vec<(f64, f64)>> = vec![vec![]];
            for (&x, &y) in curve.xs.iter().zip(&curve.ys) {
                if x.is_finite() && y.is_finite() {
                    segments.last_mut().expect("one segment").push((x, y));
                } else if !segments.last().expect("one segment").is_empty() {
                    segments.push(vec![]);
                }
            }
            for (i, seg) in segments.into_iter().enumerate() {
                let drawn = chart
                    .draw_series(LineSeries::new(seg, color.stroke_width(2)))
                    .map_err(|e| failed(&e))?;
                if i == 0 {
                    drawn.label(curve.label.as_str()).legend(move |(x, y)| {
                        PathElement::new([(x, y), (x + 20, y)], color.stroke_width(2))
                    });
                }
            }
        }
        if curves.len() > 1 {
            chart
                .configure_series_labels()
                .background_style(WHITE.mix(0.85))
                .border_style(BLACK)
                .label_font(("sans-serif", 14))
                .position(SeriesLabelPosition::UpperRight)
                .draw()
                .map_err(|e| failed(&e))?;
        }
        root.present().map_err(|e| failed(&e))?;
    }
    let mut png = vec![];
    {
        let mut encoder = png::Encoder::new(&mut png, w, h);
        encoder.set_color(png::ColorType::Rgb);
        encoder.set_depth(png::BitDepth::Eight);
        let mut writer = encoder.write_header().map_err(|e| failed(&e))?;
        writer.write_image_data(&rgb).map_err(|e| failed(&e))?;
        writer.finish().map_err(|e| failed(&e))?;
    }
    Ok(png)
}

#[cfg(test)]
mod tests {
    use super::tick;

    #[test]
    fn tick_labels_are_short() {
        let cases = [
            (0.0, "0"),
            (0.25, "0.25"),
            (-1.5, "-1.5"),
            (120.0, "120"),
            (2000.0, "2000"),
            (100000.0, "100k"),
            (983040.0, "983k"),
            (2.5e7, "25M"),
            (1e-3, "0.001"),
        ];
        for (v, want) in cases {
            assert_eq!(tick(v), want, "{v}");
        }
    }
}
