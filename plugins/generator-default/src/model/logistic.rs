//! Multinomial (softmax) logistic regression with L2 regularisation, on sparse rows, optimised
//! with our L-BFGS (`lbfgs`).
//!
//! The objective is the mean cross-entropy plus `l2 / 2 · ‖W‖²` (the biases are not penalised):
//!
//! ```text
//! f(W, b) = 1/n Σᵢ [log Σₖ exp(sᵢₖ) − sᵢ,yᵢ] + l2/2 ‖W‖²,   sᵢₖ = bₖ + Σⱼ xᵢⱼ Wⱼₖ
//! ∂f/∂Wⱼₖ = 1/n Σᵢ xᵢⱼ (pᵢₖ − [k = yᵢ]) + l2 Wⱼₖ,     ∂f/∂bₖ = 1/n Σᵢ (pᵢₖ − [k = yᵢ])
//! ```
//!
//! Both are computed together from the sparse features, so an evaluation costs the number of
//! stored features times the number of classes, not rows × buckets. Only buckets that occur in
//! the training rows are parameters: the others have zero gradient from the data, so the
//! penalty keeps them at zero and leaving them out changes nothing but the size of the problem.
//! Everything runs in a fixed order on one thread, so the same rows and options give
//! bit-identical weights.
//!
//! Design decision: the optimiser is our own L-BFGS over plain slices, not smartcore's.
//! smartcore's `LogisticRegression` works on dense matrices and ran for minutes on a few
//! thousand titles. Its L-BFGS, fed with this sparse objective, was used at first: with the
//! same stopping rules (at most 1e-6 gradient, or twice a relative change of at most 1e-4) it
//! took as many iterations as ours and reached the same objective to 0.1%, but it computes its
//! vector arithmetic through boxed iterators, a virtual call per element, and asks for the value
//! and the gradient separately; three quarters of a fit went to that bookkeeping. On the 1,631
//! Prowler titles (`examples/measure.rs`, release, medians of three runs on a loaded 2-core
//! machine), one fit on all rows took:
//!
//! | field (classes) | smartcore L-BFGS | ours, row by row | ours, by column |
//! |-----------------|------------------|------------------|-----------------|
//! | type (17)       | 441 ms           | about 125 ms     | 68 ms           |
//! | scope (20)      | 661 ms           | about 180 ms     | 110 ms          |
//! | severity (5)    | 230 ms           | about 60 ms      | 65 ms           |
//!
//! and a `train` call with 5-fold cross-validation of the four fields went from 8.7 s to 1.8 s.
//! The 5-fold accuracy did not move beyond a fit's noise: 0.820 and 0.821 on type, 0.837 and
//! 0.836 on scope. The last column is the objective of `Problem::evaluate`, which takes the
//! features column by column rather than row by row.

use super::features::Rows;
use super::lbfgs;
use super::linear::Linear;

/// The optimiser stops once the objective has changed by less than this fraction twice. On the
/// Prowler titles, stopping there rather than at 1e-6 saved a third of the iterations and
/// changed no cross-validated answer.
const F_RELTOL: f64 = 1e-4;

/// How many past steps L-BFGS keeps to model the curvature. Each costs two passes over the
/// parameters in every iteration; with 3, 5, 8 and 10 a fit on the Prowler titles took about as
/// many iterations, and with 5 the least time.
const HISTORY: usize = 5;

/// The optimiser stops once no gradient component exceeds this.
const G_ATOL: f64 = 1e-6;

/// How the learner is set up.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct Settings {
    /// The L2 penalty on the weights.
    pub(crate) l2: f64,
    /// The most L-BFGS iterations.
    pub(crate) max_iterations: usize,
}

/// The training rows of one fit, stored by column, with buckets renumbered to the columns that
/// occur.
struct Problem {
    /// Column `j`'s stored features are `entries[offsets[j]..offsets[j + 1]]`, as (row, value)
    /// with rows increasing.
    offsets: Vec<usize>,
    entries: Vec<(usize, f64)>,
    labels: Vec<u32>,
    classes: usize,
    l2: f64,
}

impl Problem {
    /// The problem of the rows whose features (column, value) are
    /// `row_entries[row_offsets[i]..row_offsets[i + 1]]`, with `columns` columns.
    fn new(
        row_offsets: &[usize],
        row_entries: &[(u32, f64)],
        labels: Vec<u32>,
        classes: usize,
        columns: usize,
        l2: f64,
    ) -> Problem {
        let mut offsets = vec![0; columns + 1];
        for &(column, _) in row_entries {
            offsets[column as usize + 1] += 1;
        }
        for j in 0..columns {
            offsets[j + 1] += offsets[j];
        }
        let mut next = offsets.clone();
        let mut entries = vec![(0, 0.0); row_entries.len()];
        for (row, bounds) in row_offsets.windows(2).enumerate() {
            for &(column, value) in &row_entries[bounds[0]..bounds[1]] {
                let at = &mut next[column as usize];
                entries[*at] = (row, value);
                *at += 1;
            }
        }
        Problem {
            offsets,
            entries,
            labels,
            classes,
            l2,
        }
    }

