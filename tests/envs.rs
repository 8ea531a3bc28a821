//! Brax's environments (`scenes/envs/*.joule`) against Brax's definitions
//! (brax 0.14.2, `brax/envs/*.py`, default arguments) written out here
//! independently of the scenes: each env is stepped under a seeded random
//! control sequence, and after every step the scene's observation (its
//! policy's inputs, in order), reward and termination must equal Brax's
//! formulas evaluated on the recorded state: MuJoCo's `qpos`/`qvel` built
//! from the joint coordinate rows (free joints: the displacement and
//! rotation vector from the initial pose, world velocities) and world
//! positions from the bodies' rows. The control period (Brax's `dt`) and the
//! physics step (the XML's `timestep`) are checked too.

#[allow(dead_code)] // each test crate uses a different part of the shared helpers
mod common;

use common::Rng;
use joule_compiler::math::{
    add, axis_angle, cross, mul_mm, mul_mv, qmat, qmul, rotate_tensor, scale, sub, transpose, M3,
    V3,
};
use joule_compiler::model::{JointKind, Model, ObjectiveKind};
use joule_runtime::Scene;
use std::path::Path;

/// What Brax's formulas read after a step.
struct State<'a> {
    model: &'a Model,
    /// Free rows' positions after the step, and before it, and velocities
    /// after it (a link's are the secant of the last physics step).
    x: Vec<f64>,
    x_before: Vec<f64>,
    v: Vec<f64>,
    /// MuJoCo's qpos and qvel.
    qpos: Vec<f64>,
    qvel: Vec<f64>,
    /// The controls applied during the step.
    u: Vec<f64>,
}

impl State<'_> {
    fn body(&self, name: &str) -> usize {
        let b = self.model.bodies.iter().find(|b| b.name == name);
        b.unwrap_or_else(|| panic!("no body {name}"))
            .dof
            .expect("moving") as usize
    }

    /// A body's origin, from its rows, after (or before) the step.
    fn origin(&self, name: &str, before: bool) -> [f64; 3] {
        let d = self.body(name);
        let x = if before { &self.x_before } else { &self.x };
        [x[d], x[d + 1], x[d + 2]]
    }

    /// The point `r` (body frame) of every body weighted by its mass, over
    /// the total mass: the centre of mass, before or after the step.
    fn com(&self, before: bool) -> [f64; 3] {
        let x = if before { &self.x_before } else { &self.x };
        let (mut c, mut m) = ([0.0; 3], 0.0);
        for b in &self.model.bodies {
            let d = b.dof.expect("moving") as usize;
            let r = b.inertia.as_ref().map_or([0.0; 3], |i| i.com);
            for k in 0..3 {
                let p = x[d + k] + (0..3).map(|j| x[d + 3 + 3 * j + k] * r[j]).sum::<f64>();
                c[k] += b.mass * p;
            }
            m += b.mass;
        }
        c.map(|c| c / m)
    }

    fn ctrl_cost(&self) -> f64 {
        self.u.iter().map(|u| u * u).sum()
    }
}

/// How far (relative to 1 + |value|) a humanoid link's secant velocity may
/// be from its instantaneous one under the test's random controls (the
/// largest seen is 0.13, on a thigh's angular velocity).
const SECANT_LINKS: f64 = 0.25;

/// Every body's rotation (from its rows) after the step.
fn body_rotation(s: &State, d: usize) -> M3 {
    std::array::from_fn(|r| std::array::from_fn(|c| s.x[d + 3 + 3 * c + r]))
}

