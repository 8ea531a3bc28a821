//! The Joule runtime: batched state, integrators, solvers and the adjoint.
//!
//! It consumes the compiled scene produced by `joule-compiler`; time stepping
//! arrives with the runtime issue. The crate exists now so the dependency
//! direction (grammar <- compiler <- runtime <- joule) is fixed from the start.
