//! The shipped scenes (`scenes/*.joule`) by file stem, for tests generated
//! once per scene: a failure names its scene and the other scenes still run.
//! `compiler/tests/scenes.rs` checks that this list is exactly the folder, so
//! a new scene cannot be left out of the tests.

/// Calls `$per_scene! { ant cartpole ... }` with the file stem of every
/// shipped scene, in file-name order.
macro_rules! shipped_scenes {
    ($per_scene:ident) => {
        $per_scene! {
            ant
            ant_brax
            ant_coulomb
            ant_joints
            cartpole
            cartpole_costnet
            cartpole_planner
            cartpole_rod
            cloth_drape
            cloth_sheet
            double_pendulum
            half_cheetah
            half_cheetah_joints
            hanging_cloth
            hopper
            humanoid
            pendulum
            quadruped_surrogate
            reacher
            reacher_payload
            reacher_planner
            reacher_targets
            rigid_drop
            soft_block
            soft_quadruped
            soft_walker
            spring_chain
            walker2d
        }
    };
}
