//! The expression IR: a flat, hash-consed SSA graph of scalar operations
//! (children before parents). Constructors simplify as they build: constant
//! folding, algebraic identities (`x*1`, `x+0`, `x^2 -> x*x`, ...), canonical
//! operand order for commutative operations, and common-subexpression
//! elimination by hash-consing.

pub mod lower;

use crate::model::State;
use std::collections::HashMap;
use std::fmt::Write;

/// A node index. Children always have smaller ids than their parents.
pub type Id = u32;

/// Where a per-instance read or write points: a slot of the instance's row in
/// a table, or a fixed global row.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum At {
    /// Entry `k` of the instance's table row.
    Slot(u16),
    /// A fixed row.
    Row(u32),
}

/// Scalar inputs of a kernel loop.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Leaf {
    /// A state value (position, velocity, or their start-of-step copies).
    State(State, At),
    /// A parameter.
    Param(u32),
    /// A control (`At::Slot` reads the instance's control table).
    Control(At),
    /// A per-instance constant.
    Const(u32),
    /// A tangent or adjoint vector entry at a state position (HVP and VJP kernels).
    Seed(At),
    /// The adjoint of objective output component `k`.
    OutSeed(u32),
}

/// Comparisons.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Cmp {
    Lt,
    Le,
    Eq,
    Ne,
}

/// Operations. Truth values (`Cmp`, `And`, `Or`, `Not`) are masks used by `Select`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Op {
    /// A constant (f64 bits, so it can be hashed).
    Const(u64),
    /// An input.
    Leaf(Leaf),
    Neg(Id),
    Add(Id, Id),
    Sub(Id, Id),
    Mul(Id, Id),
    Div(Id, Id),
    Sqrt(Id),
    Exp(Id),
    Log(Id),
    Sin(Id),
    Cos(Id),
    Tan(Id),
    Tanh(Id),
    Atan2(Id, Id),
    Abs(Id),
    /// `x^k` for a small integer `k` (|k| >= 3; squares are products).
    Powi(Id, i32),
    Cmp(Cmp, Id, Id),
    And(Id, Id),
    Or(Id, Id),
    Not(Id),
    /// `select(c, a, b)`: `a` where the mask `c` holds, else `b`.
    Select(Id, Id, Id),
}

impl Op {
    /// The node's operands.
    pub fn args(&self) -> Vec<Id> {
        use Op::*;
        match *self {
            Const(_) | Leaf(_) => vec![],
            Neg(a)
            | Sqrt(a)
            | Exp(a)
            | Log(a)
            | Sin(a)
            | Cos(a)
            | Tan(a)
            | Tanh(a)
            | Abs(a)
            | Powi(a, _)
            | Not(a) => vec![a],
            Add(a, b)
            | Sub(a, b)
            | Mul(a, b)
            | Div(a, b)
            | Atan2(a, b)
            | Cmp(_, a, b)
            | And(a, b)
            | Or(a, b) => vec![a, b],
            Select(c, a, b) => vec![c, a, b],
        }
    }

    /// Whether the node is a truth value (mask).
    pub fn is_mask(&self) -> bool {
        matches!(self, Op::Cmp(..) | Op::And(..) | Op::Or(..) | Op::Not(_))
    }
}

/// A hash-consed expression graph.
#[derive(Debug, Clone, Default)]
pub struct Graph {
    nodes: Vec<Op>,
    index: HashMap<Op, Id>,
}

impl Graph {
    /// An empty graph.
    pub fn new() -> Self {
        Self::default()
    }

    /// The nodes, children before parents.
    pub fn nodes(&self) -> &[Op] {
        &self.nodes
    }

    /// The operation of a node.
    pub fn op(&self, id: Id) -> Op {
        self.nodes[id as usize]
    }

    /// Number of nodes.
    pub fn len(&self) -> usize {
        self.nodes.len()
    }

    /// Whether the graph has no nodes.
    pub fn is_empty(&self) -> bool {
        self.nodes.is_empty()
    }

    /// Interns a node (no simplification).
    fn intern(&mut self, op: Op) -> Id {
        if let Some(&id) = self.index.get(&op) {
            return id;
        }
        let id = self.nodes.len() as Id;
        self.nodes.push(op);
        self.index.insert(op, id);
        id
    }

    /// The constant value of a node, if it is one.
    pub fn value(&self, id: Id) -> Option<f64> {
        match self.op(id) {
            Op::Const(bits) => Some(f64::from_bits(bits)),
            _ => None,
        }
    }