/// Brax's link velocities (`xd`: the instantaneous angular velocity and the
/// origin's velocity, world axes) of every body in model order, from MuJoCo's
/// `qvel` through the joint tree: a hinge's axis and anchor (given in world
/// coordinates in the initial pose) carried by the rotations of its parent
/// and of the hinges before it in its body, `w = w_parent + sum qd a` and
/// `v(y) = v_parent(y) + sum qd a x (y - anchor)`. Also checks that the
/// tree's poses, so composed, are the bodies' rows.
fn link_velocities(s: &State) -> Vec<(V3, V3)> {
    let m = s.model;
    let mut out: Vec<(V3, V3)> = vec![];
    let mut qv = 0;
    for b in &m.bodies {
        let d = b.dof.expect("moving") as usize;
        let (x_b, r_b) = (s.origin(&b.name, false), body_rotation(s, d));
        let a = b.joint.as_ref().expect("a jointed body");
        let (mut w, v_at, mut racc, mut origin, mut origin0) = match a.parent {
            None => {
                assert_eq!(a.joints[0].kind, JointKind::Free);
                let v: V3 = std::array::from_fn(|k| s.qvel[qv + k]);
                let w_body: V3 = std::array::from_fn(|k| s.qvel[qv + 3 + k]);
                qv += 6;
                out.push((mul_mv(&r_b, w_body), v));
                continue;
            }
            Some(p) => {
                let pb = &m.bodies[p as usize];
                let pd = pb.dof.expect("moving") as usize;
                let r_p = body_rotation(s, pd);
                let r_p0 = qmat(pb.rotation);
                let (w_p, v_p) = out[p as usize];
                let x_p = s.origin(&pb.name, false);
                (w_p, (v_p, x_p), mul_mm(&r_p, &transpose(&r_p0)), x_p, pb.x)
            }
        };
        // The transform so far maps an initial-pose point y0 to
        // origin + racc (y0 - origin0).
        let mut hinges: Vec<(f64, V3, V3)> = vec![];
        for j in &a.joints {
            assert_eq!(
                j.kind,
                JointKind::Hinge,
                "{}: hinges below the root",
                b.name
            );
            // qpos has the free joint's 7 where qvel has 6.
            let (q, qd) = (s.qpos[qv + 1], s.qvel[qv]);
            let axis = mul_mv(&racc, j.axis);
            let anchor = add(origin, mul_mv(&racc, sub(j.at, origin0)));
            w = add(w, scale(axis, qd));
            hinges.push((qd, axis, anchor));
            // Then the hinge's own rotation about its anchor.
            let turn = qmat(axis_angle(j.axis, q));
            origin = anchor;
            origin0 = j.at;
            racc = mul_mm(&racc, &turn);
            qv += 1;
        }
        let map = |y0: V3| add(origin, mul_mv(&racc, sub(y0, origin0)));
        let x_check = map(b.x);
        let r_check = mul_mm(&racc, &qmat(b.rotation));
        for k in 0..3 {
            assert!((x_check[k] - x_b[k]).abs() < 1e-9, "{}: origin", b.name);
            for c in 0..3 {
                assert!(
                    (r_check[k][c] - r_b[k][c]).abs() < 1e-9,
                    "{}: rotation",
                    b.name
                );
            }
        }
        let (v_p, x_p) = v_at;
        let mut v = add(
            v_p,
            cross(out[a.parent.expect("parent") as usize].0, sub(x_b, x_p)),
        );
        for (qd, axis, anchor) in hinges {
            v = add(v, scale(cross(axis, sub(x_b, anchor)), qd));
        }
        out.push((w, v));
    }
    out
}

/// MuJoCo's qpos and qvel from the joint coordinate rows, joints in the
/// model's body order (the MJCF's, depth first).
fn generalised(m: &Model, x: &[f64], v: &[f64]) -> (Vec<f64>, Vec<f64>) {
    let (mut qpos, mut qvel) = (vec![], vec![]);
    for b in &m.bodies {
        let Some(a) = &b.joint else { continue };
        let mut row = a.coord as usize;
        for j in &a.joints {
            if j.kind == JointKind::Free {
                let phi = [x[row + 3], x[row + 4], x[row + 5]];
                let th = (phi[0] * phi[0] + phi[1] * phi[1] + phi[2] * phi[2]).sqrt();
                let s = if th > 0.0 { (th / 2.0).sin() / th } else { 0.5 };
                let dq = [(th / 2.0).cos(), s * phi[0], s * phi[1], s * phi[2]];
                let q = qmul(dq, b.rotation);
                let r = qmat(q);
                let w = [v[row + 3], v[row + 4], v[row + 5]];
                for k in 0..3 {
                    qpos.push(b.x[k] + x[row + k]);
                }
                qpos.extend(q);
                qvel.extend([v[row], v[row + 1], v[row + 2]]);
                // MuJoCo's free joint: angular velocity in the body frame, R^T w.
                qvel.extend((0..3).map(|c| (0..3).map(|k| r[k][c] * w[k]).sum::<f64>()));
                row += 6;
            } else {
                assert!(matches!(j.kind, JointKind::Hinge | JointKind::Slider));
                qpos.push(x[row]);
                qvel.push(v[row]);
                row += 1;
            }
        }
    }
    (qpos, qvel)
}

