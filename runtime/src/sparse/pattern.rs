//! The sparsity pattern of a symmetric matrix: which entries can be nonzero.

/// The pattern of a symmetric `n x n` matrix, as the sorted neighbours of each
/// row (off-diagonal entries only; the diagonal is always present).
#[derive(Debug, Clone, PartialEq)]
pub struct Pattern {
    neighbours: Vec<Vec<usize>>,
}

impl Pattern {
    /// The pattern of the entries `(i, j)` and `(j, i)` of every pair (diagonal pairs add nothing).
    pub fn from_pairs(n: usize, pairs: impl IntoIterator<Item = (usize, usize)>) -> Self {
        let mut neighbours = vec![vec![]; n];
        for (i, j) in pairs {
            if i != j {
                neighbours[i].push(j);
                neighbours[j].push(i);
            }
        }
        for row in &mut neighbours {
            row.sort_unstable();
            row.dedup();
        }
        Pattern { neighbours }
    }

    /// Rows (and columns).
    pub fn n(&self) -> usize {
        self.neighbours.len()
    }

    /// The off-diagonal columns of row `i`, ascending.
    pub fn neighbours(&self, i: usize) -> &[usize] {
        &self.neighbours[i]
    }

    /// Nonzeros of the lower triangle, diagonal included.
    pub fn lower_nnz(&self) -> usize {
        self.n() + self.neighbours.iter().map(Vec::len).sum::<usize>() / 2
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pairs_are_symmetric_sorted_and_deduplicated() {
        let p = Pattern::from_pairs(4, [(0, 2), (2, 0), (3, 1), (1, 1), (0, 3)]);
        assert_eq!(p.neighbours(0), &[2, 3]);
        assert_eq!(p.neighbours(1), &[3]);
        assert_eq!(p.neighbours(2), &[0]);
        assert_eq!(p.neighbours(3), &[0, 1]);
        assert_eq!(p.lower_nnz(), 4 + 3);
    }
}
