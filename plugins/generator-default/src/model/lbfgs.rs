//! Limited-memory BFGS over plain slices, the optimiser of the logistic learner.
//!
//! The objective is one function that returns the value at a point and writes the gradient
//! there, so a model that computes both in one pass over its data (as the logistic objective
//! does) pays for one pass per point. The search direction comes from the standard two-loop
//! recursion over the last few steps and gradient changes, kept in two flat buffers allocated
//! once; an iteration allocates nothing and makes a handful of passes over the parameters.
//!
//! The step along a direction is found by a line search that satisfies the strong Wolfe
//! conditions: the value drops by at least a small fraction of what the slope promises
//! (sufficient decrease, `C1`), and the slope has flattened to at most `C2` of its start
//! (curvature). Each trial point yields its gradient anyway, so the slope costs nothing extra;
//! trials are chosen by cubic interpolation of the values and slopes at the ends of the bracket,
//! and the curvature condition keeps every accepted step's curvature pair positive.
//!
//! The optimiser stops when the largest gradient component is at most `g_atol`, when the
//! objective has changed by at most `f_reltol` of its value on two iterations, after
//! `max_iterations` iterations, or when the line search can no longer find a lower point (which,
//! on a smooth convex objective, means rounding has been reached). Everything runs in a fixed
//! order on one thread: the same objective and start give bit-identical results.

/// Sufficient decrease: a step must lower the value by this fraction of the slope times the step.
const C1: f64 = 1e-4;

/// Curvature: a step is accepted once the slope's magnitude is at most this fraction of its
/// magnitude at the start. 0.9 is the usual choice for quasi-Newton methods: it accepts the
/// unit step in most iterations, which then costs one evaluation.
const C2: f64 = 0.9;

/// The most objective evaluations one line search makes.
const MAX_TRIALS: usize = 20;

/// How far an extrapolating line search multiplies the step when the slope is still steep.
const EXTRAPOLATION: f64 = 4.0;

/// How the optimiser runs and when it stops.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct Options {
    /// The most iterations (accepted steps).
    pub(crate) max_iterations: usize,
    /// How many past steps model the curvature.
    pub(crate) history: usize,
    /// Stop on the second iteration that changes the value by at most this fraction of it.
    pub(crate) f_reltol: f64,
    /// Stop when no gradient component exceeds this in magnitude.
    pub(crate) g_atol: f64,
}

/// Why the optimiser stopped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Stop {
    /// The gradient is below `g_atol`.
    Gradient,
    /// The value stopped changing (`f_reltol`).
    Progress,
    /// `max_iterations` were made.
    Iterations,
    /// No step along the direction lowered the value.
    LineSearch,
}

/// How a minimisation ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Outcome {
    /// Accepted steps.
    pub(crate) iterations: usize,
    pub(crate) stop: Stop,
}

/// A point along the search direction: its step, value and slope.
#[derive(Debug, Clone, Copy)]
struct Trial {
    step: f64,
    value: f64,
    slope: f64,
}

