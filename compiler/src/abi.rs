//! The kernel ABI: the argument block every kernel receives, and an owning set
//! of buffers that produces one.
//!
//! Every buffer is structure-of-arrays: value `row` of environment `env` is at
//! `buf[row * stride + env]`, with `stride` the batch padded to the lane width.
//! A kernel is `unsafe extern "C" fn(args: *const KernelArgs, begin, end)` and
//! processes environments `begin..end` (multiples of the lane width).

use crate::kernels::Layout;

/// SIMD lanes per vector (f64x2).
pub const LANES: usize = 2;

/// Pointers and stride passed to every kernel. Field order is ABI: the code
/// generator loads field `k` at byte offset `8 * k`.
#[repr(C)]
#[derive(Debug)]
pub struct KernelArgs {
    /// Environments per row (a multiple of [`LANES`]).
    pub stride: u64,
    /// Positions (state rows).
    pub x: *const f64,
    /// Velocities (state rows).
    pub v: *const f64,
    /// Positions at the start of the step (state rows).
    pub prev_x: *const f64,
    /// Velocities at the start of the step (state rows).
    pub prev_v: *const f64,
    /// Parameters.
    pub params: *const f64,
    /// Controls.
    pub controls: *const f64,
    /// Tangent or adjoint vector (state rows).
    pub seed: *const f64,
    /// Adjoint of the outputs (output rows).
    pub out_seed: *const f64,
    /// Energy, one row.
    pub energy: *mut f64,
    /// Gradient (state rows).
    pub grad: *mut f64,
    /// Hessian-vector product (state rows).
    pub hv: *mut f64,
    /// Hessian blocks.
    pub blocks: *mut f64,
    /// VJP into positions (state rows).
    pub d_x: *mut f64,
    /// VJP into velocities (state rows).
    pub d_v: *mut f64,
    /// VJP into start-of-step positions (state rows).
    pub d_prev_x: *mut f64,
    /// VJP into start-of-step velocities (state rows).
    pub d_prev_v: *mut f64,
    /// VJP into parameters.
    pub d_params: *mut f64,
    /// VJP into controls.
    pub d_controls: *mut f64,
    /// Outputs (output rows).
    pub outputs: *mut f64,
}

/// Number of pointer fields after `stride`.
pub const POINTER_FIELDS: usize = 19;

/// Owning buffers for a batch, sized from a [`Layout`]; the pinned rows of
/// `x` and `prev_x` hold the fixed DOFs' values.
#[derive(Debug, Clone, PartialEq)]
pub struct Buffers {
    /// Environments.
    pub batch: usize,
    /// Padded row length.
    pub stride: usize,
    pub x: Vec<f64>,
    pub v: Vec<f64>,
    pub prev_x: Vec<f64>,
    pub prev_v: Vec<f64>,
    pub params: Vec<f64>,
    pub controls: Vec<f64>,
    pub seed: Vec<f64>,
    pub out_seed: Vec<f64>,
    pub energy: Vec<f64>,
    pub grad: Vec<f64>,
    pub hv: Vec<f64>,
    pub blocks: Vec<f64>,
    pub d_x: Vec<f64>,
    pub d_v: Vec<f64>,
    pub d_prev_x: Vec<f64>,
    pub d_prev_v: Vec<f64>,
    pub d_params: Vec<f64>,
    pub d_controls: Vec<f64>,
    pub outputs: Vec<f64>,
}

impl Buffers {
    /// Zeroed buffers for `batch` environments (pinned rows filled).
    pub fn new(layout: &Layout, batch: usize) -> Self {
        let stride = batch.div_ceil(LANES).max(1) * LANES;
        let state = layout.state_rows() * stride;
        let z = |rows: usize| vec![0.0; rows * stride];
        let mut b = Buffers {
            batch,
            stride,
            x: z(layout.state_rows()),
            v: z(layout.state_rows()),
            prev_x: z(layout.state_rows()),
            prev_v: z(layout.state_rows()),
            params: z(layout.params),
            controls: z(layout.controls),
            seed: vec![0.0; state],
            out_seed: z(layout.output_rows()),
            energy: z(1),
            grad: vec![0.0; state],
            hv: vec![0.0; state],
            blocks: z(layout.block_rows[0].max(layout.block_rows[1])),
            d_x: vec![0.0; state],
            d_v: vec![0.0; state],
            d_prev_x: vec![0.0; state],
            d_prev_v: vec![0.0; state],
            d_params: z(layout.params),
            d_controls: z(layout.controls),
            outputs: z(layout.output_rows()),
        };
        for (k, value) in layout.pinned.iter().enumerate() {
            let row = layout.dofs + k;
            for buf in [&mut b.x, &mut b.prev_x] {
                buf[row * stride..(row + 1) * stride].fill(*value);
            }
        }
        b
    }

    /// Zeroes every output buffer (kernels accumulate).
    pub fn clear_outputs(&mut self) {
        for buf in [
            &mut self.energy,
            &mut self.grad,
            &mut self.hv,
            &mut self.blocks,
            &mut self.d_x,
            &mut self.d_v,
            &mut self.d_prev_x,
            &mut self.d_prev_v,
            &mut self.d_params,
            &mut self.d_controls,
            &mut self.outputs,
        ] {
            buf.fill(0.0);
        }
    }

    /// The argument block pointing into these buffers. It borrows `self`
    /// mutably for as long as kernels may write through it.
    pub fn args(&mut self) -> KernelArgs {
        KernelArgs {
            stride: self.stride as u64,
            x: self.x.as_ptr(),
            v: self.v.as_ptr(),
            prev_x: self.prev_x.as_ptr(),
            prev_v: self.prev_v.as_ptr(),
            params: self.params.as_ptr(),
            controls: self.controls.as_ptr(),
            seed: self.seed.as_ptr(),
            out_seed: self.out_seed.as_ptr(),
            energy: self.energy.as_mut_ptr(),
            grad: self.grad.as_mut_ptr(),
            hv: self.hv.as_mut_ptr(),
            blocks: self.blocks.as_mut_ptr(),
            d_x: self.d_x.as_mut_ptr(),
            d_v: self.d_v.as_mut_ptr(),
            d_prev_x: self.d_prev_x.as_mut_ptr(),
            d_prev_v: self.d_prev_v.as_mut_ptr(),
            d_params: self.d_params.as_mut_ptr(),
            d_controls: self.d_controls.as_mut_ptr(),
            outputs: self.outputs.as_mut_ptr(),
        }
    }
}
