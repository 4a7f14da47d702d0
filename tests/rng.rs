//! The tests' deterministic generator: xorshift (13, 7, 17), so a seed gives the same load,
//! the same kill points and the same generated day on every run. Not for anything else.

/// A seeded xorshift generator. A zero seed would stay zero; [`Rng::new`] refuses it.
#[derive(Debug, Clone)]
pub struct Rng(u64);

impl Rng {
    /// A generator seeded with `seed` (0 counts as 1).
    pub fn new(seed: u64) -> Self {
        Self(seed.max(1))
    }

    /// The next 64 bits.
    pub fn next_u64(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    /// A number in `0..n` (`0` when `n` is 0).
    pub fn below(&mut self, n: u64) -> u64 {
        self.next_u64() % n.max(1)
    }

    /// True `p` times in 100.
    pub fn pct(&mut self, p: u64) -> bool {
        self.below(100) < p
    }
}