/// Minimises `objective` from `x`, leaving the best point found in `x`.
///
/// `objective(x, gradient)` returns the value at `x` and writes the gradient into `gradient`
/// (of `x`'s length).
///
/// # Errors
/// A message when the objective or its gradient is not finite at the start, where no step can
/// be taken.
pub(crate) fn minimize<F>(
    mut objective: F,
    x: &mut [f64],
    options: &Options,
) -> Result<Outcome, String>
where
    F: FnMut(&[f64], &mut [f64]) -> f64,
{
    let n = x.len();
    let mut gradient = vec![0.0; n];
    let mut value = objective(x, &mut gradient);
    if !value.is_finite() || !gradient.iter().all(|g| g.is_finite()) {
        return Err(format!(
            "the objective is not finite at the starting point (value {value})"
        ));
    }
    let mut point = x.to_vec();
    let mut direction = vec![0.0; n];
    let mut trial_point = vec![0.0; n];
    let mut trial_gradient = vec![0.0; n];
    let mut history = History::new(n, options.history.max(1));
    let mut small_changes = 0;
    let mut iterations = 0;
    let stop = loop {
        if max_abs(&gradient) <= options.g_atol {
            break Stop::Gradient;
        }
        if iterations >= options.max_iterations {
            break Stop::Iterations;
        }
        let mut slope = history.direction(&gradient, &mut direction);
        if slope.is_nan() || slope >= 0.0 {
            // Rounding can spoil the model's curvature; steepest descent always descends.
            history.clear();
            slope = history.direction(&gradient, &mut direction);
        }
        // Without a history the direction is the raw gradient, whose scale says nothing about
        // a good step: the first trial moves at most a unit distance.
        let first = if history.stored == 0 {
            (-slope).sqrt().recip().min(1.0)
        } else {
            1.0
        };
        let line = Line {
            point: &point,
            direction: &direction,
            start: Trial {
                step: 0.0,
                value,
                slope,
            },
        };
        let found = search(
            &mut objective,
            &line,
            first,
            &mut trial_point,
            &mut trial_gradient,
        );
        let Some(new_value) = found else {
            break Stop::LineSearch;
        };
        history.push(&point, &trial_point, &gradient, &trial_gradient);
        std::mem::swap(&mut point, &mut trial_point);
        std::mem::swap(&mut gradient, &mut trial_gradient);
        let previous = std::mem::replace(&mut value, new_value);
        iterations += 1;
        if (previous - value).abs() <= options.f_reltol * value.abs() {
            small_changes += 1;
            if small_changes >= 2 {
                break Stop::Progress;
            }
        }
    };
    x.copy_from_slice(&point);
    Ok(Outcome { iterations, stop })
}

/// The line a search runs along: from `point` (where the objective is `start`) in `direction`.
struct Line<'a> {
    point: &'a [f64],
    direction: &'a [f64],
    start: Trial,
}

/// The last steps and gradient changes, which model the inverse Hessian.
///
/// Pair `i` is `steps[i * n..(i + 1) * n]` and `changes[i * n..(i + 1) * n]`; the slots form a
/// ring whose newest pair is in slot `newest`, the `j`-th newest in `slot(j)`.
struct History {
    n: usize,
    m: usize,
    steps: Vec<f64>,
    changes: Vec<f64>,
    /// `1 / (s · y)` of each pair.
    rho: Vec<f64>,
    /// The two-loop recursion's coefficients, kept between its loops.
    alpha: Vec<f64>,
    stored: usize,
    newest: usize,
    /// The scale of the initial inverse Hessian, `s · y / y · y` of the newest pair.
    gamma: f64,
}

impl History {
    fn new(n: usize, m: usize) -> History {
        History {
            n,
            m,
            steps: vec![0.0; m * n],
            changes: vec![0.0; m * n],
            rho: vec![0.0; m],
            alpha: vec![0.0; m],
            stored: 0,
            newest: m - 1,
            gamma: 1.0,
        }
    }

    fn clear(&mut self) {
        self.stored = 0;
        self.gamma = 1.0;
    }

    fn slot(&self, j: usize) -> usize {
        (self.newest + self.m - j) % self.m
    }

    fn step(&self, slot: usize) -> &[f64] {
        &self.steps[slot * self.n..(slot + 1) * self.n]
    }

    fn change(&self, slot: usize) -> &[f64] {
        &self.changes[slot * self.n..(slot + 1) * self.n]
    }

    /// Writes `-H · gradient` into `direction` by the two-loop recursion and returns its slope,
    /// `gradient · direction`.
    ///
    /// Each loop's update of the direction and the dot product the next update needs are made
    /// in one pass, so that a pair's vectors are read once per loop.
    fn direction(&mut self, gradient: &[f64], direction: &mut [f64]) -> f64 {
        direction.copy_from_slice(gradient);
        let stored = self.stored;
        if stored == 0 {
            return update(direction, -1.0, 0.0, gradient, gradient);
        }
        let mut product = dot(self.step(self.slot(0)), direction);
        for j in 0..stored {
            let i = self.slot(j);
            self.alpha[i] = self.rho[i] * product;
            product = if j + 1 < stored {
                let next = self.step(self.slot(j + 1));
                update(direction, 1.0, -self.alpha[i], self.change(i), next)
            } else {
                // The oldest pair: the scaling by `gamma` joins the update, and the second
                // loop starts with the same pair.
                let y = self.change(i);
                update(direction, self.gamma, -self.alpha[i], y, y)
            };
        }
        for j in (0..stored).rev() {
            let i = self.slot(j);
            let coefficient = self.alpha[i] - self.rho[i] * product;
            product = if j > 0 {
                let next = self.change(self.slot(j - 1));
                update(direction, 1.0, coefficient, self.step(i), next)
            } else {
                // The newest pair: the sign flips to descend and the slope is taken.
                update(direction, -1.0, coefficient, self.step(i), gradient)
            };
        }
        product
    }

