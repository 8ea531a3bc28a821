//! Gait quality: how a legged robot moves, not only how far it gets
//! (`joule run --gait`). A learned behaviour that buzzes in place or slides
//! on its feet can earn a return; these numbers tell it from a gait.
//!
//! The feet are the bodies that carry ground contact points, the body
//! points of the prelude's ground contacts (`contact_soft`, `contact_coulomb`,
//! `ground_soft`, `ground_point`, `ground_penalty`): each instance's point `r` and
//! `radius`; and the particles with ground contact (`contact_soft_particle`,
//! `contact_coulomb_particle`, `ground`) that touch it at least once (a soft
//! body's feet). A foot's
//! height is its lowest contact sphere's lowest point above `z = 0`; it
//! stands when that is at most [`STANCE_HEIGHT`]. Its slip is the
//! horizontal motion, over a step in which it stands at both ends, of the
//! material point that touched the ground at the step's start (so a foot
//! that rolls does not slip). The root is the first body with a `free`
//! joint (else the first moving body; else the free particles' centre of
//! mass, whose heading is the particles' best-fit turn about z). Everything
//! is sampled once per scene step (`dt`), after it: motion inside a step's
//! substeps is not seen.

use joule_compiler::model::{DofRef, JointKind, Model};
use rustfft::{num_complex::Complex, FftPlanner};

/// A foot stands when its lowest point is at most this high (m): above the
/// soft contacts' few millimetres of penetration and the barriers' `dhat`.
pub const STANCE_HEIGHT: f64 = 2e-3;

/// The least horizontal travel of the root (m) over which slip is a ratio.
pub const MIN_TRAVEL: f64 = 0.01;

/// The prelude's ground contacts on a body point: `(A, r, radius, ..)`
/// (`contact_mujoco`'s and `contact_mujoco_cone`'s instances on the plane z
/// = 0).
const GROUND_CONTACTS: [&str; 7] = [
    "contact_soft",
    "contact_mujoco",
    "contact_mujoco_cone",
    "contact_coulomb",
    "ground_soft",
    "ground_point",
    "ground_penalty",
];

/// The prelude's ground contacts of a particle: `(p, ..)`.
const PARTICLE_GROUND_CONTACTS: [&str; 3] = [
    "contact_soft_particle",
    "contact_coulomb_particle",
    "ground",
];

/// A body's pose: origin and rotation matrix (rows).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Pose {
    /// The origin.
    pub x: [f64; 3],
    /// The rotation, `R[i][j]` row i, column j.
    pub r: [[f64; 3]; 3],
}

impl Pose {
    /// The world position of the body-frame point `p`.
    pub fn point(&self, p: [f64; 3]) -> [f64; 3] {
        std::array::from_fn(|i| self.x[i] + (0..3).map(|j| self.r[i][j] * p[j]).sum::<f64>())
    }

    /// The body-frame coordinates of the world point `w`.
    pub fn local(&self, w: [f64; 3]) -> [f64; 3] {
        std::array::from_fn(|j| {
            (0..3)
                .map(|i| self.r[i][j] * (w[i] - self.x[i]))
                .sum::<f64>()
        })
    }
}

/// One foot over a run: its contact spheres (body-frame centre, radius) and
/// its pose at every frame.
#[derive(Clone, Debug)]
pub struct Track {
    /// The body's name.
    pub name: String,
    /// Its contact spheres.
    pub points: Vec<Sphere>,
    /// Its pose per frame.
    pub poses: Vec<Pose>,
}

impl Track {
    /// The lowest point of the foot's spheres at frame `f`.
    fn lowest(&self, f: usize) -> [f64; 3] {
        self.points
            .iter()
            .map(|(p, radius)| {
                let c = self.poses[f].point(*p);
                [c[0], c[1], c[2] - radius]
            })
            .fold(
                [0.0, 0.0, f64::INFINITY],
                |a, b| if b[2] < a[2] { b } else { a },
            )
    }
}

