//! Symbolic Cholesky factorisation: the elimination tree, the pattern of the
//! factor `L` (column by column, in elimination order) and the list of column
//! updates the numeric factorisation performs, grouped into runs of source
//! columns that share their rows (supernodes: a rigid body's 12 DOFs, a
//! particle's 3), so one pass over the shared rows applies them all.

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
    /// Start of each column's runs in `runs` (`n + 1` entries).
    pub run_start: Vec<usize>,
    /// The updates of column `j` by the earlier columns `k` with `L[j, k] != 0`,
    /// in runs of consecutive columns whose entries from row `j` down lie in
    /// the same rows.
    pub runs: Vec<Run>,
    /// The position of `L[j, k]` for the columns of every run, in order.
    pub sources: Vec<u32>,
}

/// Updates `L[i, j] -= sum_k L[i, k] L[j, k]` of column `j` by the columns `k`
/// of one run: `cols` source columns (positions of `L[j, k]` in
/// `sources[first..first + cols]`), each with the same `len` rows from row `j` on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Run {
    /// First entry in `sources`.
    pub first: u32,
    /// Source columns.
    pub cols: u32,
    /// Rows per source column, from row `j` (its diagonal) down.
    pub len: u32,
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
            run_start: vec![0],
            runs: vec![],
            sources: vec![],
        };
        for (j, row) in row_patterns.iter().enumerate() {
            let mut last: Option<(usize, usize, usize)> = None; // (k, from, end) of the previous source
            for &k in row {
                let from = sym.find(j, k).expect("L[j, k] is in the pattern");
                let end = sym.col_start[k + 1];
                let joins = last.is_some_and(|(pk, pf, pe)| {
                    pk + 1 == k && sym.rows[pf..pe] == sym.rows[from..end]
                });
                if joins {
                    sym.runs.last_mut().expect("a run to join").cols += 1;
                } else {
                    sym.runs.push(Run {
                        first: sym.sources.len() as u32,
                        cols: 1,
                        len: (end - from) as u32,
                    });
                }
                sym.sources.push(from as u32);
                last = Some((k, from, end));
            }
            sym.run_start.push(sym.runs.len());
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
        self.runs.iter().map(|r| (r.cols * r.len) as usize).sum()
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
        assert_eq!(s.run_start, [0, 0, 1, 2, 3, 4, 5]);
        assert_eq!(s.flops(), n - 1);
    }

    #[test]
    fn columns_with_the_same_rows_update_in_one_run() {
        // Two dense 3 x 3 blocks coupled to a last row: eliminating the first
        // block's three columns updates the second block's in one run each.
        let mut pairs = vec![];
        for b in [0, 3] {
            for i in b..b + 3 {
                for j in i + 1..b + 3 {
                    pairs.push((i, j));
                }
            }
        }
        pairs.extend((0..6).map(|i| (i, 6)));
        pairs.extend((0..3).flat_map(|i| (3..6).map(move |j| (i, j))));
        let p = Pattern::from_pairs(7, pairs);
        let s = Symbolic::new(&p, (0..7).collect());
        assert_eq!(s.nnz(), 28); // dense
                                 // Column 3: one run of columns 0, 1, 2, each with rows 3..7.
        let runs = &s.runs[s.run_start[3]..s.run_start[4]];
        assert_eq!(
            runs,
            [Run {
                first: runs[0].first,
                cols: 3,
                len: 4
            }]
        );
        // Multiply-adds: sum over columns j of sum over k < j of (7 - j).
        assert_eq!(s.flops(), (0..7).map(|j| j * (7 - j)).sum::<usize>());
    }
}
