//! Checking and converting the arrays Python hands in: float64 arrays in C
//! order are read in place; other real arrays (float32, integers) and nested
//! sequences are converted once; anything else, or a wrong shape, is a
//! `ValueError` that names the expected shape.

use numpy::{PyArrayDyn, PyArrayMethods, PyReadonlyArrayDyn, PyUntypedArrayMethods};
use pyo3::exceptions::PyValueError;
use pyo3::prelude::*;

/// A dimension of an expected shape, with its meaning for the error message.
pub type Dim = (usize, &'static str);

/// The expected shape as Python writes it: `(64, 3)` with its meaning, e.g.
/// `(batch=64, controls=3)`.
pub fn describe(shape: &[Dim]) -> String {
    let parts: Vec<String> = shape
        .iter()
        .map(|(n, what)| format!("{what}={n}"))
        .collect();
    if parts.len() == 1 {
        format!("({},)", parts[0])
    } else {
        format!("({})", parts.join(", "))
    }
}

/// `obj` as a read-only float64 array of exactly `shape`, without a copy
/// where it already is one in C order.
pub fn f64_array<'py>(
    obj: &Bound<'py, PyAny>,
    name: &str,
    shape: &[Dim],
) -> PyResult<PyReadonlyArrayDyn<'py, f64>> {
    let py = obj.py();
    let expected = describe(shape);
    let array = match obj.cast::<PyArrayDyn<f64>>() {
        Ok(a) if a.is_c_contiguous() => a.clone(),
        _ => {
            // One conversion: a real dtype (float, integer) or a sequence of numbers.
            let np = py.import("numpy")?;
            let converted = np.call_method1("asarray", (obj,)).map_err(|e| {
                PyValueError::new_err(format!(
                    "`{name}` must be a float64 array of shape {expected}: {e}"
                ))
            })?;
            let kind: String = converted
                .getattr("dtype")?
                .getattr("kind")?
                .extract()
                .unwrap_or_default();
            if !matches!(kind.as_str(), "f" | "i" | "u") {
                let dtype = converted.getattr("dtype")?.str()?.to_string();
                return Err(PyValueError::new_err(format!(
                    "`{name}` must be a float64 array of shape {expected}, got dtype {dtype}"
                )));
            }
            let kwargs = pyo3::types::PyDict::new(py);
            kwargs.set_item("dtype", "float64")?;
            let c = np
                .getattr("ascontiguousarray")?
                .call((converted,), Some(&kwargs))?;
            c.cast_into::<PyArrayDyn<f64>>()
                .map_err(|_| PyValueError::new_err(format!("`{name}` must be a float64 array")))?
        }
    };
    let got = array.shape().to_vec();
    let want: Vec<usize> = shape.iter().map(|d| d.0).collect();
    if got != want {
        return Err(PyValueError::new_err(format!(
            "`{name}` must have shape {expected}, got {got:?}"
        )));
    }
    Ok(array.readonly())
}

/// The values of a checked array, in C order.
pub fn slice<'a>(a: &'a PyReadonlyArrayDyn<'_, f64>) -> &'a [f64] {
    a.as_slice().expect("checked to be C-contiguous")
}
