//! meterroot's Merkle trees (settlement/merkle.py) in native code: OpenZeppelin `standard-v1`
//! leaf hashes, node arrays and dumps, whole batches per call.
//!
//! Python hands over flat byte strings of fixed-width records (or the lists it already holds)
//! and gets flat byte strings back. Hashing runs without the GIL, on every core for large inputs.

mod dump;
mod lanes;
mod leaves;
mod tree;

use pyo3::exceptions::PyValueError;
use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyList};
use tiny_keccak::{Hasher, Keccak};

pub(crate) fn keccak(data: &[u8], out: &mut [u8]) {
    let mut hasher = Keccak::v256();
    hasher.update(data);
    hasher.finalize(out);
}

/// Below this many records a thread costs more than it saves.
const RECORDS_PER_THREAD: usize = 4096;

/// `work(first, run)` over `out` cut into runs of whole `width`-byte records, one run per core
/// (`first`: the index of the run's first record).
pub(crate) fn on_all_cores<F>(out: &mut [u8], width: usize, work: F)
where
    F: Fn(usize, &mut [u8]) + Sync,
{
    let n = out.len() / width;
    let cores = std::thread::available_parallelism().map_or(1, |c| c.get());
    let threads = cores.min(n / RECORDS_PER_THREAD).max(1);
    if threads == 1 {
        work(0, out);
        return;
    }
    let per = n.div_ceil(threads);
    let work = &work;
    std::thread::scope(|scope| {
        for (k, run) in out.chunks_mut(per * width).enumerate() {
            scope.spawn(move || work(k * per, run));
        }
    });
}

pub(crate) fn record(data: &[u8], width: usize, i: usize) -> &[u8] {
    &data[i * width..(i + 1) * width]
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

fn leaf_count(leaves: &[u8]) -> PyResult<usize> {
    let n = records(leaves, 32)?;
    if n == 0 {
        return Err(PyValueError::new_err("a Merkle tree needs at least one leaf"));
    }
    Ok(n)
}

/// keccak256 of each `width`-byte record of `data`: n * 32 bytes.
#[pyfunction]
fn keccak256_many<'py>(py: Python<'py>, data: &[u8], width: usize) -> PyResult<Bound<'py, PyBytes>> {
    let n = records(data, width)?;
    let out = py.allow_threads(|| {
        let mut out = vec![0u8; n * 32];
        on_all_cores(&mut out, 32, |first, digests| {
            lanes::keccak_each(digests, width, |i, message| message.copy_from_slice(record(data, width, first + i)));
        });
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
        on_all_cores(&mut out, 32, |first, digests| {
            let mut inner = vec![0u8; digests.len()];
            lanes::keccak_each(&mut inner, width, |i, message| message.copy_from_slice(record(data, width, first + i)));
            lanes::keccak_each(digests, 32, |i, message| message.copy_from_slice(record(&inner, 32, i)));
        });
        out
    });
    Ok(PyBytes::new(py, &out))
}

/// Leaf hashes of a batch's settlement leaves (uint256 chainId, address registry, uint64 batch,
/// address consumer, address payee, uint256 cumulative): `prefix` is the ABI encoding of the
/// three words every leaf shares (96 bytes); consumers and payees are lists of 0x-prefixed
/// 40-hex-digit strings (any case), amounts a list of ints in [0, 2**256). n * 32 bytes, in order.
#[pyfunction]
fn settlement_leaf_hashes<'py>(
    py: Python<'py>,
    prefix: &[u8],
    consumers: &Bound<'py, PyList>,
    payees: &Bound<'py, PyList>,
    amounts: &Bound<'py, PyList>,
) -> PyResult<Bound<'py, PyBytes>> {
    let prefix: &[u8; leaves::PREFIX] = prefix.try_into().map_err(|_| {
        PyValueError::new_err(format!("the shared leaf words are {} bytes, not {}", prefix.len(), leaves::PREFIX))
    })?;
    let out = leaves::read_and_hash(py, prefix, consumers, payees, amounts)?;
    Ok(PyBytes::new(py, &out))
}