/// What one foot did.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Foot {
    /// The body's name.
    pub name: String,
    /// Fraction of the frames it stands.
    pub duty: f64,
    /// Touchdowns after a swing per second.
    pub touchdowns: f64,
    /// The mean over its swings of the highest its lowest point rose (m); 0
    /// when it never swung.
    pub clearance: f64,
    /// Horizontal slip of its touching point while it stood (m).
    pub slip: f64,
    /// That slip per second of stance (m/s); 0 when it never stood.
    pub slip_speed: f64,
}

/// How the root moved.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Root {
    /// The body's name.
    pub name: String,
    /// Displacement along x (m).
    pub forward: f64,
    /// Displacement along y (m).
    pub lateral: f64,
    /// The change of the heading of its x axis about z (degrees).
    pub heading: f64,
}

/// The controls' spectrum.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Controls {
    /// The median over controls of each one's strongest frequency (Hz),
    /// its mean removed.
    pub dominant: f64,
    /// The share of the controls' power (mean removed) above a quarter of
    /// the control rate, where a control that flips every step puts all of
    /// its power.
    pub high: f64,
}

/// A run's gait, for one environment.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Gait {
    /// Seconds covered.
    pub seconds: f64,
    /// The root's motion, when the scene has a moving body.
    pub root: Option<Root>,
    /// Each foot's numbers.
    pub feet: Vec<Foot>,
    /// The controls' spectrum (`None` without controls).
    pub controls: Option<Controls>,
}

impl Gait {
    /// The slip of all feet over the root's horizontal distance, when the
    /// root moved at least [`MIN_TRAVEL`].
    pub fn slip_ratio(&self) -> Option<f64> {
        let distance = self
            .root
            .as_ref()
            .map_or(0.0, |r| r.forward.hypot(r.lateral));
        let slip: f64 = self.feet.iter().map(|f| f.slip).sum();
        (distance >= MIN_TRAVEL).then(|| slip / distance)
    }

    /// A few lines of text.
    pub fn table(&self) -> String {
        let mut s = String::new();
        if let Some(r) = &self.root {
            s += &format!(
                "  root {}: forward {:.3} m ({:.3} m/s), lateral {:.3} m, heading {:+.1} deg; feet's slip / distance {}\n",
                r.name,
                r.forward,
                r.forward / self.seconds.max(f64::MIN_POSITIVE),
                r.lateral,
                r.heading,
                self.slip_ratio()
                    .map_or_else(|| "- (it stayed put)".to_string(), |x| format!("{x:.3}"))
            );
        }
        if let Some(c) = &self.controls {
            s += &format!(
                "  controls: strongest frequency {:.2} Hz (median), {:.0} % of the power above a quarter of the control rate\n",
                c.dominant,
                100.0 * c.high
            );
        }
        if !self.feet.is_empty() {
            s += &format!(
                "  {:<16} {:>6} {:>13} {:>14} {:>9} {:>11}\n",
                "foot", "duty", "touchdowns/s", "clearance (m)", "slip (m)", "slip (m/s)"
            );
        }
        for f in &self.feet {
            s += &format!(
                "  {:<16} {:>6.2} {:>13.2} {:>14.4} {:>9.4} {:>11.4}\n",
                f.name, f.duty, f.touchdowns, f.clearance, f.slip, f.slip_speed
            );
        }
        s
    }
}

/// The gait of one run: its feet, its root's poses and its controls
/// (`[control][frame]`), sampled every `dt` seconds.
pub fn analyse(
    feet: &[Track],
    root: Option<(&str, &[Pose])>,
    controls: &[Vec<f64>],
    dt: f64,
) -> Gait {
    let frames = feet
        .first()
        .map(|t| t.poses.len())
        .or(root.map(|r| r.1.len()))
        .unwrap_or(0);
    let seconds = frames.saturating_sub(1) as f64 * dt;
    Gait {
        seconds,
        root: root.filter(|r| !r.1.is_empty()).map(|(name, poses)| {
            let (a, b) = (poses[0], poses[poses.len() - 1]);
            let yaw = |p: &Pose| p.r[1][0].atan2(p.r[0][0]);
            let mut turn = (yaw(&b) - yaw(&a)).to_degrees();
            turn -= 360.0 * (turn / 360.0).round();
            Root {
                name: name.to_string(),
                forward: b.x[0] - a.x[0],
                lateral: b.x[1] - a.x[1],
                heading: turn,
            }
        }),
        feet: feet.iter().map(|t| foot(t, dt, seconds)).collect(),
        controls: (!controls.is_empty() && frames > 2).then(|| spectrum(controls, dt)),
    }
}

