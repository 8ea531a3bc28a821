//! What a simulation reports to its user: [`Event`]s (divergence, Newton's
//! non-convergence, iterative solves that stop short) and why a solve stopped
//! ([`SolveStop`]).

/// Something the simulation wants its user to know.
#[derive(Debug, Clone, PartialEq)]
pub enum Event {
    /// An environment's state became NaN or infinite; the others go on.
    Diverged {
        env: usize,
        step: usize,
        dof: usize,
        name: String,
    },
    /// The incremental potential is not finite where the step starts (the
    /// state at the step's start lies outside its energies' domain: bodies
    /// overlapping inside a contact barrier, an inverted element): Newton
    /// cannot move, and the environment keeps its state.
    Inadmissible { env: usize, step: usize },
    /// Newton's method did not reach the tolerance within its iterations;
    /// `residual` is its estimate of the error left (metres).
    NotConverged {
        env: usize,
        step: usize,
        residual: f64,
    },
    /// An iterative linear solve (Jacobi-preconditioned CG, or the adjoint's
    /// iteration through `held(..)` values) stopped before its tolerance;
    /// `residual` is its relative residual. In the forward pass Newton may
    /// still converge (the last stop of the substep is reported); in an
    /// `adjoint` solve the gradient is inexact.
    SolveStopped {
        env: usize,
        step: usize,
        reason: SolveStop,
        residual: f64,
        adjoint: bool,
    },
}

/// Why an iterative linear solve stopped short.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SolveStop {
    /// It reached its iteration cap.
    IterationCap,
    /// A search direction had non-positive curvature: the matrix is not positive definite.
    NegativeCurvature,
    /// The adjoint's fixed-point iteration through the `held(..)` values (the
    /// transpose of the forward's) reached its cap: the held values' coupling
    /// contracts too slowly.
    HeldIterationCap,
}

impl std::fmt::Display for Event {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Event::Diverged { env, step, dof, name } => {
                write!(f, "environment {env} diverged at step {step}: DOF {dof} ({name}) is not finite")
            }
            Event::Inadmissible { env, step } => write!(
                f,
                "environment {env}, step {step}: the potential is not finite at the step's start (overlapping bodies inside a contact barrier, or an inverted element): the state did not move"
            ),
            Event::NotConverged { env, step, residual } => write!(
                f,
                "environment {env}, step {step}: Newton did not converge (estimated error {residual:e} above the tolerance)"
            ),
            Event::SolveStopped { env, step, reason, residual, adjoint } => write!(
                f,
                "environment {env}, step {step}: the {} solve stopped {} at relative residual {residual:e}",
                if *adjoint { "adjoint" } else { "Newton" },
                match reason {
                    SolveStop::IterationCap => "at its iteration cap",
                    SolveStop::NegativeCurvature => "on negative curvature (indefinite Hessian)",
                    SolveStop::HeldIterationCap => "at the cap of its iteration through the held values",
                }
            ),
        }
    }
}
