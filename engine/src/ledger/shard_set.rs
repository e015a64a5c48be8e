//! [`ShardSet`]: the shards one op touches, as a bitset — no allocation on the hot path, and
//! iteration in ascending order, which is the lock order.

use crate::limits::SHARDS_MAX;

const WORDS: usize = SHARDS_MAX / 64;

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ShardSet {
    bits: [u64; WORDS],
}

impl ShardSet {
    pub fn one(shard: usize) -> Self {
        let mut set = Self::default();
        set.insert(shard);
        set
    }

    pub fn insert(&mut self, shard: usize) {
        assert!(shard < SHARDS_MAX);
        self.bits[shard / 64] |= 1 << (shard % 64);
    }

    pub fn contains(&self, shard: usize) -> bool {
        shard < SHARDS_MAX && self.bits[shard / 64] & (1 << (shard % 64)) != 0
    }

    pub fn len(&self) -> usize {
        self.bits.iter().map(|w| w.count_ones() as usize).sum()
    }

    pub fn is_empty(&self) -> bool {
        self.bits.iter().all(|w| *w == 0)
    }

    /// Whether every shard of `other` is in `self`.
    pub fn covers(&self, other: &ShardSet) -> bool {
        self.bits
            .iter()
            .zip(other.bits.iter())
            .all(|(a, b)| b & !a == 0)
    }

    /// Shards in ascending order.
    pub fn iter(&self) -> impl Iterator<Item = usize> + '_ {
        self.bits.iter().enumerate().flat_map(|(word, bits)| {
            let mut rest = *bits;
            std::iter::from_fn(move || {
                if rest == 0 {
                    return None;
                }
                let bit = rest.trailing_zeros() as usize;
                rest &= rest - 1;
                Some(word * 64 + bit)
            })
        })
    }
}

impl Extend<usize> for ShardSet {
    fn extend<I: IntoIterator<Item = usize>>(&mut self, shards: I) {
        for shard in shards {
            self.insert(shard);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::ShardSet;

    #[test]
    fn ascending_and_deduplicated() {
        let mut set = ShardSet::default();
        set.extend([200, 3, 64, 3, 0, 63]);
        assert_eq!(set.iter().collect::<Vec<_>>(), vec![0, 3, 63, 64, 200]);
        assert_eq!(set.len(), 5);
        assert!(set.covers(&ShardSet::one(64)));
        assert!(!set.covers(&ShardSet::one(65)));
    }
}
