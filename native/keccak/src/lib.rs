//! Many keccak256 hashes per call, for meterroot's Merkle trees (settlement/merkle.py).
//!
//! Python hands over flat byte strings of fixed-width records and gets flat byte strings of
//! 32-byte digests back; the hashing runs without the GIL, so the pipeline's other threads go on.

use pyo3::exceptions::PyValueError;
use pyo3::prelude::*;
use pyo3::types::PyBytes;
use tiny_keccak::{Hasher, Keccak};

fn keccak(data: &[u8], out: &mut [u8]) {
    let mut hasher = Keccak::v256();
    hasher.update(data);
    hasher.finalize(out);
}

fn records(data: &[u8], width: usize) -> PyResult<usize> {
    if width == 0 || data.len() % width != 0 {
        return Err(PyValueError::new_err(format!(
            "{} bytes are not a whole number of {}-byte records",
            data.len(),
            width
        )));
    }
    Ok(data.len() / width)
}

/// keccak256 of each `width`-byte record of `data`: n * 32 bytes.
#[pyfunction]
fn keccak256_many<'py>(py: Python<'py>, data: &[u8], width: usize) -> PyResult<Bound<'py, PyBytes>> {
    let n = records(data, width)?;
    let out = py.allow_threads(|| {
        let mut out = vec![0u8; n * 32];
        for (record, digest) in data.chunks_exact(width).zip(out.chunks_exact_mut(32)) {
            keccak(record, digest);
        }
        out
    });
    Ok(PyBytes::new(py, &out))
}

/// OpenZeppelin `standardLeafHash` of each `width`-byte ABI-encoded record: keccak256(keccak256(r)).
#[pyfunction]
fn standard_leaf_hashes<'py>(py: Python<'py>, data: &[u8], width: usize) -> PyResult<Bound<'py, PyBytes>> {
    let n = records(data, width)?;
    let out = py.allow_threads(|| {
        let mut out = vec![0u8; n * 32];
        let mut inner = [0u8; 32];
        for (record, digest) in data.chunks_exact(width).zip(out.chunks_exact_mut(32)) {
            keccak(record, &mut inner);
            keccak(&inner, digest);
        }
        out
    });
    Ok(PyBytes::new(py, &out))
}

/// OpenZeppelin `makeMerkleTree` over `leaves` (n * 32 bytes) already in their final order: the
/// flat array of 2n - 1 nodes, leaves at the end in reverse order, node i the keccak256 of its
/// children 2i + 1 and 2i + 2 sorted (commutative).
#[pyfunction]
fn merkle_tree<'py>(py: Python<'py>, leaves: &[u8]) -> PyResult<Bound<'py, PyBytes>> {
    let n = records(leaves, 32)?;
    if n == 0 {
        return Err(PyValueError::new_err("a Merkle tree needs at least one leaf"));
    }
    let out = py.allow_threads(|| {
        let size = 2 * n - 1;
        let mut tree = vec![0u8; size * 32];
        for (k, leaf) in leaves.chunks_exact(32).enumerate() {
            let at = (size - 1 - k) * 32;
            tree[at..at + 32].copy_from_slice(leaf);
        }
        let mut pair = [0u8; 64];
        for i in (0..n - 1).rev() {
            let (head, tail) = tree.split_at_mut((2 * i + 1) * 32);
            let (a, b) = (&tail[..32], &tail[32..64]);
            if a < b {
                pair[..32].copy_from_slice(a);
                pair[32..].copy_from_slice(b);
            } else {
                pair[..32].copy_from_slice(b);
                pair[32..].copy_from_slice(a);
            }
            keccak(&pair, &mut head[i * 32..i * 32 + 32]);
        }
        tree
    });
    Ok(PyBytes::new(py, &out))
}

/// Indices of the 32-byte `hashes` in ascending byte order, stable (as JS's sort with
/// `compare` of @openzeppelin/merkle-tree): n little-endian u64.
#[pyfunction]
fn sorted_order<'py>(py: Python<'py>, hashes: &[u8]) -> PyResult<Bound<'py, PyBytes>> {
    let n = records(hashes, 32)?;
    let out = py.allow_threads(|| {
        let key = |i: u64| &hashes[i as usize * 32..i as usize * 32 + 32];
        let mut order: Vec<u64> = (0..n as u64).collect();
        order.sort_by(|&a, &b| key(a).cmp(key(b)));
        order.iter().flat_map(|i| i.to_le_bytes()).collect::<Vec<u8>>()
    });
    Ok(PyBytes::new(py, &out))
}

#[pymodule]
fn meterroot_keccak(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_function(wrap_pyfunction!(keccak256_many, m)?)?;
    m.add_function(wrap_pyfunction!(standard_leaf_hashes, m)?)?;
    m.add_function(wrap_pyfunction!(merkle_tree, m)?)?;
    m.add_function(wrap_pyfunction!(sorted_order, m)?)?;
    Ok(())
}
