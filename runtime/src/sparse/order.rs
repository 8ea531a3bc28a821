//! A fill-reducing elimination order: approximate minimum degree (the `amd`
//! crate, a translation of SuiteSparse's AMD).

use super::pattern::Pattern;

/// The elimination order of a symmetric pattern (`order[k]` is the row
/// eliminated k-th) and AMD's count of the multiply-adds of a factorisation
/// in that order. Falls back to the natural order (and a dense count) if AMD
/// rejects the input (it cannot: the pattern is valid by construction).
pub fn minimum_degree(p: &Pattern) -> (Vec<usize>, usize) {
    let n = p.n();
    let mut a_p = Vec::with_capacity(n + 1);
    let mut a_i = vec![];
    a_p.push(0);
    for i in 0..n {
        a_i.extend_from_slice(p.neighbours(i));
        a_p.push(a_i.len());
    }
    match amd::order::<usize>(n, &a_p, &a_i, &amd::Control::default()) {
        Ok((order, _, info)) => (order, info.n_mult_subs_ldl),
        Err(_) => ((0..n).collect(), n * n * n / 6),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn is_permutation(order: &[usize], n: usize) -> bool {
        let mut seen = vec![false; n];
        order.len() == n
            && order
                .iter()
                .all(|&i| i < n && !std::mem::replace(&mut seen[i], true))
    }

    #[test]
    fn a_star_eliminates_its_leaves_before_the_hub() {
        // Row 0 couples to every other row: eliminating it first would fill
        // the whole matrix, so minimum degree keeps it for last.
        let n = 8;
        let (order, flops) = minimum_degree(&Pattern::from_pairs(n, (1..n).map(|i| (0, i))));
        assert!(is_permutation(&order, n));
        assert_eq!(order[n - 1], 0);
        // No fill: each leaf updates the hub's diagonal once.
        assert_eq!(flops, n - 1);
    }

    #[test]
    fn an_empty_pattern_has_an_empty_order() {
        assert!(minimum_degree(&Pattern::from_pairs(0, [])).0.is_empty());
    }
}
