//! Joule from Python: the native module `joule._joule` of the `joule` Python
//! package (PyO3 and rust-numpy over the `joule` library).
//!
//! `Scene` compiles scene text or a file (a compile error is the Python
//! exception `joule.CompileError`, with the rendered report, line and
//! column); `Sim` is a batch of environments with parameters, controls,
//! state and outputs as numpy arrays (environment-major: one row per
//! environment), `step`, `rollout` and `gradient` run with the GIL
//! released. Arrays handed in are checked (shape, dtype) and read in place
//! when they are float64 in C order; arrays handed out are built from the
//! results without another copy, or written into a caller's buffer (`out=`).

mod arrays;

use arrays::{describe, f64_array, slice, Dim};
use joule::model::ObjectiveKind;
use joule::{Backend, Event as RsEvent, Objective, Scene as RsScene, Sim as RsSim};
use numpy::{PyArray1, PyArray2, PyArray3, PyArrayMethods, PyUntypedArrayMethods};
use pyo3::exceptions::{PyException, PyRuntimeError, PyValueError};
use pyo3::prelude::*;
use pyo3::types::PyDict;
use rand_chacha::rand_core::SeedableRng;
use std::panic::AssertUnwindSafe;
use std::path::PathBuf;
use std::sync::Arc;

pyo3::create_exception!(
    joule,
    CompileError,
    PyException,
    "A scene that does not compile. `str(e)` and `e.report` are the rendered \
     diagnostics; `e.line` and `e.column` (1-based) locate the first error \
     (None when it has no place in the source), `e.message` is its one-line \
     message and `e.diagnostics` lists every diagnostic as a dict."
);

/// Runs `f` with the GIL released; a panic inside becomes a `RuntimeError`
/// instead of crossing into Python.
fn detached<T: Send>(py: Python<'_>, f: impl FnOnce() -> T + Send) -> PyResult<T> {
    py.detach(|| std::panic::catch_unwind(AssertUnwindSafe(f)))
        .map_err(|panic| {
            let what = panic
                .downcast_ref::<String>()
                .map(String::as_str)
                .or_else(|| panic.downcast_ref::<&str>().copied())
                .unwrap_or("unknown panic");
            PyRuntimeError::new_err(format!("internal error in the Joule runtime: {what}"))
        })
}

/// [`detached`], on a batch's rayon pool when it has one (more than one
/// partition): the stepping thread is then one of its workers, so a step's
/// parallel loop does not wait for a thread to wake; one partition runs on
/// the calling thread (handing it to a worker would cost a wake-up per call).
fn detached_in<T: Send>(
    py: Python<'_>,
    pool: Option<&rayon::ThreadPool>,
    f: impl FnOnce() -> T + Send,
) -> PyResult<T> {
    match pool {
        Some(pool) => detached(py, || pool.install(f)),
        None => detached(py, f),
    }
}

/// The diagnostics of a scene that failed, as a `CompileError`.
fn compile_error(
    py: Python<'_>,
    report: String,
    diagnostics: &[joule::Diagnostic],
    sources: Option<&joule::SourceMap>,
) -> PyErr {
    let err = CompileError::new_err(report.clone());
    let value = err.value(py);
    let mut first: Option<(Option<usize>, Option<usize>, String)> = None;
    let list = pyo3::types::PyList::empty(py);
    for d in diagnostics {
        let place = match (sources, d.labels.first()) {
            (Some(s), Some(l)) => {
                let (line, col) = s.line_col(l.span);
                (Some(line), Some(col))
            }
            _ => (None, None),
        };
        if d.is_error() && first.is_none() {
            first = Some((place.0, place.1, d.message.clone()));
        }
        let item = PyDict::new(py);
        let _ = item.set_item("severity", if d.is_error() { "error" } else { "warning" });
        let _ = item.set_item("code", d.code);
        let _ = item.set_item("message", &d.message);
        let _ = item.set_item("line", place.0);
        let _ = item.set_item("column", place.1);
        let _ = item.set_item("help", &d.help);
        let _ = list.append(item);
    }
    let (line, column, message) = first.unwrap_or((None, None, report.clone()));
    let _ = value.setattr("report", report);
    let _ = value.setattr("line", line);
    let _ = value.setattr("column", column);
    let _ = value.setattr("message", message);
    let _ = value.setattr("diagnostics", list);
    err
}

/// Compiles checked front-end output, releasing the GIL for code generation.
fn compile_checked(py: Python<'_>, checked: joule::Checked) -> PyResult<Scene> {
    if !checked.ok() {
        let report = checked.render_diagnostics(false, 100);
        return Err(compile_error(
            py,
            report,
            &checked.diagnostics,
            Some(&checked.sources),
        ));
    }
    let mut warnings: Vec<String> = checked
        .diagnostics
        .iter()
        .filter(|d| !d.is_error())
        .map(|d| d.render(&checked.sources, false, 100))
        .collect();
    let compiled = detached(py, move || RsScene::from_checked(checked, Backend::Jit))?;
    let scene = compiled.map_err(|e| compile_error(py, e.rendered, &e.diagnostics, None))?;
    warnings.extend(scene.warnings().iter().map(|d| d.render_plain()));
    Ok(Scene {
        inner: Arc::new(scene),
        warnings,
    })
}

/// A named output of a scene: an `observe`, `reward`, `loss` or `done` item
/// and its columns in the output table (`Sim.outputs()[:, offset:offset + size]`).
#[pyclass(module = "joule", frozen, get_all)]
struct Output {
    /// Its name.
    name: String,
    /// `"observe"`, `"reward"`, `"loss"` or `"done"`.
    kind: &'static str,
    /// Its first column in the output table.
    offset: usize,
    /// Its components (1 for a scalar, 3 for a vector).
    size: usize,
}

