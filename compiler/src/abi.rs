//! The kernel ABI: the argument block every kernel receives, and an owning set
//! of buffers that produces one.
//!
//! Every buffer is structure-of-arrays: value `row` of environment `env` is at
//! `buf[row * stride + env]`, with `stride` the batch padded to the lane width.
//! A kernel is `unsafe extern "C" fn(args: *const KernelArgs, begin, end)` and
//! processes environments `begin..end` (multiples of the lane width).

use crate::kernels::Layout;
use crate::model::Precision;

/// A kernel element type: `f64` (lanes `f64x2`) or `f32` (lanes `f32x4`).
pub trait Real: Copy + Default + PartialEq + std::fmt::Debug + Send + Sync + 'static {
    /// The precision this type implements.
    const PRECISION: Precision;
    /// Environments per SIMD vector (16-byte vectors).
    const LANES: usize;
    /// The distance from 1 to the next value (machine epsilon), as f64.
    const EPSILON: f64;
    /// Widens to f64.
    fn to_f64(self) -> f64;
    /// Rounds from f64.
    fn from_f64(x: f64) -> Self;
}

impl Real for f64 {
    const PRECISION: Precision = Precision::F64;
    const LANES: usize = 2;
    const EPSILON: f64 = f64::EPSILON;
    fn to_f64(self) -> f64 {
        self
    }
    fn from_f64(x: f64) -> Self {
        x
    }
}

impl Real for f32 {
    const PRECISION: Precision = Precision::F32;
    const LANES: usize = 4;
    const EPSILON: f64 = f32::EPSILON as f64;
    fn to_f64(self) -> f64 {
        self as f64
    }
    fn from_f64(x: f64) -> Self {
        x as f32
    }
}

/// Environments per SIMD vector at a precision.
pub fn lanes(p: Precision) -> usize {
    match p {
        Precision::F64 => f64::LANES,
        Precision::F32 => f32::LANES,
    }
}

/// Pointers and stride passed to every kernel. Field order is ABI: the code
/// generator loads field `k` at byte offset `8 * k`.
#[repr(C)]
#[derive(Debug)]
pub struct KernelArgs<T: Real> {
    /// Environments per row (a multiple of the lane count).
    pub stride: u64,
    /// Positions (state rows).
    pub x: *const T,
    /// Velocities (state rows).
    pub v: *const T,
    /// Positions at the start of the step (state rows).
    pub prev_x: *const T,
    /// Velocities at the start of the step (state rows).
    pub prev_v: *const T,
    /// Parameters.
    pub params: *const T,
    /// Controls.
    pub controls: *const T,
    /// Tangent or adjoint vector (state rows).
    pub seed: *const T,
    /// Adjoint of the outputs (output rows).
    pub out_seed: *const T,
    /// Energy, one row.
    pub energy: *mut T,
    /// Gradient (state rows).
    pub grad: *mut T,
    /// Hessian-vector product (state rows).
    pub hv: *mut T,
    /// Hessian blocks.
    pub blocks: *mut T,
    /// VJP into positions (state rows).
    pub d_x: *mut T,
    /// VJP into velocities (state rows).
    pub d_v: *mut T,
    /// VJP into start-of-step positions (state rows).
    pub d_prev_x: *mut T,
    /// VJP into start-of-step velocities (state rows).
    pub d_prev_v: *mut T,
    /// VJP into parameters.
    pub d_params: *mut T,
    /// VJP into controls.
    pub d_controls: *mut T,
    /// Outputs (output rows).
    pub outputs: *mut T,
    /// Positions at the step's solution, held fixed in its potential (state rows).
    pub held_x: *const T,
    /// VJP into the held positions (state rows).
    pub d_held_x: *mut T,
}

/// Number of pointer fields after `stride`.
pub const POINTER_FIELDS: usize = 21;

/// A cache line: the unit of [`AlignedVec`] storage.
#[repr(C, align(64))]
#[derive(Clone, Copy)]
struct Line([u8; 64]);

/// A fixed-length, zero-initialised array of `T` whose storage starts on a
/// 64-byte boundary (cache lines; every SIMD row load is aligned when the
/// stride is a multiple of the lane count).
#[derive(Clone)]
pub struct AlignedVec<T: Real> {
    lines: Vec<Line>,
    len: usize,
    _t: std::marker::PhantomData<T>,
}

impl<T: Real> AlignedVec<T> {
    /// `len` zeros (all-zero bits are 0.0 for f32 and f64).
    pub fn zeros(len: usize) -> Self {
        let bytes = len * std::mem::size_of::<T>();
        AlignedVec {
            lines: vec![Line([0; 64]); bytes.div_ceil(64)],
            len,
            _t: std::marker::PhantomData,
        }
    }
}

impl<T: Real> std::ops::Deref for AlignedVec<T> {
    type Target = [T];
    fn deref(&self) -> &[T] {
        // SAFETY: the lines hold at least `len` values of T (plain floats, any bits
        // valid), suitably aligned (64 >= align_of::<T>()).
        unsafe { std::slice::from_raw_parts(self.lines.as_ptr().cast::<T>(), self.len) }
    }
}

impl<T: Real> std::ops::DerefMut for AlignedVec<T> {
    fn deref_mut(&mut self) -> &mut [T] {
        // SAFETY: as in `deref`, and `self` is borrowed mutably.
        unsafe { std::slice::from_raw_parts_mut(self.lines.as_mut_ptr().cast::<T>(), self.len) }
    }
}

impl<T: Real> PartialEq for AlignedVec<T> {
    fn eq(&self, other: &Self) -> bool {
        **self == **other
    }
}