/// Brax's (observation, reward, done) of one step.
type Reference = fn(&State, f64) -> (Vec<f64>, f64, bool);

/// One env: its scene, Brax's `dt` (the control period), the XML's
/// timestep, the observation and action sizes, and Brax's formulas.
struct Env {
    name: &'static str,
    dt: f64,
    timestep: f64,
    obs: usize,
    actions: usize,
    reference: Reference,
    /// Observation entries the scene can only read from the link rows'
    /// velocities, which are the secant of the last physics step (a free
    /// body's angular velocity, a hinged body's origin velocity), where
    /// Brax's are the instantaneous joint velocities: equal to O(h), not
    /// to rounding (docs/learning.md).
    secant: &'static [usize],
}

/// Brax's forward velocity: the torso's x displacement over the step / dt.
fn forward(s: &State, dt: f64) -> f64 {
    (s.origin("torso", false)[0] - s.origin("torso", true)[0]) / dt
}

/// Hopper's and walker2d's observation: qpos[1:] with qpos[1] the torso's
/// height, then qvel clipped to [-10, 10].
fn planar_obs(s: &State) -> Vec<f64> {
    let mut o = vec![s.origin("torso", false)[2]];
    o.extend(&s.qpos[2..]);
    o.extend(s.qvel.iter().map(|v| v.clamp(-10.0, 10.0)));
    o
}

fn ant(s: &State, dt: f64) -> (Vec<f64>, f64, bool) {
    let obs = [&s.qpos[2..], &s.qvel[..]].concat();
    let z = s.origin("torso", false)[2];
    let reward = forward(s, dt) + 1.0 - 0.5 * s.ctrl_cost();
    (obs, reward, !(0.2..=1.0).contains(&z))
}

fn hopper(s: &State, dt: f64) -> (Vec<f64>, f64, bool) {
    let z = s.origin("torso", false)[2];
    let angle = s.qpos[2];
    let state = s.qpos[2..].iter().chain(&s.qvel);
    let healthy = state.into_iter().all(|x| -100.0 < *x && *x < 100.0)
        && 0.7 < z
        && -0.2 < angle
        && angle < 0.2;
    let reward = forward(s, dt) + 1.0 - 0.001 * s.ctrl_cost();
    (planar_obs(s), reward, !healthy)
}

fn walker2d(s: &State, dt: f64) -> (Vec<f64>, f64, bool) {
    let z = s.origin("torso", false)[2];
    let angle = s.qpos[2];
    let healthy = 0.8 < z && z < 2.0 && -1.0 < angle && angle < 1.0;
    let reward = forward(s, dt) + 1.0 - 0.001 * s.ctrl_cost();
    (planar_obs(s), reward, !healthy)
}

fn half_cheetah(s: &State, dt: f64) -> (Vec<f64>, f64, bool) {
    let obs = [&s.qpos[1..], &s.qvel[..]].concat();
    (obs, forward(s, dt) - 0.1 * s.ctrl_cost(), false)
}

fn swimmer(s: &State, dt: f64) -> (Vec<f64>, f64, bool) {
    let obs = [&s.qpos[2..], &s.qvel[..]].concat();
    (obs, forward(s, dt) - 1e-4 * s.ctrl_cost(), false)
}

