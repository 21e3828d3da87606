//! Exact tests for small counts: the permutation test behind `harness diff`, and Holm's
//! step-down procedure.
//!
//! A trial is a vector of counts (per headline step: retries and failed handshakes). Two sides
//! are compared with a two-sided permutation test whose statistic is the largest absolute
//! difference of the component means. Under the null hypothesis (both sides' trials come from
//! one distribution, so all trials are exchangeable) every split of the pooled trials into groups
//! of the observed sizes is equally likely, so the p-value — the share of splits whose statistic
//! is at least the observed one — is exact. When there are at most [`EXACT_SPLITS`] splits they
//! are all enumerated; above that, [`MONTE_CARLO_DRAWS`] random splits from a fixed seed are
//! drawn and `p = (1 + hits) / (1 + draws)`, which is still a valid p-value (P(p ≤ α) ≤ α
//! under the null hypothesis, counting the observed split as one draw) and is the same on every
//! run. Its floor is 1 / 100,001 ≈ 1e-5.

/// Enumerate every split up to this many; above it, draw [`MONTE_CARLO_DRAWS`] splits.
pub const EXACT_SPLITS: u64 = 200_000;
/// Random splits drawn when there are more than [`EXACT_SPLITS`].
pub const MONTE_CARLO_DRAWS: u64 = 100_000;
const SEED: u64 = 0x6873_6d61_7472_6978; // "hsmatrix"

/// How a p-value was computed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Method {
    /// Every split enumerated.
    Exact {
        /// Splits.
        splits: u64,
    },
    /// Seeded random splits.
    MonteCarlo {
        /// Draws.
        draws: u64,
    },
}

impl std::fmt::Display for Method {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Exact { splits } => write!(f, "exact, {splits} splits"),
            Self::MonteCarlo { draws } => write!(f, "Monte Carlo, {draws} seeded draws"),
        }
    }
}

/// The result of a permutation test.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Permutation {
    /// Two-sided p-value.
    pub p: f64,
    /// How it was computed.
    pub method: Method,
}

/// `n choose k`, saturating.
pub fn binomial(n: u64, k: u64) -> u64 {
    let k = k.min(n - k.min(n));
    let mut r: u128 = 1;
    for i in 0..k {
        r = r * u128::from(n - i) / u128::from(i + 1);
        if r > u128::from(u64::MAX) {
            return u64::MAX;
        }
    }
    r as u64
}

/// Two-sided permutation test of `a` against `b`, each a list of trials, each trial a vector of
/// the same length. Statistic: the largest absolute difference of component means.
pub fn permutation_test(a: &[Vec<u32>], b: &[Vec<u32>]) -> Permutation {
    let (na, nb) = (a.len(), b.len());
    if na == 0 || nb == 0 {
        return Permutation {
            p: 1.0,
            method: Method::Exact { splits: 1 },
        };
    }
    let pooled: Vec<&[u32]> = a.iter().chain(b).map(Vec::as_slice).collect();
    let dims = pooled.iter().map(|t| t.len()).min().unwrap_or(0);
    let n = pooled.len();
    let totals: Vec<f64> = (0..dims)
        .map(|d| pooled.iter().map(|t| f64::from(t[d])).sum())
        .collect();
    // The smaller group is the one whose members we choose.
    let k = na.min(nb);
    let (nk, nrest) = (k as f64, (n - k) as f64);
    let statistic = |chosen: &mut dyn Iterator<Item = usize>, sums: &mut [f64]| -> f64 {
        sums.iter_mut().for_each(|s| *s = 0.0);
        for i in chosen {
            for (d, s) in sums.iter_mut().enumerate() {
                *s += f64::from(pooled[i][d]);
            }
        }
        sums.iter()
            .zip(&totals)
            .map(|(s, t)| (s / nk - (t - s) / nrest).abs())
            .fold(0.0, f64::max)
    };
    let mut sums = vec![0.0; dims];
    let observed_group: Vec<usize> = if na <= nb {
        (0..na).collect()
    } else {
        (na..n).collect()
    };
    let observed = statistic(&mut observed_group.iter().copied(), &mut sums);
    let at_least = |t: f64| t >= observed - 1e-9;
    let splits = binomial(n as u64, k as u64);
    if splits <= EXACT_SPLITS {
        let mut idx: Vec<usize> = (0..k).collect();
        let mut hits = 0u64;
        let mut total = 0u64;
        loop {
            total += 1;
            if at_least(statistic(&mut idx.iter().copied(), &mut sums)) {
                hits += 1;
            }
            // Next k-combination in lexicographic order.
            let Some(i) = (0..k).rev().find(|&i| idx[i] != i + n - k) else {
                break;
            };
            idx[i] += 1;
            for j in i + 1..k {
                idx[j] = idx[j - 1] + 1;
            }
        }
        Permutation {
            p: hits as f64 / total as f64,
            method: Method::Exact { splits: total },
        }
    } else {
        let mut rng = SplitMix(SEED);
        let mut order: Vec<usize> = (0..n).collect();
        let mut hits = 0u64;
        for _ in 0..MONTE_CARLO_DRAWS {
            // A partial Fisher–Yates shuffle picks k members uniformly.
            for i in 0..k {
                let j = i + (rng.next() % (n - i) as u64) as usize;
                order.swap(i, j);
            }
            if at_least(statistic(&mut order[..k].iter().copied(), &mut sums)) {
                hits += 1;
            }
        }
        Permutation {
            p: (1 + hits) as f64 / (1 + MONTE_CARLO_DRAWS) as f64,
            method: Method::MonteCarlo {
                draws: MONTE_CARLO_DRAWS,
            },
        }
    }
}