/// OpenZeppelin `makeMerkleTree` over `leaves` (n * 32 bytes) already in their final order: the
/// flat array of 2n - 1 nodes, leaves at the end in reverse order, node i the keccak256 of its
/// children 2i + 1 and 2i + 2 sorted (commutative).
#[pyfunction]
fn merkle_tree<'py>(py: Python<'py>, leaves: &[u8]) -> PyResult<Bound<'py, PyBytes>> {
    let n = leaf_count(leaves)?;
    let out = py.allow_threads(|| {
        let mut nodes = vec![0u8; (2 * n - 1) * 32];
        for (k, leaf) in leaves.chunks_exact(32).enumerate() {
            let at = 2 * n - 2 - k;
            nodes[at * 32..at * 32 + 32].copy_from_slice(leaf);
        }
        tree::hash_levels(&mut nodes, n);
        nodes
    });
    Ok(PyBytes::new(py, &out))
}

/// Indices of the 32-byte `hashes` in ascending byte order, stable (as JS's sort with
/// `compare` of @openzeppelin/merkle-tree): n little-endian u64.
#[pyfunction]
fn sorted_order<'py>(py: Python<'py>, hashes: &[u8]) -> PyResult<Bound<'py, PyBytes>> {
    let n = records(hashes, 32)?;
    let out = py.allow_threads(|| {
        let order = tree::sorted_order(hashes, n);
        order.iter().flat_map(|&i| (i as u64).to_le_bytes()).collect::<Vec<u8>>()
    });
    Ok(PyBytes::new(py, &out))
}

/// OpenZeppelin `StandardMerkleTree.of` from the leaf hashes of its values (n * 32 bytes, in
/// value order): (the flat node array, each value's tree index as n little-endian i64).
#[pyfunction]
fn standard_tree<'py>(py: Python<'py>, hashes: &[u8]) -> PyResult<(Bound<'py, PyBytes>, Bound<'py, PyBytes>)> {
    let n = leaf_count(hashes)?;
    let (nodes, indices) = py.allow_threads(|| tree::standard_tree(hashes, n));
    Ok((PyBytes::new(py, &nodes), PyBytes::new(py, &indices)))
}

/// The `standard-v1` dump as compact JSON, byte for byte what `json.dumps(dump,
/// separators=(",", ":"), ensure_ascii=True)` writes: `head` is the dump's text up to its tree
/// (`{"format":…,"leafEncoding":[…]`), `nodes` the flat node array, `values` a list of lists
/// (or tuples) of strings, `indices` a list of ints. None when a value holds anything but strings
/// (the caller's generic encoder writes those).
#[pyfunction]
fn standard_dump_json<'py>(
    py: Python<'py>,
    head: &[u8],
    nodes: &[u8],
    values: &Bound<'py, PyList>,
    indices: &Bound<'py, PyList>,
) -> PyResult<Option<Bound<'py, PyBytes>>> {
    records(nodes, 32)?;
    if values.len() != indices.len() {
        return Err(PyValueError::new_err(format!("{} values for {} tree indices", values.len(), indices.len())));
    }
    dump::standard_dump_json(py, head, nodes, values, indices)
}

#[pymodule]
fn meterroot_keccak(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_function(wrap_pyfunction!(keccak256_many, m)?)?;
    m.add_function(wrap_pyfunction!(standard_leaf_hashes, m)?)?;
    m.add_function(wrap_pyfunction!(settlement_leaf_hashes, m)?)?;
    m.add_function(wrap_pyfunction!(merkle_tree, m)?)?;
    m.add_function(wrap_pyfunction!(sorted_order, m)?)?;
    m.add_function(wrap_pyfunction!(standard_tree, m)?)?;
    m.add_function(wrap_pyfunction!(standard_dump_json, m)?)?;
    m.add_class::<dump::SettlementDump>()?;
    Ok(())
}
