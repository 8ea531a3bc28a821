//! Running observation normalisation (mean and variance over every
//! observation seen, Chan et al.'s parallel update), applied as a constant
//! affine map: gradients pass through it, its statistics are not trained.

/// Per-component running mean and variance.
#[derive(Debug, Clone, PartialEq)]
pub struct Normalizer {
    /// Observations counted.
    pub count: f64,
    /// Running mean per component.
    pub mean: Vec<f64>,
    /// Running sum of squared deviations per component.
    pub m2: Vec<f64>,
}

impl Normalizer {
    /// No observations yet: the identity map.
    pub fn new(dim: usize) -> Normalizer {
        Normalizer {
            count: 0.0,
            mean: vec![0.0; dim],
            m2: vec![0.0; dim],
        }
    }

    /// Folds a batch `[row][component]` into the statistics.
    pub fn update(&mut self, rows: &[Vec<f64>]) {
        if rows.is_empty() {
            return;
        }
        let nb = rows.len() as f64;
        for c in 0..self.mean.len() {
            let mean_b = rows.iter().map(|r| r[c]).sum::<f64>() / nb;
            let m2_b = rows.iter().map(|r| (r[c] - mean_b).powi(2)).sum::<f64>();
            let total = self.count + nb;
            let delta = mean_b - self.mean[c];
            self.mean[c] += delta * nb / total;
            self.m2[c] += m2_b + delta * delta * self.count * nb / total;
        }
        self.count += nb;
    }

    /// Standard deviation per component (at least 1e-4; 1 before any data).
    pub fn std(&self) -> Vec<f64> {
        self.m2
            .iter()
            .map(|m2| {
                if self.count < 2.0 {
                    1.0
                } else {
                    (m2 / self.count).sqrt().max(1e-4)
                }
            })
            .collect()
    }

    /// `(x - mean) / std`, clipped to +-10, row by row.
    pub fn apply(&self, rows: &[Vec<f64>]) -> Vec<Vec<f64>> {
        let std = self.std();
        rows.iter()
            .map(|r| {
                r.iter()
                    .zip(&self.mean)
                    .zip(&std)
                    .map(|((x, m), s)| ((x - m) / s).clamp(-10.0, 10.0))
                    .collect()
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn batched_updates_equal_the_statistics_of_all_rows() {
        let rows: Vec<Vec<f64>> = (0..10)
            .map(|i| vec![i as f64, (i * i) as f64 * 0.5])
            .collect();
        let mut n = Normalizer::new(2);
        n.update(&rows[..3]);
        n.update(&rows[3..]);
        for c in 0..2 {
            let mean = rows.iter().map(|r| r[c]).sum::<f64>() / 10.0;
            let var = rows.iter().map(|r| (r[c] - mean).powi(2)).sum::<f64>() / 10.0;
            assert!((n.mean[c] - mean).abs() < 1e-12);
            assert!((n.std()[c] - var.sqrt()).abs() < 1e-12);
        }
    }
}
