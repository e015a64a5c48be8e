//! Seeded randomness. Each arrival draws from its own generator, seeded by (run seed, arrival
//! index), so a run's ops are the same whatever order the tasks happen to run in.

use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};

/// splitmix64: spreads (seed, index) pairs over the whole seed space.
fn mix(seed: u64, index: u64) -> u64 {
    let mut z = seed ^ index.wrapping_mul(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// The generator of arrival `index`.
pub fn for_arrival(seed: u64, index: u64) -> SmallRng {
    SmallRng::seed_from_u64(mix(seed, index))
}

/// Zipf over `0..n` (rank 0 the most popular) by inverse CDF: a table of cumulative weights
/// and a binary search. Exact, and 8 bytes per SKU (800 kB for the 100k catalog).
pub struct Zipf {
    cumulative: Vec<f64>,
}

impl Zipf {
    /// `exponent` 0 is uniform.
    pub fn new(n: usize, exponent: f64) -> Zipf {
        let mut total = 0.0;
        let cumulative = (1..=n.max(1))
            .map(|rank| {
                total += 1.0 / (rank as f64).powf(exponent);
                total
            })
            .collect();
        Zipf { cumulative }
    }

    pub fn sample(&self, rng: &mut impl Rng) -> usize {
        let total = self.cumulative.last().copied().unwrap_or(1.0);
        let x = rng.random::<f64>() * total;
        self.cumulative
            .partition_point(|&c| c <= x)
            .min(self.cumulative.len() - 1)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn zipf_prefers_low_ranks_and_stays_in_range() {
        let zipf = Zipf::new(1000, 1.0);
        let mut rng = for_arrival(7, 0);
        let mut counts = vec![0u32; 1000];
        for _ in 0..100_000 {
            counts[zipf.sample(&mut rng)] += 1;
        }
        // Rank 0 has weight 1/H(1000) ≈ 13 %; rank 999 ≈ 0.013 %.
        assert!(counts[0] > 10_000, "rank 0 drew {}", counts[0]);
        assert!(counts[0] > 50 * counts[999].max(1));
    }

    #[test]
    fn uniform_when_exponent_is_zero() {
        let zipf = Zipf::new(4, 0.0);
        let mut rng = for_arrival(1, 1);
        let mut counts = [0u32; 4];
        for _ in 0..40_000 {
            counts[zipf.sample(&mut rng)] += 1;
        }
        assert!(
            counts.iter().all(|&c| (9_000..11_000).contains(&c)),
            "{counts:?}"
        );
    }

    #[test]
    fn same_seed_same_draws() {
        let zipf = Zipf::new(100, 1.0);
        let a: Vec<_> = (0..50)
            .map(|i| zipf.sample(&mut for_arrival(3, i)))
            .collect();
        let b: Vec<_> = (0..50)
            .map(|i| zipf.sample(&mut for_arrival(3, i)))
            .collect();
        assert_eq!(a, b);
    }
}
