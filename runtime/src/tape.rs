//! Reverse mode through a closed loop. A policy outside the simulator sets
//! the controls before every step, so the rollout cannot be differentiated
//! in one call: [`Sim::step_taped`] records each step (the state before every
//! substep and the controls), then the caller walks back one step at a time,
//! adding the seeds of its own terms on the outputs at each recorded state
//! ([`Sim::seed_outputs`]: rewards, and the policy's observation adjoints) and
//! taking the step's adjoint ([`Sim::reverse_step`]), which hands back
//! dL/d(controls) of that step for the policy to backpropagate.
//!
//! Positions on a tape: 0 is the state it started from, `t + 1` the state
//! after recorded step `t`. Seeds are added at the head position (the last
//! recorded state not yet reversed), with that step's controls in place, so
//! outputs that read controls see the values they were computed with.
//!
//! The caller may change the state between taped steps (reset an
//! environment): the tape keeps the state after every step as well as the
//! one before, so seeds and step adjoints are taken where each step really
//! ended. What the adjoint carried across such a change means is the
//! caller's to decide (a reset environment's is usually dropped:
//! [`Sim::drop_adjoint`]).

use crate::step::{store, widen, Adjoint, Snapshot};
use crate::{with_parts, NameError, Parts, Sim};
use joule_compiler::abi::Real;
use rayon::prelude::*;

/// The recorded steps of a closed-loop rollout and the adjoint being carried back.
pub struct Tape {
    /// Per partition: the state before every substep of every recorded step.
    states: Vec<Vec<Snapshot>>,
    /// Per partition: the controls of every recorded step.
    controls: Vec<Vec<Vec<f64>>>,
    /// Per partition: the state after every recorded step (where its last
    /// substep ended, before anything the caller changed between steps).
    after: Vec<Vec<Snapshot>>,
    /// Per partition: the state the tape started from.
    start: Vec<Snapshot>,
    /// Per partition: dL/d(state at the head position), params accumulated.
    adj: Vec<Adjoint>,
    /// Recorded steps not yet reversed.
    head: usize,
    /// The simulation's step count when the tape started (numbers events).
    first_step: usize,
    /// The environments at their start when the tape started.
    at_start: Vec<bool>,
}

impl Tape {
    /// Steps recorded and not yet reversed (the head position).
    pub fn len(&self) -> usize {
        self.head
    }

    /// Whether every recorded step has been reversed.
    pub fn is_empty(&self) -> bool {
        self.head == 0
    }
}

/// What a fully reversed tape gives: gradients with respect to its start.
#[derive(Debug, Clone, PartialEq)]
pub struct TapeGradient {
    /// d L / d param, `[param][env]`.
    pub params: Vec<Vec<f64>>,
    /// d L / d (initial position of each free DOF), `[dof][env]`.
    pub x0: Vec<Vec<f64>>,
    /// d L / d (initial velocity of each free DOF), `[dof][env]`.
    pub v0: Vec<Vec<f64>>,
}

/// A partition's state at tape position `t`: after recorded step `t - 1`, as
/// the step left it; position 0 is where the first step started (the tape's
/// start if nothing was recorded).
fn position<'a>(
    states: &'a [Snapshot],
    after: &'a [Snapshot],
    start: &'a Snapshot,
    t: usize,
) -> &'a Snapshot {
    match t {
        0 => states.first().unwrap_or(start),
        _ => &after[t - 1],
    }
}