#[pymethods]
impl Output {
    fn __repr__(&self) -> String {
        format!(
            "Output(name={:?}, kind={:?}, offset={}, size={})",
            self.name, self.kind, self.offset, self.size
        )
    }
}

/// Something a simulation reports: divergence (`"diverged"`), Newton's
/// non-convergence (`"not_converged"`), an iterative solve stopped short
/// (`"solve_stopped"`), a step that could not start (`"inadmissible"`: the
/// potential is not finite at the state, which did not move).
#[pyclass(module = "joule", frozen, get_all)]
struct Event {
    /// `"diverged"`, `"not_converged"`, `"solve_stopped"` or `"inadmissible"`.
    kind: &'static str,
    /// The environment.
    env: usize,
    /// The step.
    step: usize,
    /// The full sentence.
    message: String,
}

#[pymethods]
impl Event {
    fn __repr__(&self) -> String {
        format!("Event({:?}: {})", self.kind, self.message)
    }
}

impl From<&RsEvent> for Event {
    fn from(e: &RsEvent) -> Self {
        let (kind, env, step) = match e {
            RsEvent::Diverged { env, step, .. } => ("diverged", *env, *step),
            RsEvent::Inadmissible { env, step } => ("inadmissible", *env, *step),
            RsEvent::NotConverged { env, step, .. } => ("not_converged", *env, *step),
            RsEvent::SolveStopped { env, step, .. } => ("solve_stopped", *env, *step),
        };
        Event {
            kind,
            env,
            step,
            message: e.to_string(),
        }
    }
}

fn events(py: Python<'_>, list: &[RsEvent]) -> PyResult<Vec<Py<Event>>> {
    list.iter().map(|e| Py::new(py, Event::from(e))).collect()
}

/// A compiled scene: its declarations, and batches of environments to simulate.
///
/// Build one with `Scene.compile(text)` or `Scene.from_path(path)`.
#[pyclass(module = "joule", frozen)]
struct Scene {
    inner: Arc<RsScene>,
    warnings: Vec<String>,
}

fn kind_name(k: ObjectiveKind) -> &'static str {
    k.keyword()
}

impl Scene {
    fn names_of(&self, kind: ObjectiveKind) -> Vec<String> {
        self.inner
            .compiled
            .layout()
            .outputs
            .iter()
            .filter(|o| o.kind == kind)
            .map(|o| o.name.clone())
            .collect()
    }
}

#[pymethods]
impl Scene {
    /// Compiles scene text. `name` is the file name shown in diagnostics;
    /// `use` paths resolve against the working directory. Raises
    /// `CompileError` with the located diagnostics.
    #[staticmethod]
    #[pyo3(signature = (source, name = "scene.joule"))]
    fn compile(py: Python<'_>, source: &str, name: &str) -> PyResult<Scene> {
        let checked = joule::check_source(name, source);
        compile_checked(py, checked)
    }

    /// Compiles a scene file (`use` paths resolve against its folder).
    /// Raises `CompileError`, or `OSError` when the file cannot be read.
    #[staticmethod]
    fn from_path(py: Python<'_>, path: PathBuf) -> PyResult<Scene> {
        let checked = joule::check_path(&path).map_err(|e| {
            pyo3::exceptions::PyOSError::new_err(format!("cannot read `{}`: {e}", path.display()))
        })?;
        compile_checked(py, checked)
    }

    /// The title from `scene "..."`, if any.
    #[getter]
    fn title(&self) -> Option<String> {
        self.inner.model().title.clone()
    }

    /// The time step, seconds.
    #[getter]
    fn dt(&self) -> f64 {
        self.inner.model().settings.dt
    }

    /// Free degrees of freedom per environment (the columns of `Sim.state()`).
    #[getter]
    fn dofs(&self) -> usize {
        self.inner.dofs()
    }

    /// The name of every free DOF, in state order (`bob.x.z`, ...).
    #[getter]
    fn dof_names(&self) -> Vec<String> {
        (0..self.inner.dofs())
            .map(|d| self.inner.dof_name(d))
            .collect()
    }

    /// Parameter names, in declaration order (the columns of `Sim.params`).
    #[getter]
    fn params(&self) -> Vec<String> {
        self.inner
            .model()
            .params
            .iter()
            .map(|p| p.name.clone())
            .collect()
    }

