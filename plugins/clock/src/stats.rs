//! Summary statistics of measured errors, for status, tests and benchmarks (one definition, so
//! every figure in the README is computed the same way).

/// The `p` quantile (0..=1) of `sorted` (ascending), nearest rank; NaN when empty.
#[must_use]
pub fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let i = ((sorted.len() - 1) as f64 * p.clamp(0.0, 1.0)).round() as usize;
    sorted[i]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nearest_rank_of_a_sorted_slice() {
        let v: Vec<f64> = (0..=100).map(f64::from).collect();
        assert_eq!(percentile(&v, 0.5), 50.0);
        assert_eq!(percentile(&v, 0.99), 99.0);
        assert_eq!(percentile(&v, 1.0), 100.0);
        assert_eq!(
            percentile(&[7.0], 0.99),
            7.0,
            "one sample is every quantile"
        );
        assert!(
            percentile(&[], 0.5).is_nan(),
            "no samples: NaN, not a panic"
        );
    }
}