impl Sim<'_> {
    /// An empty tape starting at the current state.
    pub fn tape(&self) -> Tape {
        let n = self.scene.dofs();
        let (start, adj) = with_parts!(&self.parts, parts => (
            parts.iter().map(|p| p.snapshot(n)).collect::<Vec<_>>(),
            parts
                .iter()
                .map(|p| Adjoint::new(n, p.b.stride, p.b.params.len(), p.b.controls.len()))
                .collect(),
        ));
        Tape {
            states: start.iter().map(|_| vec![]).collect(),
            controls: start.iter().map(|_| vec![]).collect(),
            after: start.iter().map(|_| vec![]).collect(),
            start,
            adj,
            head: 0,
            first_step: self.step,
            at_start: self.at_start.clone(),
        }
    }

    /// Sets every control in every environment from `[control][env]`, each
    /// clamped to its range.
    pub fn set_controls(&mut self, values: &[Vec<f64>]) -> Result<(), NameError> {
        let controls = &self.scene.model().controls;
        if values.len() != controls.len() || values.iter().any(|c| c.len() != self.batch) {
            return Err(NameError(format!(
                "controls must be [{} controls][{} environments]",
                controls.len(),
                self.batch
            )));
        }
        with_parts!(&mut self.parts, parts => for p in parts {
            let s = p.b.stride;
            for (i, (c, vals)) in controls.iter().zip(values).enumerate() {
                for e in 0..p.len {
                    let v = vals[p.first + e];
                    p.b.controls[i * s + e] =
                        Real::from_f64(c.bounds.map_or(v, |(lo, hi)| v.clamp(lo, hi)));
                }
            }
        });
        Ok(())
    }

    /// One step of every environment at the current controls, recorded on `tape`.
    ///
    /// # Panics
    /// If the tape has been partly reversed (record, then reverse, then start a new tape).
    pub fn step_taped(&mut self, tape: &mut Tape) {
        assert_eq!(
            tape.head,
            tape.controls.first().map_or(0, Vec::len),
            "a tape records only before it is reversed"
        );
        let (scene, step, n) = (self.scene, self.step, self.scene.dofs());
        with_parts!(&mut self.parts, parts => parts
        .par_iter_mut()
        .zip(&mut tape.states)
        .zip(&mut tape.controls)
        .zip(&mut tape.after)
        .for_each(|(((p, states), controls), after)| {
            controls.push(widen(&p.b.controls));
            p.step_recorded(scene, step, states);
            after.push(p.snapshot(n));
        }));
        self.step += 1;
        self.at_start.fill(false);
        tape.head += 1;
        self.collect_events();
    }

    /// Adds d(seed . outputs)/d(state) at the tape's head position to the
    /// adjoint being carried back; `seed` is `[output row][env]`
    /// (the rows of [`Sim::outputs`]). Outputs that read parameters add to
    /// the parameter gradient; controls they read are those of the step that
    /// led to the head position.
    pub fn seed_outputs(&mut self, tape: &mut Tape, seed: &[Vec<f64>]) -> Result<(), NameError> {
        if let Some(why) = self.scene.gradients_unavailable() {
            return Err(NameError(why.into()));
        }
        let rows = self.scene.compiled.layout().output_rows();
        if seed.len() != rows || seed.iter().any(|r| r.len() != self.batch) {
            return Err(NameError(format!(
                "output seeds must be [{rows} rows][{} environments]",
                self.batch
            )));
        }
        let scene = self.scene;
        let head = tape.head;
        let subs = scene.substeps();
        with_parts!(&mut self.parts, parts => parts
        .par_iter_mut()
        .zip(&tape.states)
        .zip(&tape.after)
        .zip(&tape.controls)
        .zip(&tape.start)
        .zip(&mut tape.adj)
        .for_each(|(((((p, states), after), controls), start), adj)| {
            let s = p.b.stride;
            p.restore(position(states, after, start, head));
            // `prev(..)` reads the start of the step that led here.
            p.restore_prev(match head {
                0 => position(states, after, start, 0),
                _ => &states[(head - 1) * subs],
            });
            if head > 0 {
                store(&mut p.b.controls, &controls[head - 1]);
            }
            p.b.out_seed.fill(Default::default());
            for (r, row) in seed.iter().enumerate() {
                store(
                    &mut p.b.out_seed[r * s..r * s + p.len],
                    &row[p.first..p.first + p.len],
                );
            }
            // What the outputs read of the controls joins that step's
            // control gradient, handed back by the next `reverse_step`.
            p.outputs_adjoint(scene, adj);
            if head == 0 {
                adj.close_step();
            }
        }));
        self.restore_end(tape);
        Ok(())
    }

    /// Adds `dx`, `dv` (`[dof][env]`, the rows of [`Sim::positions`] and
    /// [`Sim::velocities`]) to the adjoint of the state at the tape's head
    /// position: what a policy that reads the state directly (a planner)
    /// carries back through its controls' dependence on the state.
    pub fn seed_state(
        &mut self,
        tape: &mut Tape,
        dx: &[Vec<f64>],
        dv: &[Vec<f64>],
    ) -> Result<(), NameError> {
        let n = self.scene.dofs();
        let shaped = |d: &[Vec<f64>]| d.len() == n && d.iter().all(|r| r.len() == self.batch);
        if !(shaped(dx) && shaped(dv)) {
            return Err(NameError(format!(
                "state seeds must be [{n} DOFs][{} environments]",
                self.batch
            )));
        }
        for ((first, len, s), adj) in self.ranges().into_iter().zip(&mut tape.adj) {
            for r in 0..n {
                for e in 0..len {
                    adj.x[r * s + e] += dx[r][first + e];
                    adj.v[r * s + e] += dv[r][first + e];
                }
            }
        }
        Ok(())
    }

    /// Reverses the last recorded step not yet reversed: carries the adjoint
    /// back over it and returns dL/d(its controls), `[control][env]`.
    ///
    /// # Panics
    /// If every recorded step has been reversed.
    pub fn reverse_step(&mut self, tape: &mut Tape) -> Vec<Vec<f64>> {
        assert!(tape.head > 0, "nothing left to reverse on the tape");
        let scene = self.scene;
        let t = tape.head - 1;
        let step = tape.first_step + t;
        let subs = scene.substeps();
        with_parts!(&mut self.parts, parts => parts
        .par_iter_mut()
        .zip(&tape.states)
        .zip(&tape.after)
        .zip(&tape.controls)
        .zip(&mut tape.adj)
        .for_each(|((((p, states), after), controls), adj)| {
            store(&mut p.b.controls, &controls[t]);
            p.events.clear();
            for sub in (0..subs).rev() {
                let i = t * subs + sub;
                let end = if sub + 1 < subs {
                    &states[i + 1]
                } else {
                    &after[t]
                };
                p.step_adjoint(scene, &states[i], end, adj, step);
            }
            adj.close_step();
        }));
        // Adjoint solves that stopped short.
        self.collect_events();
        tape.head = t;
        let nc = scene.model().controls.len();
        let mut out = vec![vec![0.0; self.batch]; nc];
        let ranges = self.ranges();
        for ((first, len, s), adj) in ranges.into_iter().zip(&mut tape.adj) {
            for (c, row) in out.iter_mut().enumerate() {
                row[first..first + len].copy_from_slice(&adj.controls[c * s..c * s + len]);
            }
            adj.controls.fill(0.0);
        }
        self.restore_end(tape);
        out
    }

    /// Forgets everything carried back for environment `env` so far (its
    /// adjoint at the tape's head position and its parameter gradient): the
    /// reverse pass goes on as if nothing after the head had depended on its
    /// state. For an environment whose state stopped being finite after the
    /// head, whose adjoint would otherwise carry NaN into every earlier step.
    pub fn drop_adjoint(&mut self, tape: &mut Tape, env: usize) {
        let (p, lane) = self.locate(env);
        let s = with_parts!(&self.parts, parts => parts[p].b.stride);
        let adj = &mut tape.adj[p];
        for buf in [
            &mut adj.x,
            &mut adj.v,
            &mut adj.params,
            &mut adj.controls,
            &mut adj.prev,
        ] {
            buf.iter_mut().skip(lane).step_by(s).for_each(|a| *a = 0.0);
        }
    }

    /// Puts every partition back at the tape's last recorded state (where the
    /// simulation stood before the reverse pass).
    fn restore_end(&mut self, tape: &Tape) {
        with_parts!(&mut self.parts, parts => for (k, p) in parts.iter_mut().enumerate() {
            let controls = &tape.controls[k];
            let t = controls.len();
            p.restore(position(&tape.states[k], &tape.after[k], &tape.start[k], t));
            if t > 0 {
                p.restore_prev(&tape.states[k][(t - 1) * self.scene.substeps()]);
            }
            if let Some(c) = controls.last() {
                store(&mut p.b.controls, c);
            }
        });
    }

    /// The gradients with respect to the tape's start state and the parameters
    /// (call after every step has been reversed and the start seeded).
    pub fn tape_gradient(&mut self, tape: &Tape) -> TapeGradient {
        let n = self.scene.dofs();
        let np = self.scene.model().params.len();
        let mut g = TapeGradient {
            params: vec![vec![0.0; self.batch]; np],
            x0: vec![vec![0.0; self.batch]; n],
            v0: vec![vec![0.0; self.batch]; n],
        };
        for ((first, len, s), adj) in self.ranges().into_iter().zip(&tape.adj) {
            for e in 0..len {
                let env = first + e;
                for i in 0..np {
                    g.params[i][env] = adj.params[i * s + e];
                }
                for r in 0..n {
                    g.x0[r][env] = adj.x[r * s + e];
                    g.v0[r][env] = adj.v[r * s + e];
                }
            }
        }
        self.chain_start(&tape.at_start, &mut g.params, &g.x0, &g.v0);
        self.restore_end(tape);
        g
    }
}
