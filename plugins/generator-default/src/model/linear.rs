//! A linear classifier over hashed features: what both learners produce, what prediction runs
//! and what a model file stores.
//!
//! Only the buckets seen in training have weights (a bucket never seen keeps weight zero under
//! either learner), so weights are kept as compact rows, one per used bucket, and a dense map
//! from bucket to row. With 2^20 buckets and a few thousand titles this keeps a model small,
//! while a lookup stays one indexed load.

/// The map's mark for a bucket without a row.
const NO_ROW: u32 = u32::MAX;

/// Class scores `bias + x · W`: the predicted class is the highest, and the softmax of the scores
/// its probability.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Linear {
    classes: usize,
    /// For each bucket, its row in `weights`, or [`NO_ROW`].
    row_of: Vec<u32>,
    /// The buckets that have rows, increasing.
    buckets: Vec<u32>,
    /// `classes` weights per row.
    weights: Vec<f32>,
    bias: Vec<f32>,
}

impl Linear {
    /// Builds a classifier from the buckets that have rows (strictly increasing, each below
    /// `dims`), their weights (`classes` per bucket, row after row) and the biases.
    ///
    /// Returns `None` when the parts do not fit together.
    pub(crate) fn new(
        dims: u32,
        buckets: Vec<u32>,
        weights: Vec<f32>,
        bias: Vec<f32>,
    ) -> Option<Linear> {
        let classes = bias.len();
        let fits = classes > 0
            && buckets.len().checked_mul(classes) == Some(weights.len())
            && buckets.windows(2).all(|w| w[0] < w[1])
            && buckets.last().is_none_or(|&b| b < dims)
            && u32::try_from(buckets.len()).is_ok_and(|n| n < NO_ROW);
        if !fits {
            return None;
        }
        let mut row_of = vec![NO_ROW; dims as usize];
        for (row, &bucket) in buckets.iter().enumerate() {
            // `buckets.len() < NO_ROW` was checked above.
            row_of[bucket as usize] = row as u32;
        }
        Some(Linear {
            classes,
            row_of,
            buckets,
            weights,
            bias,
        })
    }

    pub(crate) fn buckets(&self) -> &[u32] {
        &self.buckets
    }

    pub(crate) fn weights(&self) -> &[f32] {
        &self.weights
    }

    pub(crate) fn bias(&self) -> &[f32] {
        &self.bias
    }

    /// Writes the class scores of `features` into `scores` (resized to the number of classes).
    pub(crate) fn scores(&self, features: &[(u32, f32)], scores: &mut Vec<f32>) {
        scores.clear();
        scores.extend_from_slice(&self.bias);
        for &(bucket, value) in features {
            let Some(&row) = self.row_of.get(bucket as usize) else {
                continue;
            };
            if row == NO_ROW {
                continue;
            }
            let start = row as usize * self.classes;
            let w = &self.weights[start..start + self.classes];
            for (s, w) in scores.iter_mut().zip(w) {
                *s += value * w;
            }
        }
    }

    /// The best class of `features` and its softmax probability; `scores` is scratch space.
    pub(crate) fn predict(&self, features: &[(u32, f32)], scores: &mut Vec<f32>) -> (usize, f32) {
        self.scores(features, scores);
        best(scores)
    }
}

/// The index of the highest score (the first, on ties) and its softmax probability.
pub(crate) fn best(scores: &[f32]) -> (usize, f32) {
    let mut top = 0;
    for (i, &s) in scores.iter().enumerate() {
        if s > scores[top] {
            top = i;
        }
    }
    let Some(&max) = scores.get(top) else {
        return (0, 0.0);
    };
    let total: f32 = scores.iter().map(|&s| (s - max).exp()).sum();
    // `total` counts the top class itself, exp(0) = 1, so it is at least 1.
    let p = total.recip();
    (
        top,
        if p.is_finite() {
            p.clamp(0.0, 1.0)
        } else {
            0.0
        },
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scores_are_bias_plus_weights() {
        let l = Linear::new(8, vec![1, 5], vec![1.0, -1.0, 0.5, 2.0], vec![0.1, 0.2])
            .expect("consistent parts");
        let mut s = Vec::new();
        l.scores(&[(1, 2.0), (3, 7.0), (5, 1.0)], &mut s);
        assert_eq!(s, [0.1 + 2.0 + 0.5, 0.2 - 2.0 + 2.0]);
        let (class, p) = l.predict(&[(5, 4.0)], &mut s);
        assert_eq!(class, 1);
        let expected = 1.0 / (1.0 + (s[0] - s[1]).exp());
        assert!((p - expected).abs() < 1e-6);
        // A bucket beyond the map (a model of fewer dims) is ignored, not a panic.
        l.scores(&[(100, 1.0)], &mut s);
        assert_eq!(s, [0.1, 0.2]);
    }

    #[test]
    fn inconsistent_parts_are_refused() {
        assert!(Linear::new(8, vec![1], vec![1.0], vec![0.0, 0.0]).is_none());
        assert!(Linear::new(8, vec![9], vec![1.0], vec![0.0]).is_none());
        assert!(Linear::new(8, vec![2, 2], vec![1.0, 1.0], vec![0.0]).is_none());
        assert!(Linear::new(8, vec![], vec![], vec![]).is_none());
    }

    #[test]
    fn probabilities_stay_in_range() {
        assert_eq!(best(&[0.0, 0.0]), (0, 0.5));
        let (c, p) = best(&[-1e30, 1e30]);
        assert_eq!((c, p), (1, 1.0));
        assert_eq!(best(&[f32::NEG_INFINITY, 0.0]).1, 1.0);
    }
}