fn humanoid(s: &State, dt: f64) -> (Vec<f64>, f64, bool) {
    // qfrc_actuator: gear * u on each actuated hinge (the XML's actuators).
    let gears = [
        ("abdomen_y", 100.0),
        ("abdomen_z", 100.0),
        ("abdomen_x", 100.0),
        ("right_hip_x", 100.0),
        ("right_hip_z", 100.0),
        ("right_hip_y", 300.0),
        ("right_knee", 200.0),
        ("left_hip_x", 100.0),
        ("left_hip_z", 100.0),
        ("left_hip_y", 300.0),
        ("left_knee", 200.0),
        ("right_shoulder1", 25.0),
        ("right_shoulder2", 25.0),
        ("right_elbow", 25.0),
        ("left_shoulder1", 25.0),
        ("left_shoulder2", 25.0),
        ("left_elbow", 25.0),
    ];
    // qvel order of the hinges (MJCF order, depth first).
    let order = [
        "abdomen_z",
        "abdomen_y",
        "abdomen_x",
        "right_hip_x",
        "right_hip_z",
        "right_hip_y",
        "right_knee",
        "left_hip_x",
        "left_hip_z",
        "left_hip_y",
        "left_knee",
        "right_shoulder1",
        "right_shoulder2",
        "right_elbow",
        "left_shoulder1",
        "left_shoulder2",
        "left_elbow",
    ];
    let mut qfrc = vec![0.0; 6];
    for joint in order {
        let k = gears
            .iter()
            .position(|(n, _)| *n == joint)
            .expect("actuated");
        qfrc.push(gears[k].1 * s.u[k]);
    }
    // com_inertia: every link's inertia about the whole's centre of mass in
    // world axes (R I R^T + m (|p|^2 Id - p p^T)), then its mass;
    // com_velocity: its centre of mass's velocity times its share of the
    // mass, then its angular velocity.
    let (com, total) = (
        s.com(false),
        s.model.bodies.iter().map(|b| b.mass).sum::<f64>(),
    );
    let exact = link_velocities(s);
    let (mut cinert, mut cvel) = (vec![], vec![]);
    for (b, (w_exact, v_exact)) in s.model.bodies.iter().zip(exact) {
        let d = b.dof.expect("moving") as usize;
        // The link's velocity as the scene reads it: its rows' (the secant
        // of the last physics step), the angular velocity from R' R^T.
        let v: V3 = std::array::from_fn(|k| s.v[d + k]);
        let rdot: M3 = std::array::from_fn(|r| std::array::from_fn(|c| s.v[d + 3 + 3 * c + r]));
        let spin = mul_mm(&rdot, &transpose(&body_rotation(s, d)));
        let w = [
            (spin[2][1] - spin[1][2]) / 2.0,
            (spin[0][2] - spin[2][0]) / 2.0,
            (spin[1][0] - spin[0][1]) / 2.0,
        ];
        // Brax's are the instantaneous velocities: the secants agree to
        // O(h) (docs/learning.md).
        for (got, want) in [(w, w_exact), (v, v_exact)] {
            for k in 0..3 {
                assert!(
                    (got[k] - want[k]).abs() <= SECANT_LINKS * (1.0 + want[k].abs()),
                    "{}: secant {got:?} vs instantaneous {want:?}",
                    b.name
                );
            }
        }
        let (r, i) = (
            body_rotation(s, d),
            b.inertia.as_ref().expect("imported inertia"),
        );
        let arm = mul_mv(&r, i.com);
        let p = sub(add(s.origin(&b.name, false), arm), com);
        let turned = rotate_tensor(&r, &i.tensor);
        let pp: f64 = p.iter().map(|x| x * x).sum();
        for j in 0..3 {
            for k in 0..3 {
                let shift = if j == k { pp } else { 0.0 } - p[j] * p[k];
                cinert.push(turned[j][k] + b.mass * shift);
            }
        }
        cinert.push(b.mass);
        cvel.extend(scale(add(v, cross(w, arm)), b.mass / total));
        cvel.extend(w);
    }
    let obs = [&s.qpos[2..], &s.qvel[..], &cinert[..], &cvel[..], &qfrc[..]].concat();
    let velocity = (s.com(false)[0] - s.com(true)[0]) / dt;
    let z = s.origin("torso", false)[2];
    let reward = 1.25 * velocity + 5.0 - 0.1 * s.ctrl_cost();
    (obs, reward, !(1.0..=2.0).contains(&z))
}

