//! Readouts as `observe` items: the model's sensors that Joule can compute
//! from the state (joint and fixed-tendon coordinates and rates, frame
//! positions and velocities, subtree centres of mass and their velocities,
//! velocimeters and gyros), in MuJoCo's units and frames, and the lengths
//! of the fixed tendons.

use super::write::{num, plus, v3, Input};
use super::*;
use crate::math::*;
use std::fmt::Write;

/// Where an MJCF body sits in the Joule scene: the Joule body it was merged
/// into (`world` for the static ones) and its pose in that body's frame.
pub(super) struct Place<'a> {
    pub body: &'a str,
    pub world: bool,
    pub pos: V3,
    pub quat: Q,
}

impl Place<'_> {
    /// The point `r` of this place's frame in its Joule body's frame.
    pub fn at(&self, r: V3) -> V3 {
        add(self.pos, rotate(self.quat, r))
    }

    /// The world position of the point `r` (this place's frame) as Joule source.
    fn point(&self, r: V3) -> String {
        let r = self.at(r);
        match (self.world, r == [0.0; 3]) {
            (true, _) => v3(r),
            (false, true) => format!("{}.x", self.body),
            (false, false) => format!("{}.point({})", self.body, v3(r)),
        }
    }

    /// The world velocity of the point `r` (this place's frame).
    fn velocity(&self, r: V3) -> String {
        let r = self.at(r);
        match (self.world, r == [0.0; 3]) {
            (true, _) => v3([0.0; 3]),
            (false, true) => format!("{}.v", self.body),
            (false, false) => format!("({b}.v + cross({b}.w, {b}.R * {}))", v3(r), b = self.body),
        }
    }

    /// The angular velocity.
    fn spin(&self) -> String {
        if self.world {
            v3([0.0; 3])
        } else {
            format!("{}.w", self.body)
        }
    }

    /// A world vector `v` in the axes of the frame turned by `quat` from
    /// this place's.
    fn in_frame(&self, quat: Q, v: &str) -> String {
        let q = qmul(self.quat, quat);
        let axes = (q != IDENTITY).then(|| {
            let c = [[1.0, 0.0, 0.0], [0.0, 1.0, 0.0], [0.0, 0.0, 1.0]].map(|e| v3(rotate(q, e)));
            format!("mat3({}, {}, {})", c[0], c[1], c[2])
        });
        let frame = match (self.world, axes) {
            (true, None) => return v.to_string(),
            (true, Some(a)) => a,
            (false, None) => format!("{}.R", self.body),
            (false, Some(a)) => format!("{}.R * {a}", self.body),
        };
        format!("transpose({frame}) * {v}")
    }
}

/// A hinge's or slide's coordinate (MuJoCo's `qpos`, its `ref` added) or
/// rate, as Joule source.
fn joint_value(m: &Mjcf, places: &[Place], (b, j): (usize, usize), rate: bool) -> String {
    let joints = &m.bodies[b].joints;
    let field = if rate { "qdot" } else { "q" };
    let at: usize = joints[..j]
        .iter()
        .map(|x| if x.kind == JointKind::Ball { 3 } else { 1 })
        .sum();
    let mut s = if joints.len() == 1 {
        format!("{}.{field}", places[b].body)
    } else {
        format!("{}.{field}[{at}]", places[b].body)
    };
    if !rate {
        s += &plus(joints[j].reference);
    }
    s
}

/// A tendon's length or its rate: a fixed tendon's `sum coef qpos`, a
/// spatial one's sum of the distances between consecutive sites.
pub(super) fn tendon_value(m: &Mjcf, places: &[Place], t: &Tendon, rate: bool) -> String {
    let terms: Vec<String> = match &t.path {
        Path::Fixed(joints) => joints
            .iter()
            .filter(|(_, c)| *c != 0.0)
            .map(|&(j, c)| match c {
                1.0 => joint_value(m, places, j, rate),
                -1.0 => format!("-({})", joint_value(m, places, j, rate)),
                _ => format!("{} * ({})", num(c), joint_value(m, places, j, rate)),
            })
            .collect(),
        Path::Spatial(sites) => sites
            .windows(2)
            .map(|w| {
                let at = |(b, i): (usize, usize)| (&places[b], m.bodies[b].sites[i].pos);
                let ((pa, ra), (pb, rb)) = (at(w[0]), at(w[1]));
                let d = format!("{} - {}", pb.point(rb), pa.point(ra));
                if rate {
                    let v = format!("{} - {}", pb.velocity(rb), pa.velocity(ra));
                    format!("dot({d}, {v}) / norm({d})")
                } else {
                    format!("norm({d})")
                }
            })
            .collect(),
    };
    if terms.is_empty() {
        "0".into()
    } else {
        terms.join(" + ")
    }
}

