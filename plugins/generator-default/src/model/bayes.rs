//! Multinomial naive Bayes, the alternative learner, fitted by smartcore and kept as a linear
//! classifier.
//!
//! Naive Bayes is linear in log space: the score of class `c` is `log P(c) + Σⱼ xⱼ log P(j | c)`.
//! smartcore fits it and exposes both terms, so the fitted model becomes a [`Linear`] and
//! predicts, saves and loads exactly like logistic regression (and its softmax is the naive
//! Bayes posterior).
//!
//! smartcore's naive Bayes takes a dense matrix of counts, rows × columns cells of 4 bytes. The
//! columns are the buckets that occur in the training rows (a bucket never seen gets no weight,
//! as a vocabulary built from the training set would), and the number of cells is bounded by
//! [`MAX_CELLS`]: above it the rows are sampled with the seed, and the caller is told.

use smartcore::linalg::basic::matrix::DenseMatrix;
use smartcore::naive_bayes::multinomial::{MultinomialNB, MultinomialNBParameters};

use super::evaluation;
use super::features::Rows;
use super::linear::Linear;

/// Most cells of the dense count matrix: 2^26 cells of 4 bytes, 256 MiB.
pub(crate) const MAX_CELLS: usize = 1 << 26;

/// The score of a class the training rows do not contain: it is never predicted.
const ABSENT: f32 = -1e30;

/// A fitted naive Bayes classifier, and how many of the rows it was given it used.
pub(crate) struct Fitted {
    pub(crate) linear: Linear,
    pub(crate) rows_used: usize,
}

/// Fits naive Bayes on the rows `sample` of `rows` (feature values are token counts), with
/// `labels[i]` the class of row `sample[i]`, sampling rows with `seed` when the count matrix
/// would hold more than `max_cells` cells.
///
/// # Errors
/// smartcore's message when it cannot fit.
pub(crate) fn fit(
    rows: &Rows,
    sample: &[usize],
    labels: &[u32],
    classes: usize,
    dims: u32,
    seed: u64,
    max_cells: usize,
) -> Result<Fitted, String> {
    let (_, used) = rows.columns(sample.iter().copied(), dims);
    let most_rows = (max_cells / used.len().max(1)).max(1);
    let (sample, labels): (Vec<usize>, Vec<u32>) =
        match evaluation::sample(sample.len(), most_rows, seed) {
            None => (sample.to_vec(), labels.to_vec()),
            Some(kept) => kept.iter().map(|&i| (sample[i], labels[i])).unzip(),
        };
    let (column_of, buckets) = rows.columns(sample.iter().copied(), dims);
    let width = buckets.len().max(1);
    let mut cells = vec![0u32; sample.len() * width];
    for (r, &i) in sample.iter().enumerate() {
        for &(bucket, count) in rows.row(i) {
            // Counts are small whole numbers stored as f32.
            cells[r * width + column_of[bucket as usize] as usize] = count.round() as u32;
        }
    }
    let x = DenseMatrix::new(sample.len(), width, cells, false).map_err(|e| e.to_string())?;
    let nb = MultinomialNB::fit(&x, &labels, MultinomialNBParameters::default())
        .map_err(|e| e.to_string())?;
    let n = sample.len().max(1) as f64;
    let mut bias = vec![ABSENT; classes];
    let mut weights = vec![0.0f32; buckets.len() * classes];
    for ((&class, &count), log_prob) in nb
        .classes()
        .iter()
        .zip(nb.class_count())
        .zip(nb.feature_log_prob())
    {
        let c = class as usize;
        if c >= classes {
            return Err(format!("naive Bayes returned an unknown class {class}"));
        }
        bias[c] = (count as f64 / n).ln() as f32;
        for (col, &lp) in log_prob.iter().enumerate().take(buckets.len()) {
            weights[col * classes + c] = lp as f32;
        }
    }
    let rows_used = sample.len();
    let linear = Linear::new(dims, buckets, weights, bias)
        .ok_or_else(|| "the fitted weights do not fit the feature space".to_owned())?;
    Ok(Fitted { linear, rows_used })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Class `c` rows count bucket `c` twice and a noise bucket once.
    fn toy() -> (Rows, Vec<u32>) {
        let mut rows = Vec::new();
        let mut labels = Vec::new();
        for i in 0..30u32 {
            let class = i % 3;
            rows.push(vec![(class, 2.0), (10 + i % 7, 1.0)]);
            labels.push(class);
        }
        (Rows::from_vecs(&rows), labels)
    }

    #[test]
    fn learns_a_separable_problem() {
        let (rows, labels) = toy();
        let sample: Vec<usize> = (0..labels.len()).collect();
        let fitted = fit(&rows, &sample, &labels, 4, 32, 1, MAX_CELLS).expect("fits");
        assert_eq!(fitted.rows_used, 30);
        let mut scores = Vec::new();
        for class in 0..3u32 {
            let (predicted, p) = fitted.linear.predict(&[(class, 1.0)], &mut scores);
            assert_eq!(predicted as u32, class);
            assert!(p > 0.5, "{class}: {p}");
        }
        // Class 3 has no rows: it is never predicted and has no probability.
        fitted.linear.scores(&[(3, 1.0)], &mut scores);
        assert!(scores[3] < -1e29);
        // The naive Bayes posterior: each class has prior 1/3 and 30 counts over 10 columns, so
        // with Laplace smoothing P(bucket 0 | class 0) = (20 + 1) / (30 + 10), and 1 / 40 for
        // classes 1 and 2; the posterior of class 0 is 21 / (21 + 1 + 1).
        let (_, p) = fitted.linear.predict(&[(0, 1.0)], &mut scores);
        assert!((p - 21.0 / 23.0).abs() < 1e-5, "{p}");
    }

    #[test]
    fn rows_are_sampled_to_the_bound() {
        let (rows, labels) = toy();
        let sample: Vec<usize> = (0..labels.len()).collect();
        // 10 buckets occur: 100 cells allow 10 rows.
        let fitted = fit(&rows, &sample, &labels, 3, 32, 1, 100).expect("fits");
        assert!(fitted.rows_used <= 10, "{}", fitted.rows_used);
        assert!(fitted.rows_used > 0);
    }
}