    /// Records the move from `point` to `next`, where the gradients are `gradient` and
    /// `next_gradient`.
    fn push(&mut self, point: &[f64], next: &[f64], gradient: &[f64], next_gradient: &[f64]) {
        let (n, slot) = (self.n, (self.newest + 1) % self.m);
        let s = &mut self.steps[slot * n..(slot + 1) * n];
        let y = &mut self.changes[slot * n..(slot + 1) * n];
        for (s, (a, b)) in s.iter_mut().zip(next.iter().zip(point)) {
            *s = a - b;
        }
        for (y, (a, b)) in y.iter_mut().zip(next_gradient.iter().zip(gradient)) {
            *y = a - b;
        }
        let (sy, yy) = (dot(s, y), dot(y, y));
        // The Wolfe curvature condition makes `sy` positive; a pair that is not (rounding near
        // the minimum) would break the model's positive definiteness and is skipped. Its slot
        // held the oldest pair, which is then gone too.
        if sy > f64::EPSILON * yy {
            self.rho[slot] = sy.recip();
            self.gamma = sy / yy;
            self.newest = slot;
            self.stored = (self.stored + 1).min(self.m);
        } else if self.stored == self.m {
            self.stored -= 1;
        }
    }
}

/// Finds a step along `line` that satisfies the strong Wolfe conditions, trying the step `first`
/// first. On success the point and gradient there are in `trial_point` and `trial_gradient` and
/// the value is returned; `None` when no step lowered the value.
fn search<F>(
    objective: &mut F,
    line: &Line<'_>,
    first: f64,
    trial_point: &mut [f64],
    trial_gradient: &mut [f64],
) -> Option<f64>
where
    F: FnMut(&[f64], &mut [f64]) -> f64,
{
    // `low` is the lowest point with sufficient decrease so far (the start at first); once a
    // trial overshoots, `high` closes a bracket that holds a step satisfying both conditions.
    let Line {
        point,
        direction,
        start,
    } = *line;
    let mut low = start;
    let mut high: Option<Trial> = None;
    let mut step = first;
    let evaluate =
        |step: f64, objective: &mut F, trial_point: &mut [f64], trial_gradient: &mut [f64]| {
            for ((t, p), d) in trial_point.iter_mut().zip(point).zip(direction) {
                *t = p + step * d;
            }
            let value = objective(trial_point, trial_gradient);
            Trial {
                step,
                value,
                slope: dot(trial_gradient, direction),
            }
        };
    for _ in 0..MAX_TRIALS {
        let t = evaluate(step, objective, trial_point, trial_gradient);
        let decreased = t.value.is_finite()
            && t.slope.is_finite()
            && t.value <= start.value + C1 * t.step * start.slope
            && t.value < low.value;
        if !decreased {
            high = Some(t);
        } else if t.slope.abs() <= -C2 * start.slope {
            return Some(t.value);
        } else {
            // The slope at the new low point tells on which side of it the minimum lies: back
            // towards the old low point when it rises away from it.
            if t.slope * (t.step - low.step) > 0.0 {
                high = Some(low);
            }
            low = t;
        }
        step = match high {
            None => step * EXTRAPOLATION,
            Some(high) => interpolate(low, high),
        };
        // A bracket narrower than rounding holds no new point.
        let narrow = high.is_some_and(|h| {
            (h.step - low.step).abs() <= f64::EPSILON * h.step.abs().max(low.step.abs())
        });
        if !step.is_finite() || narrow {
            break;
        }
    }
    // The trials ran out or the bracket closed: the lowest point with sufficient decrease, when
    // there is one, is still progress.
    if low.step > 0.0 {
        let t = evaluate(low.step, objective, trial_point, trial_gradient);
        return Some(t.value);
    }
    None
}

