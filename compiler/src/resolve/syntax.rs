//! The model's own enums from the AST's: resolve converts operators and
//! kinds once, where they leave the syntax tree, so nothing after resolve
//! (IR, kernels, the runtime) names a type of the grammar.

use crate::model::{BinOp, EnergyKind, ObjectiveKind, UnOp};
use joule_grammar::ast;

impl From<ast::UnOp> for UnOp {
    fn from(op: ast::UnOp) -> Self {
        match op {
            ast::UnOp::Neg => UnOp::Neg,
            ast::UnOp::Not => UnOp::Not,
        }
    }
}

impl From<ast::BinOp> for BinOp {
    fn from(op: ast::BinOp) -> Self {
        match op {
            ast::BinOp::Add => BinOp::Add,
            ast::BinOp::Sub => BinOp::Sub,
            ast::BinOp::Mul => BinOp::Mul,
            ast::BinOp::Div => BinOp::Div,
            ast::BinOp::Rem => BinOp::Rem,
            ast::BinOp::Pow => BinOp::Pow,
            ast::BinOp::Eq => BinOp::Eq,
            ast::BinOp::Ne => BinOp::Ne,
            ast::BinOp::Lt => BinOp::Lt,
            ast::BinOp::Le => BinOp::Le,
            ast::BinOp::Gt => BinOp::Gt,
            ast::BinOp::Ge => BinOp::Ge,
            ast::BinOp::And => BinOp::And,
            ast::BinOp::Or => BinOp::Or,
        }
    }
}

/// Back to the syntax, where the model borrows the language's tables
/// (symbols, precedence) instead of keeping copies.
impl From<BinOp> for ast::BinOp {
    fn from(op: BinOp) -> Self {
        match op {
            BinOp::Add => ast::BinOp::Add,
            BinOp::Sub => ast::BinOp::Sub,
            BinOp::Mul => ast::BinOp::Mul,
            BinOp::Div => ast::BinOp::Div,
            BinOp::Rem => ast::BinOp::Rem,
            BinOp::Pow => ast::BinOp::Pow,
            BinOp::Eq => ast::BinOp::Eq,
            BinOp::Ne => ast::BinOp::Ne,
            BinOp::Lt => ast::BinOp::Lt,
            BinOp::Le => ast::BinOp::Le,
            BinOp::Gt => ast::BinOp::Gt,
            BinOp::Ge => ast::BinOp::Ge,
            BinOp::And => ast::BinOp::And,
            BinOp::Or => ast::BinOp::Or,
        }
    }
}

impl From<ast::EnergyKind> for EnergyKind {
    fn from(kind: ast::EnergyKind) -> Self {
        match kind {
            ast::EnergyKind::Energy => EnergyKind::Energy,
            ast::EnergyKind::Dissipation => EnergyKind::Dissipation,
        }
    }
}

impl From<ast::ObjectiveKind> for ObjectiveKind {
    fn from(kind: ast::ObjectiveKind) -> Self {
        match kind {
            ast::ObjectiveKind::Observe => ObjectiveKind::Observe,
            ast::ObjectiveKind::Reward => ObjectiveKind::Reward,
            ast::ObjectiveKind::Loss => ObjectiveKind::Loss,
            ast::ObjectiveKind::Done => ObjectiveKind::Done,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn operators_keep_their_symbols() {
        use ast::BinOp::*;
        for op in [
            Add, Sub, Mul, Div, Rem, Pow, Eq, Ne, Lt, Le, Gt, Ge, And, Or,
        ] {
            assert_eq!(BinOp::from(op).symbol(), op.symbol());
            assert_eq!(ast::BinOp::from(BinOp::from(op)), op, "a round trip");
        }
    }

    #[test]
    fn objective_kinds_keep_their_keywords() {
        use ast::ObjectiveKind::*;
        for kind in [Observe, Reward, Loss, Done] {
            assert_eq!(ObjectiveKind::from(kind).keyword(), kind.keyword());
        }
    }
}