/// The same test on one count per trial.
pub fn permutation_test_1d(a: &[u32], b: &[u32]) -> Permutation {
    let wrap = |v: &[u32]| v.iter().map(|&x| vec![x]).collect::<Vec<_>>();
    permutation_test(&wrap(a), &wrap(b))
}

/// The median (the mean of the two middle values for an even count); `None` when empty.
pub fn median(values: &[u32]) -> Option<f64> {
    let mut v = values.to_vec();
    v.sort_unstable();
    let n = v.len();
    if n == 0 {
        return None;
    }
    Some(if n % 2 == 1 {
        f64::from(v[n / 2])
    } else {
        (f64::from(v[n / 2 - 1]) + f64::from(v[n / 2])) / 2.0
    })
}

/// Holm's step-down procedure: which of `p` are rejected with family-wise error at most `alpha`
/// (under any dependence between the tests). `m` is the size of the family, at least `p.len()`:
/// hypotheses not listed count as never rejected (as if their p-value were 1).
pub fn holm(p: &[f64], m: usize, alpha: f64) -> Vec<bool> {
    let m = m.max(p.len());
    let mut order: Vec<usize> = (0..p.len()).collect();
    order.sort_by(|&i, &j| p[i].total_cmp(&p[j]));
    let mut rejected = vec![false; p.len()];
    for (rank, &i) in order.iter().enumerate() {
        if p[i] <= alpha / (m - rank) as f64 {
            rejected[i] = true;
        } else {
            break;
        }
    }
    rejected
}

/// The threshold Holm applies to the smallest p-value of a family of `m`.
pub fn holm_first_threshold(m: usize, alpha: f64) -> f64 {
    alpha / m.max(1) as f64
}

struct SplitMix(u64);

impl SplitMix {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn close(a: f64, b: f64) -> bool {
        (a - b).abs() < 1e-12
    }

    #[test]
    fn three_against_three_can_never_go_below_one_tenth() {
        // The most extreme split of 6 distinct values: 2 of C(6,3) = 20 splits.
        let t = permutation_test_1d(&[1, 2, 3], &[4, 5, 6]);
        assert!(close(t.p, 0.1), "{t:?}");
        assert_eq!(t.method, Method::Exact { splits: 20 });
        assert!(close(permutation_test_1d(&[3, 3, 3], &[2, 2, 2]).p, 0.1));
    }

    #[test]
    fn known_p_values_with_ties() {
        // Pooled {2,2,3,3,3,3}: sums 7 and 9 are 8 of 20 splits.
        assert!(close(permutation_test_1d(&[3, 3, 3], &[2, 2, 3]).p, 0.4));
        // Pooled {2,2,3,3,3,4}: group sums ≥ 10 or ≤ 7 are 6 of 20.
        assert!(close(permutation_test_1d(&[3, 3, 4], &[2, 2, 3]).p, 0.3));
        // Identical samples: every split is at least as extreme.
        assert!(close(permutation_test_1d(&[2, 3, 3], &[2, 2, 3]).p, 1.0));
        assert!(close(permutation_test_1d(&[0, 0, 0], &[0, 0, 0]).p, 1.0));
        // 3 against 10 fully separated: 1 of C(13,3) = 286 splits.
        let t = permutation_test_1d(&[3, 3, 2], &[1; 10]);
        assert!(close(t.p, 1.0 / 286.0), "{t:?}");
    }

    #[test]
    fn the_statistic_is_the_largest_component_difference() {
        // The second component separates the sides; the first does not.
        let a = vec![vec![1, 3], vec![2, 3], vec![3, 3]];
        let b = vec![vec![3, 1], vec![2, 1], vec![1, 1]];
        assert!(close(permutation_test(&a, &b).p, 0.1));
        // The order of the sides does not matter.
        assert!(close(permutation_test(&b, &a).p, 0.1));
    }

    #[test]
    fn large_samples_use_seeded_monte_carlo_and_are_reproducible() {
        let a: Vec<u32> = (0..13).map(|i| 2 + i % 3).collect();
        let b: Vec<u32> = (0..13).map(|i| 1 + i % 2).collect();
        let t1 = permutation_test_1d(&a, &b);
        let t2 = permutation_test_1d(&a, &b);
        assert_eq!(t1, t2);
        assert_eq!(
            t1.method,
            Method::MonteCarlo {
                draws: MONTE_CARLO_DRAWS
            }
        );
        assert!(t1.p < 0.001, "{t1:?}");
        // Same distribution: far from significant.
        let t = permutation_test_1d(&a, &a);
        assert!(t.p > 0.9, "{t:?}");
    }

    #[test]
    fn holm_steps_down() {
        // α = 0.05, m = 4: thresholds 0.0125, 0.0167, 0.025, 0.05.
        assert_eq!(
            holm(&[0.01, 0.04, 0.03, 0.005], 4, 0.05),
            [true, false, false, true]
        );
        assert_eq!(
            holm(&[0.01, 0.015, 0.02, 0.04], 4, 0.05),
            [true, true, true, true]
        );
        // Unlisted members of the family make it stricter: 0.01 > 0.05 / 10.
        assert_eq!(holm(&[0.01], 10, 0.05), [false]);
        assert_eq!(holm(&[0.004], 10, 0.05), [true]);
    }

    #[test]
    fn binomials_and_medians() {
        assert_eq!(binomial(26, 13), 10_400_600);
        assert_eq!(binomial(13, 3), 286);
        assert_eq!(median(&[3, 1, 2]), Some(2.0));
        assert_eq!(median(&[1, 2, 3, 3]), Some(2.5));
        assert_eq!(median(&[]), None);
    }
}