fn reacher(s: &State, _dt: f64) -> (Vec<f64>, f64, bool) {
    let (th, thd) = (&s.qpos[..2], &s.qvel[..2]);
    let d1 = s.body("body1");
    // The point 0.11 m along body1's x axis (the fingertip), and body1's
    // origin velocity plus w x (0.11, 0, 0) in world axes, as Brax has it.

    let r0 = [s.x[d1 + 3], s.x[d1 + 4], s.x[d1 + 5]];
    let o1 = s.origin("body1", false);
    let tip = [
        o1[0] + 0.11 * r0[0],
        o1[1] + 0.11 * r0[1],
        o1[2] + 0.11 * r0[2],
    ];
    // Brax's xd[1]: body1's origin moves with joint0's rate about z.
    let w = thd[0] + thd[1];
    let v1 = [-0.1 * thd[0] * th[0].sin(), 0.1 * thd[0] * th[0].cos()];
    let tip_vel = [v1[0], v1[1] + 0.11 * w];
    let target = s.origin("target", false);
    let to_target: Vec<f64> = (0..3).map(|k| tip[k] - target[k]).collect();
    let mut obs = vec![th[0].cos(), th[1].cos(), th[0].sin(), th[1].sin()];
    obs.extend(&s.qpos[2..]);
    obs.extend(tip_vel);
    obs.extend(&to_target);
    let dist = to_target.iter().map(|d| d * d).sum::<f64>().sqrt();
    (obs, -dist - s.ctrl_cost(), false)
}

fn inverted_pendulum(s: &State, _dt: f64) -> (Vec<f64>, f64, bool) {
    let obs = [&s.qpos[..], &s.qvel[..]].concat();
    let done = obs[1].abs() > 0.2;
    (obs, 1.0, done)
}

const ENVS: &[Env] = &[
    Env {
        name: "ant",
        dt: 0.05,
        timestep: 0.01,
        obs: 27,
        actions: 8,
        reference: ant,
        secant: &[16, 17, 18],
    },
    Env {
        name: "ant_mujoco",
        dt: 0.05,
        timestep: 0.01,
        obs: 27,
        actions: 8,
        reference: ant,
        // MuJoCo's Euler leaves the links' velocity rows at the tangent.
        secant: &[],
    },
    Env {
        name: "ant_mujoco_cone",
        dt: 0.05,
        timestep: 0.01,
        obs: 27,
        actions: 8,
        reference: ant,
        secant: &[],
    },
    Env {
        name: "hopper",
        dt: 0.008,
        timestep: 0.002,
        obs: 11,
        actions: 3,
        reference: hopper,
        secant: &[],
    },
    Env {
        name: "walker2d",
        dt: 0.008,
        timestep: 0.002,
        obs: 17,
        actions: 6,
        reference: walker2d,
        secant: &[],
    },
    Env {
        name: "half_cheetah",
        dt: 0.05,
        timestep: 0.01,
        obs: 17,
        actions: 6,
        reference: half_cheetah,
        secant: &[],
    },
    Env {
        name: "half_cheetah_mujoco",
        dt: 0.05,
        timestep: 0.01,
        obs: 17,
        actions: 6,
        reference: half_cheetah,
        secant: &[],
    },
    Env {
        name: "half_cheetah_mujoco_cone",
        dt: 0.05,
        timestep: 0.01,
        obs: 17,
        actions: 6,
        reference: half_cheetah,
        secant: &[],
    },
    Env {
        name: "swimmer",
        dt: 0.04,
        timestep: 0.01,
        obs: 8,
        actions: 2,
        reference: swimmer,
        secant: &[],
    },
    Env {
        name: "humanoid",
        dt: 0.015,
        timestep: 0.003,
        obs: 244,
        actions: 17,
        reference: humanoid,
        secant: &[25, 26, 27],
    },
    Env {
        name: "reacher",
        dt: 0.02,
        timestep: 0.01,
        obs: 11,
        actions: 2,
        reference: reacher,
        secant: &[],
    },
    Env {
        name: "inverted_pendulum",
        dt: 0.04,
        timestep: 0.02,
        obs: 4,
        actions: 1,
        reference: inverted_pendulum,
        secant: &[],
    },
];