/// A tendon's passive spring and damper (MuJoCo's `stiffness`
/// toward `springlength`, and `damping`) as an energy and a dissipation of
/// its length, appended to `out`; nothing for a tendon without them.
pub(super) fn write_tendon_forces(
    m: &Mjcf,
    places: &[Place],
    t: &Tendon,
    ident: &mut dyn FnMut(&str) -> String,
    out: &mut String,
) {
    if t.stiffness != 0.0 {
        let name = ident(&format!("{}_spring", t.name));
        let length = tendon_value(m, places, t, false);
        writeln!(
            out,
            "energy {name}() = 0.5 * {} * ({length}{})^2    // tendon {}: stiffness\n{name}()",
            num(t.stiffness),
            plus(-t.springlength),
            t.name
        )
        .ok();
    }
    if t.damping != 0.0 {
        let name = ident(&format!("{}_damper", t.name));
        let rate = tendon_value(m, places, t, true);
        writeln!(
            out,
            "dissipation {name}() = 0.5 * {} * ({rate})^2    // tendon {}: damping\n{name}()",
            num(t.damping),
            t.name
        )
        .ok();
    }
}

/// A position servo on a tendon (actuator `k`, MJCF name or
/// `label`): the spring `kp (u[k] - L)` on the tendon's length `L`, and
/// its velocity gain `kv` as a damper, appended to `out`.
#[allow(clippy::too_many_arguments)]
pub(super) fn write_tendon_servo(
    m: &Mjcf,
    places: &[Place],
    t: &Tendon,
    (input, kp, kv): (&Input, f64, f64),
    label: &str,
    ident: &mut dyn FnMut(&str) -> String,
    out: &mut String,
) {
    let name = ident(&format!("{}_servo", t.name));
    let length = tendon_value(m, places, t, false);
    let (param, u, arg) = input.parameter();
    let k = input.control();
    writeln!(
        out,
        "energy {name}({param}) = 0.5 * {} * ({length} - {u})^2    // u[{k}]: {label}, position servo\n{name}({arg})",
        num(kp)
    )
    .ok();
    if kv > 0.0 {
        let name = ident(&format!("{}_servo_damper", t.name));
        let rate = tendon_value(m, places, t, true);
        writeln!(
            out,
            "dissipation {name}() = 0.5 * {} * ({rate})^2    // its velocity gain kv\n{name}()",
            num(kv)
        )
        .ok();
    }
}

/// A motor on a spatial tendon (actuator `k`): the force `gear u[k]`
/// along the tendon, the energy `-gear u[k] L` of its length `L`.
pub(super) fn write_tendon_motor(
    m: &Mjcf,
    places: &[Place],
    t: &Tendon,
    (input, gear): (&Input, f64),
    label: &str,
    ident: &mut dyn FnMut(&str) -> String,
    out: &mut String,
) {
    let name = ident(&format!("{}_motor", t.name));
    let (param, u, arg) = input.parameter();
    let k = input.control();
    writeln!(
        out,
        "energy {name}({param}) = -{} * {u} * ({})    // u[{k}]: {label}\n{name}({arg})",
        num(gear),
        tendon_value(m, places, t, false)
    )
    .ok();
}

