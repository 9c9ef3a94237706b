//! The statistics the harness's figures share: medians, and ratios of paired CPU times with
//! their bootstrap intervals (the gate's timed figures; a side-by-side comparison). A leaf:
//! it depends on nothing else in the crate.

/// One repetition of a paired measurement: CPU seconds of its reference side and of its
/// measured side.
pub type Pair = [f64; 2];

/// The median of `v` (NaN for none).
pub fn median(v: &[f64]) -> f64 {
    let mut s = v.to_vec();
    s.sort_by(f64::total_cmp);
    match s.len() {
        0 => f64::NAN,
        n if n % 2 == 1 => s[n / 2],
        n => (s[n / 2 - 1] + s[n / 2]) / 2.0,
    }
}

/// A timed figure from its repetitions: the median of the pairs' ratios, reference ÷ measured
/// (NaN for none). The two sides of a pair run one after the other on the same processor, so
/// they meet the same machine: a neighbour's load, a slower clock, cold caches raise both, and
/// the ratio keeps little of it. A spike on one side of one pair moves the median by one rank
/// at most.
pub fn paired_ratio(pairs: &[Pair]) -> f64 {
    median(&pairs.iter().map(|p| p[0] / p[1]).collect::<Vec<_>>())
}

/// A 95% bootstrap percentile interval of [`paired_ratio`], repetitions resampled whole
/// (deterministic: a fixed seed, 2000 resamples).
pub fn ratio_interval(pairs: &[Pair]) -> (f64, f64) {
    if pairs.len() < 2 {
        let m = paired_ratio(pairs);
        return (m, m);
    }
    let mut state = 0x2545_F491_4F6C_DD1Du64;
    let mut next = move || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        state
    };
    let n = pairs.len();
    let mut estimates: Vec<f64> = (0..2000)
        .map(|_| {
            let resample: Vec<Pair> = (0..n)
                .map(|_| pairs[(next() % n as u64) as usize])
                .collect();
            paired_ratio(&resample)
        })
        .collect();
    estimates.sort_by(f64::total_cmp);
    (estimates[50], estimates[1949])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bootstrap_interval_brackets_the_median() {
        let s = [1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0].map(|r| [r, 1.0]);
        let (lo, hi) = ratio_interval(&s);
        assert!(
            lo <= 4.0 && 4.0 <= hi && lo >= 1.0 && hi <= 7.0,
            "{lo} {hi}"
        );
        assert_eq!(median(&[3.0, 1.0, 2.0]), 2.0);
        assert_eq!(median(&[4.0, 1.0, 2.0, 3.0]), 2.5);
        // A spike on one side of one pair moves the median by a rank at most.
        assert_eq!(paired_ratio(&[[2.0, 1.0], [2.0, 1.4], [2.0, 1.0]]), 2.0);
        // The machine's drift between pairs cancels within each pair.
        assert_eq!(paired_ratio(&[[2.0, 1.0], [3.0, 1.5], [2.4, 1.2]]), 2.0);
    }
}
