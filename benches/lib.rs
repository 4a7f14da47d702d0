//! Benchmarks of shelfsync live in `benches/benches/`.
