//! Settlement leaves: the ABI encoding of (chainId, registry, batch, consumer, payee, cumulative)
//! laid out per leaf on the stack, from the Python lists the batch already holds.

use pyo3::exceptions::{PyTypeError, PyValueError};
use pyo3::ffi;
use pyo3::prelude::*;
use pyo3::types::{PyBool, PyBytes, PyInt, PyList, PyString};

use std::sync::mpsc::{channel, Receiver};
use std::sync::Mutex;

use crate::{lanes, on_all_cores, record};

/// The words every leaf of a batch shares: uint256 chainId, address registry, uint64 batch.
pub(crate) const PREFIX: usize = 96;
/// What differs per leaf: consumer (20 bytes), payee (20), cumulative amount (32, big-endian).
const FIELDS: usize = 72;
const ENCODING: usize = 192;

fn hex_value(c: u8) -> Option<u8> {
    match c {
        b'0'..=b'9' => Some(c - b'0'),
        b'a'..=b'f' => Some(c - b'a' + 10),
        b'A'..=b'F' => Some(c - b'A' + 10),
        _ => None,
    }
}

/// `0x` (or `0X`) and 40 hex digits of any case into 20 bytes; false for anything else.
fn parse_address(text: &[u8], out: &mut [u8]) -> bool {
    if text.len() != 42 || text[0] != b'0' || !matches!(text[1], b'x' | b'X') {
        return false;
    }
    for (byte, pair) in out.iter_mut().zip(text[2..].chunks_exact(2)) {
        match (hex_value(pair[0]), hex_value(pair[1])) {
            (Some(high), Some(low)) => *byte = high << 4 | low,
            _ => return false,
        }
    }
    true
}

fn address(item: &Bound<'_, PyAny>, what: &str, out: &mut [u8]) -> PyResult<()> {
    let text = item.downcast::<PyString>().ok().and_then(|s| s.to_str().ok());
    if text.is_some_and(|t| parse_address(t.as_bytes(), out)) {
        return Ok(());
    }
    Err(PyValueError::new_err(format!("{what} {} is not a 0x-prefixed 20-byte address", item.repr()?)))
}

/// An int in [0, 2**256) as a big-endian word; OverflowError outside it, TypeError for a
/// non-int (bool included, as eth_abi refuses it).
fn amount(item: &Bound<'_, PyAny>, out: &mut [u8]) -> PyResult<()> {
    if item.is_instance_of::<PyBool>() || !item.is_instance_of::<PyInt>() {
        return Err(PyTypeError::new_err(format!("amount {} is not an int (wei)", item.repr()?)));
    }
    if let Some(word) = small_int(item) {
        if word >= 0 {
            out[..24].fill(0);
            out[24..].copy_from_slice(&word.to_be_bytes());
            return Ok(());
        }
    }
    let word = item.call_method1("to_bytes", (32, "big"))?; // OverflowError below 0 or from 2**256
    out.copy_from_slice(word.downcast::<PyBytes>()?.as_bytes());
    Ok(())
}

/// An int that fits in an i64, read without raising (pyo3's wider extractions shift the int
/// in Python); None when it does not fit.
pub(crate) fn small_int(item: &Bound<'_, PyAny>) -> Option<i64> {
    let mut overflow = 0;
    // SAFETY: `item` is an int (the callers check) and the GIL is held.
    let value = unsafe { ffi::PyLong_AsLongLongAndOverflow(item.as_ptr(), &mut overflow) };
    (overflow == 0 && !(value == -1 && PyErr::occurred(item.py()))).then_some(value)
}

fn check_lengths(consumers: &Bound<'_, PyList>, payees: &Bound<'_, PyList>, amounts: &Bound<'_, PyList>) -> PyResult<usize> {
    let n = consumers.len();
    if payees.len() != n || amounts.len() != n {
        return Err(PyValueError::new_err(format!(
            "{n} consumers, {} payees and {} amounts: a leaf needs one of each", payees.len(), amounts.len())));
    }
    Ok(n)
}

/// The per-leaf fields (FIELDS bytes each) of the leaves from `first` on into `fields`, read
/// under the GIL.
fn read_fields(consumers: &Bound<'_, PyList>, payees: &Bound<'_, PyList>, amounts: &Bound<'_, PyList>,
               first: usize, fields: &mut [u8]) -> PyResult<()> {
    for (k, leaf) in fields.chunks_exact_mut(FIELDS).enumerate() {
        let i = first + k;
        address(&consumers.get_item(i)?, "consumer", &mut leaf[..20])?;
        address(&payees.get_item(i)?, "payee", &mut leaf[20..40])?;
        amount(&amounts.get_item(i)?, &mut leaf[40..])?;
    }
    Ok(())
}

/// Leaves read and hashed in runs of this many: the runs read so far are hashed on the other
/// core while the next is read.
const RUN: usize = 1 << 15;

type Job<'a> = (&'a [u8], &'a mut [u8]);