/// Steps of each env under random controls.
const STEPS: usize = 40;

fn check_env(env: &Env) {
    let path = Path::new("scenes/envs").join(format!("{}.joule", env.name));
    let scene = Scene::from_path(&path, Default::default()).unwrap_or_else(|e| panic!("{e}"));
    let m = scene.model();
    let name = env.name;
    assert!(
        (m.settings.dt - env.dt).abs() < 1e-15,
        "{name}: dt {}",
        m.settings.dt
    );
    assert!(
        (scene.substep() - env.timestep).abs() < 1e-15,
        "{name}: physics step"
    );
    assert_eq!(m.controls.len(), env.actions, "{name}: actions");
    let policy = &m.policies[0];
    let inputs: Vec<&str> = policy
        .inputs
        .iter()
        .map(|&i| m.objectives[i].name.as_str())
        .collect();
    let one = |k: ObjectiveKind| {
        let mut it = m.objectives.iter().filter(|o| o.kind == k);
        let o = it.next().map(|o| o.name.clone());
        assert!(it.next().is_none(), "{name}: one {k:?} item");
        o
    };
    let (reward, done) = (
        one(ObjectiveKind::Reward).expect("a reward"),
        one(ObjectiveKind::Done),
    );
    let mut sim = scene.batch_threads(1, 1);
    let mut rng = Rng(0x5eed ^ name.len() as u64);
    let mut dones = 0;
    for step in 0..STEPS {
        let x_before = sim.positions(0);
        let u: Vec<f64> = m
            .controls
            .iter()
            .map(|c| {
                let (lo, hi) = c.bounds.expect("bounded controls");
                lo + (hi - lo) * (rng.next() + 1.0) / 2.0
            })
            .collect();
        for (c, u) in u.iter().enumerate() {
            sim.set_control(c, 0, *u);
        }
        let t = sim.time();
        sim.step();
        assert!(
            (sim.time() - t - env.dt).abs() < 1e-12,
            "{name}: control period"
        );
        let (x, v) = (sim.positions(0), sim.velocities(0));
        let (qpos, qvel) = generalised(m, &x, &v);
        let s = State {
            model: m,
            v: v.clone(),
            x,
            x_before,
            qpos,
            qvel,
            u,
        };
        let (obs, r, d) = (env.reference)(&s, env.dt);
        let got: Vec<f64> = inputs.iter().flat_map(|i| sim.output(i).concat()).collect();
        assert_eq!(got.len(), env.obs, "{name}: observation size");
        assert_eq!(obs.len(), env.obs, "{name}: reference observation size");
        for (k, (g, w)) in got.iter().zip(&obs).enumerate() {
            let tol = if env.secant.contains(&k) { 1e-2 } else { 1e-9 };
            assert!(
                (g - w).abs() <= tol * (1.0 + w.abs()),
                "{name} step {step}: obs[{k}] {g} vs Brax's {w}"
            );
        }
        let got_r = sim.output(&reward)[0][0];
        assert!(
            (got_r - r).abs() <= 1e-9 * (1.0 + r.abs()),
            "{name} step {step}: reward {got_r} vs Brax's {r}"
        );
        let got_d = done.as_ref().is_some_and(|d| sim.output(d)[0][0] > 0.5);
        assert_eq!(got_d, d, "{name} step {step}: done");
        dones += d as usize;
    }
    assert!(sim.events.is_empty(), "{name}: {:?}", sim.events);
    eprintln!("{name}: {STEPS} steps, done after {dones} of them");
}

macro_rules! env_tests {
    ($($name:ident)*) => {$(
        #[test]
        fn $name() {
            let env = ENVS.iter().find(|e| e.name == stringify!($name)).expect("listed");
            check_env(env);
        }
    )*};
}