/// One foot's numbers.
fn foot(t: &Track, dt: f64, seconds: f64) -> Foot {
    let n = t.poses.len();
    let low: Vec<[f64; 3]> = (0..n).map(|f| t.lowest(f)).collect();
    let stands: Vec<bool> = low.iter().map(|p| p[2] <= STANCE_HEIGHT).collect();
    let mut out = Foot {
        name: t.name.clone(),
        ..Foot::default()
    };
    if n == 0 {
        return out;
    }
    out.duty = stands.iter().filter(|s| **s).count() as f64 / n as f64;
    // A swing runs from a lift-off to the next touchdown: the fall before
    // the first touchdown and a swing the run cuts short are not counted.
    let (mut swings, mut peak_sum, mut peak) = (0usize, 0.0, None::<f64>);
    let mut stance_steps = 0usize;
    let mut stood = false;
    for f in 0..n {
        if stands[f] {
            if let Some(h) = peak.take() {
                swings += 1;
                peak_sum += h;
            }
            stood = true;
        } else if stood {
            peak = Some(peak.map_or(low[f][2], |h: f64| h.max(low[f][2])));
        }
        if f + 1 < n && stands[f] && stands[f + 1] {
            // The material point that touched at frame f, a step later.
            let material = t.poses[f].local(low[f]);
            let moved = t.poses[f + 1].point(material);
            out.slip += (moved[0] - low[f][0]).hypot(moved[1] - low[f][1]);
            stance_steps += 1;
        }
    }
    out.touchdowns = swings as f64 / seconds.max(dt);
    out.clearance = if swings > 0 {
        peak_sum / swings as f64
    } else {
        0.0
    };
    out.slip_speed = if stance_steps > 0 {
        out.slip / (stance_steps as f64 * dt)
    } else {
        0.0
    };
    out
}

/// The controls' strongest frequencies and high-frequency share, from each
/// control's discrete Fourier transform (its mean removed).
fn spectrum(controls: &[Vec<f64>], dt: f64) -> Controls {
    let (mut dominant, mut high, mut total) = (vec![], 0.0, 0.0);
    let mut planner = FftPlanner::<f64>::new();
    for u in controls {
        let n = u.len();
        if n < 2 {
            continue;
        }
        let mean = u.iter().sum::<f64>() / n as f64;
        let mut x: Vec<Complex<f64>> = u.iter().map(|v| Complex::new(v - mean, 0.0)).collect();
        planner.plan_fft_forward(n).process(&mut x);
        let power: Vec<f64> = x[1..=n / 2].iter().map(|c| c.norm_sqr()).collect();
        let best = (0..power.len()).max_by(|a, b| power[*a].total_cmp(&power[*b]));
        if let Some(k) = best.filter(|k| power[*k] > 0.0) {
            dominant.push((k + 1) as f64 / (n as f64 * dt));
        }
        // Bin k is k / (n dt) Hz; a quarter of the rate 1 / dt is n / 4.
        high += power
            .iter()
            .enumerate()
            .filter(|(k, _)| (k + 1) as f64 > n as f64 / 4.0)
            .map(|(_, p)| p)
            .sum::<f64>();
        total += power.iter().sum::<f64>();
    }
    dominant.sort_by(f64::total_cmp);
    Controls {
        dominant: dominant.get(dominant.len() / 2).copied().unwrap_or(0.0),
        high: if total > 0.0 { high / total } else { 0.0 },
    }
}

/// A contact sphere on a body: its body-frame centre and radius.
pub type Sphere = ([f64; 3], f64);

/// A foot in the state: its name, first DOF, contact spheres and whether
/// it is a particle (3 DOFs, no rotation) rather than a body.
type FootRows = (String, u32, Vec<Sphere>, bool);