    /// A constant.
    pub fn constant(&mut self, v: f64) -> Id {
        // One zero: -0.0 and 0.0 behave alike in every rule here.
        let v = if v == 0.0 { 0.0 } else { v };
        self.intern(Op::Const(v.to_bits()))
    }

    /// An input.
    pub fn leaf(&mut self, l: Leaf) -> Id {
        self.intern(Op::Leaf(l))
    }

    /// `-a`
    pub fn neg(&mut self, a: Id) -> Id {
        match self.op(a) {
            Op::Const(_) => {
                let v = -self.value(a).expect("const");
                self.constant(v)
            }
            Op::Neg(x) => x,
            Op::Sub(x, y) => self.sub(y, x),
            _ => self.intern(Op::Neg(a)),
        }
    }

    fn ordered(a: Id, b: Id) -> (Id, Id) {
        if a <= b {
            (a, b)
        } else {
            (b, a)
        }
    }

    /// `a + b`
    pub fn add(&mut self, a: Id, b: Id) -> Id {
        match (self.value(a), self.value(b)) {
            (Some(x), Some(y)) => return self.constant(x + y),
            (Some(0.0), _) => return b,
            (_, Some(0.0)) => return a,
            _ => {}
        }
        if let Op::Neg(y) = self.op(b) {
            return self.sub(a, y);
        }
        if let Op::Neg(x) = self.op(a) {
            return self.sub(b, x);
        }
        let (a, b) = Self::ordered(a, b);
        self.intern(Op::Add(a, b))
    }

    /// `a - b`
    pub fn sub(&mut self, a: Id, b: Id) -> Id {
        match (self.value(a), self.value(b)) {
            (Some(x), Some(y)) => return self.constant(x - y),
            (_, Some(0.0)) => return a,
            (Some(0.0), _) => return self.neg(b),
            _ => {}
        }
        if a == b {
            return self.constant(0.0);
        }
        if let Op::Neg(y) = self.op(b) {
            return self.add(a, y);
        }
        self.intern(Op::Sub(a, b))
    }

    /// `a * b`
    pub fn mul(&mut self, a: Id, b: Id) -> Id {
        match (self.value(a), self.value(b)) {
            (Some(x), Some(y)) => return self.constant(x * y),
            (Some(0.0), _) | (_, Some(0.0)) => return self.constant(0.0),
            (Some(1.0), _) => return b,
            (_, Some(1.0)) => return a,
            (Some(-1.0), _) => return self.neg(b),
            (_, Some(-1.0)) => return self.neg(a),
            _ => {}
        }
        match (self.op(a), self.op(b)) {
            (Op::Neg(x), Op::Neg(y)) => return self.mul(x, y),
            (Op::Neg(x), _) => {
                let p = self.mul(x, b);
                return self.neg(p);
            }
            (_, Op::Neg(y)) => {
                let p = self.mul(a, y);
                return self.neg(p);
            }
            _ => {}
        }
        let (a, b) = Self::ordered(a, b);
        self.intern(Op::Mul(a, b))
    }

    /// `a / b`
    pub fn div(&mut self, a: Id, b: Id) -> Id {
        match (self.value(a), self.value(b)) {
            (Some(x), Some(y)) => return self.constant(x / y),
            (Some(0.0), _) => return self.constant(0.0),
            (_, Some(1.0)) => return a,
            (_, Some(-1.0)) => return self.neg(a),
            _ => {}
        }
        if a == b {
            return self.constant(1.0);
        }
        self.intern(Op::Div(a, b))
    }

    /// `a^k` for an integer `k`.
    pub fn powi(&mut self, a: Id, k: i32) -> Id {
        if let Some(x) = self.value(a) {
            return self.constant(x.powi(k));
        }
        match k {
            0 => self.constant(1.0),
            1 => a,
            2 => self.mul(a, a),
            -1 => {
                let one = self.constant(1.0);
                self.div(one, a)
            }
            _ => self.intern(Op::Powi(a, k)),
        }
    }

    /// A unary elementary function, folded on constants.
    pub fn unary(&mut self, f: fn(Id) -> Op, a: Id) -> Id {
        let op = f(a);
        if let Some(x) = self.value(a) {
            return self.constant(eval_unary(op, x));
        }
        if let (Op::Abs(_), Op::Abs(_) | Op::Sqrt(_) | Op::Exp(_)) = (op, self.op(a)) {
            return a;
        }
        self.intern(op)
    }