/// One test per env, named after it.
mod env {
    use super::{check_env, ENVS};
    env_tests! { ant ant_mujoco ant_mujoco_cone hopper walker2d half_cheetah half_cheetah_mujoco half_cheetah_mujoco_cone swimmer humanoid reacher inverted_pendulum }
}

/// Every env steps in batches that split into chunks of every lane width
/// (one thread): each environment, driven by the same controls, follows
/// the single environment's trajectory. (A scene with no Hessian entries
/// of one kind, the inverted pendulum's, once panicked past the first
/// chunk of lanes.)
#[test]
fn every_env_steps_alike_in_any_batch() {
    const STEPS: usize = 3;
    for env in ENVS {
        let path = Path::new("scenes/envs").join(format!("{}.joule", env.name));
        let scene = Scene::from_path(&path, Default::default()).unwrap_or_else(|e| panic!("{e}"));
        let m = scene.model();
        let run = |batch: usize| {
            let mut sim = scene.batch_threads(batch, 1);
            for step in 0..STEPS {
                for (c, control) in m.controls.iter().enumerate() {
                    let (lo, hi) = control.bounds.expect("bounded controls");
                    let u = lo + (hi - lo) * (0.2 + 0.1 * ((c + step) % 7) as f64);
                    for e in 0..batch {
                        sim.set_control(c, e, u);
                    }
                }
                sim.step();
            }
            (0..batch).map(|e| sim.positions(e)).collect::<Vec<_>>()
        };
        let one = run(1).remove(0);
        for batch in [4, 9, 64] {
            for (e, x) in run(batch).iter().enumerate() {
                for (k, (a, b)) in x.iter().zip(&one).enumerate() {
                    assert!(
                        (a - b).abs() <= 1e-9 * (1.0 + b.abs()),
                        "{} batch {batch} env {e}: x[{k}] {a} vs {b} alone",
                        env.name
                    );
                }
            }
        }
    }
}

/// A distribution of Brax's `reset` (brax/envs/*.py, default
/// `reset_noise_scale`).
#[derive(Clone, Copy, Debug)]
enum Noise {
    /// `init + uniform(-a, a)`, or `uniform(-a, a)` for velocities.
    Uniform(f64),
    /// `sigma * normal()`.
    Normal(f64),
}

/// Checks `samples` against `noise` (centred on 0): bounds, mean and
/// variance within five standard errors.
fn check_noise(what: &str, samples: &[f64], noise: Noise) {
    let n = samples.len() as f64;
    let mean = samples.iter().sum::<f64>() / n;
    let var = samples.iter().map(|s| (s - mean).powi(2)).sum::<f64>() / (n - 1.0);
    let (want_var, fourth) = match noise {
        Noise::Uniform(a) => {
            for s in samples {
                assert!(s.abs() <= a * (1.0 + 1e-9), "{what}: {s} outside +-{a}");
            }
            (a * a / 3.0, a.powi(4) / 5.0)
        }
        Noise::Normal(sigma) => (sigma * sigma, 3.0 * sigma.powi(4)),
    };
    assert!(
        mean.abs() <= 5.0 * (want_var / n).sqrt(),
        "{what}: mean {mean} (variance {want_var})"
    );
    // The sample variance's standard error: sqrt((mu4 - sigma^4) / n).
    let se = ((fourth - want_var * want_var) / n).sqrt();
    assert!(
        (var - want_var).abs() <= 5.0 * se,
        "{what}: variance {var}, Brax's {want_var} ({noise:?})"
    );
}

