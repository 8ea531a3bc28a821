//! Gradients through time: a forward rollout that keeps checkpoints every
//! `K ~ sqrt(T)` steps, then a reverse pass that recomputes each segment from
//! its checkpoint (recording the state at every substep) and runs the adjoint
//! of each substep backwards. Memory is `O(T/K + K)` states instead of `O(T)`.

use crate::step::{Adjoint, Part, Snapshot};
use crate::{NameError, Scene, Sim};
use joule_grammar::ast::ObjectiveKind;
use rayon::prelude::*;

/// What to differentiate: a terminal `loss`, the sum of a `reward` over the
/// steps, or both (their sum).
#[derive(Debug, Clone, Default)]
pub struct Objective {
    /// Name of a `loss` item, evaluated after the last step.
    pub loss: Option<String>,
    /// Name of a `reward` item, summed over the states after each step.
    pub reward: Option<String>,
}

/// The objective and its gradients, per environment.
#[derive(Debug, Clone, PartialEq)]
pub struct Gradient {
    /// The objective per environment.
    pub value: Vec<f64>,
    /// d objective / d param, `[param][env]`.
    pub params: Vec<Vec<f64>>,
    /// d objective / d control at each step, `[step][control][env]`.
    pub controls: Vec<Vec<Vec<f64>>>,
    /// d objective / d initial position of each free DOF, `[dof][env]`.
    pub x0: Vec<Vec<f64>>,
    /// d objective / d initial velocity of each free DOF, `[dof][env]`.
    pub v0: Vec<Vec<f64>>,
    /// Bytes of recorded state per environment and step during the reverse pass.
    pub bytes_per_env_step: usize,
    /// Checkpoint interval used.
    pub checkpoint_every: usize,
}

struct PartGradient {
    value: Vec<f64>,
    params: Vec<f64>,
    controls: Vec<Vec<f64>>,
    x0: Vec<f64>,
    v0: Vec<f64>,
}

impl Sim<'_> {
    /// Runs `steps` steps from the current state (leaving the simulation at the
    /// end) and returns the objective with its gradients.
    pub fn gradient(&mut self, objective: &Objective, steps: usize) -> Result<Gradient, NameError> {
        let scene = self.scene;
        let layout = scene.compiled.layout();
        let row =
            |name: &Option<String>, kind: ObjectiveKind| -> Result<Option<usize>, NameError> {
                let Some(n) = name else { return Ok(None) };
                layout
                    .outputs
                    .iter()
                    .find(|o| &o.name == n && o.kind == kind)
                    .map(|o| Some(o.offset))
                    .ok_or_else(|| {
                        let known: Vec<&str> = layout
                            .outputs
                            .iter()
                            .filter(|o| o.kind == kind)
                            .map(|o| o.name.as_str())
                            .collect();
                        NameError(format!(
                            "no {} named `{n}` (the scene has: {})",
                            kind.keyword(),
                            known.join(", ")
                        ))
                    })
            };
        let loss = row(&objective.loss, ObjectiveKind::Loss)?;
        let reward = row(&objective.reward, ObjectiveKind::Reward)?;
        let k = ((steps as f64).sqrt().ceil() as usize).max(1);
        let start = self.step;
        let parts: Vec<PartGradient> = self
            .parts
            .par_iter_mut()
            .map(|p| part_gradient(p, scene, loss, reward, steps, k, start))
            .collect();
        self.step += steps;
        let (n, batch) = (scene.dofs(), self.batch);
        let np = scene.model().params.len();
        let nc = scene.model().controls.len();
        let mut g = Gradient {
            value: vec![0.0; batch],
            params: vec![vec![0.0; batch]; np],
            controls: vec![vec![vec![0.0; batch]; nc]; steps],
            x0: vec![vec![0.0; batch]; n],
            v0: vec![vec![0.0; batch]; n],
            bytes_per_env_step: 16 * n * scene.model().settings.substeps.max(1) as usize,
            checkpoint_every: k,
        };
        for (p, pg) in self.parts.iter().zip(parts) {
            let s = p.b.stride;
            for e in 0..p.len {
                let env = p.first + e;
                g.value[env] = pg.value[e];
                for i in 0..np {
                    g.params[i][env] = pg.params[i * s + e];
                }
                for (t, ct) in pg.controls.iter().enumerate() {
                    for c in 0..nc {
                        g.controls[t][c][env] = ct[c * s + e];
                    }
                }
                for r in 0..n {
                    g.x0[r][env] = pg.x0[r * s + e];
                    g.v0[r][env] = pg.v0[r * s + e];
                }
            }
        }
        Ok(g)
    }
}

fn part_gradient(
    p: &mut Part,
    scene: &Scene,
    loss: Option<usize>,
    reward: Option<usize>,
    steps: usize,
    k: usize,
    start: usize,
) -> PartGradient {
    let (n, s) = (scene.dofs(), p.b.stride);
    let subs = scene.model().settings.substeps.max(1) as usize;
    let mut value = vec![0.0; p.len];
    // Forward, keeping checkpoints.
    let mut checkpoints: Vec<Snapshot> = vec![];
    for t in 0..steps {
        if t % k == 0 {
            checkpoints.push(p.snapshot(n));
        }
        p.step(scene, start + t);
        if let Some(r) = reward {
            p.outputs(scene);
            for (e, v) in value.iter_mut().enumerate() {
                *v += p.b.outputs[r * s + e];
            }
        }
    }
    let end_state = p.snapshot(n);
    let mut adj = Adjoint {
        x: vec![0.0; n * s],
        v: vec![0.0; n * s],
        params: vec![0.0; p.b.params.len()],
        controls: vec![0.0; p.b.controls.len()],
    };
    let seed = |p: &mut Part, row: usize| {
        p.b.out_seed.fill(0.0);
        p.b.out_seed[row * s..row * s + p.len].fill(1.0);
    };
    if let Some(l) = loss {
        p.outputs(scene);
        for (e, v) in value.iter_mut().enumerate() {
            *v += p.b.outputs[l * s + e];
        }
        seed(p, l);
        p.outputs_adjoint(scene, &mut adj);
    }
    let mut controls = vec![vec![0.0; p.b.controls.len()]; steps];
    // Reverse, one segment at a time.
    for (c, cp) in checkpoints.iter().enumerate().rev() {
        let (t0, t1) = (c * k, ((c + 1) * k).min(steps));
        p.restore(cp);
        // Recompute the segment, keeping the state before every substep.
        let mut states: Vec<Snapshot> = vec![];
        for t in t0..t1 {
            for _ in 0..subs {
                states.push(p.snapshot(n));
                p.substep(scene, start + t);
            }
        }
        states.push(if t1 == steps {
            end_state.clone()
        } else {
            checkpoints[c + 1].clone()
        });
        for t in (t0..t1).rev() {
            // `adj.controls` collects this step's control gradient (and, for the
            // last step, the loss's direct dependence on the controls).
            if let Some(r) = reward {
                p.restore(&states[(t + 1 - t0) * subs]);
                seed(p, r);
                p.outputs_adjoint(scene, &mut adj);
            }
            for sub in (0..subs).rev() {
                p.substep_adjoint(scene, &states[(t - t0) * subs + sub], &mut adj);
            }
            controls[t].copy_from_slice(&adj.controls);
            adj.controls.fill(0.0);
        }
    }
    p.restore(&end_state);
    PartGradient {
        value,
        params: adj.params,
        controls,
        x0: adj.x,
        v0: adj.v,
    }
}