/// What a run's root is in the state.
#[derive(Clone, Debug)]
enum RootRows {
    /// A body: its name and first DOF.
    Body(String, u32),
    /// With no moving body, the free particles' centre of mass: each
    /// particle's first DOF and mass.
    Particles(Vec<(u32, f64)>),
}

/// Where a scene's feet and root are in the state, for recording a run.
#[derive(Clone, Debug)]
pub struct Layout {
    /// Per foot: its name, first DOF, contact spheres and kind.
    feet: Vec<FootRows>,
    /// The root.
    root: Option<RootRows>,
}

impl Layout {
    /// The feet (bodies with ground contact points, particles with ground
    /// contact) and root of `model`.
    pub fn of(model: &Model) -> Layout {
        let mut feet: Vec<FootRows> = vec![];
        for t in &model.templates {
            let base = t.name.split('#').next().unwrap_or("");
            if PARTICLE_GROUND_CONTACTS.contains(&base) && t.dof_width == 3 {
                for i in 0..t.count {
                    let DofRef::Free(dof) = t.dofs[i * 3] else {
                        continue;
                    };
                    if feet.iter().any(|f| f.1 == dof) {
                        continue;
                    }
                    let name = model
                        .particles
                        .iter()
                        .find(|p| p.dof == Some(dof))
                        .map_or_else(|| format!("dof {dof}"), |p| p.name.clone());
                    feet.push((name, dof, vec![([0.0; 3], 0.0)], true));
                }
                continue;
            }
            if !GROUND_CONTACTS.contains(&base) || t.dof_width != 12 {
                continue;
            }
            let slot = |name: &str| t.const_names.iter().position(|c| c == name);
            let (Some(r0), Some(rad)) = (slot("r[0]"), slot("radius")) else {
                continue;
            };
            let width = t.const_names.len();
            let plane = slot("n[0]").zip(slot("c"));
            for i in 0..t.count {
                let DofRef::Free(dof) = t.dofs[i * 12] else {
                    continue;
                };
                let c = &t.consts[i * width..(i + 1) * width];
                if plane
                    .is_some_and(|(n, k)| [c[n], c[n + 1], c[n + 2], c[k]] != [0.0, 0.0, 1.0, 0.0])
                {
                    continue;
                }
                let point = ([c[r0], c[r0 + 1], c[r0 + 2]], c[rad]);
                match feet.iter_mut().find(|f| f.1 == dof) {
                    Some(f) => f.2.push(point),
                    None => {
                        let name = model
                            .bodies
                            .iter()
                            .find(|b| b.dof == Some(dof))
                            .map_or_else(|| format!("dof {dof}"), |b| b.name.clone());
                        feet.push((name, dof, vec![point], false));
                    }
                }
            }
        }
        let free = model.bodies.iter().find(|b| {
            b.joint
                .as_ref()
                .is_some_and(|j| j.joints.iter().any(|k| k.kind == JointKind::Free))
        });
        let body = free
            .or_else(|| model.bodies.iter().find(|b| b.dof.is_some()))
            .and_then(|b| Some(RootRows::Body(b.name.clone(), b.dof?)));
        let particles: Vec<(u32, f64)> = model
            .particles
            .iter()
            .filter_map(|p| Some((p.dof?, p.mass)))
            .collect();
        let root = body.or((!particles.is_empty()).then_some(RootRows::Particles(particles)));
        Layout { feet, root }
    }

    /// Whether there is anything to report.
    pub fn is_empty(&self) -> bool {
        self.feet.is_empty() && self.root.is_none()
    }

    /// A body's pose from a state vector (origin, then the rotation's
    /// columns), or a particle's (its position, no rotation).
    fn pose(x: &[f64], dof: u32, particle: bool) -> Pose {
        let d = dof as usize;
        Pose {
            x: [x[d], x[d + 1], x[d + 2]],
            r: std::array::from_fn(|i| {
                std::array::from_fn(|j| match particle {
                    true => f64::from(u8::from(i == j)),
                    false => x[d + 3 + 3 * j + i],
                })
            }),
        }
    }

