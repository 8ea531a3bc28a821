//! Numeric Cholesky factorisation and triangular solves on the structure of a
//! [`Symbolic`] factor, for all environments of a partition at once: every
//! value is a row of `s` lanes (`values[position * s + lane]`, like the kernel
//! buffers), so each update is one pass over contiguous lanes that the
//! compiler vectorises, and the plan is walked once per partition, not once
//! per environment.

use super::symbolic::Symbolic;

/// Factors in place. On entry `values` holds the lower triangle of
/// `P A P^T` at the positions of `sym`; on return, `L`. `inv_diag[j * s + e]`
/// receives `1 / L[j, j]`; `map` is scratch of `n` entries. A lane whose pivot
/// is not positive (not positive definite, or not a number) gets `failed` set
/// and meaningless values; the other lanes are unaffected.
pub fn factor(
    sym: &Symbolic,
    values: &mut [f64],
    inv_diag: &mut [f64],
    map: &mut [usize],
    failed: &mut [bool],
    s: usize,
) {
    // One lane pair (a batch of 1 or 2) gets code specialised to two lanes.
    if s == 2 {
        factor_in::<2>(sym, values, inv_diag, map, failed, 2);
    } else if s.is_multiple_of(8) {
        factor_in::<8>(sym, values, inv_diag, map, failed, s);
    } else if s.is_multiple_of(2) {
        factor_in::<2>(sym, values, inv_diag, map, failed, s);
    } else {
        factor_in::<1>(sym, values, inv_diag, map, failed, s);
    }
}

/// `dst -= a * b` lane by lane, `W` lanes at a time (`W` divides the length).
#[inline(always)]
fn sub_mul<const W: usize>(dst: &mut [f64], a: &[f64], b: &[f64]) {
    for ((d, a), b) in dst
        .chunks_exact_mut(W)
        .zip(a.chunks_exact(W))
        .zip(b.chunks_exact(W))
    {
        for k in 0..W {
            d[k] -= a[k] * b[k];
        }
    }
}

/// `dst *= a` lane by lane, `W` lanes at a time.
#[inline(always)]
fn mul<const W: usize>(dst: &mut [f64], a: &[f64]) {
    for (d, a) in dst.chunks_exact_mut(W).zip(a.chunks_exact(W)) {
        for k in 0..W {
            d[k] *= a[k];
        }
    }
}

/// [`factor`] with the lane loops unrolled by `W` (inlined, so that a constant `s` specialises it).
#[inline(always)]
fn factor_in<const W: usize>(
    sym: &Symbolic,
    values: &mut [f64],
    inv_diag: &mut [f64],
    map: &mut [usize],
    failed: &mut [bool],
    s: usize,
) {
    for j in 0..sym.n() {
        let (c0, c1) = (sym.col_start[j], sym.col_start[j + 1]);
        for (t, &r) in sym.rows[c0..c1].iter().enumerate() {
            map[r as usize] = t;
        }
        let (done, rest) = values.split_at_mut(c0 * s);
        let col = &mut rest[..(c1 - c0) * s];
        // L[j.., j] -= sum_k L[j.., k] L[j, k] over the earlier columns k with
        // L[j, k] != 0, a run of columns sharing their rows at a time.
        for run in &sym.runs[sym.run_start[j]..sym.run_start[j + 1]] {
            let first = run.first as usize;
            let sources = &sym.sources[first..first + run.cols as usize];
            let rows = &sym.rows[sources[0] as usize..];
            for t in 0..run.len as usize {
                let at = map[rows[t] as usize] * s;
                for c in (0..s).step_by(W) {
                    let mut acc = [0.0; W];
                    for &from in sources {
                        let from = from as usize;
                        let a: &[f64; W] =
                            done[(from + t) * s + c..][..W].try_into().expect("W lanes");
                        let b: &[f64; W] = done[from * s + c..][..W].try_into().expect("W lanes");
                        for q in 0..W {
                            acc[q] += a[q] * b[q];
                        }
                    }
                    let d: &mut [f64; W] =
                        (&mut col[at + c..at + c + W]).try_into().expect("W lanes");
                    for q in 0..W {
                        d[q] -= acc[q];
                    }
                }
            }
        }
        let (diag, below) = col.split_at_mut(s);
        let inv = &mut inv_diag[j * s..(j + 1) * s];
        for ((d, i), f) in diag.iter_mut().zip(inv.iter_mut()).zip(failed.iter_mut()) {
            *f |= *d <= 0.0 || d.is_nan();
            *d = d.sqrt();
            *i = 1.0 / *d;
        }
        for row in below.chunks_exact_mut(s) {
            mul::<W>(row, inv);
        }
    }
}