fn hash_jobs(prefix: &[u8; PREFIX], jobs: &Mutex<Receiver<Job<'_>>>) {
    loop {
        let job = jobs.lock().expect("a hashing thread panicked").recv();
        let Ok((fields, digests)) = job else { return };
        hash_run(prefix, fields, digests);
    }
}

/// standardLeafHash of each leaf of the columns (settlement_hashes), the reading of the
/// columns (which needs the GIL, so one thread) overlapped with the hashing of what is read.
pub(crate) fn read_and_hash(py: Python<'_>, prefix: &[u8; PREFIX], consumers: &Bound<'_, PyList>,
                            payees: &Bound<'_, PyList>, amounts: &Bound<'_, PyList>) -> PyResult<Vec<u8>> {
    let n = check_lengths(consumers, payees, amounts)?;
    let mut fields = vec![0u8; n * FIELDS];
    let cores = std::thread::available_parallelism().map_or(1, |c| c.get());
    if n < 4 * RUN || cores < 2 {
        read_fields(consumers, payees, amounts, 0, &mut fields)?;
        return Ok(py.allow_threads(|| settlement_hashes(prefix, &fields)));
    }
    let mut out = vec![0u8; n * 32];
    {
        // the queue is dropped before `out` is returned
        let (send, receive) = channel::<Job<'_>>();
        let jobs = Mutex::new(receive);
        std::thread::scope(|scope| {
            for _ in 1..cores {
                scope.spawn(|| hash_jobs(prefix, &jobs));
            }
            let runs = fields.chunks_mut(RUN * FIELDS).zip(out.chunks_mut(RUN * 32));
            for (k, (run_fields, digests)) in runs.enumerate() {
                read_fields(consumers, payees, amounts, k * RUN, run_fields)?;
                send.send((run_fields, digests)).expect("the hashing threads outlive the sender");
            }
            drop(send);
            py.allow_threads(|| hash_jobs(prefix, &jobs));
            Ok::<_, PyErr>(())
        })?;
    }
    Ok(out)
}

/// standardLeafHash of each leaf: its 192-byte encoding is the prefix, then each address
/// left-padded to a word, then the amount.
pub(crate) fn settlement_hashes(prefix: &[u8; PREFIX], fields: &[u8]) -> Vec<u8> {
    let n = fields.len() / FIELDS;
    let mut out = vec![0u8; n * 32];
    on_all_cores(&mut out, 32, |first, digests| {
        hash_run(prefix, &fields[first * FIELDS..(first + digests.len() / 32) * FIELDS], digests)
    });
    out
}

/// The leaf hashes of a run of leaves' fields, on this thread. The first keccak block (136
/// bytes: the prefix, the consumer's word and 8 zero bytes of the payee's) depends on the
/// consumer alone, so it is absorbed once per run of leaves of one consumer (a batch's leaves
/// come sorted by consumer) and each leaf hashes on from that state with its last 56 bytes.
fn hash_run(prefix: &[u8; PREFIX], fields: &[u8], digests: &mut [u8]) {
    let count = digests.len() / 32;
    let consumer = |i: usize| &record(fields, FIELDS, i)[..20];
    // run[i]: the index (into `starts`) of the run of one consumer that leaf i is in
    let mut starts = Vec::new();
    let mut run = Vec::with_capacity(count);
    for i in 0..count {
        if i == 0 || consumer(i) != consumer(i - 1) {
            starts.push(i);
        }
        run.push(starts.len() - 1);
    }
    let mut states = vec![[0u64; 25]; starts.len().div_ceil(4) * 4];
    for (group, out) in starts.chunks(4).zip(states.chunks_exact_mut(4)) {
        let mut blocks = [[0u8; lanes::RATE]; 4];
        for (k, block) in blocks.iter_mut().enumerate() {
            let leaf = group[k.min(group.len() - 1)];
            block[..PREFIX].copy_from_slice(prefix);
            block[108..128].copy_from_slice(consumer(leaf));
        }
        let out: &mut [lanes::State; 4] = out.try_into().unwrap();
        lanes::absorb_first_x4([&blocks[0], &blocks[1], &blocks[2], &blocks[3]], out);
    }
    let mut inner = vec![0u8; count.div_ceil(4) * 128];
    for (g, digest) in inner.chunks_exact_mut(128).enumerate() {
        let leaf = |k: usize| (4 * g + k).min(count - 1);
        let mut tails = [[0u8; ENCODING - lanes::RATE]; 4];
        for (k, tail) in tails.iter_mut().enumerate() {
            let fields = record(fields, FIELDS, leaf(k));
            tail[4..24].copy_from_slice(&fields[20..40]);
            tail[24..].copy_from_slice(&fields[40..]);
        }
        let state = |k: usize| &states[run[leaf(k)]];
        lanes::finish_x4([state(0), state(1), state(2), state(3)],
                         [&tails[0], &tails[1], &tails[2], &tails[3]], digest);
    }
    lanes::keccak_each(digests, 32, |i, message| message.copy_from_slice(record(&inner, 32, i)));
}