    /// The parameters' declared values, shape `(params,)`.
    #[getter]
    fn param_defaults<'py>(&self, py: Python<'py>) -> Bound<'py, PyArray1<f64>> {
        let v: Vec<f64> = self.inner.model().params.iter().map(|p| p.value).collect();
        PyArray1::from_vec(py, v)
    }

    /// Each parameter's declared range `(low, high)`, or None.
    #[getter]
    fn param_bounds(&self) -> Vec<Option<(f64, f64)>> {
        self.inner.model().params.iter().map(|p| p.bounds).collect()
    }

    /// Control names, in declaration order (the columns of `Sim.controls`).
    #[getter]
    fn controls(&self) -> Vec<String> {
        self.inner
            .model()
            .controls
            .iter()
            .map(|c| c.name.clone())
            .collect()
    }

    /// Each control's declared range `(low, high)`, or None (unbounded).
    #[getter]
    fn control_bounds(&self) -> Vec<Option<(f64, f64)>> {
        self.inner
            .model()
            .controls
            .iter()
            .map(|c| c.bounds)
            .collect()
    }

    /// Every output (observe, reward, loss, done) with its columns in the
    /// output table, in declaration order.
    #[getter]
    fn outputs(&self) -> Vec<Output> {
        self.inner
            .compiled
            .layout()
            .outputs
            .iter()
            .map(|o| Output {
                name: o.name.clone(),
                kind: kind_name(o.kind),
                offset: o.offset,
                size: o.len,
            })
            .collect()
    }

    /// Columns of the output table (`Sim.outputs()` has shape `(batch, output_size)`).
    #[getter]
    fn output_size(&self) -> usize {
        self.inner.compiled.layout().output_rows()
    }

    /// Names of the `observe` items.
    #[getter]
    fn observations(&self) -> Vec<String> {
        self.names_of(ObjectiveKind::Observe)
    }

    /// Names of the `reward` items.
    #[getter]
    fn rewards(&self) -> Vec<String> {
        self.names_of(ObjectiveKind::Reward)
    }

    /// Names of the `loss` items.
    #[getter]
    fn losses(&self) -> Vec<String> {
        self.names_of(ObjectiveKind::Loss)
    }

    /// Names of the `done` items.
    #[getter]
    fn dones(&self) -> Vec<String> {
        self.names_of(ObjectiveKind::Done)
    }

    /// The scene's first `policy` declaration as a dict (`name`, `inputs`:
    /// observation names, `outputs`: control names, `hidden`: layer widths,
    /// `activation`), or None.
    #[getter]
    fn policy<'py>(&self, py: Python<'py>) -> PyResult<Option<Bound<'py, PyDict>>> {
        let m = self.inner.model();
        let Some(p) = m.policies.first() else {
            return Ok(None);
        };
        let d = PyDict::new(py);
        d.set_item("name", &p.name)?;
        let inputs: Vec<&str> = p
            .inputs
            .iter()
            .map(|&i| m.objectives[i].name.as_str())
            .collect();
        d.set_item("inputs", inputs)?;
        let outputs: Vec<&str> = p
            .outputs
            .iter()
            .map(|&c| m.controls[c as usize].name.as_str())
            .collect();
        d.set_item("outputs", outputs)?;
        d.set_item("hidden", p.hidden.clone())?;
        d.set_item("activation", format!("{:?}", p.activation).to_lowercase())?;
        Ok(Some(d))
    }

    /// Compile warnings, rendered (empty when there were none).
    #[getter]
    fn warnings(&self) -> Vec<String> {
        self.warnings.clone()
    }

    /// Why gradients through this scene are not available, or None when they are.
    #[getter]
    fn gradients_unavailable(&self) -> Option<&'static str> {
        self.inner.gradients_unavailable()
    }

    /// The declared initial positions and velocities of the free DOFs:
    /// two arrays of shape `(dofs,)`.
    fn initial_state<'py>(
        &self,
        py: Python<'py>,
    ) -> (Bound<'py, PyArray1<f64>>, Bound<'py, PyArray1<f64>>) {
        let (x, v) = self.inner.initial_dofs(|| 0.0);
        (PyArray1::from_vec(py, x), PyArray1::from_vec(py, v))
    }

    /// `size` environments at the initial state, stepped on `threads`
    /// threads (default: all cores; results do not depend on it).
    #[pyo3(signature = (size, threads = None))]
    fn batch(slf: Bound<'_, Self>, size: usize, threads: Option<usize>) -> PyResult<Sim> {
        if size == 0 {
            return Err(PyValueError::new_err(
                "a batch needs at least 1 environment",
            ));
        }
        if threads == Some(0) {
            return Err(PyValueError::new_err("threads must be at least 1"));
        }
        let py = slf.py();
        let scene = slf.get();
        let threads = threads.unwrap_or_else(rayon::current_num_threads);
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(threads)
            .build()
            .map_err(|e| {
                PyRuntimeError::new_err(format!("cannot start {threads} worker threads: {e}"))
            })?;
        let inner = scene.inner.clone();
        let cell = detached(py, move || {
            Cell::new(inner, |s| s.batch_threads(size, threads))
        })?;
        let cell_partitions = cell.borrow_dependent().partitions();
        let nc = scene.inner.model().controls.len();
        let mut controls = vec![0.0; size * nc];
        cell.borrow_dependent().read_controls(&mut controls);
        let controls = PyArray1::from_vec(py, controls).reshape([size, nc])?;
        static NEXT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
        Ok(Sim {
            id: NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed),
            cell,
            pool: (cell_partitions > 1).then(|| Arc::new(pool)),
            scene: slf.unbind(),
            controls: controls.unbind(),
        })
    }

    fn __repr__(&self) -> String {
        let m = self.inner.model();
        format!(
            "Scene({:?}, dofs={}, params={}, controls={}, outputs={})",
            m.title.as_deref().unwrap_or(""),
            self.inner.dofs(),
            m.params.len(),
            m.controls.len(),
            self.inner.compiled.layout().outputs.len()
        )
    }
}

self_cell::self_cell!(
    /// A batch and the scene it borrows, kept together.
    struct Cell {
        owner: Arc<RsScene>,
        #[covariant]
        dependent: RsSim,
    }
);

