//! Seeded randomness, sampling, holdout splits and stratified folds: how a model is measured.
//!
//! Every random choice comes from a SplitMix64 generator seeded by the caller, written here so
//! that a seed gives the same split on every platform and with every version of every
//! dependency.

/// SplitMix64: small, fast and well mixed; enough for shuffling.
#[derive(Debug, Clone)]
pub(crate) struct Rng(u64);

impl Rng {
    pub(crate) fn new(seed: u64) -> Rng {
        Rng(seed)
    }

    pub(crate) fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// A number in `0..n` (`n > 0`), without the bias of a plain remainder.
    pub(crate) fn below(&mut self, n: usize) -> usize {
        let n = n as u64;
        // Values at or above the largest multiple of n would favour the low remainders.
        let zone = u64::MAX - u64::MAX % n;
        loop {
            let x = self.next_u64();
            if x < zone {
                return (x % n) as usize;
            }
        }
    }

    /// Fisher–Yates.
    pub(crate) fn shuffle<T>(&mut self, items: &mut [T]) {
        for i in (1..items.len()).rev() {
            let j = self.below(i + 1);
            items.swap(i, j);
        }
    }
}

/// `max` of the indexes `0..n` chosen at random with the seed, in increasing order; `None` when
/// `n <= max` and all are kept.
pub(crate) fn sample(n: usize, max: usize, seed: u64) -> Option<Vec<usize>> {
    if n <= max {
        return None;
    }
    let mut all: Vec<usize> = (0..n).collect();
    Rng::new(seed).shuffle(&mut all);
    all.truncate(max);
    all.sort_unstable();
    Some(all)
}

/// Splits the positions `0..n` at random into training and test parts, the test part holding
/// `fraction` of them (rounded, and at least one of each part when `n >= 2`).
pub(crate) fn holdout(n: usize, fraction: f64, seed: u64) -> (Vec<usize>, Vec<usize>) {
    let mut all: Vec<usize> = (0..n).collect();
    Rng::new(seed).shuffle(&mut all);
    let test = if n < 2 {
        n
    } else {
        ((n as f64 * fraction).round() as usize).clamp(1, n - 1)
    };
    let mut train = all.split_off(test);
    let mut test = all;
    train.sort_unstable();
    test.sort_unstable();
    (train, test)
}

/// Assigns each position a fold in `0..k`, stratified: each class is spread evenly over the
/// folds, so fold sizes differ by at most one and class proportions by at most one example.
pub(crate) fn stratified_folds(labels: &[u32], classes: usize, k: usize, seed: u64) -> Vec<usize> {
    let mut rng = Rng::new(seed);
    let mut by_class: Vec<Vec<usize>> = vec![Vec::new(); classes];
    for (i, &l) in labels.iter().enumerate() {
        by_class[l as usize].push(i);
    }
    let mut fold = vec![0; labels.len()];
    // Continuing the round-robin from class to class keeps the fold sizes even.
    let mut next = 0;
    for members in &mut by_class {
        rng.shuffle(members);
        for &i in members.iter() {
            fold[i] = next % k;
            next += 1;
        }
    }
    fold
}

/// The most frequent class among `labels` (the first in class order on ties).
pub(crate) fn majority(labels: impl IntoIterator<Item = u32>, classes: usize) -> u32 {
    let mut counts = vec![0usize; classes];
    for l in labels {
        counts[l as usize] += 1;
    }
    let mut best = 0;
    for (c, &n) in counts.iter().enumerate() {
        if n > counts[best] {
            best = c;
        }
    }
    best as u32
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rng_is_fixed_and_unbiased_enough() {
        // SplitMix64 reference output for seed 0.
        let mut r = Rng::new(0);
        assert_eq!(r.next_u64(), 0xe220_a839_7b1d_cdaf);
        assert_eq!(r.next_u64(), 0x6e78_9e6a_a1b9_65f4);
        let mut counts = [0usize; 3];
        let mut r = Rng::new(1);
        for _ in 0..3000 {
            counts[r.below(3)] += 1;
        }
        assert!(
            counts.iter().all(|&c| (900..1100).contains(&c)),
            "{counts:?}"
        );
    }

    #[test]
    fn sampling_is_seeded_and_sorted() {
        assert_eq!(sample(10, 10, 1), None);
        let a = sample(1000, 100, 42).expect("sampled");
        assert_eq!(a.len(), 100);
        assert!(a.windows(2).all(|w| w[0] < w[1]));
        assert!(a.iter().all(|&i| i < 1000));
        assert_eq!(Some(a.clone()), sample(1000, 100, 42));
        assert_ne!(Some(a), sample(1000, 100, 43));
    }

    #[test]
    fn holdout_arithmetic() {
        // (n, fraction) → test size
        for (n, fraction, test) in [
            (100, 0.2, 20),
            (1631, 0.2, 326),
            (10, 0.25, 3),
            (2, 0.01, 1),
            (2, 0.99, 1),
            (5, 0.5, 3),
            (1, 0.5, 1),
        ] {
            let (tr, te) = holdout(n, fraction, 9);
            assert_eq!(te.len(), test, "{n} {fraction}");
            assert_eq!(tr.len() + te.len(), n);
            let mut all: Vec<usize> = tr.iter().chain(&te).copied().collect();
            all.sort_unstable();
            assert_eq!(all, (0..n).collect::<Vec<_>>());
        }
        assert_eq!(holdout(50, 0.3, 1), holdout(50, 0.3, 1));
        assert_ne!(holdout(50, 0.3, 1), holdout(50, 0.3, 2));
    }

    #[test]
    fn folds_are_even_and_stratified() {
        // 10 of class 0, 7 of class 1, 3 of class 2.
        let labels: Vec<u32> = [0; 10]
            .iter()
            .chain(&[1; 7])
            .chain(&[2; 3])
            .copied()
            .collect();
        for k in [2, 3, 5, 20] {
            let fold = stratified_folds(&labels, 3, k, 5);
            let mut sizes = vec![0usize; k];
            let mut per_class = vec![vec![0usize; 3]; k];
            for (i, &f) in fold.iter().enumerate() {
                sizes[f] += 1;
                per_class[f][labels[i] as usize] += 1;
            }
            let (lo, hi) = (sizes.iter().min(), sizes.iter().max());
            assert!(
                hi.zip(lo).is_some_and(|(h, l)| h - l <= 1),
                "{k}: {sizes:?}"
            );
            for c in 0..3 {
                let counts: Vec<usize> = per_class.iter().map(|p| p[c]).collect();
                let (lo, hi) = (counts.iter().min(), counts.iter().max());
                assert!(
                    hi.zip(lo).is_some_and(|(h, l)| h - l <= 1),
                    "{k} {c}: {counts:?}"
                );
            }
        }
    }

    #[test]
    fn majority_prefers_the_first_on_ties() {
        assert_eq!(majority([2, 1, 2, 1], 3), 1);
        assert_eq!(majority([2, 2, 0], 3), 2);
        assert_eq!(majority([], 3), 0);
    }
}
