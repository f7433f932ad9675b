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

use super::features::Rows;
use super::lbfgs;
use super::linear::Linear;

/// The optimiser stops once the objective has changed by less than this fraction twice. On the
/// Prowler titles, stopping there rather than at 1e-6 saved a third of the iterations and
/// changed no cross-validated answer.
const F_RELTOL: f64 = 1e-4;

/// How many past steps L-BFGS keeps to model the curvature. Each costs passes over the
/// parameters in every iteration; 5 took about as many iterations as 10.
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

impl Problem {
    fn parameters(&self) -> usize {
        (self.columns + 1) * self.classes
    }

    /// The objective at `x`, with its gradient written into `gradient`, in one pass over the
    /// rows; `scores` is scratch space.
    fn evaluate(&self, x: &[f64], gradient: &mut [f64], scores: &mut Vec<f64>) -> f64 {
        let k = self.classes;
        let (weights, bias) = x.split_at(self.columns * k);
        let (gw, gb) = gradient.split_at_mut(self.columns * k);
        gw.fill(0.0);
        gb.fill(0.0);
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
            let label = label as usize;
            let max = scores.iter().copied().fold(f64::NEG_INFINITY, f64::max);
            let own = scores[label];
            // The scores become exp(s - max), then the residuals p - onehot.
            let mut total = 0.0;
            for s in scores.iter_mut() {
                *s = (*s - max).exp();
                total += *s;
            }
            loss += max + total.ln() - own;
            let inverse = total.recip();
            for s in scores.iter_mut() {
                *s *= inverse;
            }
            scores[label] -= 1.0;
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
        let scale = (self.labels.len().max(1) as f64).recip();
        let mut penalty = 0.0;
        for (g, w) in gw.iter_mut().zip(weights) {
            penalty += w * w;
            *g = *g * scale + self.l2 * w;
        }
        for g in gb {
            *g *= scale;
        }
        loss * scale + 0.5 * self.l2 * penalty
    }
}

/// Fits a classifier of `classes` classes on the rows `sample` of `rows`, with `labels[i]` the
/// class of row `sample[i]`.
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
) -> Result<Linear, String> {
    let (problem, buckets) = compact(rows, sample, labels, classes, dims, settings.l2);
    let mut x = vec![0.0; problem.parameters()];
    // Starting the biases at the log class frequencies saves the first iterations the work of
    // finding them.
    let mut counts = vec![0usize; classes];
    for &l in labels {
        counts[l as usize] += 1;
    }
    let n = labels.len().max(1) as f64;
    for (b, &c) in x[problem.columns * classes..].iter_mut().zip(&counts) {
        *b = ((c as f64 + 0.5) / n).ln();
    }
    let options = lbfgs::Options {
        max_iterations: settings.max_iterations,
        history: HISTORY,
        f_reltol: F_RELTOL,
        g_atol: G_ATOL,
    };
    let mut scores = Vec::with_capacity(classes);
    let t0 = std::time::Instant::now();
    let outcome = lbfgs::minimize(
        |x, gradient| problem.evaluate(x, gradient, &mut scores),
        &mut x,
        &options,
    )?;
    if std::env::var_os("LBFGS_DIAG").is_some() {
        let mut sc = Vec::new();
        let mut g = vec![0.0; x.len()];
        let fx = problem.evaluate(&x, &mut g, &mut sc);
        let gn = g.iter().fold(0.0f64, |a, v| a.max(v.abs()));
        eprintln!("DIAG n={} k={} p={} iters={} evals={} f={:.8} ginf={:.3e} {:?} {:.1}ms", labels.len(), classes, x.len(), outcome.iterations, outcome.evaluations, fx, gn, outcome.stop, t0.elapsed().as_secs_f64()*1e3);
    }
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