    fn columns(&self) -> usize {
        self.offsets.len() - 1
    }

    fn parameters(&self) -> usize {
        (self.columns() + 1) * self.classes
    }

    /// The objective at `x`, with its gradient written into `gradient`; `scores` is scratch
    /// space for the rows' class scores.
    ///
    /// The scores are accumulated column by column (`S = 1 bᵀ + X W`), turned into residuals
    /// `R = P − Y` row by row, and the weights' gradient is again taken column by column
    /// (`Xᵀ R`). The parameters and the stored features are then read in order, once each per
    /// pass, while the random accesses, by row, fall in the rows × classes scores, which are
    /// small enough to stay in the processor's cache. Taken row by row, every stored feature
    /// fetched its column's weights and gradient from wherever they lay, and waiting for memory
    /// was most of the objective's time.
    fn evaluate(&self, x: &[f64], gradient: &mut [f64], scores: &mut Vec<f64>) -> f64 {
        let k = self.classes;
        let n = self.labels.len();
        let columns = self.columns();
        let (weights, bias) = x.split_at(columns * k);
        let (gw, gb) = gradient.split_at_mut(columns * k);
        scores.clear();
        for _ in 0..n {
            scores.extend_from_slice(bias);
        }
        for (j, w) in weights.chunks_exact(k).enumerate() {
            for &(row, value) in &self.entries[self.offsets[j]..self.offsets[j + 1]] {
                let s = &mut scores[row * k..(row + 1) * k];
                for (s, w) in s.iter_mut().zip(w) {
                    *s += value * w;
                }
            }
        }
        gb.fill(0.0);
        let mut loss = 0.0;
        for (s, &label) in scores.chunks_exact_mut(k).zip(&self.labels) {
            let label = label as usize;
            let max = s.iter().copied().fold(f64::NEG_INFINITY, f64::max);
            let own = s[label];
            // The scores become exp(s - max), then the residuals p - onehot.
            let mut total = 0.0;
            for s in s.iter_mut() {
                *s = (*s - max).exp();
                total += *s;
            }
            loss += max + total.ln() - own;
            let inverse = total.recip();
            for s in s.iter_mut() {
                *s *= inverse;
            }
            s[label] -= 1.0;
            for (gb, r) in gb.iter_mut().zip(s.iter()) {
                *gb += r;
            }
        }
        let scale = (n.max(1) as f64).recip();
        let mut penalty = 0.0;
        for (j, (g, w)) in gw
            .chunks_exact_mut(k)
            .zip(weights.chunks_exact(k))
            .enumerate()
        {
            g.fill(0.0);
            for &(row, value) in &self.entries[self.offsets[j]..self.offsets[j + 1]] {
                for (g, r) in g.iter_mut().zip(&scores[row * k..(row + 1) * k]) {
                    *g += value * r;
                }
            }
            for (g, w) in g.iter_mut().zip(w) {
                penalty += w * w;
                *g = *g * scale + self.l2 * w;
            }
        }
        for g in gb {
            *g *= scale;
        }
        loss * scale + 0.5 * self.l2 * penalty
    }
}

/// Fits a classifier of `classes` classes on the rows `sample` of `rows`, with `labels[i]` the
/// class of row `sample[i]`; returns it with how the optimiser ended.
///
/// # Errors
/// A message when the optimiser cannot start or ends on weights that are not finite (neither
/// should happen: the objective is smooth and convex).
pub(crate) fn fit(
    rows: &Rows,
    sample: &[usize],
    labels: &[u32],
    classes: usize,
    dims: u32,
    settings: &Settings,
) -> Result<(Linear, lbfgs::Outcome), String> {
    let (problem, buckets) = compact(rows, sample, labels, classes, dims, settings.l2);
    let mut x = vec![0.0; problem.parameters()];
    // Starting the biases at the log class frequencies saves the first iterations the work of
    // finding them.
    let mut counts = vec![0usize; classes];
    for &l in labels {
        counts[l as usize] += 1;
    }
    let n = labels.len().max(1) as f64;
    for (b, &c) in x[problem.columns() * classes..].iter_mut().zip(&counts) {
        *b = ((c as f64 + 0.5) / n).ln();
    }
    let options = lbfgs::Options {
        max_iterations: settings.max_iterations,
        history: HISTORY,
        f_reltol: F_RELTOL,
        g_atol: G_ATOL,
    };
    let mut scores = Vec::with_capacity(labels.len() * classes);
    let outcome = lbfgs::minimize(
        |x, gradient| problem.evaluate(x, gradient, &mut scores),
        &mut x,
        &options,
    )?;
    if !x.iter().all(|v| v.is_finite()) {
        return Err("the optimiser diverged".to_owned());
    }
    let (weights, bias) = x.split_at(problem.columns() * classes);
    let weights: Vec<f32> = weights.iter().map(|&w| w as f32).collect();
    let bias: Vec<f32> = bias.iter().map(|&b| b as f32).collect();
    let linear = Linear::new(dims, buckets, weights, bias)
        .ok_or_else(|| "the fitted weights do not fit the feature space".to_owned())?;
    Ok((linear, outcome))
}