/// The objective and its gradients per environment, from `Sim.gradient`.
#[pyclass(module = "joule", frozen, get_all)]
struct Gradient {
    /// The objective per environment, shape `(batch,)`.
    value: Py<PyArray1<f64>>,
    /// d objective / d parameter, shape `(batch, params)`.
    params: Py<PyArray2<f64>>,
    /// d objective / d control at each step, shape `(steps, batch, controls)`.
    controls: Py<PyAny>,
    /// d objective / d initial position of each free DOF, shape `(batch, dofs)`.
    x0: Py<PyArray2<f64>>,
    /// d objective / d initial velocity of each free DOF, shape `(batch, dofs)`.
    v0: Py<PyArray2<f64>>,
    /// What the forward and adjoint passes reported.
    events: Vec<Py<Event>>,
    /// The checkpoint interval used (the number of steps: nothing recomputed).
    checkpoint_every: usize,
}

/// The recorded steps of a closed-loop rollout, for reverse mode one step at
/// a time (a policy outside the simulator): from `Sim.tape()`, filled by
/// `Sim.step_taped`, walked back by `Sim.seed_outputs` and
/// `Sim.reverse_step`, closed by `Sim.tape_gradient`.
#[pyclass(module = "joule")]
struct Tape {
    inner: joule::Tape,
    /// The id of the batch it records (a tape belongs to one batch).
    owner: u64,
    /// Whether a step has been reversed (it records no more).
    reversed: bool,
}

#[pymethods]
impl Tape {
    /// Recorded steps not yet reversed.
    fn __len__(&self) -> usize {
        self.inner.len()
    }
}

/// What a fully reversed tape gives per environment: gradients with
/// respect to the parameters and the state the tape started from.
#[pyclass(module = "joule", frozen, get_all)]
struct TapeGradient {
    /// d L / d parameter, shape `(batch, params)`.
    params: Py<PyArray2<f64>>,
    /// d L / d initial positions, shape `(batch, dofs)`.
    x0: Py<PyArray2<f64>>,
    /// d L / d initial velocities, shape `(batch, dofs)`.
    v0: Py<PyArray2<f64>>,
}

/// An environment-major table of float64 (one row per environment).
type Table<'py> = Bound<'py, PyArray2<f64>>;

/// `[row][env]` to an array of shape `(batch, rows)`.
fn env_major<'py>(py: Python<'py>, rows: &[Vec<f64>], batch: usize) -> Bound<'py, PyArray2<f64>> {
    let n = rows.len();
    let mut out = vec![0.0; batch * n];
    for (r, row) in rows.iter().enumerate() {
        for (e, &x) in row.iter().enumerate() {
            out[e * n + r] = x;
        }
    }
    PyArray1::from_vec(py, out)
        .reshape([batch, n])
        .expect("batch * rows values")
}

/// A batch of environments of one scene.
///
/// Every array is environment-major (one row per environment) and float64.
/// `controls` is a persistent `(batch, controls)` buffer: write into it
/// (`sim.controls[:] = u`, or `sim.controls = u`) and `step`/`rollout`
/// apply it, each value clamped to its control's range.
#[pyclass(module = "joule")]
struct Sim {
    /// A number no other batch of this process has (tapes name their batch by it).
    id: u64,
    cell: Cell,
    /// The threads that step it, when it has more than one partition.
    pool: Option<Arc<rayon::ThreadPool>>,
    scene: Py<Scene>,
    controls: Py<PyArray2<f64>>,
}

impl Sim {
    fn sim(&self) -> &RsSim<'_> {
        self.cell.borrow_dependent()
    }

    fn batch_size(&self) -> usize {
        self.sim().batch()
    }

    fn model(&self) -> &joule::Model {
        self.cell.borrow_owner().model()
    }

    fn n_controls(&self) -> usize {
        self.model().controls.len()
    }

    fn n_params(&self) -> usize {
        self.model().params.len()
    }

    fn n_dofs(&self) -> usize {
        self.cell.borrow_owner().dofs()
    }

    fn n_rows(&self) -> usize {
        self.cell.borrow_owner().compiled.layout().output_rows()
    }

    fn dim_batch(&self) -> Dim {
        (self.batch_size(), "batch")
    }

    /// Writes the control buffer into the simulation.
    fn apply_controls(&mut self, py: Python<'_>) -> PyResult<()> {
        let buffer = self.controls.bind(py).readonly();
        let values = buffer
            .as_slice()
            .map_err(|_| PyRuntimeError::new_err("the control buffer is not contiguous"))?;
        self.cell
            .with_dependent_mut(|_, sim| sim.write_controls(values));
        Ok(())
    }

    fn check_tape(&self, tape: &Tape) -> PyResult<()> {
        if tape.owner != self.id {
            return Err(PyValueError::new_err(
                "this tape records another batch: start one with this batch's `tape()`",
            ));
        }
        Ok(())
    }

    fn param_index(&self, name: &str) -> PyResult<usize> {
        self.model()
            .params
            .iter()
            .position(|p| p.name == name)
            .ok_or_else(|| {
                let known: Vec<&str> = self
                    .model()
                    .params
                    .iter()
                    .map(|p| p.name.as_str())
                    .collect();
                PyValueError::new_err(format!(
                    "unknown parameter `{name}` (the scene's parameters: {})",
                    known.join(", ")
                ))
            })
    }

    fn table<'py>(
        &self,
        py: Python<'py>,
        values: Vec<f64>,
        cols: usize,
    ) -> PyResult<Bound<'py, PyArray2<f64>>> {
        PyArray1::from_vec(py, values).reshape([self.batch_size(), cols])
    }
}

#[pymethods]
impl Sim {
    /// Environments.
    #[getter]
    fn batch(&self) -> usize {
        self.batch_size()
    }

    /// The scene simulated.
    #[getter]
    fn scene(&self, py: Python<'_>) -> Py<Scene> {
        self.scene.clone_ref(py)
    }

