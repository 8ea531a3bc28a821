//! Random joint trees for the kinematics' unit tests: a deterministic
//! generator, a model of bodies each attached by a list of joints, and its
//! tree.

use super::Tree;
use crate::mass::MassModel;
use glam::{DQuat, DVec3};
use joule_compiler::compiled::Backend;
use joule_compiler::model::{Attachment, Body, BodyShape, Joint, JointKind, Model};

/// A small deterministic generator (xorshift) of numbers in [-1, 1).
pub(crate) struct Rng(pub(crate) u64);

impl Rng {
    pub(crate) fn next(&mut self) -> f64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        (self.0 >> 11) as f64 / (1u64 << 52) as f64 - 1.0
    }

    pub(crate) fn v3(&mut self) -> [f64; 3] {
        [self.next(), self.next(), self.next()]
    }

    fn unit(&mut self) -> [f64; 3] {
        DVec3::from_array(self.v3()).normalize().to_array()
    }
}

/// A model of one body per `(parent, joints)` of `spec` (a body without
/// joints is welded to its parent; body `fixed`, if any, is fixed in the
/// world), with random poses, anchors and axes.
pub(crate) fn model(
    spec: &[(Option<u32>, Vec<JointKind>)],
    fixed: Option<usize>,
    rng: &mut Rng,
) -> Model {
    let mut m = Model::default();
    let mut row = 0;
    for (i, (parent, kinds)) in spec.iter().enumerate() {
        let q = DQuat::from_scaled_axis(DVec3::from_array(rng.v3()));
        let is_fixed = fixed == Some(i);
        m.bodies.push(Body {
            name: format!("b{i}"),
            shape: BodyShape::Sphere { radius: 0.1 },
            mass: 1.0,
            x: rng.v3(),
            rotation: [q.w, q.x, q.y, q.z],
            v: [0.0; 3],
            w: [0.0; 3],
            inertia: None,
            dof: (!is_fixed).then_some(row),
            joint: (!is_fixed).then(|| Attachment {
                parent: *parent,
                joints: kinds
                    .iter()
                    .map(|&kind| Joint {
                        kind,
                        at: rng.v3(),
                        axis: rng.unit(),
                        range: None,
                        soft: None,
                        armature: 0.0,
                        damping: 0.0,
                        stiffness: 0.0,
                        motor: None,
                        servo: None,
                        span: Default::default(),
                    })
                    .collect(),
                coord: 0,
                span: Default::default(),
            }),
        });
        if !is_fixed {
            row += 12;
        }
    }
    for b in &mut m.bodies {
        if let Some(a) = &mut b.joint {
            a.coord = row;
            row += a.coordinates();
        }
    }
    m.dof_count = row as usize;
    m
}

/// The model's joint trees.
pub(crate) fn tree(m: &Model) -> Tree {
    let compiled = joule_compiler::compile(m.clone(), Backend::Interp, vec![]).expect("compiles");
    let mass = MassModel::new(m);
    Tree::new(m, &mass, |k| compiled.kernels.get(k))
        .expect("a valid tree")
        .expect("joints")
}