/// Renumbers the buckets that occur in the sample to columns `0..`, in bucket order.
fn compact(
    rows: &Rows,
    sample: &[usize],
    labels: &[u32],
    classes: usize,
    dims: u32,
    l2: f64,
) -> (Problem, Vec<u32>) {
    let (column_of, buckets) = rows.columns(sample.iter().copied(), dims);
    let mut offsets = Vec::with_capacity(sample.len() + 1);
    let mut entries = Vec::new();
    offsets.push(0);
    for &i in sample {
        entries.extend(
            rows.row(i)
                .iter()
                .map(|&(bucket, value)| (column_of[bucket as usize], f64::from(value))),
        );
        offsets.push(entries.len());
    }
    let problem = Problem::new(
        &offsets,
        &entries,
        labels.to_vec(),
        classes,
        buckets.len(),
        l2,
    );
    (problem, buckets)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A small problem with random rows, to check the gradient against finite differences.
    fn problem() -> Problem {
        let mut state = 7u64;
        let mut next = || {
            state = state
                .wrapping_mul(6_364_136_223_846_793_005)
                .wrapping_add(1);
            (state >> 33) as f64 / (1u64 << 31) as f64
        };
        let mut offsets = vec![0];
        let mut entries = Vec::new();
        let mut labels = Vec::new();
        for i in 0..12 {
            for col in 0..4u32 {
                if next() < 0.6 {
                    entries.push((col, next() * 2.0));
                }
            }
            offsets.push(entries.len());
            labels.push(i % 3);
        }
        Problem::new(&offsets, &entries, labels, 3, 4, 0.1)
    }

    /// Rows of a separable problem: class `c` rows hold bucket `c` and a noise bucket.
    fn toy() -> (Rows, Vec<u32>) {
        let mut rows = Vec::new();
        let mut labels = Vec::new();
        for i in 0..30u32 {
            let class = i % 3;
            rows.push(vec![(class, 1.0), (10 + i % 7, 1.0)]);
            labels.push(class);
        }
        (Rows::from_vecs(&rows), labels)
    }

    #[test]
    fn learns_a_separable_problem() {
        let (rows, labels) = toy();
        let sample: Vec<usize> = (0..labels.len()).collect();
        let settings = Settings {
            l2: 1e-3,
            max_iterations: 100,
        };
        let (model, outcome) = fit(&rows, &sample, &labels, 3, 32, &settings).expect("fits");
        assert_ne!(outcome.stop, lbfgs::Stop::Iterations, "{outcome:?}");
        let mut scores = Vec::new();
        for class in 0..3u32 {
            let (predicted, p) = model.predict(&[(class, 1.0), (12, 1.0)], &mut scores);
            assert_eq!(predicted as u32, class);
            assert!(p > 0.9, "{class}: {p}");
        }
        // Only the buckets seen are parameters.
        assert_eq!(model.buckets(), [0, 1, 2, 10, 11, 12, 13, 14, 15, 16]);
        // Deterministic: the same rows and settings give the same weights, bit for bit.
        let (again, _) = fit(&rows, &sample, &labels, 3, 32, &settings).expect("fits");
        assert_eq!(model, again);
        // A class absent from the sample is never predicted.
        let two: Vec<usize> = sample.iter().copied().filter(|&i| labels[i] != 2).collect();
        let two_labels: Vec<u32> = two.iter().map(|&i| labels[i]).collect();
        let (model, _) = fit(&rows, &two, &two_labels, 3, 32, &settings).expect("fits");
        assert_ne!(model.predict(&[(2, 1.0)], &mut scores).0, 2);
    }

    #[test]
    fn gradient_matches_finite_differences() {
        let p = problem();
        let mut scores = Vec::new();
        let x: Vec<f64> = (0..p.parameters())
            .map(|i| ((i * 7 % 5) as f64 - 2.0) * 0.3)
            .collect();
        let mut g = vec![0.0; p.parameters()];
        p.evaluate(&x, &mut g, &mut scores);
        let mut scratch = vec![0.0; p.parameters()];
        let mut value = |x: &[f64]| p.evaluate(x, &mut scratch, &mut scores);
        let h = 1e-6;
        for i in 0..p.parameters() {
            let mut up = x.clone();
            up[i] += h;
            let mut down = x.clone();
            down[i] -= h;
            let numeric = (value(&up) - value(&down)) / (2.0 * h);
            assert!((numeric - g[i]).abs() < 1e-6, "{i}: {numeric} vs {}", g[i]);
        }
    }
}
