//! Small dense linear algebra per environment: assembling symmetric systems
//! from Hessian blocks and solving them by Cholesky factorisation.

/// Factors the symmetric matrix `a` (`n x n`, row-major) in place into its
/// lower Cholesky factor. Returns false if it is not positive definite.
pub fn cholesky(a: &mut [f64], n: usize) -> bool {
    for j in 0..n {
        let mut d = a[j * n + j];
        for k in 0..j {
            d -= a[j * n + k] * a[j * n + k];
        }
        if d.partial_cmp(&0.0) != Some(std::cmp::Ordering::Greater) {
            return false;
        }
        let d = d.sqrt();
        a[j * n + j] = d;
        for i in j + 1..n {
            let mut s = a[i * n + j];
            for k in 0..j {
                s -= a[i * n + k] * a[j * n + k];
            }
            a[i * n + j] = s / d;
        }
    }
    true
}

/// Solves `L L^T x = b` in place (`b` becomes `x`) with the factor from [`cholesky`].
pub fn cholesky_solve(l: &[f64], n: usize, b: &mut [f64]) {
    for i in 0..n {
        let mut s = b[i];
        for k in 0..i {
            s -= l[i * n + k] * b[k];
        }
        b[i] = s / l[i * n + i];
    }
    for i in (0..n).rev() {
        let mut s = b[i];
        for k in i + 1..n {
            s -= l[k * n + i] * b[k];
        }
        b[i] = s / l[i * n + i];
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cholesky_solves_a_spd_system() {
        // A = B B^T + I for a fixed B; check A x = b.
        let n = 5;
        let bm: Vec<f64> = (0..n * n)
            .map(|k| ((k * 7 + 3) % 11) as f64 / 11.0 - 0.5)
            .collect();
        let mut a = vec![0.0; n * n];
        for i in 0..n {
            for j in 0..n {
                a[i * n + j] = (0..n).map(|k| bm[i * n + k] * bm[j * n + k]).sum::<f64>()
                    + if i == j { 1.0 } else { 0.0 };
            }
        }
        let rhs: Vec<f64> = (0..n).map(|i| i as f64 - 1.5).collect();
        let mut l = a.clone();
        assert!(cholesky(&mut l, n));
        let mut x = rhs.clone();
        cholesky_solve(&l, n, &mut x);
        for i in 0..n {
            let ax: f64 = (0..n).map(|j| a[i * n + j] * x[j]).sum();
            assert!((ax - rhs[i]).abs() < 1e-12);
        }
        let mut indefinite = vec![1.0, 2.0, 2.0, 1.0];
        assert!(!cholesky(&mut indefinite, 2));
    }
}
