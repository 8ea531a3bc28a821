//! A small software rasteriser for `joule run --gif`: z-buffered triangles
//! with Lambert shading and lines, drawn into palette indices (a few fixed
//! colours, then shades of each material colour) so that a frame is a GIF
//! frame as it stands.

use joule_compiler::model::BodyShape;

/// A point or direction in world coordinates.
pub type V3 = [f64; 3];

/// Shades of each material colour in the palette, darkest (black) first.
const SHADES: usize = 16;
/// The background's palette index.
pub const BACKGROUND: u8 = 0;
/// The ground's palette index.
pub const GROUND: u8 = 1;
/// The ground grid's palette index.
pub const GRID: u8 = 2;
/// The palette index of lines (springs, element edges).
pub const LINE: u8 = 3;
/// Palette entries before the material shades.
const FIXED_COLOURS: [[u8; 3]; 4] = [
    [0x0f, 0x17, 0x2a],
    [0x33, 0x41, 0x55],
    [0x47, 0x55, 0x69],
    [0x93, 0xc5, 0xfd],
];
/// Most material colours: the palette holds 256 entries.
pub const MATERIALS: usize = (256 - FIXED_COLOURS.len()) / SHADES;

/// The GIF palette (`r, g, b` per entry) for material colours `materials`
/// (at most [`MATERIALS`]): the fixed colours, then each material's shades.
pub fn palette(materials: &[[u8; 3]]) -> Vec<u8> {
    let mut rgb: Vec<u8> = FIXED_COLOURS.concat();
    for c in materials.iter().take(MATERIALS) {
        for s in 0..SHADES {
            let k = s as f64 / (SHADES - 1) as f64;
            rgb.extend(c.map(|v| (v as f64 * k).round() as u8));
        }
    }
    rgb
}

fn sub(a: V3, b: V3) -> V3 {
    [a[0] - b[0], a[1] - b[1], a[2] - b[2]]
}
fn dot(a: V3, b: V3) -> f64 {
    a[0] * b[0] + a[1] * b[1] + a[2] * b[2]
}
fn cross(a: V3, b: V3) -> V3 {
    [
        a[1] * b[2] - a[2] * b[1],
        a[2] * b[0] - a[0] * b[2],
        a[0] * b[1] - a[1] * b[0],
    ]
}
fn normalize(a: V3) -> V3 {
    let n = dot(a, a).sqrt();
    if n > 0.0 {
        a.map(|v| v / n)
    } else {
        a
    }
}

/// A perspective camera orbiting a target, z up, drawing into one cell of the image.
pub struct Camera {
    eye: V3,
    right: V3,
    up: V3,
    forward: V3,
    focal: f64,
    near: f64,
    /// The cell: left, top, width, height in pixels.
    cell: [usize; 4],
}

impl Camera {
    /// The viewer's default view: yaw -1, pitch 0.35, 2.9 extents from the
    /// target, a 40-degree field of view over the cell's height.
    pub fn orbit(target: V3, extent: f64, cell: [usize; 4]) -> Camera {
        let (yaw, pitch, dist) = (-1.0f64, 0.35f64, 2.9 * extent);
        let back = [
            pitch.cos() * yaw.cos(),
            pitch.cos() * yaw.sin(),
            pitch.sin(),
        ];
        let eye = [0, 1, 2].map(|k| target[k] + dist * back[k]);
        let forward = back.map(|v| -v);
        let right = normalize(cross(forward, [0.0, 0.0, 1.0]));
        let up = cross(right, forward);
        let focal = 0.5 * cell[3] as f64 / (20f64.to_radians()).tan();
        Camera {
            eye,
            right,
            up,
            forward,
            focal,
            near: 0.01 * extent,
            cell,
        }
    }

    /// Pixel coordinates and depth of `p`, or `None` in front of the near plane.
    fn project(&self, p: V3) -> Option<[f64; 3]> {
        let q = sub(p, self.eye);
        let z = dot(q, self.forward);
        if z < self.near {
            return None;
        }
        let s = self.focal / z;
        Some([
            self.cell[0] as f64 + self.cell[2] as f64 / 2.0 + s * dot(q, self.right),
            self.cell[1] as f64 + self.cell[3] as f64 / 2.0 - s * dot(q, self.up),
            z,
        ])
    }
}

