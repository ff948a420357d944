//! The node array of OpenZeppelin's `makeMerkleTree`, and the leaf order of `StandardMerkleTree.of`.

use crate::{lanes, on_all_cores};

fn node(nodes: &[u8], i: usize) -> &[u8] {
    &nodes[i * 32..i * 32 + 32]
}

/// The two 32-byte children sorted, as OpenZeppelin's `standardNodeHash` hashes them.
fn sorted_pair(a: &[u8], b: &[u8], pair: &mut [u8]) {
    let (low, high) = if a < b { (a, b) } else { (b, a) };
    pair[..32].copy_from_slice(low);
    pair[32..].copy_from_slice(high);
}

/// Fill the n - 1 internal nodes of `nodes` (2n - 1 nodes, leaves at n - 1 ..). Node i has
/// children 2i + 1 and 2i + 2, so every node of [hi / 2, hi) has both children at or past hi:
/// each such band is hashed on all cores once the nodes past it are done.
pub(crate) fn hash_levels(nodes: &mut [u8], n: usize) {
    let mut hi = n - 1;
    while hi > 0 {
        let lo = hi / 2;
        let (head, done) = nodes.split_at_mut(hi * 32);
        let done = &*done;
        on_all_cores(&mut head[lo * 32..], 32, |first, band| {
            lanes::keccak_each(band, 64, |k, pair| {
                let left = 2 * (lo + first + k) + 1 - hi;
                sorted_pair(node(done, left), node(done, left + 1), pair);
            });
        });
        hi = lo;
    }
}

/// Indices of the n 32-byte `hashes` in ascending byte order, equal hashes in input order
/// (a stable sort, as the JS library's). Sorted on the first 8 bytes as one integer; the
/// full hash and then the index break ties.
pub(crate) fn sorted_order(hashes: &[u8], n: usize) -> Vec<usize> {
    let mut keyed: Vec<(u64, usize)> = (0..n)
        .map(|i| (u64::from_be_bytes(hashes[i * 32..i * 32 + 8].try_into().unwrap()), i))
        .collect();
    keyed.sort_unstable_by(|a, b| {
        a.0.cmp(&b.0).then_with(|| node(hashes, a.1).cmp(node(hashes, b.1))).then(a.1.cmp(&b.1))
    });
    keyed.into_iter().map(|(_, i)| i).collect()
}

/// (nodes, tree index of each value as little-endian i64) of the values whose leaf hashes are
/// `hashes`: leaves sorted, laid out reversed at the end, internal nodes hashed.
pub(crate) fn standard_tree(hashes: &[u8], n: usize) -> (Vec<u8>, Vec<u8>) {
    let size = 2 * n - 1;
    let mut nodes = vec![0u8; size * 32];
    let mut indices = vec![0u8; n * 8];
    for (k, value) in sorted_order(hashes, n).into_iter().enumerate() {
        let at = size - 1 - k;
        nodes[at * 32..at * 32 + 32].copy_from_slice(node(hashes, value));
        indices[value * 8..value * 8 + 8].copy_from_slice(&(at as i64).to_le_bytes());
    }
    hash_levels(&mut nodes, n);
    (nodes, indices)
}
