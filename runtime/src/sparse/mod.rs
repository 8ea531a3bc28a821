//! The static-sparsity direct solver of the implicit step's Newton systems
//! `(M/h^2 + H_E + H_hD) dx = rhs` (and of the adjoint's, with the surrogate
//! Hessians).
//!
//! Everything structural is planned once, when the scene is compiled: the
//! kernels' instance tables say which DOFs each Hessian block couples, the
//! mass model adds its body blocks, and together they give the matrix's
//! pattern (`pattern.rs`), a fill-reducing elimination order (`order.rs`), the
//! factor's structure and update list (`symbolic.rs`), and for every entry of
//! every instance block the position in the factor's storage where it is
//! added. A solve then assembles straight into that storage and factors all
//! environments of a partition at once, lanes innermost (`factor.rs`).

mod factor;
mod order;
mod pattern;
mod symbolic;

use pattern::Pattern;
use symbolic::Symbolic;

use crate::mass::MassModel;
use joule_compiler::abi::Real;
use joule_compiler::kernels::{KernelIr, KernelKind};

/// The Hessian-block kernels a solve assembles, in the order of [`Direct`]'s scatter lists.
const HESSIANS: [KernelKind; 4] = [
    KernelKind::Hessian,
    KernelKind::DissipationHessian,
    KernelKind::SurrogateHessian,
    KernelKind::SurrogateDissipationHessian,
];

/// First diagonal shift of an indefinite matrix, relative to its mean |diagonal|;
/// the shift grows tenfold per failed factorisation.
const FIRST_SHIFT: f64 = 1e-8;
/// Largest diagonal shift tried, relative to the mean |diagonal|.
const LAST_SHIFT: f64 = 1e12;
/// Most lanes factored at once: a partition's lanes are solved in blocks of
/// this many, so the factor's storage stays bounded (and nearer the cache)
/// however large the batch.
pub const LANE_BLOCK: usize = 64;

/// The plan of a scene's sparse Cholesky solves.
#[derive(Debug, Clone)]
pub struct Direct {
    sym: Symbolic,
    /// `(value position, entry of M)` for the lower triangle of the mass matrix.
    mass: Vec<(u32, f64)>,
    /// Per kernel of [`HESSIANS`]: `(block row, value position)` for every
    /// lower-triangle entry of every instance's block.
    scatter: [Vec<(u32, u32)>; 4],
    lower_nnz: usize,
}

/// A partition's storage for [`Direct`] solves: values of up to `lanes`
/// lanes, of which the current block of lanes uses the first `s`.
#[derive(Debug, Clone)]
pub struct Workspace {
    lanes: usize,
    s: usize,
    values: Vec<f64>,
    inv_diag: Vec<f64>,
    map: Vec<usize>,
    work: Vec<f64>,
    failed: Vec<bool>,
    gave_up: Vec<bool>,
    shift: Vec<f64>,
    trace: Vec<f64>,
}

/// Where the entries of every instance block of a Hessian-block kernel go
/// in the lower triangle of the matrix over free DOFs (`n` of them):
/// `(block row, row, column)`, row >= column. An off-diagonal block entry
/// whose two DOFs are the same free DOF lands on the diagonal twice (as
/// `H[a, c]` and as `H[c, a]`).
fn lower_entries(ir: &KernelIr, n: usize) -> impl Iterator<Item = (usize, usize, usize)> + '_ {
    ir.block_entries()
        .filter(move |e| e.a < n && e.c < n)
        .flat_map(|e| {
            let twice = e.mirrored && e.a == e.c;
            std::iter::repeat_n((e.row, e.a.max(e.c), e.a.min(e.c)), 1 + twice as usize)
        })
}

impl Workspace {
    /// Most lanes solved at once.
    pub fn lanes(&self) -> usize {
        self.lanes
    }
}

