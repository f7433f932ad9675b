//! Multinomial (softmax) logistic regression with L2 regularisation, on sparse rows, optimised
//! with smartcore's L-BFGS.
//!
//! The objective is the mean cross-entropy plus `l2 / 2 · ‖W‖²` (the biases are not penalised):
//!
//! ```text
//! f(W, b) = 1/n Σᵢ [log Σₖ exp(sᵢₖ) − sᵢ,yᵢ] + l2/2 ‖W‖²,   sᵢₖ = bₖ + Σⱼ xᵢⱼ Wⱼₖ
//! ∂f/∂Wⱼₖ = 1/n Σᵢ xᵢⱼ (pᵢₖ − [k = yᵢ]) + l2 Wⱼₖ,     ∂f/∂bₖ = 1/n Σᵢ (pᵢₖ − [k = yᵢ])
//! ```
//!
//! Both are computed from the sparse rows, so a pass costs the number of stored features times
//! the number of classes, not rows × buckets. Only buckets that occur in the training rows are
//! parameters: the others have zero gradient from the data, so the penalty keeps them at zero
//! and leaving them out changes nothing but the size of the problem.
//!
//! smartcore's optimiser calls the objective and the gradient separately and often at the same
//! point (it re-evaluates the point it starts an iteration from); a one-entry cache on the
//! parameter vector serves those repeats. Everything runs in a fixed order on one thread, so the
//! same rows and options give bit-identical weights.
//!
//! Design decision: smartcore's own `LogisticRegression` was rejected: it works on dense
//! matrices and ran for minutes on a few thousand titles. Its optimiser is kept, fed with a
//! sparse objective.

use std::cell::RefCell;

use smartcore::optimization::first_order::FirstOrderOptimizer;
use smartcore::optimization::first_order::lbfgs::LBFGS;
use smartcore::optimization::line_search::Backtracking;

use super::features::Rows;
use super::linear::Linear;
use super::params::Params;

/// The optimiser stops once the objective has changed by less than this fraction twice. On the
/// Prowler titles, stopping there rather than at 1e-6 saved a third of the iterations and
/// changed no cross-validated answer.
const F_RELTOL: f64 = 1e-4;

/// How many past steps L-BFGS keeps to model the curvature. Each costs passes over the
/// parameters in every iteration (see `params`); 5 took about as many iterations as 10.
const HISTORY: usize = 5;

/// How the learner is set up.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct Settings {
    /// The L2 penalty on the weights.
    pub(crate) l2: f64,
    /// The most L-BFGS iterations.
    pub(crate) max_iterations: usize,
}

/// The training rows of one fit, with buckets renumbered to the columns that occur.
struct Problem {
    /// Row `i` is `entries[offsets[i]..offsets[i + 1]]`, with compact column numbers.
    offsets: Vec<usize>,
    entries: Vec<(u32, f64)>,
    labels: Vec<u32>,
    classes: usize,
    columns: usize,
    l2: f64,
}

/// The last point evaluated, with its objective and gradient.
struct Memo {
    x: Vec<f64>,
    value: f64,
    gradient: Vec<f64>,
    scores: Vec<f64>,
}

impl Problem {
    fn parameters(&self) -> usize {
        (self.columns + 1) * self.classes
    }

    /// The objective at `x`, and the gradient into `gradient` when given.
    fn evaluate(&self, x: &[f64], mut gradient: Option<&mut [f64]>, scores: &mut Vec<f64>) -> f64 {
        let k = self.classes;
        let (weights, bias) = x.split_at(self.columns * k);
        if let Some(g) = gradient.as_deref_mut() {
            g.fill(0.0);
        }
        let mut loss = 0.0;
        for (i, &label) in self.labels.iter().enumerate() {
            let row = &self.entries[self.offsets[i]..self.offsets[i + 1]];
            scores.clear();
            scores.extend_from_slice(bias);
            for &(col, value) in row {
                let w = &weights[col as usize * k..(col as usize + 1) * k];
                for (s, w) in scores.iter_mut().zip(w) {
                    *s += value * w;
                }
            }
            let max = scores.iter().copied().fold(f64::NEG_INFINITY, f64::max);
            let total: f64 = scores.iter().map(|&s| (s - max).exp()).sum();
            let log_total = max + total.ln();
            loss += log_total - scores[label as usize];
            if let Some(g) = gradient.as_deref_mut() {
                // The scores become the residuals p - onehot.
                for s in scores.iter_mut() {
                    *s = (*s - log_total).exp();
                }
                scores[label as usize] -= 1.0;
                let (gw, gb) = g.split_at_mut(self.columns * k);
                for (gb, r) in gb.iter_mut().zip(scores.iter()) {
                    *gb += r;
                }
                for &(col, value) in row {
                    let gw = &mut gw[col as usize * k..(col as usize + 1) * k];
                    for (gw, r) in gw.iter_mut().zip(scores.iter()) {
                        *gw += value * r;
                    }
                }
            }
        }
        let n = self.labels.len().max(1) as f64;
        let penalty: f64 = weights.iter().map(|w| w * w).sum();
        if let Some(g) = gradient {
            let (gw, gb) = g.split_at_mut(self.columns * k);
            for (g, w) in gw.iter_mut().zip(weights) {
                *g = *g / n + self.l2 * w;
            }
            for g in gb {
                *g /= n;
            }
        }
        loss / n + 0.5 * self.l2 * penalty
    }
}