/// What fills a triangle: one palette index, or a material shaded by the light.
#[derive(Clone, Copy)]
pub enum Paint {
    /// This palette index.
    Flat(u8),
    /// Material `k`'s shade for the angle to the light (both sides lit).
    Lit(usize),
}

/// An image of palette indices with a depth buffer.
pub struct Canvas {
    width: usize,
    height: usize,
    /// Palette indices, row by row.
    pub pixels: Vec<u8>,
    depth: Vec<f32>,
}

impl Canvas {
    /// A `width` x `height` canvas of background.
    pub fn new(width: usize, height: usize) -> Canvas {
        Canvas {
            width,
            height,
            pixels: vec![BACKGROUND; width * height],
            depth: vec![f32::INFINITY; width * height],
        }
    }

    /// Writes `index` at `(x, y)` if nearer than what is there.
    fn plot(&mut self, cam: &Camera, x: i64, y: i64, z: f64, index: u8) {
        let [cx, cy, cw, ch] = cam.cell.map(|v| v as i64);
        if x < cx || y < cy || x >= cx + cw || y >= cy + ch {
            return;
        }
        let (x, y) = (x as usize, y as usize);
        if x >= self.width || y >= self.height {
            return;
        }
        let i = y * self.width + x;
        if (z as f32) < self.depth[i] {
            self.depth[i] = z as f32;
            self.pixels[i] = index;
        }
    }

    /// Fills a triangle (skipped where a corner is behind the camera).
    pub fn triangle(&mut self, cam: &Camera, t: [V3; 3], paint: Paint) {
        self.fill(cam, t, paint, 0.0);
    }

    /// Fills a triangle in front of everything drawn (a marker seen through
    /// the bodies), nearer ones of these still in front.
    pub fn triangle_over(&mut self, cam: &Camera, t: [V3; 3], paint: Paint) {
        self.fill(cam, t, paint, -1e9);
    }

    /// Fills a triangle, its depth shifted by `shift`.
    fn fill(&mut self, cam: &Camera, t: [V3; 3], paint: Paint, shift: f64) {
        let index = match paint {
            Paint::Flat(i) => i,
            Paint::Lit(m) => {
                let n = normalize(cross(sub(t[1], t[0]), sub(t[2], t[0])));
                let light = normalize([0.35, -0.25, 1.0]);
                let shade = 0.35 + 0.65 * dot(n, light).abs();
                let level = (shade * (SHADES - 1) as f64).round() as usize;
                (FIXED_COLOURS.len() + m.min(MATERIALS - 1) * SHADES + level.min(SHADES - 1)) as u8
            }
        };
        let (Some(a), Some(b), Some(c)) = (cam.project(t[0]), cam.project(t[1]), cam.project(t[2]))
        else {
            return;
        };
        let area = (b[0] - a[0]) * (c[1] - a[1]) - (b[1] - a[1]) * (c[0] - a[0]);
        if area.abs() < 1e-12 {
            return;
        }
        let [cx, cy, cw, ch] = cam.cell.map(|v| v as f64);
        let x0 = a[0].min(b[0]).min(c[0]).floor().max(cx) as i64;
        let x1 = a[0].max(b[0]).max(c[0]).ceil().min(cx + cw - 1.0) as i64;
        let y0 = a[1].min(b[1]).min(c[1]).floor().max(cy) as i64;
        let y1 = a[1].max(b[1]).max(c[1]).ceil().min(cy + ch - 1.0) as i64;
        for y in y0..=y1 {
            for x in x0..=x1 {
                let (px, py) = (x as f64 + 0.5, y as f64 + 0.5);
                let w0 = ((b[0] - px) * (c[1] - py) - (b[1] - py) * (c[0] - px)) / area;
                let w1 = ((c[0] - px) * (a[1] - py) - (c[1] - py) * (a[0] - px)) / area;
                let w2 = 1.0 - w0 - w1;
                if w0 >= 0.0 && w1 >= 0.0 && w2 >= 0.0 {
                    self.plot(cam, x, y, shift + w0 * a[2] + w1 * b[2] + w2 * c[2], index);
                }
            }
        }
    }

