//! Symbolic Cholesky factorisation: the elimination tree, the pattern of the
//! factor `L` (column by column, in elimination order) and the list of column
//! updates the numeric factorisation performs.

use super::pattern::Pattern;

/// The structure of `L` with `P A P^T = L L^T`, fixed before any number is known.
///
/// Values of `L` are stored column by column: column `j` holds positions
/// `col_start[j]..col_start[j + 1]`, its diagonal first, then the rows below
/// it in ascending order (`rows`). Rows and columns are in elimination order;
/// `order[k]` is the original row eliminated k-th and `rank` its inverse.
#[derive(Debug, Clone)]
pub struct Symbolic {
    /// Original row of each eliminated row.
    pub order: Vec<usize>,
    /// Elimination rank of each original row.
    pub rank: Vec<usize>,
    /// Start of each column's values (`n + 1` entries).
    pub col_start: Vec<usize>,
    /// The row of each value.
    pub rows: Vec<u32>,
    /// Start of each column's updates in `updates` (`n + 1` entries).
    pub update_start: Vec<usize>,
    /// Updates of column `j` by an earlier column `k` with `L[j, k] != 0`:
    /// the value range `L[j.., k]` (from the position of `L[j, k]` to the end of column `k`).
    pub updates: Vec<(u32, u32)>,
}

impl Symbolic {
    /// The factor's structure for a pattern eliminated in `order`.
    pub fn new(pattern: &Pattern, order: Vec<usize>) -> Self {
        let n = pattern.n();
        let mut rank = vec![0; n];
        for (k, &i) in order.iter().enumerate() {
            rank[i] = k;
        }
        // Row k of L: the columns reached from A's entries left of the
        // diagonal by walking up the elimination tree (built on the way).
        let mut parent: Vec<Option<usize>> = vec![None; n];
        let mut mark = vec![usize::MAX; n];
        let mut row_patterns: Vec<Vec<usize>> = vec![vec![]; n];
        for k in 0..n {
            mark[k] = k;
            for &orig in pattern.neighbours(order[k]) {
                let mut j = rank[orig];
                if j > k {
                    continue;
                }
                while mark[j] != k {
                    if parent[j].is_none() {
                        parent[j] = Some(k);
                    }
                    row_patterns[k].push(j);
                    mark[j] = k;
                    j = parent[j].expect("set on the way up");
                }
            }
            row_patterns[k].sort_unstable();
        }
        let mut cols: Vec<Vec<u32>> = (0..n).map(|j| vec![j as u32]).collect();
        for (k, row) in row_patterns.iter().enumerate() {
            for &j in row {
                cols[j].push(k as u32);
            }
        }
        let mut col_start = Vec::with_capacity(n + 1);
        col_start.push(0);
        for c in &cols {
            col_start.push(col_start.last().expect("non-empty") + c.len());
        }
        let rows: Vec<u32> = cols.into_iter().flatten().collect();
        let mut sym = Symbolic {
            order,
            rank,
            col_start,
            rows,
            update_start: vec![0],
            updates: vec![],
        };
        for (j, row) in row_patterns.iter().enumerate() {
            for &k in row {
                let from = sym.find(j, k).expect("L[j, k] is in the pattern");
                sym.updates.push((from as u32, sym.col_start[k + 1] as u32));
            }
            sym.update_start.push(sym.updates.len());
        }
        sym
    }

    /// Rows (and columns).
    pub fn n(&self) -> usize {
        self.order.len()
    }

    /// Stored values of `L`.
    pub fn nnz(&self) -> usize {
        self.rows.len()
    }

    /// Multiply-adds of one numeric factorisation (per environment).
    pub fn flops(&self) -> usize {
        self.updates.iter().map(|(a, b)| (b - a) as usize).sum()
    }

    /// The value position of `L[i, j]` (elimination numbering, `i >= j`), if stored.
    pub fn find(&self, i: usize, j: usize) -> Option<usize> {
        let (a, b) = (self.col_start[j], self.col_start[j + 1]);
        let below = &self.rows[a..b];
        below.binary_search(&(i as u32)).ok().map(|p| a + p)
    }

    /// The value position where the entry `(i, j)` of the original matrix (or
    /// its transpose: the factor stores one triangle) is accumulated.
    pub fn position(&self, i: usize, j: usize) -> usize {
        let (a, b) = (self.rank[i], self.rank[j]);
        self.find(a.max(b), a.min(b))
            .expect("every entry of the pattern is stored in the factor")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Dense symbolic factorisation (fill by elimination), the reference.
    fn dense_fill(p: &Pattern, order: &[usize]) -> Vec<Vec<bool>> {
        let n = p.n();
        let mut rank = vec![0; n];
        for (k, &i) in order.iter().enumerate() {
            rank[i] = k;
        }
        let mut nz = vec![vec![false; n]; n];
        for i in 0..n {
            nz[rank[i]][rank[i]] = true;
            for &j in p.neighbours(i) {
                nz[rank[i]][rank[j]] = true;
            }
        }
        for k in 0..n {
            for i in k + 1..n {
                for j in k + 1..n {
                    if nz[i][k] && nz[j][k] {
                        nz[i][j] = true;
                    }
                }
            }
        }
        nz
    }

    #[test]
    fn the_pattern_of_l_is_the_fill_of_elimination() {
        // A 3x4 grid (9-point stencil) and a tree with an extra loop, in two orders.
        let mut grid = vec![];
        for r in 0..3 {
            for c in 0..4 {
                let i = r * 4 + c;
                for (dr, dc) in [(0, 1), (1, 0), (1, 1), (1, -1)] {
                    let (r2, c2) = (r + dr, c as i32 + dc);
                    if r2 < 3 && (0..4).contains(&c2) {
                        grid.push((i, r2 * 4 + c2 as usize));
                    }
                }
            }
        }
        let tree = vec![(0, 1), (1, 2), (1, 3), (3, 4), (4, 5), (5, 0), (2, 6)];
        for (n, pairs) in [(12, grid), (7, tree)] {
            let p = Pattern::from_pairs(n, pairs);
            for order in [(0..n).collect::<Vec<_>>(), (0..n).rev().collect()] {
                let s = Symbolic::new(&p, order.clone());
                let want = dense_fill(&p, &order);
                for i in 0..n {
                    for j in 0..=i {
                        assert_eq!(s.find(i, j).is_some(), want[i][j], "L[{i}, {j}]");
                    }
                }
            }
        }
    }

    #[test]
    fn a_chain_in_order_has_no_fill() {
        let n = 6;
        let p = Pattern::from_pairs(n, (1..n).map(|i| (i - 1, i)));
        let s = Symbolic::new(&p, (0..n).collect());
        assert_eq!(s.nnz(), p.lower_nnz());
        assert_eq!(s.position(3, 2), s.position(2, 3));
        // Column j is updated by column j - 1 only, with the one entry L[j, j - 1].
        assert_eq!(s.update_start, [0, 0, 1, 2, 3, 4, 5]);
        assert_eq!(s.flops(), n - 1);
    }
}