/// Every env's `reset` items against Brax's `reset`: each joint coordinate
/// moved by (and each rate drawn from) Brax's distribution, independently
/// per coordinate (the correlation of neighbouring coordinates is ~0), and
/// the reacher's target in a disc of radius 0.2 with its distance uniform
/// on [0, 0.2] and its direction uniform. A free joint's rotation is a
/// rotation vector with Brax's noise per component (Brax perturbs the
/// quaternion's four components instead; docs/learning.md).
#[test]
fn resets_draw_braxs_distributions() {
    use rand::SeedableRng;
    const DRAWS: usize = 4000;
    let envs: &[(&str, Noise, Noise)] = &[
        ("ant", Noise::Uniform(0.1), Noise::Normal(0.1)),
        ("half_cheetah", Noise::Uniform(0.1), Noise::Normal(0.1)),
        ("swimmer", Noise::Uniform(0.1), Noise::Uniform(0.1)),
        ("hopper", Noise::Uniform(5e-3), Noise::Uniform(5e-3)),
        ("walker2d", Noise::Uniform(5e-3), Noise::Uniform(5e-3)),
        ("humanoid", Noise::Uniform(1e-2), Noise::Uniform(1e-2)),
        (
            "inverted_pendulum",
            Noise::Uniform(0.01),
            Noise::Uniform(0.01),
        ),
        ("reacher", Noise::Uniform(0.1), Noise::Uniform(0.005)),
    ];
    for &(name, qpos, qvel) in envs {
        let path = Path::new("scenes/envs").join(format!("{name}.joule"));
        let scene = Scene::from_path(&path, Default::default()).unwrap_or_else(|e| panic!("{e}"));
        let m = scene.model();
        let mut sim = scene.batch_threads(1, 1);
        let (x0, v0) = (sim.positions(0), sim.velocities(0));
        // Joint coordinate rows, the reacher's target apart.
        let mut rows = vec![];
        let mut target = vec![];
        for b in &m.bodies {
            let Some(a) = &b.joint else { continue };
            let r = a.rows().map(|r| r as usize);
            if b.name == "target" {
                target.extend(r);
            } else {
                rows.extend(r);
            }
        }
        assert!(!rows.is_empty(), "{name}: joint coordinates");
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(7);
        let (mut dx, mut dv) = (vec![vec![]; rows.len()], vec![vec![]; rows.len()]);
        let mut targets = vec![];
        for _ in 0..DRAWS {
            sim.reset_env(0, 0.0, &mut rng);
            let (x, v) = (sim.positions(0), sim.velocities(0));
            for (k, &r) in rows.iter().enumerate() {
                dx[k].push(x[r] - x0[r]);
                dv[k].push(v[r] - v0[r]);
            }
            if !target.is_empty() {
                targets.push([x[target[0]], x[target[1]]]);
                assert_eq!(
                    [v[target[0]], v[target[1]]],
                    [0.0, 0.0],
                    "{name}: target at rest"
                );
            }
        }
        for (k, &r) in rows.iter().enumerate() {
            check_noise(&format!("{name} qpos row {r}"), &dx[k], qpos);
            check_noise(&format!("{name} qvel row {r}"), &dv[k], qvel);
        }
        // Neighbouring coordinates are drawn independently.
        for w in dx.windows(2).chain(dv.windows(2)) {
            let n = DRAWS as f64;
            let (ma, mb) = (w[0].iter().sum::<f64>() / n, w[1].iter().sum::<f64>() / n);
            let cov: f64 = w[0]
                .iter()
                .zip(&w[1])
                .map(|(a, b)| (a - ma) * (b - mb))
                .sum::<f64>()
                / n;
            let sa = (w[0].iter().map(|a| (a - ma).powi(2)).sum::<f64>() / n).sqrt();
            let sb = (w[1].iter().map(|b| (b - mb).powi(2)).sum::<f64>() / n).sqrt();
            let corr = cov / (sa * sb);
            assert!(corr.abs() < 5.0 / n.sqrt(), "{name}: correlation {corr}");
        }
        if name == "reacher" {
            let dist: Vec<f64> = targets.iter().map(|t| t[0].hypot(t[1]) - 0.1).collect();
            check_noise("reacher target distance - 0.1", &dist, Noise::Uniform(0.1));
            let cos: Vec<f64> = targets.iter().map(|t| t[0] / t[0].hypot(t[1])).collect();
            // cos of a uniform angle: mean 0, variance 1/2.
            check_noise(
                "reacher target direction",
                &cos,
                Noise::Normal(0.5f64.sqrt()),
            );
        } else {
            assert!(target.is_empty(), "{name}: only the reacher has a target");
        }
    }
}
