//! The compiler's compile-time 3-D math in f64: vectors, 3x3 matrices as
//! rows ([`M3`]), quaternions `(w, x, y, z)`, and the column-major flat
//! rotation matrix of the model ([`quat_to_mat`]). Used by the resolver
//! (meshes, bodies' initial rotations, folded built-ins), the MJCF importer
//! and the mass properties of shapes. Numbers only: the IR's graph builders
//! for the same operations live in `ir/lower.rs`.

/// A 3-vector.
pub type V3 = [f64; 3];
/// A 3x3 matrix, rows.
pub type M3 = [[f64; 3]; 3];
/// A quaternion `(w, x, y, z)`.
pub type Q = [f64; 4];

/// The identity rotation.
pub const IDENTITY: Q = [1.0, 0.0, 0.0, 0.0];

/// `a + b`.
pub fn add(a: V3, b: V3) -> V3 {
    [a[0] + b[0], a[1] + b[1], a[2] + b[2]]
}

/// `a - b`.
pub fn sub(a: V3, b: V3) -> V3 {
    [a[0] - b[0], a[1] - b[1], a[2] - b[2]]
}

/// `s a`.
pub fn scale(a: V3, s: f64) -> V3 {
    [a[0] * s, a[1] * s, a[2] * s]
}

/// `a . b`, summed in component order.
pub fn dot(a: V3, b: V3) -> f64 {
    a[0] * b[0] + a[1] * b[1] + a[2] * b[2]
}

/// `a x b`.
pub fn cross(a: V3, b: V3) -> V3 {
    [
        a[1] * b[2] - a[2] * b[1],
        a[2] * b[0] - a[0] * b[2],
        a[0] * b[1] - a[1] * b[0],
    ]
}

/// `|a|`.
pub fn norm(a: V3) -> f64 {
    dot(a, a).sqrt()
}

/// `a / |a|`, or `None` for a zero vector.
pub fn normalize(a: V3) -> Option<V3> {
    let n = norm(a);
    (n > 0.0 && n.is_finite()).then(|| scale(a, 1.0 / n))
}

/// The Hamilton product `a b`.
pub fn qmul(a: Q, b: Q) -> Q {
    [
        a[0] * b[0] - a[1] * b[1] - a[2] * b[2] - a[3] * b[3],
        a[0] * b[1] + a[1] * b[0] + a[2] * b[3] - a[3] * b[2],
        a[0] * b[2] - a[1] * b[3] + a[2] * b[0] + a[3] * b[1],
        a[0] * b[3] + a[1] * b[2] - a[2] * b[1] + a[3] * b[0],
    ]
}

/// `q / |q|`, or `None` for a zero quaternion.
pub fn qnormalize(q: Q) -> Option<Q> {
    let n = q.iter().map(|c| c * c).sum::<f64>().sqrt();
    (n > 0.0 && n.is_finite()).then(|| q.map(|c| c / n))
}

/// Rotation by `angle` (radians) about the unit `axis`.
pub fn axis_angle(axis: V3, angle: f64) -> Q {
    let (s, c) = (angle / 2.0).sin_cos();
    [c, axis[0] * s, axis[1] * s, axis[2] * s]
}

/// The rotation matrix of a unit quaternion.
pub fn qmat(q: Q) -> M3 {
    let [w, x, y, z] = q;
    [
        [
            1.0 - 2.0 * (y * y + z * z),
            2.0 * (x * y - w * z),
            2.0 * (x * z + w * y),
        ],
        [
            2.0 * (x * y + w * z),
            1.0 - 2.0 * (x * x + z * z),
            2.0 * (y * z - w * x),
        ],
        [
            2.0 * (x * z - w * y),
            2.0 * (y * z + w * x),
            1.0 - 2.0 * (x * x + y * y),
        ],
    ]
}

/// A 3x3 rotation matrix (column-major) from a unit quaternion `(w, x, y, z)`:
/// [`qmat`] transposed into the model's column-major order (exact).
pub fn quat_to_mat(q: Q) -> [f64; 9] {
    let m = qmat(q);
    std::array::from_fn(|k| m[k % 3][k / 3])
}

/// `q v q^-1`.
pub fn rotate(q: Q, v: V3) -> V3 {
    mul_mv(&qmat(q), v)
}

/// `m v`.
pub fn mul_mv(m: &M3, v: V3) -> V3 {
    std::array::from_fn(|i| dot(m[i], v))
}

/// `m^T`.
pub fn transpose(m: &M3) -> M3 {
    std::array::from_fn(|i| std::array::from_fn(|j| m[j][i]))
}

/// `a b`.
pub fn mul_mm(a: &M3, b: &M3) -> M3 {
    std::array::from_fn(|i| std::array::from_fn(|j| (0..3).map(|k| a[i][k] * b[k][j]).sum()))
}

/// `R T R^T`: a body-frame tensor expressed in the frame that `R` maps into.
pub fn rotate_tensor(r: &M3, t: &M3) -> M3 {
    mul_mm(&mul_mm(r, t), &transpose(r))
}

/// The diagonal matrix of `d`.
pub fn diag(d: V3) -> M3 {
    [[d[0], 0.0, 0.0], [0.0, d[1], 0.0], [0.0, 0.0, d[2]]]
}

/// The quaternion of a rotation matrix (Shepperd's method).
pub fn mat_quat(m: &M3) -> Q {
    let t = m[0][0] + m[1][1] + m[2][2];
    let q = if t > m[0][0].max(m[1][1]).max(m[2][2]) {
        let s = (1.0 + t).sqrt() * 2.0;
        [
            s / 4.0,
            (m[2][1] - m[1][2]) / s,
            (m[0][2] - m[2][0]) / s,
            (m[1][0] - m[0][1]) / s,
        ]
    } else if m[0][0] >= m[1][1] && m[0][0] >= m[2][2] {
        let s = (1.0 + m[0][0] - m[1][1] - m[2][2]).sqrt() * 2.0;
        [
            (m[2][1] - m[1][2]) / s,
            s / 4.0,
            (m[0][1] + m[1][0]) / s,
            (m[0][2] + m[2][0]) / s,
        ]
    } else if m[1][1] >= m[2][2] {
        let s = (1.0 - m[0][0] + m[1][1] - m[2][2]).sqrt() * 2.0;
        [
            (m[0][2] - m[2][0]) / s,
            (m[0][1] + m[1][0]) / s,
            s / 4.0,
            (m[1][2] + m[2][1]) / s,
        ]
    } else {
        let s = (1.0 - m[0][0] - m[1][1] + m[2][2]).sqrt() * 2.0;
        [
            (m[1][0] - m[0][1]) / s,
            (m[0][2] + m[2][0]) / s,
            (m[1][2] + m[2][1]) / s,
            s / 4.0,
        ]
    };
    qnormalize(q).unwrap_or(IDENTITY)
}

/// The smallest rotation taking the z axis to the unit vector `v` (MuJoCo's
/// `zaxis` and `fromto` convention).
pub fn z_to(v: V3) -> Q {
    let z = [0.0, 0.0, 1.0];
    let c = dot(z, v);
    if c < -1.0 + 1e-14 {
        return [0.0, 1.0, 0.0, 0.0]; // half turn about x
    }
    let a = cross(z, v);
    match normalize(a) {
        None => IDENTITY,
        Some(axis) => axis_angle(axis, c.clamp(-1.0, 1.0).acos()),
    }
}