impl Direct {
    /// Plans the solves of an `n`-DOF system with mass model `mass` and the
    /// Hessian-block kernels given by `kernel`; `None` if a factorisation in
    /// the fill-reducing order would take more than `max_flops` multiply-adds
    /// (decided on the ordering's count, before the symbolic factorisation).
    pub fn plan<'k>(
        n: usize,
        mass: &MassModel,
        kernel: impl Fn(KernelKind) -> &'k KernelIr,
        max_flops: usize,
    ) -> Option<Self> {
        // Scenes without surrogates answer the surrogate kinds with the plain
        // kernels: each distinct kernel is scanned once.
        let irs: Vec<&KernelIr> = HESSIANS.iter().map(|k| kernel(*k)).collect();
        let distinct: Vec<usize> = (0..irs.len())
            .map(|k| {
                (0..=k)
                    .find(|&d| std::ptr::eq(irs[d], irs[k]))
                    .expect("k itself")
            })
            .collect();
        let mass_entries: Vec<(usize, usize, f64)> = mass
            .entries()
            .into_iter()
            .filter(|(i, j, _)| i >= j)
            .collect();
        let pattern = Pattern::from_pairs(
            n,
            (0..irs.len())
                .filter(|&k| distinct[k] == k)
                .flat_map(|k| lower_entries(irs[k], n))
                .map(|(_, i, j)| (i, j))
                .chain(mass_entries.iter().map(|&(i, j, _)| (i, j))),
        );
        let (order, flops) = order::minimum_degree(&pattern);
        if flops > max_flops {
            return None;
        }
        let sym = Symbolic::new(&pattern, order);
        let at = |i: usize, j: usize| sym.position(i, j) as u32;
        let scatter: Vec<Vec<(u32, u32)>> = (0..irs.len())
            .map(|k| {
                lower_entries(irs[k], n)
                    .map(|(row, i, j)| (row as u32, at(i, j)))
                    .collect()
            })
            .collect();
        let scatter: [Vec<(u32, u32)>; 4] = scatter.try_into().expect("four kernels");
        let mass = mass_entries
            .iter()
            .map(|&(i, j, m)| (at(i, j), m))
            .collect();
        Some(Direct {
            mass,
            scatter,
            lower_nnz: pattern.lower_nnz(),
            sym,
        })
    }

    /// Nonzeros of the lower triangle of the matrix (diagonal included).
    pub fn lower_nnz(&self) -> usize {
        self.lower_nnz
    }

    /// Stored values of the factor `L`: the lower triangle plus fill.
    pub fn nnz(&self) -> usize {
        self.sym.nnz()
    }

    /// Multiply-adds of one numeric factorisation, per environment.
    pub fn flops(&self) -> usize {
        self.sym.flops()
    }

    /// Storage for solving a partition of `stride` lanes, [`LANE_BLOCK`] at a time.
    pub fn workspace(&self, stride: usize) -> Workspace {
        let n = self.sym.n();
        let s = stride.min(LANE_BLOCK);
        Workspace {
            lanes: s,
            s,
            values: vec![0.0; self.nnz() * s],
            inv_diag: vec![0.0; n * s],
            map: vec![0; n],
            work: vec![0.0; n * s],
            failed: vec![false; s],
            gave_up: vec![false; s],
            shift: vec![0.0; s],
            trace: vec![0.0; s],
        }
    }

    /// Starts an assembly: the values become `c M`.
    pub fn assemble_mass(&self, w: &mut Workspace, c: f64) {
        let s = w.s;
        w.values[..self.nnz() * s].fill(0.0);
        for &(q, m) in &self.mass {
            for v in &mut w.values[q as usize * s..(q as usize + 1) * s] {
                *v += c * m;
            }
        }
    }

    /// Adds the Hessian blocks that kernel `kind` wrote into `blocks`
    /// (`[row * stride + lane]`, in the kernels' precision), lanes `first..`
    /// of the current block. The factor is f64 at either precision (stiff
    /// joints leave an f32 factorisation no correct digits).
    pub fn assemble_blocks<T: Real>(
        &self,
        w: &mut Workspace,
        kind: KernelKind,
        blocks: &[T],
        stride: usize,
        first: usize,
    ) {
        let k = HESSIANS
            .iter()
            .position(|h| *h == kind)
            .expect("a Hessian-block kernel");
        let s = w.s;
        if s == 2 {
            // One lane pair (a batch of 1 or 2): a fixed-size add per entry.
            for &(row, q) in &self.scatter[k] {
                let (row, q) = (row as usize * stride + first, q as usize * 2);
                w.values[q] += blocks[row].to_f64();
                w.values[q + 1] += blocks[row + 1].to_f64();
            }
            return;
        }
        for &(row, q) in &self.scatter[k] {
            let src = &blocks[row as usize * stride + first..][..s];
            let dst = &mut w.values[q as usize * s..(q as usize + 1) * s];
            for (d, b) in dst.iter_mut().zip(src) {
                *d += b.to_f64();
            }
        }
    }

    /// Starts the solve of a block of `s` lanes (at most [`Workspace::lanes`]),
    /// forgetting the shifts of an earlier one; call before its first assembly.
    pub fn begin(&self, w: &mut Workspace, s: usize) {
        assert!(s <= w.lanes, "a block of at most the workspace's lanes");
        w.s = s;
        w.shift.fill(0.0);
        w.gave_up.fill(false);
    }

    /// Factors the assembled matrix, plus each lane's current diagonal shift.
    /// Returns true when an `active` lane was not positive definite and has a
    /// larger shift to try: the caller assembles the same matrix again and
    /// calls this again. A lane whose shift exceeds `1e12` times its mean
    /// |diagonal| gives up (its solution is NaN).
    pub fn factor(&self, w: &mut Workspace, active: &[bool]) -> bool {
        let (n, s) = (self.sym.n(), w.s);
        let trace = &mut w.trace[..s];
        trace.fill(0.0);
        for j in 0..n {
            let q = self.sym.col_start[j];
            for (t, d) in trace.iter_mut().zip(&mut w.values[q * s..(q + 1) * s]) {
                *t += d.abs();
            }
        }
        for t in trace.iter_mut() {
            *t /= n.max(1) as f64;
        }
        if w.shift.iter().any(|x| *x != 0.0) {
            for j in 0..n {
                let q = self.sym.col_start[j];
                for (d, x) in w.values[q * s..(q + 1) * s].iter_mut().zip(&w.shift[..s]) {
                    *d += x;
                }
            }
        }
        w.failed.fill(false);
        factor::factor(
            &self.sym,
            &mut w.values,
            &mut w.inv_diag,
            &mut w.map,
            &mut w.failed[..s],
            s,
        );
        let mut retry = false;
        for e in 0..s {
            if !(active.get(e) == Some(&true) && w.failed[e] && !w.gave_up[e]) {
                continue;
            }
            let shift = if w.shift[e] == 0.0 {
                FIRST_SHIFT * w.trace[e]
            } else {
                w.shift[e] * 10.0
            };
            if shift > 0.0 && shift.is_finite() && shift <= LAST_SHIFT * w.trace[e].max(1e-300) {
                w.shift[e] = shift;
                retry = true;
            } else {
                w.gave_up[e] = true;
            }
        }
        retry
    }

    /// Solves with the factor for the active lanes of the current block:
    /// `dx = A^-1 rhs` (`[row * stride + lane]`, free rows, the block's lanes
    /// from `first` on; `active` holds the block's lanes); lanes that gave up
    /// get NaN, inactive lanes are left as they are.
    pub fn solve(
        &self,
        w: &mut Workspace,
        rhs: &[f64],
        dx: &mut [f64],
        active: &[bool],
        stride: usize,
        first: usize,
    ) {
        let s = w.s;
        for (k, &r) in self.sym.order.iter().enumerate() {
            w.work[k * s..(k + 1) * s].copy_from_slice(&rhs[r * stride + first..][..s]);
        }
        factor::solve(&self.sym, &w.values, &w.inv_diag, &mut w.work, s);
        for (k, &r) in self.sym.order.iter().enumerate() {
            for e in 0..s {
                if active.get(e) == Some(&true) {
                    dx[r * stride + first + e] = if w.gave_up[e] {
                        f64::NAN
                    } else {
                        w.work[k * s + e]
                    };
                }
            }
        }
    }
}
