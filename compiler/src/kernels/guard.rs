//! A loop's guard: a mask of its graph under which every result of the
//! loop vanishes. Contact, friction and one-sided energies are written as
//! `select(engaged, f, 0)` (the barrier beyond `dhat`, friction under a
//! lagged normal force of zero, a contact point above the ground at the
//! step's start); their derivatives inherit the select, so on the lanes
//! where the mask says "disengaged" every gradient entry, Hessian entry and
//! VJP of the loop is zero. The backends may skip such an instance on a
//! vector of lanes once its guard says so for every lane there: the
//! accumulated results lose only zeros, and stored results (Hessian blocks,
//! outputs) are stored as zeros.
//!
//! The analysis is exact on finite values: a skipped lane's results are zero
//! unless the full computation would have multiplied that zero by an
//! infinity or a NaN.

use crate::ir::{Graph, Id, Op};

/// A mask node and the value under which the loop's results are zero.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Guard {
    /// The mask (a `Cmp`, `And`, `Or` or `Not` node).
    pub mask: Id,
    /// The results vanish on the lanes where the mask is this.
    pub zero_when: bool,
}

/// Where a node is known to be zero.
#[derive(Debug, Clone, PartialEq)]
enum Zero {
    /// Everywhere (the constant 0, or a product with one).
    Always,
    /// Where any of these guards holds (sorted; empty: nowhere known).
    Under(Vec<Guard>),
}

/// At most this many guards are tracked per node (dropping some only loses
/// chances to skip).
const MAX_GUARDS: usize = 8;

impl Zero {
    fn never() -> Self {
        Zero::Under(vec![])
    }

    /// Zero where either is (a product).
    fn either(a: &Zero, b: &Zero) -> Zero {
        match (a, b) {
            (Zero::Always, _) | (_, Zero::Always) => Zero::Always,
            (Zero::Under(x), Zero::Under(y)) => {
                let mut v: Vec<Guard> = x.iter().chain(y).copied().collect();
                v.sort();
                v.dedup();
                v.truncate(MAX_GUARDS);
                Zero::Under(v)
            }
        }
    }

    /// Zero where both are (a sum).
    fn both(a: &Zero, b: &Zero) -> Zero {
        match (a, b) {
            (Zero::Always, z) | (z, Zero::Always) => z.clone(),
            (Zero::Under(x), Zero::Under(y)) => {
                Zero::Under(x.iter().filter(|g| y.contains(g)).copied().collect())
            }
        }
    }

    fn with(mut self, g: Guard) -> Zero {
        if let Zero::Under(v) = &mut self {
            if !v.contains(&g) && v.len() < MAX_GUARDS {
                v.push(g);
                v.sort();
            }
        }
        self
    }
}

/// The guard of a loop whose results are `roots` in `g`: the one whose mask
/// is cheapest to compute (fewest nodes it depends on), or `None` where no
/// mask makes every result vanish.
pub fn guard(g: &Graph, roots: &[Id]) -> Option<Guard> {
    if roots.is_empty() {
        return None;
    }
    let mut zero: Vec<Zero> = Vec::with_capacity(g.len());
    for n in 0..g.len() as Id {
        let z = |a: Id| &zero[a as usize];
        let v = match g.op(n) {
            Op::Const(_) if g.value(n) == Some(0.0) => Zero::Always,
            Op::Neg(a) | Op::Sqrt(a) | Op::Abs(a) | Op::Sin(a) | Op::Tan(a) | Op::Tanh(a) => {
                z(a).clone()
            }
            Op::Powi(a, k) if k > 0 => z(a).clone(),
            Op::Mul(a, b) => Zero::either(z(a), z(b)),
            Op::Div(a, _) => z(a).clone(),
            Op::Add(a, b) | Op::Sub(a, b) => Zero::both(z(a), z(b)),
            Op::Select(c, a, b) => {
                let mut s = Zero::both(z(a), z(b));
                if z(b) == &Zero::Always {
                    s = s.with(Guard {
                        mask: c,
                        zero_when: false,
                    });
                }
                if z(a) == &Zero::Always {
                    s = s.with(Guard {
                        mask: c,
                        zero_when: true,
                    });
                }
                s
            }
            _ => Zero::never(),
        };
        zero.push(v);
    }
    let mut common = zero[roots[0] as usize].clone();
    for r in &roots[1..] {
        common = Zero::both(&common, &zero[*r as usize]);
    }
    let Zero::Under(guards) = common else {
        return None;
    };
    guards
        .into_iter()
        .min_by_key(|gd| (cone(g, gd.mask).len(), *gd))
}

/// The nodes `id` depends on, itself included, in increasing order (the
/// graph's topological order).
pub fn cone(g: &Graph, id: Id) -> Vec<Id> {
    let seen = g.reachable(&[id]);
    (0..=id).filter(|n| seen[*n as usize]).collect()
}

#[cfg(test)]
mod tests {
    use super::{guard, Guard};
    use crate::ir::{At, Cmp, Graph, Leaf, Op};
    use crate::model::State;

    /// A barrier's energy, gradient-like product and a sum of guarded terms
    /// share the guard `d < dhat`; a sum with an unguarded term has none.
    #[test]
    fn a_select_with_a_zero_branch_guards_its_products_and_sums() {
        let mut g = Graph::new();
        let d = g.leaf(Leaf::State(State::Pos, At::Slot(0)));
        let y = g.leaf(Leaf::State(State::Pos, At::Slot(1)));
        let dhat = g.constant(0.1);
        let inside = g.cmp(Cmp::Lt, d, dhat);
        let l = g.unary(Op::Log, d);
        let zero = g.constant(0.0);
        let e = g.select(inside, l, zero);
        let de = g.mul(e, y);
        let sum = g.add(de, e);
        let want = Guard {
            mask: inside,
            zero_when: false,
        };
        assert_eq!(guard(&g, &[e, de, sum]), Some(want));
        let open = g.add(e, y);
        assert_eq!(guard(&g, &[e, open]), None);
        // The zero in the taken branch: zero where the mask holds.
        let flipped = g.select(inside, zero, l);
        let flipped = g.mul(flipped, y);
        assert_eq!(
            guard(&g, &[flipped]),
            Some(Guard {
                mask: inside,
                zero_when: true,
            })
        );
    }
}