    /// Draws a one-pixel line, drawn over surfaces it lies on.
    pub fn line(&mut self, cam: &Camera, p: V3, q: V3, index: u8) {
        let (Some(a), Some(b)) = (cam.project(p), cam.project(q)) else {
            return;
        };
        let n = (b[0] - a[0]).abs().max((b[1] - a[1]).abs()).ceil().max(1.0) as usize;
        for k in 0..=n {
            let s = k as f64 / n as f64;
            let z = (a[2] + s * (b[2] - a[2])) * 0.995;
            let x = (a[0] + s * (b[0] - a[0])).floor() as i64;
            let y = (a[1] + s * (b[1] - a[1])).floor() as i64;
            self.plot(cam, x, y, z, index);
        }
    }
}

/// A sphere's triangles: `rings` latitude bands of `2 rings` segments, centre `c`.
pub fn sphere(c: V3, r: f64, rings: usize) -> Vec<[V3; 3]> {
    let at = |i: usize, j: usize| {
        let (th, ph) = (
            std::f64::consts::PI * i as f64 / rings as f64,
            std::f64::consts::PI * j as f64 / rings as f64,
        );
        [
            c[0] + r * th.sin() * ph.cos(),
            c[1] + r * th.sin() * ph.sin(),
            c[2] + r * th.cos(),
        ]
    };
    let mut out = vec![];
    for i in 0..rings {
        for j in 0..2 * rings {
            let (p, q, s, t) = (at(i, j), at(i + 1, j), at(i + 1, j + 1), at(i, j + 1));
            out.push([p, q, s]);
            out.push([p, s, t]);
        }
    }
    out
}

/// A z-aligned open cylinder of radius `r` from `z0` to `z1`, with caps when `caps`.
fn tube(r: f64, z0: f64, z1: f64, caps: bool) -> Vec<[V3; 3]> {
    let n = 24;
    let at = |k: usize, z: f64| {
        let a = std::f64::consts::TAU * k as f64 / n as f64;
        [r * a.cos(), r * a.sin(), z]
    };
    let mut out = vec![];
    for k in 0..n {
        let (p, q, s, t) = (at(k, z0), at(k + 1, z0), at(k + 1, z1), at(k, z1));
        out.push([p, q, s]);
        out.push([p, s, t]);
        if caps {
            out.push([[0.0, 0.0, z0], q, p]);
            out.push([[0.0, 0.0, z1], t, s]);
        }
    }
    out
}