/// The centre of mass of body `root` and its descendants (`sum m_i c_i /
/// sum m_i` over their bodies), or its velocity, as Joule source; `None`
/// when the subtree has no mass.
fn subtree(m: &Mjcf, places: &[Place], root: usize, velocity: bool) -> Option<String> {
    // Per Joule body: the subtree's mass merged into it and its first
    // moment in that body's frame.
    let mut parts: Vec<(&Place, f64, V3)> = vec![];
    for (b, body) in m
        .bodies
        .iter()
        .enumerate()
        .filter(|(b, _)| in_subtree(&m.bodies, root, *b))
    {
        let (mass, p) = (body.mass.mass, &places[b]);
        if mass <= 0.0 {
            continue;
        }
        let moment = scale(p.at(body.mass.com), mass);
        match parts.iter_mut().find(|x| x.0.body == p.body) {
            Some(x) => {
                x.1 += mass;
                x.2 = add(x.2, moment);
            }
            None => parts.push((p, mass, moment)),
        }
    }
    let total: f64 = parts.iter().map(|x| x.1).sum();
    if total <= 0.0 {
        return None;
    }
    let terms: Vec<String> = parts
        .iter()
        .map(|&(p, mass, moment)| {
            // The Joule body's own frame: no offset.
            let body = Place {
                body: p.body,
                world: p.world,
                pos: [0.0; 3],
                quat: IDENTITY,
            };
            let c = scale(moment, 1.0 / mass);
            let at = if velocity {
                body.velocity(c)
            } else {
                body.point(c)
            };
            format!("{} * {at}", num(mass))
        })
        .collect();
    Some(format!("({}) / {}", terms.join(" + "), num(total)))
}

/// The `observe` items of the model's sensors and fixed tendons (appended
/// to `out`); `ident` turns an MJCF name into a free Joule name.
pub(super) fn write_sensors(
    m: &Mjcf,
    places: &[Place],
    ident: &mut dyn FnMut(&str) -> String,
    out: &mut String,
) {
    if !m.tendons.is_empty() {
        writeln!(
            out,
            "\n// Tendons: their lengths (fixed: sum coef qpos; spatial: through their sites)."
        )
        .ok();
    }
    for t in &m.tendons {
        let name = ident(&t.name);
        writeln!(
            out,
            "observe {name} = {}",
            tendon_value(m, places, t, false)
        )
        .ok();
    }
    if !m.sensors.is_empty() {
        writeln!(out, "\n// Sensors, in MuJoCo's units and frames.").ok();
    }
    for s in &m.sensors {
        let value = match s.kind {
            SensorKind::JointPos(b, j) => Some(joint_value(m, places, (b, j), false)),
            SensorKind::JointVel(b, j) => Some(joint_value(m, places, (b, j), true)),
            SensorKind::TendonPos(t) => Some(tendon_value(m, places, &m.tendons[t], false)),
            SensorKind::TendonVel(t) => Some(tendon_value(m, places, &m.tendons[t], true)),
            SensorKind::FramePos(f) | SensorKind::FrameLinVel(f) | SensorKind::FrameAngVel(f) => {
                let (b, r) = match f {
                    Frame::Body(b) => (b, [0.0; 3]),
                    Frame::Inertial(b) => (b, m.bodies[b].mass.com),
                    Frame::Site(b, i) => (b, m.bodies[b].sites[i].pos),
                };
                let p = &places[b];
                Some(match s.kind {
                    SensorKind::FramePos(_) => p.point(r),
                    SensorKind::FrameLinVel(_) => p.velocity(r),
                    _ => p.spin(),
                })
            }
            SensorKind::SubtreeCom(b) => subtree(m, places, b, false),
            SensorKind::SubtreeLinVel(b) => subtree(m, places, b, true),
            SensorKind::Velocimeter(b, i) | SensorKind::Gyro(b, i) => {
                let (p, site) = (&places[b], &m.bodies[b].sites[i]);
                let v = if matches!(s.kind, SensorKind::Gyro(..)) {
                    p.spin()
                } else {
                    p.velocity(site.pos)
                };
                Some(p.in_frame(site.quat, &v))
            }
        };
        let name = ident(&s.name);
        match value {
            Some(v) => writeln!(out, "observe {name} = {v}"),
            None => writeln!(out, "// {name}: a subtree without mass, not written"),
        }
        .ok();
    }
}