    /// The particles' centre of mass and their offsets from it.
    fn centre(x: &[f64], particles: &[(u32, f64)]) -> ([f64; 3], Vec<[f64; 3]>) {
        let total: f64 = particles.iter().map(|p| p.1).sum();
        let at = |d: u32| -> [f64; 3] { std::array::from_fn(|k| x[d as usize + k]) };
        let c: [f64; 3] = std::array::from_fn(|k| {
            particles.iter().map(|&(d, m)| m * at(d)[k]).sum::<f64>() / total
        });
        let offsets = particles
            .iter()
            .map(|&(d, _)| std::array::from_fn(|k| at(d)[k] - c[k]))
            .collect();
        (c, offsets)
    }
}

/// The yaw (about z) that best turns the horizontal offsets `from` onto
/// `to`, mass-weighted (2-D Procrustes: the heading of a deformable body).
fn best_yaw(from: &[[f64; 3]], to: &[[f64; 3]], particles: &[(u32, f64)]) -> f64 {
    let (mut cross, mut dot) = (0.0, 0.0);
    for ((a, b), (_, m)) in from.iter().zip(to).zip(particles) {
        cross += m * (a[0] * b[1] - a[1] * b[0]);
        dot += m * (a[0] * b[0] + a[1] * b[1]);
    }
    cross.atan2(dot)
}

/// Records one environment's feet, root and controls over a run.
pub struct Recorder {
    layout: Layout,
    feet: Vec<Vec<Pose>>,
    root: Vec<Pose>,
    /// A particle root's offsets from its centre in the first frame.
    start: Vec<[f64; 3]>,
    controls: Vec<Vec<f64>>,
}

impl Recorder {
    /// A recorder for `layout`.
    pub fn new(layout: Layout) -> Recorder {
        let feet = vec![vec![]; layout.feet.len()];
        Recorder {
            layout,
            feet,
            root: vec![],
            start: vec![],
            controls: vec![],
        }
    }

    /// Records a frame: the environment's positions and the controls it
    /// was given for the step that led to it (`None` for the first frame).
    pub fn record(&mut self, positions: &[f64], controls: Option<&[f64]>) {
        for (track, (_, dof, _, particle)) in self.feet.iter_mut().zip(&self.layout.feet) {
            track.push(Layout::pose(positions, *dof, *particle));
        }
        match &self.layout.root {
            Some(RootRows::Body(_, dof)) => self.root.push(Layout::pose(positions, *dof, false)),
            Some(RootRows::Particles(particles)) => {
                let (c, offsets) = Layout::centre(positions, particles);
                if self.start.is_empty() {
                    self.start = offsets.clone();
                }
                let (s, co) = best_yaw(&self.start, &offsets, particles).sin_cos();
                self.root.push(Pose {
                    x: c,
                    r: [[co, -s, 0.0], [s, co, 0.0], [0.0, 0.0, 1.0]],
                });
            }
            None => {}
        }
        if let Some(u) = controls {
            self.controls.resize(u.len(), vec![]);
            for (c, v) in self.controls.iter_mut().zip(u) {
                c.push(*v);
            }
        }
    }

    /// The gait of the recorded run, frames `dt` apart.
    pub fn gait(&self, dt: f64) -> Gait {
        let tracks: Vec<Track> = self
            .layout
            .feet
            .iter()
            .zip(&self.feet)
            .map(|((name, _, points, _), poses)| Track {
                name: name.clone(),
                points: points.clone(),
                poses: poses.clone(),
            })
            .collect();
        let root = self.layout.root.as_ref().map(|r| match r {
            RootRows::Body(name, _) => (name.as_str(), self.root.as_slice()),
            RootRows::Particles(_) => ("centre of mass", self.root.as_slice()),
        });
        let mut gait = analyse(&tracks, root, &self.controls, dt);
        // A soft body's surface particles that never touch the ground are
        // not feet.
        let particle = self.layout.feet.iter().map(|f| f.3);
        gait.feet = std::mem::take(&mut gait.feet)
            .into_iter()
            .zip(particle)
            .filter(|(f, particle)| !particle || f.duty > 0.0)
            .map(|(f, _)| f)
            .collect();
        gait
    }
}