/// A body shape's triangles in the body frame (capsules and cylinders along z).
pub fn shape_triangles(s: &BodyShape) -> Vec<[V3; 3]> {
    match s {
        BodyShape::Sphere { radius } => sphere([0.0; 3], *radius, 12),
        BodyShape::Box { size } => {
            let h = size.map(|v| v / 2.0);
            let corner = |i: usize| [0, 1, 2].map(|k| if i >> k & 1 == 1 { h[k] } else { -h[k] });
            let faces = [
                [0, 2, 6, 4],
                [1, 5, 7, 3],
                [0, 4, 5, 1],
                [2, 3, 7, 6],
                [0, 1, 3, 2],
                [4, 6, 7, 5],
            ];
            faces
                .iter()
                .flat_map(|f| {
                    let [a, b, c, d] = f.map(corner);
                    [[a, b, c], [a, c, d]]
                })
                .collect()
        }
        BodyShape::Cylinder { radius, length } => tube(*radius, -length / 2.0, length / 2.0, true),
        BodyShape::Capsule { radius, length } => {
            let mut out = tube(*radius, -length / 2.0, length / 2.0, false);
            out.extend(sphere([0.0, 0.0, length / 2.0], *radius, 10));
            out.extend(sphere([0.0, 0.0, -length / 2.0], *radius, 10));
            out
        }
        BodyShape::Compound { parts } => parts
            .iter()
            .flat_map(|(p, at, q)| {
                let r = joule_compiler::math::qmat(*q);
                shape_triangles(p).into_iter().map(move |t| {
                    t.map(|v| joule_compiler::math::add(*at, joule_compiler::math::mul_mv(&r, v)))
                })
            })
            .collect(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_lit_triangle_covers_its_pixels_in_its_material_and_depth_hides_the_farther() {
        let cam = Camera::orbit([0.0; 3], 1.0, [0, 0, 100, 100]);
        let mut c = Canvas::new(100, 100);
        // A large square through the target, facing the camera, then a farther one.
        let (r, u) = (cam.right.map(|v| v * 0.5), cam.up.map(|v| v * 0.5));
        let quad = |shift: f64| {
            let o = cam.forward.map(|v| v * shift);
            let p = |a: f64, b: f64| [0, 1, 2].map(|k| o[k] + a * r[k] + b * u[k]);
            [
                [p(-1.0, -1.0), p(1.0, -1.0), p(1.0, 1.0)],
                [p(-1.0, -1.0), p(1.0, 1.0), p(-1.0, 1.0)],
            ]
        };
        for t in quad(0.0) {
            c.triangle(&cam, t, Paint::Lit(2));
        }
        for t in quad(0.5) {
            c.triangle(&cam, t, Paint::Flat(GROUND));
        }
        let centre = c.pixels[50 * 100 + 50] as usize;
        assert_eq!(
            (centre - FIXED_COLOURS.len()) / SHADES,
            2,
            "material 2 in front"
        );
        assert_eq!(c.pixels[0], BACKGROUND, "a corner outside the square");
        // Half a unit at 2.9 units with a 40-degree field: about 47 pixels across.
        let row: Vec<u8> = c.pixels[50 * 100..51 * 100].to_vec();
        let covered = row.iter().filter(|&&p| p != BACKGROUND).count();
        let expected = 100.0 * 1.0 / (2.0 * 2.9 * 20f64.to_radians().tan());
        assert!(
            (covered as f64 - expected).abs() <= 2.0,
            "{covered} vs {expected}"
        );
    }

    #[test]
    fn a_compound_part_is_drawn_turned_and_placed() {
        // A capsule (radius 0.1, length 0.6) turned a quarter about y lies
        // along x, centred at (1, 0, 0): it spans x in 0.6..1.4 and z in -0.1..0.1.
        let q = joule_compiler::math::axis_angle([0.0, 1.0, 0.0], std::f64::consts::FRAC_PI_2);
        let shape = BodyShape::Compound {
            parts: vec![(
                BodyShape::Capsule {
                    radius: 0.1,
                    length: 0.6,
                },
                [1.0, 0.0, 0.0],
                q,
            )],
        };
        let vertices: Vec<V3> = shape_triangles(&shape).into_iter().flatten().collect();
        let span = |k: usize| {
            vertices.iter().fold((f64::MAX, f64::MIN), |(lo, hi), v| {
                (lo.min(v[k]), hi.max(v[k]))
            })
        };
        let close = |(lo, hi): (f64, f64), want: (f64, f64)| {
            (lo - want.0).abs() < 1e-9 && (hi - want.1).abs() < 1e-9
        };
        assert!(close(span(0), (0.6, 1.4)), "x {:?}", span(0));
        assert!(close(span(2), (-0.1, 0.1)), "z {:?}", span(2));
    }

    #[test]
    fn the_palette_holds_each_material_in_darkening_shades_of_one_hue() {
        let p = palette(&[[200, 100, 50], [10, 20, 30]]);
        assert_eq!(p.len(), 3 * (FIXED_COLOURS.len() + 2 * SHADES));
        let brightest = &p[3 * (FIXED_COLOURS.len() + SHADES - 1)..][..3];
        assert_eq!(brightest, [200, 100, 50]);
        let middle = &p[3 * (FIXED_COLOURS.len() + 6)..][..3];
        assert_eq!(middle, [80, 40, 20]);
    }
}
