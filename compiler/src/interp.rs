//! The reference interpreter: evaluates kernel IR in f64, one environment at a
//! time. It is the oracle the JIT is tested against and the `interp` backend.

use crate::abi::{KernelArgs, Real};
use crate::ir::{At, Cmp, Leaf, Op};
use crate::kernels::{Dest, KernelIr, LoopIr};
use crate::model::State;

/// Evaluates one operation given the values of all earlier nodes. Masks are 1.0 / 0.0.
pub fn eval_op(op: Op, v: &[f64]) -> f64 {
    let a = |i: u32| v[i as usize];
    let truth = |b: bool| if b { 1.0 } else { 0.0 };
    match op {
        Op::Const(bits) => f64::from_bits(bits),
        Op::Leaf(_) => unreachable!("leaves are loaded, not evaluated"),
        Op::Neg(x) => -a(x),
        Op::Add(x, y) => a(x) + a(y),
        Op::Sub(x, y) => a(x) - a(y),
        Op::Mul(x, y) => a(x) * a(y),
        Op::Div(x, y) => a(x) / a(y),
        Op::Atan2(y, x) => joule_atan2(a(y), a(x)),
        Op::Powi(x, k) => joule_powi(a(x), k),
        Op::Cmp(c, x, y) => truth(match c {
            Cmp::Lt => a(x) < a(y),
            Cmp::Le => a(x) <= a(y),
            Cmp::Eq => a(x) == a(y),
            Cmp::Ne => a(x) != a(y),
        }),
        Op::And(x, y) => truth(a(x) != 0.0 && a(y) != 0.0),
        Op::Or(x, y) => truth(a(x) != 0.0 || a(y) != 0.0),
        Op::Not(x) => truth(a(x) == 0.0),
        Op::Select(c, x, y) => {
            if a(c) != 0.0 {
                a(x)
            } else {
                a(y)
            }
        }
        unary => crate::ir::eval_unary(unary, a(unary.args()[0])),
    }
}

/// `atan2`, shared with the JIT (called per lane).
pub extern "C" fn joule_atan2(y: f64, x: f64) -> f64 {
    y.atan2(x)
}

/// Integer power, shared with the JIT (called per lane).
pub extern "C" fn joule_powi(x: f64, k: i32) -> f64 {
    x.powi(k)
}

/// Runs a kernel over environments `begin..end`. With `f32` buffers every
/// operation is evaluated in f64 and rounded to f32, which is exactly what
/// native f32 arithmetic gives for `+ - * /` and `sqrt` (f64 carries more than
/// twice f32's precision), and what the JIT does for the functions it calls.
///
/// # Safety
/// `args` must point to buffers sized for the kernel's layout and stride.
pub unsafe fn run<T: Real>(kernel: &KernelIr, args: &KernelArgs<T>, begin: usize, end: usize) {
    for lp in &kernel.loops {
        run_loop(lp, args, begin, end);
    }
}

unsafe fn run_loop<T: Real>(lp: &LoopIr, a: &KernelArgs<T>, begin: usize, end: usize) {
    let round = |x: f64| T::from_f64(x).to_f64();
    let stride = a.stride as usize;
    let nodes = lp.graph.nodes();
    let mut vals = vec![0.0; nodes.len()];
    let w = lp.dof_width;
    for i in 0..lp.count {
        let row = |at: At| match at {
            At::Slot(k) => lp.dofs[i * w + k as usize] as usize,
            At::Row(r) => r as usize,
        };
        let ctl = |at: At| match at {
            At::Slot(k) => lp.controls[i * lp.control_width + k as usize] as usize,
            At::Row(c) => c as usize,
        };
        for env in begin..end {
            for (n, op) in nodes.iter().enumerate() {
                vals[n] = match *op {
                    Op::Leaf(l) => match l {
                        Leaf::State(s, at) => {
                            let buf = match s {
                                State::Pos => a.x,
                                State::Vel => a.v,
                                State::PrevPos => a.prev_x,
                                State::PrevVel => a.prev_v,
                                State::Held => a.held_x,
                            };
                            (*buf.add(row(at) * stride + env)).to_f64()
                        }
                        Leaf::Param(p) => (*a.params.add(p as usize * stride + env)).to_f64(),
                        Leaf::Control(at) => (*a.controls.add(ctl(at) * stride + env)).to_f64(),
                        Leaf::Const(k) => round(lp.consts[i * lp.const_width + k as usize]),
                        Leaf::Seed(at) => (*a.seed.add(row(at) * stride + env)).to_f64(),
                        Leaf::OutSeed(k) => (*a.out_seed.add(k as usize * stride + env)).to_f64(),
                    },
                    op => round(eval_op(op, &vals)),
                };
            }
            if let (Some(r), Some(g)) = (lp.engaged_row(i), lp.guard) {
                let engaged = (vals[g.mask as usize] != 0.0) != g.zero_when;
                *a.blocks.add(r * stride + env) = T::from_f64(if engaged { 1.0 } else { 0.0 });
            }
            for (id, dest) in &lp.outputs {
                let v = vals[*id as usize];
                let (ptr, add) = match *dest {
                    Dest::Energy => (a.energy.add(env), true),
                    Dest::Grad(at) => (a.grad.add(row(at) * stride + env), true),
                    Dest::Hv(at) => (a.hv.add(row(at) * stride + env), true),
                    Dest::Block(k) => {
                        let r = lp.block_base + i * w * w + k as usize;
                        (a.blocks.add(r * stride + env), false)
                    }
                    Dest::DState(s, at) => {
                        let buf = match s {
                            State::Pos => a.d_x,
                            State::Vel => a.d_v,
                            State::PrevPos => a.d_prev_x,
                            State::PrevVel => a.d_prev_v,
                            State::Held => a.d_held_x,
                        };
                        (buf.add(row(at) * stride + env), true)
                    }
                    Dest::DParam(p) => (a.d_params.add(p as usize * stride + env), true),
                    Dest::DControl(at) => (a.d_controls.add(ctl(at) * stride + env), true),
                    Dest::Output(k) => (a.outputs.add(k as usize * stride + env), false),
                };
                *ptr = if add {
                    T::from_f64((*ptr).to_f64() + v)
                } else {
                    T::from_f64(v)
                };
            }
        }
    }
}