/// The minimiser of the cubic through the values and slopes at `low` and `high`, kept inside the
/// middle 80% of the bracket; the midpoint when the cubic has no usable minimum (an infinite
/// value at `high`, say).
fn interpolate(low: Trial, high: Trial) -> f64 {
    let (a, b) = (low.step, high.step);
    let d1 = low.slope + high.slope - 3.0 * (low.value - high.value) / (a - b);
    let discriminant = d1 * d1 - low.slope * high.slope;
    let midpoint = 0.5 * (a + b);
    if !discriminant.is_finite() || discriminant < 0.0 {
        return midpoint;
    }
    let d2 = (b - a).signum() * discriminant.sqrt();
    let step = b - (b - a) * (high.slope + d2 - d1) / (high.slope - low.slope + 2.0 * d2);
    if !step.is_finite() {
        return midpoint;
    }
    let (lo, hi) = (a.min(b), a.max(b));
    let margin = 0.1 * (hi - lo);
    step.clamp(lo + margin, hi - margin)
}

/// How many partial sums a reduction keeps. One running sum makes every addition wait for the
/// one before; independent lanes let the processor overlap them and use its vector units, which
/// made the optimiser's own work (a dozen or so reductions over the parameters an iteration)
/// several times faster. The lanes are added in a fixed order, so results stay deterministic.
const LANES: usize = 8;

fn dot(a: &[f64], b: &[f64]) -> f64 {
    let n = a.len().min(b.len());
    let ((a_chunks, a_rest), (b_chunks, b_rest)) =
        (a[..n].as_chunks::<LANES>(), b[..n].as_chunks::<LANES>());
    let mut lanes = [0.0; LANES];
    for (a, b) in a_chunks.iter().zip(b_chunks) {
        for ((sum, a), b) in lanes.iter_mut().zip(a).zip(b) {
            *sum += a * b;
        }
    }
    let mut sum = lanes.iter().sum::<f64>();
    for (a, b) in a_rest.iter().zip(b_rest) {
        sum += a * b;
    }
    sum
}

/// `d = c · (d + a · x)`, returning `z · d` of the updated `d`: an update of the two-loop
/// recursion and the dot product the next one needs, in one pass.
fn update(d: &mut [f64], c: f64, a: f64, x: &[f64], z: &[f64]) -> f64 {
    let n = d.len().min(x.len()).min(z.len());
    let (d_chunks, d_rest) = d[..n].as_chunks_mut::<LANES>();
    let ((x_chunks, x_rest), (z_chunks, z_rest)) =
        (x[..n].as_chunks::<LANES>(), z[..n].as_chunks::<LANES>());
    let mut lanes = [0.0; LANES];
    for ((d, x), z) in d_chunks.iter_mut().zip(x_chunks).zip(z_chunks) {
        for (((sum, d), x), z) in lanes.iter_mut().zip(d).zip(x).zip(z) {
            *d = c * (*d + a * x);
            *sum += z * *d;
        }
    }
    let mut sum = lanes.iter().sum::<f64>();
    for ((d, x), z) in d_rest.iter_mut().zip(x_rest).zip(z_rest) {
        *d = c * (*d + a * x);
        sum += z * *d;
    }
    sum
}