    /// Steps taken.
    #[getter]
    fn steps(&self) -> usize {
        self.sim().steps()
    }

    /// Simulated time, seconds.
    #[getter]
    fn time(&self) -> f64 {
        self.sim().time()
    }

    /// Partitions the batch is split into (one thread steps each at a time).
    #[getter]
    fn partitions(&self) -> usize {
        self.sim().partitions()
    }

    /// Every environment's parameters, a new array of shape `(batch, params)`.
    /// Assigning an array of that shape sets them all.
    #[getter]
    fn get_params<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyArray2<f64>>> {
        let mut out = vec![0.0; self.batch_size() * self.n_params()];
        self.sim().read_params(&mut out);
        self.table(py, out, self.n_params())
    }

    #[setter]
    fn set_params(&mut self, values: &Bound<'_, PyAny>) -> PyResult<()> {
        let shape = [self.dim_batch(), (self.n_params(), "params")];
        let a = f64_array(values, "params", &shape)?;
        let v = slice(&a);
        self.cell
            .with_dependent_mut(|_, sim| sim.write_params(v))
            .map_err(|e| PyValueError::new_err(e.0))
    }

    /// One parameter in every environment, shape `(batch,)`.
    fn param<'py>(&self, py: Python<'py>, name: &str) -> PyResult<Bound<'py, PyArray1<f64>>> {
        let i = self.param_index(name)?;
        let (b, p) = (self.batch_size(), self.n_params());
        let mut all = vec![0.0; b * p];
        self.sim().read_params(&mut all);
        Ok(PyArray1::from_vec(
            py,
            (0..b).map(|e| all[e * p + i]).collect(),
        ))
    }

    /// Sets one parameter: a number for every environment, or an array of
    /// shape `(batch,)`, one value per environment.
    fn set_param(&mut self, name: &str, value: &Bound<'_, PyAny>) -> PyResult<()> {
        let i = self.param_index(name)?;
        let (b, p) = (self.batch_size(), self.n_params());
        let mut all = vec![0.0; b * p];
        self.sim().read_params(&mut all);
        if let Ok(x) = value.extract::<f64>() {
            (0..b).for_each(|e| all[e * p + i] = x);
        } else {
            let a = f64_array(value, name, &[self.dim_batch()])?;
            for (e, &x) in slice(&a).iter().enumerate() {
                all[e * p + i] = x;
            }
        }
        self.cell
            .with_dependent_mut(|_, sim| sim.write_params(&all))
            .map_err(|e| PyValueError::new_err(e.0))
    }

    /// The control buffer, shape `(batch, controls)`: the same array every
    /// time (write into it in place); `step` and `rollout` apply it.
    /// Assigning an array of that shape copies it in.
    #[getter]
    fn get_controls(&self, py: Python<'_>) -> Py<PyArray2<f64>> {
        self.controls.clone_ref(py)
    }

    #[setter]
    fn set_controls(&mut self, py: Python<'_>, values: &Bound<'_, PyAny>) -> PyResult<()> {
        let shape = [self.dim_batch(), (self.n_controls(), "controls")];
        let a = f64_array(values, "controls", &shape)?;
        let buffer = self.controls.bind(py);
        let mut rw = buffer.readwrite();
        rw.as_slice_mut()
            .map_err(|_| PyRuntimeError::new_err("the control buffer is not contiguous"))?
            .copy_from_slice(slice(&a));
        Ok(())
    }

    /// Positions and velocities of the free DOFs: two new arrays of shape
    /// `(batch, dofs)` (column names: `Scene.dof_names`).
    fn state<'py>(&self, py: Python<'py>) -> PyResult<(Table<'py>, Table<'py>)> {
        let n = self.batch_size() * self.n_dofs();
        let (mut x, mut v) = (vec![0.0; n], vec![0.0; n]);
        self.sim().read_state(&mut x, &mut v);
        Ok((
            self.table(py, x, self.n_dofs())?,
            self.table(py, v, self.n_dofs())?,
        ))
    }

    /// Sets the positions and velocities of every environment (arrays of
    /// shape `(batch, dofs)`), forgetting which had diverged.
    fn set_state(&mut self, x: &Bound<'_, PyAny>, v: &Bound<'_, PyAny>) -> PyResult<()> {
        let shape = [self.dim_batch(), (self.n_dofs(), "dofs")];
        let x = f64_array(x, "x", &shape)?;
        let v = f64_array(v, "v", &shape)?;
        let (xs, vs) = (slice(&x), slice(&v));
        if xs.iter().chain(vs).any(|a| !a.is_finite()) {
            return Err(PyValueError::new_err("the state must be finite"));
        }
        self.cell
            .with_dependent_mut(|_, sim| sim.write_state(xs, vs));
        Ok(())
    }

    /// Starts new episodes (in all environments, or the indices in `envs`):
    /// the scene's initial state with Gaussian noise of standard deviation
    /// `noise` added to every velocity component, then the scene's `reset`
    /// items drawn, from a generator seeded by `seed` (the same seed gives
    /// the same state).
    #[pyo3(signature = (envs = None, noise = 0.0, seed = 0))]
    fn reset(&mut self, envs: Option<Vec<i64>>, noise: f64, seed: u64) -> PyResult<()> {
        let b = self.batch_size();
        if !(noise.is_finite() && noise >= 0.0) {
            return Err(PyValueError::new_err(format!(
                "noise must be a finite standard deviation >= 0, got {noise}"
            )));
        }
        let envs: Vec<usize> = match envs {
            None => (0..b).collect(),
            Some(list) => list
                .into_iter()
                .map(|e| {
                    usize::try_from(e).ok().filter(|&e| e < b).ok_or_else(|| {
                        PyValueError::new_err(format!(
                            "environment {e} out of range (the batch has {b})"
                        ))
                    })
                })
                .collect::<PyResult<_>>()?,
        };
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(seed);
        self.cell.with_dependent_mut(|_, sim| {
            for e in envs {
                sim.reset_env(e, noise, &mut rng);
            }
        });
        Ok(())
    }

    /// A picture of environments `envs` (default: the first) as they are
    /// now, drawn as `joule run --gif` draws a frame (a cell of a grid per
    /// environment, the default view fitted to them): an RGB array of shape
    /// `(400, 640, 3)`, `uint8`.
    #[pyo3(signature = (envs = None))]
    fn render<'py>(
        &mut self,
        py: Python<'py>,
        envs: Option<Vec<usize>>,
    ) -> PyResult<Bound<'py, PyArray3<u8>>> {
        let envs = envs.unwrap_or_else(|| vec![0]);
        let batch = self.batch_size();
        if envs.is_empty() || envs.iter().any(|&e| e >= batch) {
            return Err(PyValueError::new_err(format!(
                "render draws environments of this batch of {batch}: give indices 0..{batch}, at least one"
            )));
        }
        let ([h, w], rgb) = self
            .cell
            .with_dependent_mut(|scene, sim| joule::viewer::picture(scene.model(), sim, &envs));
        PyArray1::from_vec(py, rgb).reshape([h, w, 3])
    }

    /// `n` steps of every environment at the control buffer's values, with
    /// the GIL released.
    #[pyo3(signature = (n = 1))]
    fn step(&mut self, py: Python<'_>, n: usize) -> PyResult<()> {
        self.apply_controls(py)?;
        let (cell, pool) = (&mut self.cell, self.pool.as_deref());
        detached_in(py, pool, move || {
            cell.with_dependent_mut(|_, sim| sim.rollout(n))
        })
    }

    /// `steps` steps (or one per entry of `controls`, shape
    /// `(steps, batch, controls)`; default: the control buffer at every
    /// step) with the GIL released. Returns the output table after every
    /// step, shape `(steps, batch, output_size)`, or None with `record=False`.
    #[pyo3(signature = (steps = None, controls = None, record = true))]
    fn rollout<'py>(
        &mut self,
        py: Python<'py>,
        steps: Option<usize>,
        controls: Option<&Bound<'py, PyAny>>,
        record: bool,
    ) -> PyResult<Option<Bound<'py, PyAny>>> {
        let (b, nc, rows) = (self.batch_size(), self.n_controls(), self.n_rows());
        let schedule = match controls {
            Some(c) => {
                let t = match (
                    steps,
                    c.getattr("shape")
                        .and_then(|s| s.get_item(0))
                        .and_then(|n| n.extract::<usize>()),
                ) {
                    (Some(t), _) => t,
                    (None, Ok(t)) => t,
                    (None, Err(_)) => {
                        return Err(PyValueError::new_err(format!(
                            "`controls` must be an array of shape (steps, batch={b}, controls={nc})"
                        )))
                    }
                };
                Some(f64_array(
                    c,
                    "controls",
                    &[(t, "steps"), (b, "batch"), (nc, "controls")],
                )?)
            }
            None => None,
        };
        let steps = match (&schedule, steps) {
            (Some(s), _) => s.shape()[0],
            (None, Some(t)) => t,
            (None, None) => {
                return Err(PyValueError::new_err(
                    "rollout needs `steps` or a `controls` schedule",
                ))
            }
        };
        if schedule.is_none() {
            self.apply_controls(py)?;
        }
        let plan = schedule.as_ref().map(slice);
        let (cell, pool) = (&mut self.cell, self.pool.as_deref());
        let recorded = detached_in(py, pool, move || {
            cell.with_dependent_mut(|_, sim| {
                let mut out = vec![0.0; if record { steps * b * rows } else { 0 }];
                for t in 0..steps {
                    if let Some(plan) = plan {
                        sim.write_controls(&plan[t * b * nc..(t + 1) * b * nc]);
                    }
                    sim.step();
                    if record {
                        sim.read_outputs(&mut out[t * b * rows..(t + 1) * b * rows]);
                    }
                }
                out
            })
        })?;
        if !record {
            return Ok(None);
        }
        Ok(Some(
            PyArray1::from_vec(py, recorded)
                .reshape([steps, b, rows])?
                .into_any(),
        ))
    }

    /// Every output at the current state, shape `(batch, output_size)`
    /// (columns: `Scene.outputs`). With `out` (a float64 array of that
    /// shape in C order) the table is written into it and `out` is returned.
    #[pyo3(signature = (out = None))]
    fn outputs<'py>(
        &mut self,
        py: Python<'py>,
        out: Option<Bound<'py, PyAny>>,
    ) -> PyResult<Bound<'py, PyAny>> {
        let (b, rows) = (self.batch_size(), self.n_rows());
        let expected = describe(&[(b, "batch"), (rows, "outputs")]);
        match out {
            Some(o) => {
                let array = o.cast::<numpy::PyArray2<f64>>().map_err(|_| {
                    PyValueError::new_err(format!(
                        "`out` must be a float64 array of shape {expected}"
                    ))
                })?;
                if array.shape() != [b, rows] || !array.is_c_contiguous() {
                    return Err(PyValueError::new_err(format!(
                        "`out` must be a C-contiguous float64 array of shape {expected}, got shape {:?}",
                        array.shape()
                    )));
                }
                {
                    let mut rw = array.try_readwrite().map_err(|e| {
                        PyValueError::new_err(format!("`out` cannot be written: {e}"))
                    })?;
                    let dst = rw.as_slice_mut().expect("checked to be contiguous");
                    let (cell, pool) = (&mut self.cell, self.pool.as_deref());
                    detached_in(py, pool, move || {
                        cell.with_dependent_mut(|_, sim| sim.read_outputs(dst))
                    })?;
                }
                Ok(o)
            }
            None => {
                let (cell, pool) = (&mut self.cell, self.pool.as_deref());
                let table = detached_in(py, pool, move || {
                    cell.with_dependent_mut(|_, sim| {
                        let mut t = vec![0.0; b * rows];
                        sim.read_outputs(&mut t);
                        t
                    })
                })?;
                Ok(self.table(py, table, rows)?.into_any())
            }
        }
    }

    /// One named output at the current state, shape `(batch, size)`.
    fn output<'py>(&mut self, py: Python<'py>, name: &str) -> PyResult<Bound<'py, PyArray2<f64>>> {
        let layout = self.cell.borrow_owner().compiled.layout();
        let Some(info) = layout.output(name).cloned() else {
            let known: Vec<&str> = layout.outputs.iter().map(|o| o.name.as_str()).collect();
            return Err(PyValueError::new_err(format!(
                "no output named `{name}` (the scene has: {})",
                known.join(", ")
            )));
        };
        let (b, rows) = (self.batch_size(), self.n_rows());
        let mut t = vec![0.0; b * rows];
        self.cell
            .with_dependent_mut(|_, sim| sim.read_outputs(&mut t));
        let mut out = Vec::with_capacity(b * info.len);
        for e in 0..b {
            out.extend_from_slice(&t[e * rows + info.offset..e * rows + info.offset + info.len]);
        }
        self.table(py, out, info.len)
    }

    /// Runs `steps` steps (or one per entry of `controls`, shape
    /// `(steps, batch, controls)`; default: the control buffer at every
    /// step) from the current state, leaving the batch at the end, and
    /// returns the objective per environment with its exact gradients
    /// (adjoint through time) with respect to the parameters, the control
    /// of every step and the initial state. The objective is the sum of
    /// those given: a `loss` (after the last step), a `reward` (summed over
    /// the steps), and `track=(output, targets)`, the squared distance of an
    /// output to targets of shape `(steps, batch, size)`.
    #[pyo3(signature = (loss = None, reward = None, steps = None, controls = None, track = None))]
    fn gradient(
        &mut self,
        py: Python<'_>,
        loss: Option<String>,
        reward: Option<String>,
        steps: Option<usize>,
        controls: Option<&Bound<'_, PyAny>>,
        track: Option<(String, Bound<'_, PyAny>)>,
    ) -> PyResult<Gradient> {
        let (b, nc) = (self.batch_size(), self.n_controls());
        if loss.is_none() && reward.is_none() && track.is_none() {
            return Err(PyValueError::new_err(
                "gradient needs an objective: `loss=`, `reward=` or `track=`",
            ));
        }
        let steps_of = |c: &Bound<'_, PyAny>| -> Option<usize> {
            c.getattr("shape").ok()?.get_item(0).ok()?.extract().ok()
        };
        let steps = match (steps, controls) {
            (Some(t), _) => t,
            (None, Some(c)) => steps_of(c).ok_or_else(|| {
                PyValueError::new_err(format!(
                    "`controls` must be an array of shape (steps, batch={b}, controls={nc})"
                ))
            })?,
            (None, None) => {
                return Err(PyValueError::new_err(
                    "gradient needs `steps` or a `controls` schedule",
                ))
            }
        };
        let mut objective = Objective {
            loss,
            reward,
            track: None,
        };
        if let Some((name, targets)) = track {
            let layout = self.cell.borrow_owner().compiled.layout();
            let size = layout
                .output(&name)
                .map(|o| o.len)
                .ok_or_else(|| PyValueError::new_err(format!("no output named `{name}`")))?;
            let a = f64_array(
                &targets,
                "track targets",
                &[(steps, "steps"), (b, "batch"), (size, "size")],
            )?;
            let t = slice(&a);
            let targets = (0..steps)
                .map(|s| {
                    (0..size)
                        .map(|k| (0..b).map(|e| t[(s * b + e) * size + k]).collect())
                        .collect()
                })
                .collect();
            objective.track = Some(joule::Track {
                output: name,
                targets,
                chamfer: false,
            });
        }
        let schedule = match controls {
            Some(c) => {
                let a = f64_array(
                    c,
                    "controls",
                    &[(steps, "steps"), (b, "batch"), (nc, "controls")],
                )?;
                let u = slice(&a);
                Some(
                    (0..steps)
                        .map(|s| {
                            (0..nc)
                                .map(|k| (0..b).map(|e| u[(s * b + e) * nc + k]).collect())
                                .collect()
                        })
                        .collect::<Vec<Vec<Vec<f64>>>>(),
                )
            }
            None => {
                self.apply_controls(py)?;
                None
            }
        };
        let (cell, pool) = (&mut self.cell, self.pool.as_deref());
        let result = detached_in(py, pool, move || {
            cell.with_dependent_mut(|_, sim| match &schedule {
                Some(s) => sim.gradient_schedule(&objective, s),
                None => sim.gradient(&objective, steps),
            })
        })?
        .map_err(|e| PyValueError::new_err(e.0))?;
        let mut du = vec![0.0; steps * b * nc];
        for (s, step) in result.controls.iter().enumerate() {
            for (k, row) in step.iter().enumerate() {
                for (e, &x) in row.iter().enumerate() {
                    du[(s * b + e) * nc + k] = x;
                }
            }
        }
        Ok(Gradient {
            value: PyArray1::from_vec(py, result.value).unbind(),
            params: env_major(py, &result.params, b).unbind(),
            controls: PyArray1::from_vec(py, du)
                .reshape([steps, b, nc])?
                .into_any()
                .unbind(),
            x0: env_major(py, &result.x0, b).unbind(),
            v0: env_major(py, &result.v0, b).unbind(),
            events: events(py, &result.events)?,
            checkpoint_every: result.checkpoint_every,
        })
    }

    /// An empty tape starting at the current state (see `Tape`).
    fn tape(&self) -> Tape {
        Tape {
            inner: self.sim().tape(),
            owner: self.id,
            reversed: false,
        }
    }

    /// One step of every environment at the control buffer's values,
    /// recorded on `tape` (GIL released).
    fn step_taped(&mut self, py: Python<'_>, tape: &mut Tape) -> PyResult<()> {
        self.check_tape(tape)?;
        if tape.reversed {
            return Err(PyValueError::new_err(
                "a tape records only before it is reversed: start a new tape",
            ));
        }
        self.apply_controls(py)?;
        let (cell, pool) = (&mut self.cell, self.pool.as_deref());
        let inner = &mut tape.inner;
        detached_in(py, pool, move || {
            cell.with_dependent_mut(|_, sim| sim.step_taped(inner))
        })
    }

    /// Adds `seed . outputs` at the tape's head position (the last recorded
    /// state not yet reversed) to the objective being carried back: `seed`
    /// has the shape of the output table, `(batch, output_size)`.
    fn seed_outputs(
        &mut self,
        py: Python<'_>,
        tape: &mut Tape,
        seed: &Bound<'_, PyAny>,
    ) -> PyResult<()> {
        self.check_tape(tape)?;
        let (b, rows) = (self.batch_size(), self.n_rows());
        let a = f64_array(seed, "seed", &[(b, "batch"), (rows, "outputs")])?;
        let t = slice(&a);
        let by_row: Vec<Vec<f64>> = (0..rows)
            .map(|r| (0..b).map(|e| t[e * rows + r]).collect())
            .collect();
        let (cell, pool) = (&mut self.cell, self.pool.as_deref());
        let inner = &mut tape.inner;
        detached_in(py, pool, move || {
            cell.with_dependent_mut(|_, sim| sim.seed_outputs(inner, &by_row))
        })?
        .map_err(|e| PyValueError::new_err(e.0))
    }

    /// Reverses the last recorded step not yet reversed and returns
    /// dL/d(its controls), shape `(batch, controls)`.
    fn reverse_step<'py>(&mut self, py: Python<'py>, tape: &mut Tape) -> PyResult<Table<'py>> {
        self.check_tape(tape)?;
        if tape.inner.is_empty() {
            return Err(PyValueError::new_err("nothing left to reverse on the tape"));
        }
        tape.reversed = true;
        let (cell, pool) = (&mut self.cell, self.pool.as_deref());
        let inner = &mut tape.inner;
        let du = detached_in(py, pool, move || {
            cell.with_dependent_mut(|_, sim| sim.reverse_step(inner))
        })?;
        Ok(env_major(py, &du, self.batch_size()))
    }

    /// The gradients with respect to the parameters and the tape's start
    /// state, once every step has been reversed.
    fn tape_gradient(&mut self, py: Python<'_>, tape: &Tape) -> PyResult<TapeGradient> {
        self.check_tape(tape)?;
        if !tape.inner.is_empty() {
            return Err(PyValueError::new_err(format!(
                "{} recorded steps are not reversed yet",
                tape.inner.len()
            )));
        }
        let b = self.batch_size();
        let g = self
            .cell
            .with_dependent_mut(|_, sim| sim.tape_gradient(&tape.inner));
        Ok(TapeGradient {
            params: env_major(py, &g.params, b).unbind(),
            x0: env_major(py, &g.x0, b).unbind(),
            v0: env_major(py, &g.v0, b).unbind(),
        })
    }

    /// Sets the most bytes of recorded states a gradient may keep (beyond
    /// it, checkpoints and recomputation: the same gradients, one more
    /// forward pass).
    fn set_gradient_memory(&mut self, bytes: usize) {
        self.cell
            .with_dependent_mut(|_, sim| sim.set_gradient_memory(bytes));
    }

    /// Everything reported so far (divergence, non-convergence), oldest first.
    #[getter]
    fn events(&self, py: Python<'_>) -> PyResult<Vec<Py<Event>>> {
        events(py, &self.sim().events)
    }

    /// Forgets the events reported so far.
    fn clear_events(&mut self) {
        self.cell.with_dependent_mut(|_, sim| sim.events.clear());
    }

    fn __repr__(&self) -> String {
        format!(
            "Sim(batch={}, steps={}, partitions={})",
            self.batch_size(),
            self.sim().steps(),
            self.sim().partitions()
        )
    }
}

/// The native module: `joule` re-exports everything in it.
#[pymodule]
fn _joule(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_class::<Scene>()?;
    m.add_class::<Sim>()?;
    m.add_class::<Gradient>()?;
    m.add_class::<Output>()?;
    m.add_class::<Event>()?;
    m.add_class::<Tape>()?;
    m.add_class::<TapeGradient>()?;
    m.add("CompileError", m.py().get_type::<CompileError>())?;
    m.add("__version__", env!("CARGO_PKG_VERSION"))?;
    Ok(())
}
