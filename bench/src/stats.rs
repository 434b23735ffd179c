//! Order statistics over samples.

/// Sorts samples ascending (NaN-safe total order).
pub fn sorted(mut samples: Vec<f64>) -> Vec<f64> {
    samples.sort_by(f64::total_cmp);
    samples
}

/// The nearest-rank percentile of ascending `sorted` samples, `per_mille`
/// in 0..=1000 (990 = p99, 1000 = max); `None` when there are none.
pub fn percentile(sorted: &[f64], per_mille: usize) -> Option<f64> {
    let rank = (per_mille.min(1000) * sorted.len()).div_ceil(1000);
    sorted.get(rank.saturating_sub(1)).copied()
}

/// The median (the mean of the middle two for an even count).
pub fn median(samples: &[f64]) -> Option<f64> {
    let sorted = sorted(samples.to_vec());
    let upper = *sorted.get(sorted.len() / 2)?;
    if sorted.len() % 2 == 1 {
        return Some(upper);
    }
    let lower = sorted.get(sorted.len() / 2 - 1)?;
    Some(f64::midpoint(*lower, upper))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nearest_rank_percentiles() {
        let samples = sorted((1..=100).rev().map(f64::from).collect());
        assert_eq!(percentile(&samples, 500), Some(50.0));
        assert_eq!(percentile(&samples, 990), Some(99.0));
        assert_eq!(percentile(&samples, 1000), Some(100.0));
        assert_eq!(percentile(&samples, 0), Some(1.0));
        assert_eq!(percentile(&[], 500), None);
    }

    #[test]
    fn median_of_odd_and_even_counts() {
        assert_eq!(median(&[3.0, 1.0, 2.0]), Some(2.0));
        assert_eq!(median(&[4.0, 1.0]), Some(2.5));
        assert_eq!(median(&[]), None);
    }
}