impl<T: Real> std::fmt::Debug for AlignedVec<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        (**self).fmt(f)
    }
}

/// Owning buffers for a batch, sized from a [`Layout`], each 64-byte aligned;
/// the pinned rows of `x` and `prev_x` hold the fixed DOFs' values.
#[derive(Debug, Clone, PartialEq)]
pub struct Buffers<T: Real = f64> {
    /// Environments.
    pub batch: usize,
    /// Padded row length.
    pub stride: usize,
    pub x: AlignedVec<T>,
    pub v: AlignedVec<T>,
    pub prev_x: AlignedVec<T>,
    pub prev_v: AlignedVec<T>,
    pub params: AlignedVec<T>,
    pub controls: AlignedVec<T>,
    pub seed: AlignedVec<T>,
    pub out_seed: AlignedVec<T>,
    pub energy: AlignedVec<T>,
    pub grad: AlignedVec<T>,
    pub hv: AlignedVec<T>,
    pub blocks: AlignedVec<T>,
    pub d_x: AlignedVec<T>,
    pub d_v: AlignedVec<T>,
    pub d_prev_x: AlignedVec<T>,
    pub d_prev_v: AlignedVec<T>,
    pub d_params: AlignedVec<T>,
    pub d_controls: AlignedVec<T>,
    pub outputs: AlignedVec<T>,
    pub held_x: AlignedVec<T>,
    pub d_held_x: AlignedVec<T>,
}

impl<T: Real> Buffers<T> {
    /// Zeroed buffers for `batch` environments (pinned rows filled).
    pub fn new(layout: &Layout, batch: usize) -> Self {
        let stride = batch.div_ceil(T::LANES).max(1) * T::LANES;
        let state = layout.state_rows() * stride;
        let z = |rows: usize| AlignedVec::zeros(rows * stride);
        let mut b = Buffers {
            batch,
            stride,
            x: z(layout.state_rows()),
            v: z(layout.state_rows()),
            prev_x: z(layout.state_rows()),
            prev_v: z(layout.state_rows()),
            params: z(layout.params),
            controls: z(layout.controls),
            seed: AlignedVec::zeros(state),
            out_seed: z(layout.output_rows()),
            energy: z(1),
            grad: AlignedVec::zeros(state),
            hv: AlignedVec::zeros(state),
            blocks: z(layout.block_rows[0].max(layout.block_rows[1])),
            d_x: AlignedVec::zeros(state),
            d_v: AlignedVec::zeros(state),
            d_prev_x: AlignedVec::zeros(state),
            d_prev_v: AlignedVec::zeros(state),
            d_params: z(layout.params),
            d_controls: z(layout.controls),
            outputs: z(layout.output_rows()),
            held_x: z(layout.state_rows()),
            d_held_x: AlignedVec::zeros(state),
        };
        for (k, value) in layout.pinned.iter().enumerate() {
            let row = layout.dofs + k;
            for buf in [&mut b.x, &mut b.prev_x, &mut b.held_x] {
                buf[row * stride..(row + 1) * stride].fill(T::from_f64(*value));
            }
        }
        b
    }

    /// Bytes one environment takes across the buffers [`Buffers::new`]
    /// allocates for `layout`.
    pub fn lane_bytes(layout: &Layout) -> usize {
        let state = layout.state_rows();
        // x, v, prev_x, prev_v, held_x, seed, grad, hv and the five VJPs into state.
        let rows = 13 * state
            + 2 * (layout.params + layout.controls)
            + 2 * layout.output_rows()
            + 1
            + layout.block_rows[0].max(layout.block_rows[1]);
        rows * std::mem::size_of::<T>()
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
            &mut self.d_held_x,
        ] {
            buf.fill(T::default());
        }
    }

    /// The argument block pointing into these buffers. It borrows `self`
    /// mutably for as long as kernels may write through it.
    pub fn args(&mut self) -> KernelArgs<T> {
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
            held_x: self.held_x.as_ptr(),
            d_held_x: self.d_held_x.as_mut_ptr(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buffers_are_cache_line_aligned_and_lane_padded() {
        let layout = Layout {
            dofs: 7,
            pinned: vec![0.5],
            params: 2,
            controls: 1,
            outputs: vec![],
            block_rows: [3, 0],
        };
        let mut b = Buffers::<f64>::new(&layout, 3);
        assert_eq!(b.stride, 4);
        let a = b.args();
        for p in [a.x, a.v, a.params, a.seed] {
            assert_eq!(p as usize % 64, 0);
        }
        assert_eq!(a.grad as usize % 64, 0);
        assert_eq!(b.x.len(), 8 * 4);
        assert!(
            b.x[7 * 4..].iter().all(|v| *v == 0.5),
            "pinned row holds its value"
        );
        let f = Buffers::<f32>::new(&layout, 5);
        assert_eq!(f.stride, 8);
        assert_eq!(f.x.as_ptr() as usize % 64, 0);
        // lane_bytes counts what new allocates per environment.
        let values: usize = [
            &f.x,
            &f.v,
            &f.prev_x,
            &f.prev_v,
            &f.params,
            &f.controls,
            &f.seed,
            &f.out_seed,
            &f.energy,
            &f.grad,
            &f.hv,
            &f.blocks,
            &f.d_x,
            &f.d_v,
            &f.d_prev_x,
            &f.d_prev_v,
            &f.d_params,
            &f.d_controls,
            &f.outputs,
            &f.held_x,
            &f.d_held_x,
        ]
        .iter()
        .map(|b| b.len())
        .sum();
        assert_eq!(Buffers::<f32>::lane_bytes(&layout), values / f.stride * 4);
    }
}