/// The largest magnitude in `v` (NaN when `v` holds one, so that it never passes a tolerance).
fn max_abs(v: &[f64]) -> f64 {
    let larger = |m: f64, v: f64| {
        let a = v.abs();
        if a > m || a.is_nan() { a } else { m }
    };
    let (chunks, rest) = v.as_chunks::<LANES>();
    let mut lanes = [0.0f64; LANES];
    for chunk in chunks {
        for (m, &v) in lanes.iter_mut().zip(chunk) {
            *m = larger(*m, v);
        }
    }
    lanes.iter().chain(rest).fold(0.0, |m, &v| larger(m, v))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn options(max_iterations: usize) -> Options {
        Options {
            max_iterations,
            history: 5,
            f_reltol: 0.0,
            g_atol: 1e-10,
        }
    }

    /// `½ Σ cᵢ (xᵢ − i)²` with curvatures from 1 to 1000: an ill-conditioned quadratic whose
    /// minimum, 0, is at `xᵢ = i`.
    fn quadratic(x: &[f64], g: &mut [f64]) -> f64 {
        let mut value = 0.0;
        for (i, (x, g)) in x.iter().zip(g.iter_mut()).enumerate() {
            let c = 1000f64.powf(i as f64 / 9.0);
            let r = x - i as f64;
            *g = c * r;
            value += 0.5 * c * r * r;
        }
        value
    }

    #[test]
    fn minimises_a_quadratic_to_its_minimum() {
        let mut x = vec![0.0; 10];
        let outcome = minimize(quadratic, &mut x, &options(200)).expect("finite start");
        assert_eq!(outcome.stop, Stop::Gradient, "{outcome:?}");
        let value = quadratic(&x, &mut [0.0; 10]);
        assert!(value < 1e-18, "{value}");
        for (i, x) in x.iter().enumerate() {
            assert!((x - i as f64).abs() < 1e-9, "x[{i}] = {x}");
        }
        // Deterministic: the same start gives the same point, bit for bit.
        let mut again = vec![0.0; 10];
        let second = minimize(quadratic, &mut again, &options(200)).expect("finite start");
        assert_eq!(x, again);
        assert_eq!(outcome, second);
    }

    #[test]
    fn minimises_the_rosenbrock_valley() {
        // A non-convex classic: the minimum 0 at (1, 1) lies at the end of a curved valley.
        let rosenbrock = |x: &[f64], g: &mut [f64]| {
            let (a, b) = (1.0 - x[0], x[1] - x[0] * x[0]);
            g[0] = -2.0 * a - 400.0 * x[0] * b;
            g[1] = 200.0 * b;
            a * a + 100.0 * b * b
        };
        let mut x = vec![-1.2, 1.0];
        let outcome = minimize(rosenbrock, &mut x, &options(500)).expect("finite start");
        assert_eq!(outcome.stop, Stop::Gradient, "{outcome:?}");
        assert!(rosenbrock(&x, &mut [0.0; 2]) < 1e-12, "{x:?}");
        assert!(
            (x[0] - 1.0).abs() < 1e-5 && (x[1] - 1.0).abs() < 1e-5,
            "{x:?}"
        );
    }

    #[test]
    fn stops_as_asked() {
        // (options, expected stop) from the quadratic's start at 0.
        for (options, expected) in [
            (options(3), Stop::Iterations),
            (
                Options {
                    f_reltol: 0.5,
                    ..options(200)
                },
                Stop::Progress,
            ),
            (
                Options {
                    g_atol: 1e6,
                    ..options(200)
                },
                Stop::Gradient,
            ),
        ] {
            let mut x = vec![0.0; 10];
            let outcome = minimize(quadratic, &mut x, &options).expect("finite start");
            assert_eq!(outcome.stop, expected, "{options:?}: {outcome:?}");
            assert!(outcome.iterations <= options.max_iterations);
        }
        // No iterations: the start is returned as it is.
        let mut x = vec![0.0; 10];
        let outcome = minimize(quadratic, &mut x, &options(0)).expect("finite start");
        assert_eq!(outcome.iterations, 0);
        assert_eq!(x, vec![0.0; 10]);
    }

    #[test]
    fn steps_back_from_infinite_values() {
        // Finite only below 1: a unit first step from 0 lands outside and must be shortened.
        let barrier = |x: &[f64], g: &mut [f64]| {
            if x[0] >= 1.0 {
                return f64::INFINITY;
            }
            g[0] = -1.0 + 0.5 / (1.0 - x[0]);
            -x[0] - 0.5 * (1.0 - x[0]).ln()
        };
        let mut x = vec![0.0];
        let outcome = minimize(barrier, &mut x, &options(100)).expect("finite start");
        assert!((x[0] - 0.5).abs() < 1e-8, "{x:?} {outcome:?}");
    }

    #[test]
    fn a_non_finite_start_is_an_error() {
        let mut x = vec![0.0];
        let error = minimize(|_, _| f64::NAN, &mut x, &options(10)).expect_err("not finite");
        assert!(error.contains("not finite"), "{error}");
    }
}
