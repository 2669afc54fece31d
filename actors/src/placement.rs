//! Placement: which live node should own a conversation when nobody owns it.
//!
//! Rendezvous (highest-random-weight) hashing: every node scores every conversation id with a
//! stable hash of the pair, and the highest score wins. Every node computes the same answer from
//! the same node set without talking to the others, a node that leaves only moves the
//! conversations it owned (each to its second choice), and a node that joins takes an even share
//! of new placements. Placement is only consulted when a conversation has no live owner:
//! ownership itself is sticky (the holder in Redis wins over placement), so a node joining does
//! not move conversations that are running elsewhere.
//!
//! Pure functions, no I/O: unit-tested here.

/// The node among `nodes` that should own `key`, or `None` for an empty set.
pub fn owner<'a, I>(key: &str, nodes: I) -> Option<&'a str>
where
    I: IntoIterator<Item = &'a str>,
{
    nodes.into_iter().max_by(|a, b| score(a, key).cmp(&score(b, key)).then_with(|| b.cmp(a)))
}

/// A stable 64-bit score of (node, key): FNV-1a over both with a separator, then a 64-bit
/// finaliser (splitmix64) so that close inputs spread over the whole range. Stable across
/// processes, machines and Rust versions (unlike `std`'s hasher), which placement needs: every
/// node must agree.
pub fn score(node: &str, key: &str) -> u64 {
    const OFFSET: u64 = 0xcbf2_9ce4_8422_2325;
    const PRIME: u64 = 0x0000_0100_0000_01b3;
    let mut h = OFFSET;
    for b in node.bytes().chain(std::iter::once(0xff)).chain(key.bytes()) {
        h ^= u64::from(b);
        h = h.wrapping_mul(PRIME);
    }
    // splitmix64 finaliser
    h = (h ^ (h >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    h = (h ^ (h >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    h ^ (h >> 31)
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use super::*;

    fn keys(n: usize) -> Vec<String> {
        (0..n).map(|i| format!("d:{}:{}", i + 1, i + 100_000)).collect()
    }

    #[test]
    fn every_node_computes_the_same_owner_whatever_the_order() {
        let a = ["node-1", "node-2", "node-3"];
        let b = ["node-3", "node-1", "node-2"];
        for k in keys(500) {
            assert_eq!(owner(&k, a), owner(&k, b), "{k}");
        }
        assert_eq!(owner("g:1", std::iter::empty()), None);
        assert_eq!(owner("g:1", ["only"]), Some("only"));
    }

    #[test]
    fn owners_spread_evenly() {
        let nodes = ["node-1", "node-2", "node-3"];
        let mut count: HashMap<&str, usize> = HashMap::new();
        let ks = keys(30_000);
        for k in &ks {
            *count.entry(owner(k, nodes).unwrap_or_default()).or_default() += 1;
        }
        for n in nodes {
            let share = count.get(n).copied().unwrap_or(0) as f64 / ks.len() as f64;
            assert!((0.30..0.37).contains(&share), "{n} owns {share:.3} of the keys: {count:?}");
        }
    }

    #[test]
    fn a_node_leaving_moves_only_its_own_keys_and_a_node_joining_takes_a_fair_share() {
        let three = ["node-1", "node-2", "node-3"];
        let two = ["node-1", "node-3"];
        let four = ["node-1", "node-2", "node-3", "node-4"];
        let ks = keys(20_000);
        let mut moved_to_new = 0;
        for k in &ks {
            let before = owner(k, three);
            if before != Some("node-2") {
                assert_eq!(owner(k, two), before, "{k} moved although its owner stayed");
            }
            let after = owner(k, four);
            if after != before {
                assert_eq!(after, Some("node-4"), "{k} moved between old nodes when node-4 joined");
                moved_to_new += 1;
            }
        }
        let share = moved_to_new as f64 / ks.len() as f64;
        assert!((0.22..0.28).contains(&share), "node-4 took {share:.3} of the keys");
    }

    #[test]
    fn scores_are_stable_across_builds() {
        // Pinned values (from an independent implementation of the definition): placement must
        // not change with a compiler or library upgrade, or nodes of two builds in one cluster
        // would disagree on owners.
        assert_eq!(score("node-1", "d:1:2"), 0x282c_22f9_b9ce_f78f);
        assert_eq!(score("node-2", "g:7"), 0x027f_c541_8c9b_6a67);
        // The separator keeps (node, key) pairs apart that concatenate alike.
        assert_ne!(score("node-1", "d:1:2"), score("node-1d:1:2", ""));
    }
}
