//! Latency samples and percentiles.

/// Latency samples in microseconds.
#[derive(Default, Debug, Clone)]
pub struct Samples(pub Vec<u32>);

impl Samples {
    /// Adds one sample.
    pub fn push_us(&mut self, us: u128) {
        self.0.push(us.min(u32::MAX as u128) as u32);
    }

    /// Appends another set.
    pub fn extend(&mut self, other: &Samples) {
        self.0.extend_from_slice(&other.0);
    }

    /// The `p`-th percentile (0–100) in milliseconds; NaN when empty.
    pub fn pct_ms(&mut self, p: f64) -> f64 {
        if self.0.is_empty() {
            return f64::NAN;
        }
        self.0.sort_unstable();
        let rank = ((p / 100.0) * (self.0.len() - 1) as f64).round() as usize;
        self.0[rank.min(self.0.len() - 1)] as f64 / 1000.0
    }

    /// The largest sample in milliseconds; NaN when empty.
    pub fn max_ms(&self) -> f64 {
        self.0.iter().max().map_or(f64::NAN, |&m| m as f64 / 1000.0)
    }
}

/// The median of some values (mean of the middle two for an even count).
pub fn median(values: &[f64]) -> f64 {
    let mut v: Vec<f64> = values.iter().copied().filter(|x| x.is_finite()).collect();
    if v.is_empty() {
        return f64::NAN;
    }
    v.sort_by(|a, b| a.total_cmp(b));
    let n = v.len();
    if n % 2 == 1 {
        v[n / 2]
    } else {
        (v[n / 2 - 1] + v[n / 2]) / 2.0
    }
}