/// Solves `L L^T y = w` in place (`w[row * s + lane]`, elimination order) with
/// the factor and inverse diagonal from [`factor`].
pub fn solve(sym: &Symbolic, values: &[f64], inv_diag: &[f64], w: &mut [f64], s: usize) {
    // One lane pair (a batch of 1 or 2) gets code specialised to two lanes.
    if s == 2 {
        solve_in::<2>(sym, values, inv_diag, w, 2);
    } else if s.is_multiple_of(8) {
        solve_in::<8>(sym, values, inv_diag, w, s);
    } else if s.is_multiple_of(2) {
        solve_in::<2>(sym, values, inv_diag, w, s);
    } else {
        solve_in::<1>(sym, values, inv_diag, w, s);
    }
}

/// [`solve`] with the lane loops unrolled by `W` (inlined, so that a constant `s` specialises it).
#[inline(always)]
fn solve_in<const W: usize>(
    sym: &Symbolic,
    values: &[f64],
    inv_diag: &[f64],
    w: &mut [f64],
    s: usize,
) {
    let n = sym.n();
    for j in 0..n {
        let (c0, c1) = (sym.col_start[j], sym.col_start[j + 1]);
        let (head, tail) = w.split_at_mut((j + 1) * s);
        let yj = &mut head[j * s..];
        mul::<W>(yj, &inv_diag[j * s..(j + 1) * s]);
        for p in c0 + 1..c1 {
            let r = sym.rows[p] as usize - j - 1;
            sub_mul::<W>(
                &mut tail[r * s..(r + 1) * s],
                &values[p * s..(p + 1) * s],
                yj,
            );
        }
    }
    for j in (0..n).rev() {
        let (c0, c1) = (sym.col_start[j], sym.col_start[j + 1]);
        let (head, tail) = w.split_at_mut((j + 1) * s);
        let yj = &mut head[j * s..];
        for p in c0 + 1..c1 {
            let r = sym.rows[p] as usize - j - 1;
            sub_mul::<W>(yj, &values[p * s..(p + 1) * s], &tail[r * s..(r + 1) * s]);
        }
        mul::<W>(yj, &inv_diag[j * s..(j + 1) * s]);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sparse::order::minimum_degree;
    use crate::sparse::pattern::Pattern;

    /// A symmetric matrix on a 2 x 5 ladder: `shift` on the diagonal, fixed
    /// off-diagonal values depending on the lane.
    fn ladder(lane: usize, shift: f64) -> (Pattern, Vec<Vec<f64>>) {
        let n = 10;
        let mut pairs = vec![];
        for c in 0..5 {
            pairs.push((c, c + 5));
            if c + 1 < 5 {
                pairs.push((c, c + 1));
                pairs.push((c + 5, c + 6));
                pairs.push((c, c + 6));
            }
        }
        let mut a = vec![vec![0.0; n]; n];
        for (k, &(i, j)) in pairs.iter().enumerate() {
            let v = ((k * 7 + lane * 3) % 5) as f64 * 0.3 - 0.6;
            a[i][j] = v;
            a[j][i] = v;
        }
        for (i, row) in a.iter_mut().enumerate() {
            row[i] = shift + i as f64 * 0.1;
        }
        (Pattern::from_pairs(n, pairs), a)
    }

    #[test]
    fn factor_and_solve_match_the_matrix_in_every_lane() {
        // Lanes 0-2 positive definite, lane 3 indefinite.
        let shifts = [3.0, 4.0, 5.0, -1.0];
        let s = shifts.len();
        let (p, _) = ladder(0, 0.0);
        let n = p.n();
        let sym = Symbolic::new(&p, minimum_degree(&p).0);
        let mats: Vec<Vec<Vec<f64>>> = (0..s).map(|e| ladder(e, shifts[e]).1).collect();
        let mut values = vec![0.0; sym.nnz() * s];
        for i in 0..n {
            for j in 0..=i {
                if i == j || p.neighbours(i).contains(&j) {
                    let q = sym.position(i, j);
                    for e in 0..s {
                        values[q * s + e] = mats[e][i][j];
                    }
                }
            }
        }
        let (mut inv, mut map, mut failed) = (vec![0.0; n * s], vec![0; n], vec![false; s]);
        factor(&sym, &mut values, &mut inv, &mut map, &mut failed, s);
        assert_eq!(failed, [false, false, false, true]);
        let b: Vec<f64> = (0..n).map(|i| i as f64 - 4.5).collect();
        let mut w = vec![0.0; n * s];
        for k in 0..n {
            for e in 0..s {
                w[k * s + e] = b[sym.order[k]];
            }
        }
        solve(&sym, &values, &inv, &mut w, s);
        for e in 0..3 {
            for i in 0..n {
                let ax: f64 = (0..n).map(|j| mats[e][i][j] * w[sym.rank[j] * s + e]).sum();
                assert!(
                    (ax - b[i]).abs() < 1e-12,
                    "lane {e} row {i}: {ax} vs {}",
                    b[i]
                );
            }
        }
    }
}
