//! The partitioner every shelfsync producer uses (DESIGN §2): librdkafka's `murmur2_random`,
//! which is Java's default partitioner for keyed records, so keys land where an ERP's Java
//! producer or Kafka Streams would put them. The availability query and the bench route SKUs
//! with it.

/// Java's `org.apache.kafka.common.utils.Utils.murmur2` (and librdkafka's `rd_murmur2`): the
/// 32-bit MurmurHash2 with Kafka's seed `0x9747b28c`, as a signed `i32` like Java's.
pub fn murmur2(data: &[u8]) -> i32 {
    const SEED: u32 = 0x9747_b28c;
    const M: u32 = 0x5bd1_e995;
    const R: u32 = 24;
    // Java hashes `int length`; keys are far below 2 GiB.
    let mut h: u32 = SEED ^ (data.len() as u32);
    let mut chunks = data.chunks_exact(4);
    for c in &mut chunks {
        let mut k = u32::from_le_bytes([c[0], c[1], c[2], c[3]]);
        k = k.wrapping_mul(M);
        k ^= k >> R;
        k = k.wrapping_mul(M);
        h = h.wrapping_mul(M);
        h ^= k;
    }
    let tail = chunks.remainder();
    if tail.len() >= 3 {
        h ^= u32::from(tail[2]) << 16;
    }
    if tail.len() >= 2 {
        h ^= u32::from(tail[1]) << 8;
    }
    if !tail.is_empty() {
        h ^= u32::from(tail[0]);
        h = h.wrapping_mul(M);
    }
    h ^= h >> 13;
    h = h.wrapping_mul(M);
    h ^= h >> 15;
    h as i32
}

/// The partition a keyed record lands on under the `murmur2_random` partitioner (librdkafka)
/// and Java's default partitioner: `(murmur2(key) & 0x7fffffff) % partitions`. `partitions`
/// below 1 counts as 1.
pub fn partition_for_key(key: &[u8], partitions: i32) -> i32 {
    (murmur2(key) & 0x7fff_ffff) % partitions.max(1)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `UtilsTest.testMurmur2` of Apache Kafka's clients module.
    #[test]
    fn murmur2_matches_kafkas_java_test_vectors() {
        let cases: [(&str, i32); 6] = [
            ("21", -973_932_308),
            ("foobar", -790_332_482),
            ("a-little-bit-long-string", -985_981_536),
            ("a-little-bit-longer-string", -1_486_304_829),
            (
                "lkjh234lh9fiuh90y23oiuhsafujhadof229phr9h19h89h8",
                -58_897_971,
            ),
            ("abc", 479_470_107),
        ];
        for (key, want) in cases {
            assert_eq!(murmur2(key.as_bytes()), want, "murmur2({key:?})");
        }
    }

    #[test]
    fn partition_is_the_positive_hash_modulo_the_partition_count() {
        // murmur2("21") = -973932308; & 0x7fffffff = 1173551340; % 6 = 0, % 7 = 4.
        assert_eq!(partition_for_key(b"21", 6), 1_173_551_340 % 6);
        assert_eq!(partition_for_key(b"21", 7), 1_173_551_340 % 7);
        assert_eq!(partition_for_key(b"anything", 1), 0);
        assert_eq!(partition_for_key(b"anything", 0), 0);
        for key in ["", "a", "ab", "abc", "abcd", "SKU-00042"] {
            let p = partition_for_key(key.as_bytes(), 12);
            assert!((0..12).contains(&p), "{key}: {p}");
        }
    }
}