    /// `atan2(y, x)`
    pub fn atan2(&mut self, y: Id, x: Id) -> Id {
        match (self.value(y), self.value(x)) {
            (Some(a), Some(b)) => self.constant(a.atan2(b)),
            _ => self.intern(Op::Atan2(y, x)),
        }
    }

    /// A comparison mask.
    pub fn cmp(&mut self, c: Cmp, a: Id, b: Id) -> Id {
        self.intern(Op::Cmp(c, a, b))
    }

    /// Mask conjunction.
    pub fn and(&mut self, a: Id, b: Id) -> Id {
        let (a, b) = Self::ordered(a, b);
        if a == b {
            return a;
        }
        self.intern(Op::And(a, b))
    }

    /// Mask disjunction.
    pub fn or(&mut self, a: Id, b: Id) -> Id {
        let (a, b) = Self::ordered(a, b);
        if a == b {
            return a;
        }
        self.intern(Op::Or(a, b))
    }

    /// Mask negation.
    pub fn not(&mut self, a: Id) -> Id {
        if let Op::Not(x) = self.op(a) {
            return x;
        }
        self.intern(Op::Not(a))
    }

    /// `select(c, a, b)`
    pub fn select(&mut self, c: Id, a: Id, b: Id) -> Id {
        if a == b {
            return a;
        }
        if let Op::Not(x) = self.op(c) {
            return self.select(x, b, a);
        }
        self.intern(Op::Select(c, a, b))
    }

    /// `min(a, b)` as `select(a < b, a, b)` (one definition for every backend).
    pub fn min(&mut self, a: Id, b: Id) -> Id {
        if let (Some(x), Some(y)) = (self.value(a), self.value(b)) {
            return self.constant(if x < y { x } else { y });
        }
        let c = self.cmp(Cmp::Lt, a, b);
        self.select(c, a, b)
    }

    /// `max(a, b)` as `select(b < a, a, b)`.
    pub fn max(&mut self, a: Id, b: Id) -> Id {
        if let (Some(x), Some(y)) = (self.value(a), self.value(b)) {
            return self.constant(if y < x { x } else { y });
        }
        let c = self.cmp(Cmp::Lt, b, a);
        self.select(c, a, b)
    }

    /// Per node, whether `roots` depend on it (the roots included).
    pub fn reachable(&self, roots: &[Id]) -> Vec<bool> {
        let mut live = vec![false; self.nodes.len()];
        let mut stack: Vec<Id> = roots.to_vec();
        while let Some(id) = stack.pop() {
            if !std::mem::replace(&mut live[id as usize], true) {
                stack.extend(self.op(id).args());
            }
        }
        live
    }

    /// Copies the nodes reachable from `roots` into a compact new graph
    /// (dead-code elimination); returns it and the roots' new ids.
    pub fn extract(&self, roots: &[Id]) -> (Graph, Vec<Id>) {
        let live = self.reachable(roots);
        let mut out = Graph::new();
        let mut map = vec![0 as Id; self.nodes.len()];
        for (i, op) in self.nodes.iter().enumerate() {
            if live[i] {
                let m = |a: Id| map[a as usize];
                let op = remap(*op, m);
                map[i] = out.intern(op);
            }
        }
        let roots = roots.iter().map(|r| map[*r as usize]).collect();
        (out, roots)
    }

    /// A readable dump: one node per line, `%id = op args`.
    pub fn dump(&self, out: &mut String) {
        for (i, op) in self.nodes.iter().enumerate() {
            let _ = writeln!(out, "  %{i} = {}", op_text(op));
        }
    }
}

/// The same operation with operands renamed.
pub fn remap(op: Op, m: impl Fn(Id) -> Id) -> Op {
    use Op::*;
    match op {
        Const(_) | Leaf(_) => op,
        Neg(a) => Neg(m(a)),
        Add(a, b) => Add(m(a), m(b)),
        Sub(a, b) => Sub(m(a), m(b)),
        Mul(a, b) => Mul(m(a), m(b)),
        Div(a, b) => Div(m(a), m(b)),
        Sqrt(a) => Sqrt(m(a)),
        Exp(a) => Exp(m(a)),
        Log(a) => Log(m(a)),
        Sin(a) => Sin(m(a)),
        Cos(a) => Cos(m(a)),
        Tan(a) => Tan(m(a)),
        Tanh(a) => Tanh(m(a)),
        Atan2(a, b) => Atan2(m(a), m(b)),
        Abs(a) => Abs(m(a)),
        Powi(a, k) => Powi(m(a), k),
        Cmp(c, a, b) => Cmp(c, m(a), m(b)),
        And(a, b) => And(m(a), m(b)),
        Or(a, b) => Or(m(a), m(b)),
        Not(a) => Not(m(a)),
        Select(c, a, b) => Select(m(c), m(a), m(b)),
    }
}