impl Memo {
    /// Evaluates the objective and its gradient at `x` unless `x` is the point last evaluated.
    /// The gradient is computed with every value: most points the optimiser evaluates become its
    /// next iterate, whose gradient it asks for next, and the gradient costs about as much again
    /// as the value alone.
    fn at(&mut self, problem: &Problem, x: &[f64]) {
        if self.x != x {
            self.x.clear();
            self.x.extend_from_slice(x);
            self.value = problem.evaluate(x, Some(&mut self.gradient), &mut self.scores);
        }
    }
}

/// Fits a classifier of `classes` classes on the rows `sample` of `rows`, with `labels[i]` the
/// class of row `sample[i]`.
///
/// # Errors
/// A message when the optimiser fails (it should not: the objective is smooth and convex).
pub(crate) fn fit(
    rows: &Rows,
    sample: &[usize],
    labels: &[u32],
    classes: usize,
    dims: u32,
    settings: &Settings,
) -> Result<Linear, String> {
    let (problem, buckets) = compact(rows, sample, labels, classes, dims, settings.l2);
    let mut x0 = vec![0.0; problem.parameters()];
    // Starting the biases at the log class frequencies saves the first iterations the work of
    // finding them.
    let mut counts = vec![0usize; classes];
    for &l in labels {
        counts[l as usize] += 1;
    }
    let n = labels.len().max(1) as f64;
    for (b, &c) in x0[problem.columns * classes..].iter_mut().zip(&counts) {
        *b = ((c as f64 + 0.5) / n).ln();
    }
    let memo = RefCell::new(Memo {
        x: Vec::new(),
        value: 0.0,
        gradient: vec![0.0; problem.parameters()],
        scores: Vec::with_capacity(classes),
    });
    let f = |x: &Params| {
        let mut memo = memo.borrow_mut();
        memo.at(&problem, &x.0);
        memo.value
    };
    let df = |g: &mut Params, x: &Params| {
        let mut memo = memo.borrow_mut();
        memo.at(&problem, &x.0);
        g.0.copy_from_slice(&memo.gradient);
    };
    let optimizer = LBFGS {
        max_iter: settings.max_iterations,
        g_atol: 1e-6,
        f_reltol: F_RELTOL,
        m: HISTORY,
        ..LBFGS::default()
    };
    let line_search = Backtracking::<f64>::default();
    // smartcore's line search panics when it cannot find a step; with a convex objective that
    // means numbers went wrong, which is reported rather than taken down with the process.
    let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        optimizer.optimize(&f, &df, &Params(x0), &line_search)
    }))
    .map_err(|_| "the optimiser failed to find a step".to_owned())?;
    let x = result.x.0;
    if !x.iter().all(|v| v.is_finite()) {
        return Err("the optimiser diverged".to_owned());
    }
    let (weights, bias) = x.split_at(problem.columns * classes);
    let weights: Vec<f32> = weights.iter().map(|&w| w as f32).collect();
    let bias: Vec<f32> = bias.iter().map(|&b| b as f32).collect();
    Linear::new(dims, buckets, weights, bias)
        .ok_or_else(|| "the fitted weights do not fit the feature space".to_owned())
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
    let problem = Problem {
        offsets,
        entries,
        labels: labels.to_vec(),
        classes,
        columns: buckets.len(),
        l2,
    };
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
        Problem {
            offsets,
            entries,
            labels,
            classes: 3,
            columns: 4,
            l2: 0.1,
        }
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
        let model = fit(&rows, &sample, &labels, 3, 32, &settings).expect("fits");
        let mut scores = Vec::new();
        for class in 0..3u32 {
            let (predicted, p) = model.predict(&[(class, 1.0), (12, 1.0)], &mut scores);
            assert_eq!(predicted as u32, class);
            assert!(p > 0.9, "{class}: {p}");
        }
        // Only the buckets seen are parameters.
        assert_eq!(model.buckets(), [0, 1, 2, 10, 11, 12, 13, 14, 15, 16]);
        // Deterministic: the same rows and settings give the same weights, bit for bit.
        let again = fit(&rows, &sample, &labels, 3, 32, &settings).expect("fits");
        assert_eq!(model, again);
        // A class absent from the sample is never predicted.
        let two: Vec<usize> = sample.iter().copied().filter(|&i| labels[i] != 2).collect();
        let two_labels: Vec<u32> = two.iter().map(|&i| labels[i]).collect();
        let model = fit(&rows, &two, &two_labels, 3, 32, &settings).expect("fits");
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
        let value = p.evaluate(&x, Some(&mut g), &mut scores);
        assert!((value - p.evaluate(&x, None, &mut scores)).abs() < 1e-12);
        let h = 1e-6;
        for i in 0..p.parameters() {
            let mut up = x.clone();
            up[i] += h;
            let mut down = x.clone();
            down[i] -= h;
            let numeric = (p.evaluate(&up, None, &mut scores)
                - p.evaluate(&down, None, &mut scores))
                / (2.0 * h);
            assert!((numeric - g[i]).abs() < 1e-6, "{i}: {numeric} vs {}", g[i]);
        }
    }
}
