//! Drawing an episode's start from a model's [`Reset`]: the `reset` items'
//! entries evaluated in order, each scalar value anew per component of its
//! target, with the standard variates a caller supplies.

use crate::model::{Input, Reset, ResetTarget, Shape, Slot, Tensor, Term, TermKind};
use crate::resolve::value::{fold_binary, fold_builtin, fold_unary};

impl Reset {
    /// Draws one episode's start: moves or sets the rows of `x` (positions)
    /// and `v` (velocities) the entries name, with `variate(Slot::Uniform)`
    /// on `[0, 1)` and `variate(Slot::Normal)` standard normal. Returns the
    /// params it sets, `(index, value)`, a `+=` added to `defaults[index]`
    /// (the declared values).
    pub fn draw(
        &self,
        x: &mut [f64],
        v: &mut [f64],
        defaults: &[f64],
        mut variate: impl FnMut(Slot) -> f64,
    ) -> Vec<(usize, f64)> {
        let mut slots = vec![0.0; self.slots.len()];
        let mut params = vec![];
        for step in &self.steps {
            let mut value = |slots: &mut Vec<f64>| {
                for k in step.draws.clone() {
                    let k = k as usize;
                    slots[k] = variate(self.slots[k]);
                }
                let slots = &*slots;
                evaluate(
                    &step.value,
                    &|i| match i {
                        Input::Const(k) => slots[k as usize],
                        // The resolver refuses every other read in a reset value.
                        _ => f64::NAN,
                    },
                    &mut vec![],
                )
            };
            let (rows, buf) = match &step.target {
                ResetTarget::Let(range) => {
                    let t = value(&mut slots);
                    for (k, c) in range.clone().zip(t.comps()) {
                        slots[k as usize] = *c;
                    }
                    continue;
                }
                ResetTarget::Param(i) => {
                    let i = *i as usize;
                    let t = value(&mut slots).x();
                    params.push((i, if step.add { defaults[i] + t } else { t }));
                    continue;
                }
                ResetTarget::Pos(rows) => (rows, &mut *x),
                ResetTarget::Vel(rows) => (rows, &mut *v),
            };
            // A vector value is drawn once; a scalar anew per row.
            let whole = (step.value.shape != Shape::Scalar).then(|| value(&mut slots));
            for (c, &r) in rows.iter().enumerate() {
                let t = match whole {
                    Some(t) => t.data[c],
                    None => value(&mut slots).x(),
                };
                let r = r as usize;
                buf[r] = if step.add { buf[r] + t } else { t };
            }
        }
        params
    }
}

/// The value of a term whose inputs `input` gives (a reset value's slots, a
/// start field's parameters); `locals` holds the `let`s in scope.
pub(crate) fn evaluate(
    t: &Term,
    input: &impl Fn(Input) -> f64,
    locals: &mut Vec<(u32, Tensor)>,
) -> Tensor {
    match &t.kind {
        TermKind::Lit(v) => *v,
        TermKind::Input(i) => Tensor::scalar(input(*i)),
        TermKind::Pack(parts) => {
            let c: Vec<f64> = parts
                .iter()
                .map(|p| evaluate(p, input, locals).x())
                .collect();
            Tensor::new(t.shape, &c)
        }
        TermKind::Get(x, i) => Tensor::scalar(evaluate(x, input, locals).data[*i as usize]),
        TermKind::Unary(op, x) => fold_unary(*op, &evaluate(x, input, locals)),
        TermKind::Binary(op, a, b) => {
            let (a, b) = (evaluate(a, input, locals), evaluate(b, input, locals));
            fold_binary(*op, &a, &b, t.shape)
        }
        TermKind::Call(f, args) => {
            let a: Vec<Tensor> = args.iter().map(|x| evaluate(x, input, locals)).collect();
            fold_builtin(*f, &a, t.shape)
        }
        TermKind::Let {
            local, value, body, ..
        } => {
            let v = evaluate(value, input, locals);
            locals.push((*local, v));
            let r = evaluate(body, input, locals);
            locals.pop();
            r
        }
        TermKind::Local(id) => locals
            .iter()
            .rev()
            .find(|(l, _)| l == id)
            .map_or(Tensor::scalar(f64::NAN), |(_, v)| *v),
    }
}

#[cfg(test)]
mod tests {
    use crate::check_source;
    use crate::model::Slot;

    /// Draws with variates counting 1, 2, 3, ... (uniforms and normals
    /// alike): which entry draws how often, and what it writes.
    #[test]
    fn a_let_is_drawn_once_a_scalar_per_row_a_vector_once() {
        let text = "param gain = 1 in 0..5
            body torso { shape = sphere(0.25), mass = 5, x = vec3(0, 0, 1), joint = free }
            body arm { shape = sphere(0.1), mass = 1, x = vec3(0, 0, 1.5), joint = ball(torso, at = vec3(0, 0, 1.2)) }
            reset {
                torso.q += uniform(0, 1)
                let t = normal(0, 1)
                arm.q = vec3(t, 2 * t, uniform(0, 10))
                arm.qdot = t + normal(0, 1)
                gain += uniform(0, 2)
            }";
        let checked = check_source("reset.joule", text);
        let model = checked.model.expect("the scene checks");
        let (torso, arm) = (
            model.bodies[0].joint.as_ref(),
            model.bodies[1].joint.as_ref(),
        );
        let (torso, arm) = (
            torso.expect("a joint").coord as usize,
            arm.expect("a joint").coord as usize,
        );
        let n = model.dof_count;
        let (mut x, mut v) = (vec![0.5; n], vec![0.0; n]);
        let mut count = 0.0;
        let mut kinds = vec![];
        let params = model.reset.draw(&mut x, &mut v, &[1.0], |s| {
            kinds.push(s);
            count += 1.0;
            count
        });
        // torso.q: 6 rows, a uniform each (1..=6), added to 0.5.
        assert_eq!(&x[torso..torso + 6], &[1.5, 2.5, 3.5, 4.5, 5.5, 6.5]);
        // t = 7, drawn once; the vector's uniform once (8, times 10).
        assert_eq!(&x[arm..arm + 3], &[7.0, 14.0, 80.0]);
        // t + a normal anew per row: 9, 10, 11.
        assert_eq!(&v[arm..arm + 3], &[16.0, 17.0, 18.0]);
        // gain: 1 + 2 * 12.
        assert_eq!(params, vec![(0, 25.0)]);
        let u = Slot::Uniform;
        let g = Slot::Normal;
        assert_eq!(kinds, vec![u, u, u, u, u, u, g, u, g, g, g, u]);
    }
}
