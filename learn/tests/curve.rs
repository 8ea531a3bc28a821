//! The learning curve's clocks: the simulator's share (`Point::sim`: its
//! steps and adjoint steps) is positive, grows every iteration and stays
//! within the wall-clock time, for every algorithm.

use joule_learn::{Algo, Config, Trainer};
use joule_runtime::Scene;

#[test]
fn the_simulators_time_is_a_part_of_the_wall_time() {
    let path = format!("{}/../tests/learn/reach.joule", env!("CARGO_MANIFEST_DIR"));
    let scene = Scene::from_path(path.as_ref(), Default::default()).expect("the scene compiles");
    for algo in [Algo::Apg, Algo::Shac, Algo::Ppo] {
        let mut c = Config::new(algo, "closeness");
        (c.batch, c.horizon, c.episode) = (4, 10, 20);
        let mut tr = Trainer::new(&scene, c).expect("trainer");
        let mut last = 0.0;
        for _ in 0..3 {
            let p = tr.iterate().expect("iteration").clone();
            assert!(
                p.sim > last,
                "{algo:?}: the simulator's time grows: {}",
                p.sim
            );
            assert!(p.sim < p.wall, "{algo:?}: {} s of {} s", p.sim, p.wall);
            last = p.sim;
        }
    }
}