/// Evaluates a unary elementary function (the one definition shared by
/// constant folding, the interpreter and the JIT's per-lane calls).
pub fn eval_unary(op: Op, x: f64) -> f64 {
    match op {
        Op::Neg(_) => -x,
        Op::Sqrt(_) => x.sqrt(),
        Op::Exp(_) => x.exp(),
        Op::Log(_) => x.ln(),
        Op::Sin(_) => x.sin(),
        Op::Cos(_) => x.cos(),
        Op::Tan(_) => x.tan(),
        Op::Tanh(_) => x.tanh(),
        Op::Abs(_) => x.abs(),
        _ => unreachable!("not a unary function: {op:?}"),
    }
}

fn leaf_text(l: &Leaf) -> String {
    let at = |a: &At| match a {
        At::Slot(s) => format!("slot{s}"),
        At::Row(r) => format!("row{r}"),
    };
    match l {
        Leaf::State(s, a) => format!("{}[{}]", s.name(), at(a)),
        Leaf::Param(p) => format!("param[{p}]"),
        Leaf::Control(a) => format!("control[{}]", at(a)),
        Leaf::Const(c) => format!("const[{c}]"),
        Leaf::Seed(a) => format!("seed[{}]", at(a)),
        Leaf::OutSeed(k) => format!("out_seed[{k}]"),
    }
}

/// The text of one operation.
pub fn op_text(op: &Op) -> String {
    use Op::*;
    let name = match op {
        Const(b) => return format!("const {}", f64::from_bits(*b)),
        Leaf(l) => return leaf_text(l),
        Powi(a, k) => return format!("powi %{a}, {k}"),
        Cmp(c, a, b) => return format!("cmp.{} %{a}, %{b}", format!("{c:?}").to_lowercase()),
        Neg(_) => "neg",
        Add(..) => "add",
        Sub(..) => "sub",
        Mul(..) => "mul",
        Div(..) => "div",
        Sqrt(_) => "sqrt",
        Exp(_) => "exp",
        Log(_) => "log",
        Sin(_) => "sin",
        Cos(_) => "cos",
        Tan(_) => "tan",
        Tanh(_) => "tanh",
        Atan2(..) => "atan2",
        Abs(_) => "abs",
        And(..) => "and",
        Or(..) => "or",
        Not(_) => "not",
        Select(..) => "select",
    };
    let args: Vec<String> = op.args().iter().map(|a| format!("%{a}")).collect();
    format!("{name} {}", args.join(", "))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn identities_fold_and_cse() {
        let mut g = Graph::new();
        let x = g.leaf(Leaf::Param(0));
        let y = g.leaf(Leaf::Param(1));
        let zero = g.constant(0.0);
        let one = g.constant(1.0);
        assert_eq!(g.add(x, zero), x);
        assert_eq!(g.mul(x, one), x);
        assert_eq!(g.mul(one, x), x);
        assert_eq!(g.mul(x, zero), zero);
        assert_eq!(g.sub(x, x), zero);
        assert_eq!(g.div(x, one), x);
        let nx = g.neg(x);
        assert_eq!(g.neg(nx), x);
        assert_eq!(g.powi(x, 2), g.clone().mul(x, x));
        // Commutative operations are canonical: x*y and y*x are one node.
        let a = g.mul(x, y);
        let b = g.mul(y, x);
        assert_eq!(a, b);
        let two = g.constant(2.0);
        let three = g.constant(3.0);
        let s = g.add(two, three);
        assert_eq!(g.value(s), Some(5.0));
        let e = g.unary(Op::Exp, zero);
        assert_eq!(g.value(e), Some(1.0));
    }

    #[test]
    fn extract_drops_dead_nodes() {
        let mut g = Graph::new();
        let x = g.leaf(Leaf::Param(0));
        let y = g.leaf(Leaf::Param(1));
        let _dead = g.unary(Op::Sin, y);
        let live = g.unary(Op::Cos, x);
        let (h, roots) = g.extract(&[live]);
        assert_eq!(h.len(), 2);
        assert_eq!(h.op(roots[0]), Op::Cos(0));
    }
}
