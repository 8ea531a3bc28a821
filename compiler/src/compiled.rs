//! A compiled scene: the model, its kernel IR and layout, and (for the JIT
//! backend) the machine code. This is what the runtime consumes;
//! [`crate::passes::compile`] builds it.

use crate::abi::{Buffers, Real};
use crate::codegen::Jit;
use crate::interp;
use crate::kernels::{KernelKind, Kernels, Layout};
use crate::model::Model;
use crate::passes::Timings;
use joule_grammar::Diagnostic;

/// How kernels are executed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Backend {
    /// Cranelift machine code (default).
    #[default]
    Jit,
    /// The reference interpreter.
    Interp,
}

/// A scene compiled to kernels.
pub struct CompiledScene {
    /// The resolved model.
    pub model: Model,
    /// Kernel IR and buffer layout.
    pub kernels: Kernels,
    /// Machine code, for the JIT backend.
    jit: Option<Jit>,
    /// Wall time of every pass that ran, in order (see [`crate::passes`]).
    pub timings: Timings,
    /// Warnings about the compiled kernels (f32 constants that round to 0
    /// or infinity), without spans.
    pub warnings: Vec<Diagnostic>,
}

/// Buffers do not fit the kernels' layout, or the environment range is invalid.
#[derive(Debug, Clone, PartialEq)]
pub struct RangeError(pub String);

impl std::fmt::Display for RangeError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for RangeError {}

impl CompiledScene {
    /// The passes' results (see [`crate::passes::compile`]).
    pub(crate) fn from_passes(
        model: Model,
        kernels: Kernels,
        jit: Option<Jit>,
        timings: Timings,
        warnings: Vec<Diagnostic>,
    ) -> Self {
        CompiledScene {
            model,
            kernels,
            jit,
            timings,
            warnings,
        }
    }

    /// The buffer layout.
    pub fn layout(&self) -> &Layout {
        &self.kernels.layout
    }

    /// The backend in use.
    pub fn backend(&self) -> Backend {
        if self.jit.is_some() {
            Backend::Jit
        } else {
            Backend::Interp
        }
    }

    /// Zeroed f64 buffers for a batch (scenes with the default precision).
    pub fn buffers(&self, batch: usize) -> Buffers {
        Buffers::new(self.layout(), batch)
    }

    /// Zeroed buffers of either precision (it must match the scene's `precision`).
    pub fn buffers_of<T: Real>(&self, batch: usize) -> Buffers<T> {
        Buffers::new(self.layout(), batch)
    }

    /// Runs a kernel on environments `begin..end` (rounded out to whole lanes).
    /// Kernels accumulate into their outputs; clear them first where needed.
    pub fn run<T: Real>(
        &self,
        kind: KernelKind,
        buf: &mut Buffers<T>,
        begin: usize,
        end: usize,
    ) -> Result<(), RangeError> {
        self.check(buf, begin, end)?;
        let begin = begin / T::LANES * T::LANES;
        let end = end.div_ceil(T::LANES) * T::LANES;
        let ir = self.kernels.get(kind);
        let args = buf.args();
        match &self.jit {
            // SAFETY: `check` verified the precision, every buffer against the layout
            // and the range against the stride.
            Some(jit) => unsafe {
                (jit.kernel(ir.kind).0)(&args as *const _ as *const u8, begin, end)
            },
            // SAFETY: as above.
            None => unsafe { interp::run(ir, &args, begin, end) },
        }
        Ok(())
    }

    fn check<T: Real>(&self, b: &Buffers<T>, begin: usize, end: usize) -> Result<(), RangeError> {
        let l = self.layout();
        let s = b.stride;
        if T::PRECISION != self.model.settings.precision {
            return Err(RangeError(format!(
                "the scene is compiled for {:?} but the buffers hold {:?}",
                self.model.settings.precision,
                T::PRECISION
            )));
        }
        if !s.is_multiple_of(T::LANES)
            || begin > end
            || end > b.batch.max(1).div_ceil(T::LANES) * T::LANES
            || end > s
        {
            return Err(RangeError(format!(
                "environment range {begin}..{end} does not fit a batch of {} (stride {s})",
                b.batch
            )));
        }
        let state = l.state_rows() * s;
        let sizes = [
            ("x", b.x.len(), state),
            ("v", b.v.len(), state),
            ("prev_x", b.prev_x.len(), state),
            ("prev_v", b.prev_v.len(), state),
            ("params", b.params.len(), l.params * s),
            ("controls", b.controls.len(), l.controls * s),
            ("seed", b.seed.len(), state),
            ("out_seed", b.out_seed.len(), l.output_rows() * s),
            ("energy", b.energy.len(), s),
            ("grad", b.grad.len(), state),
            ("hv", b.hv.len(), state),
            (
                "blocks",
                b.blocks.len(),
                l.block_rows[0].max(l.block_rows[1]) * s,
            ),
            ("d_x", b.d_x.len(), state),
            ("d_v", b.d_v.len(), state),
            ("d_prev_x", b.d_prev_x.len(), state),
            ("d_prev_v", b.d_prev_v.len(), state),
            ("d_params", b.d_params.len(), l.params * s),
            ("d_controls", b.d_controls.len(), l.controls * s),
            ("outputs", b.outputs.len(), l.output_rows() * s),
            ("held_x", b.held_x.len(), state),
            ("d_held_x", b.d_held_x.len(), state),
        ];
        for (name, have, need) in sizes {
            if have < need {
                return Err(RangeError(format!(
                    "buffer `{name}` has {have} values, the layout needs {need}"
                )));
            }
        }
        Ok(())
    }
}
