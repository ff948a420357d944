//! The `standard-v1` dump as Python's `json.dumps(dump, separators=(",", ":"), ensure_ascii=True)`
//! spells it, written in two passes over the same code: one counts the bytes, one fills a
//! Python bytes object of exactly that size (no copy of a dump of hundreds of megabytes).

use pyo3::exceptions::{PyTypeError, PyValueError};
use pyo3::prelude::*;
use pyo3::types::{PyBool, PyBytes, PyInt, PyList, PyString, PyTuple};

const HEX: &[u8; 16] = b"0123456789abcdef";

trait Out {
    fn put(&mut self, bytes: &[u8]);
    /// `len` bytes that `fill` writes (not called when only counting).
    fn put_with(&mut self, len: usize, fill: impl FnOnce(&mut [u8]));
}

struct Count(usize);

impl Out for Count {
    fn put(&mut self, bytes: &[u8]) {
        self.0 += bytes.len();
    }
    fn put_with(&mut self, len: usize, _: impl FnOnce(&mut [u8])) {
        self.0 += len;
    }
}

struct Fill<'a> {
    buf: &'a mut [u8],
    at: usize,
}

impl Out for Fill<'_> {
    fn put(&mut self, bytes: &[u8]) {
        self.buf[self.at..self.at + bytes.len()].copy_from_slice(bytes);
        self.at += bytes.len();
    }
    fn put_with(&mut self, len: usize, fill: impl FnOnce(&mut [u8])) {
        fill(&mut self.buf[self.at..self.at + len]);
        self.at += len;
    }
}

fn put_unit(out: &mut impl Out, unit: u32) {
    let digit = |shift: u32| HEX[(unit >> shift & 15) as usize];
    out.put(&[b'\\', b'u', digit(12), digit(8), digit(4), digit(0)]);
}

/// A JSON string as CPython's ASCII encoder writes it: printable ASCII as is but `"` and `\`,
/// the short escapes \" \\ \n \r \t \b \f, everything else \u-escaped in lowercase hex
/// (a UTF-16 surrogate pair above U+FFFF).
fn put_string(out: &mut impl Out, text: &str) {
    let bytes = text.as_bytes();
    out.put(b"\"");
    let (mut at, mut plain_from) = (0, 0);
    while at < bytes.len() {
        let b = bytes[at];
        if (b' '..=b'~').contains(&b) && b != b'"' && b != b'\\' {
            at += 1;
            continue;
        }
        out.put(&bytes[plain_from..at]);
        let c = text[at..].chars().next().expect("a char starts where the plain run ends");
        at += c.len_utf8();
        plain_from = at;
        match c {
            '"' => out.put(b"\\\""),
            '\\' => out.put(b"\\\\"),
            '\n' => out.put(b"\\n"),
            '\r' => out.put(b"\\r"),
            '\t' => out.put(b"\\t"),
            '\u{8}' => out.put(b"\\b"),
            '\u{c}' => out.put(b"\\f"),
            _ if (c as u32) < 0x10000 => put_unit(out, c as u32),
            _ => {
                let v = c as u32 - 0x10000;
                put_unit(out, 0xd800 | v >> 10);
                put_unit(out, 0xdc00 | (v & 0x3ff));
            }
        }
    }
    out.put(&bytes[plain_from..]);
    out.put(b"\"");
}

/// A value as a JSON array of strings; false when it is not a list or tuple of str, or a
/// string is not valid Unicode (a lone surrogate).
fn put_value(out: &mut impl Out, value: &Bound<'_, PyAny>) -> bool {
    if let Ok(list) = value.downcast::<PyList>() {
        put_strings(out, list.iter())
    } else if let Ok(tuple) = value.downcast::<PyTuple>() {
        put_strings(out, tuple.iter())
    } else {
        false
    }
}

fn put_strings<'py>(out: &mut impl Out, items: impl Iterator<Item = Bound<'py, PyAny>>) -> bool {
    out.put(b"[");
    for (k, item) in items.enumerate() {
        let Some(text) = item.downcast::<PyString>().ok().and_then(|s| s.to_str().ok()) else {
            return false;
        };
        if k > 0 {
            out.put(b",");
        }
        put_string(out, text);
    }
    out.put(b"]");
    true
}

fn put_int(out: &mut impl Out, value: i64) {
    let mut digits = [0u8; 20];
    let mut at = digits.len();
    let mut rest = value.unsigned_abs();
    loop {
        at -= 1;
        digits[at] = b'0' + (rest % 10) as u8;
        rest /= 10;
        if rest == 0 {
            break;
        }
    }
    if value < 0 {
        out.put(b"-");
    }
    out.put(&digits[at..]);
}

fn put_nodes(out: &mut impl Out, nodes: &[u8]) {
    for (k, node) in nodes.chunks_exact(32).enumerate() {
        if k > 0 {
            out.put(b",");
        }
        out.put_with(68, |text| {
            text[..3].copy_from_slice(b"\"0x");
            for (pair, byte) in text[3..67].chunks_exact_mut(2).zip(node) {
                pair[0] = HEX[(byte >> 4) as usize];
                pair[1] = HEX[(byte & 15) as usize];
            }
            text[67] = b'"';
        });
    }
}

/// The whole dump; false when a value or tree index is not what this writer spells.
fn put_dump(out: &mut impl Out, head: &[u8], nodes: &[u8], values: &Bound<'_, PyList>,
            indices: &Bound<'_, PyList>) -> bool {
    out.put(head);
    out.put(b",\"tree\":[");
    put_nodes(out, nodes);
    out.put(b"],\"values\":[");
    for (k, (value, index)) in values.iter().zip(indices.iter()).enumerate() {
        if k > 0 {
            out.put(b",");
        }
        out.put(b"{\"value\":");
        if !put_value(out, &value) {
            return false;
        }
        out.put(b",\"treeIndex\":");
        match index.extract::<i64>() {
            Ok(i) if !index.is_instance_of::<PyBool>() => put_int(out, i),
            _ => return false,
        }
        out.put(b"}");
    }
    out.put(b"]}");
    true
}

pub(crate) fn standard_dump_json<'py>(py: Python<'py>, head: &[u8], nodes: &[u8], values: &Bound<'py, PyList>,
                                      indices: &Bound<'py, PyList>) -> PyResult<Option<Bound<'py, PyBytes>>> {
    let mut count = Count(0);
    if !put_dump(&mut count, head, nodes, values, indices) {
        return Ok(None);
    }
    // Both passes hold the GIL and run no Python code, so the lists cannot change between them.
    let dump = PyBytes::new_with(py, count.0, |buf| {
        let mut fill = Fill { buf, at: 0 };
        let whole = put_dump(&mut fill, head, nodes, values, indices);
        assert!(whole && fill.at == fill.buf.len(), "the dump changed between counting and writing");
        Ok(())
    })?;
    Ok(Some(dump))
}

/// Growable output of one chunk.
impl Out for Vec<u8> {
    fn put(&mut self, bytes: &[u8]) {
        self.extend_from_slice(bytes);
    }
    fn put_with(&mut self, len: usize, fill: impl FnOnce(&mut [u8])) {
        let at = self.len();
        self.resize(at + len, 0);
        fill(&mut self[at..]);
    }
}

fn plain_ascii(text: &[u8]) -> bool {
    text.iter().all(|&b| (b' '..=b'~').contains(&b) && b != b'"' && b != b'\\')
}

/// The dump of a settlement tree (settlement.merkle.SettlementValues) in chunks of about
/// `chunk` bytes, in the spelling of `standard_dump_json`: the values are read from the batch's
/// columns as each chunk is written, so no Python list per leaf is made, and a writer can put
/// each chunk in its file while the next is made.
#[pyclass(module = "meterroot_keccak")]
pub(crate) struct SettlementDump {
    head: Vec<u8>,
    nodes: Py<PyBytes>,
    value_head: Vec<u8>,
    consumers: Py<PyList>,
    payees: Py<PyList>,
    amounts: Py<PyList>,
    indices: Py<PyList>,
    encode: PyObject,
    chunk: usize,
    node_at: usize,
    value_at: usize,
    started: bool,
    done: bool,
}

impl SettlementDump {
    /// A string as `encode` (json's encode_basestring_ascii) spells it, without calling it for
    /// plain ASCII; its TypeError for anything but a str.
    fn put_text(&self, out: &mut Vec<u8>, item: &Bound<'_, PyAny>) -> PyResult<()> {
        if let Some(text) = item.downcast::<PyString>().ok().and_then(|s| s.to_str().ok()) {
            if plain_ascii(text.as_bytes()) {
                out.push(b'"');
                out.extend_from_slice(text.as_bytes());
                out.push(b'"');
                return Ok(());
            }
        }
        let spelled = self.encode.bind(item.py()).call1((item,))?;
        out.extend_from_slice(spelled.downcast::<PyString>()?.to_str()?.as_bytes());
        Ok(())
    }

    /// `str(amount)` as a JSON string.
    fn put_amount(&self, out: &mut Vec<u8>, item: &Bound<'_, PyAny>) -> PyResult<()> {
        if item.is_exact_instance_of::<PyInt>() {
            if let Some(wei) = crate::leaves::small_int(item).filter(|&w| w >= 0) {
                out.push(b'"');
                put_int(out, wei);
                out.push(b'"');
                return Ok(());
            }
        }
        self.put_text(out, item.str()?.as_any())
    }

    fn put_value(&self, out: &mut Vec<u8>, py: Python<'_>, i: usize) -> PyResult<()> {
        out.extend_from_slice(&self.value_head);
        self.put_text(out, &self.consumers.bind(py).get_item(i)?)?;
        out.push(b',');
        self.put_text(out, &self.payees.bind(py).get_item(i)?)?;
        out.push(b',');
        self.put_amount(out, &self.amounts.bind(py).get_item(i)?)?;
        out.extend_from_slice(b"],\"treeIndex\":");
        let index = self.indices.bind(py).get_item(i)?;
        match index.extract::<i64>() {
            Ok(at) if !index.is_instance_of::<PyBool>() => put_int(out, at),
            _ => return Err(PyTypeError::new_err(format!("tree index {} is not an int", index.repr()?))),
        }
        out.push(b'}');
        Ok(())
    }
}

#[pymethods]
impl SettlementDump {
    #[new]
    #[allow(clippy::too_many_arguments)]
    fn new(py: Python<'_>, head: &[u8], nodes: Py<PyBytes>, value_head: &[u8], consumers: Py<PyList>,
           payees: Py<PyList>, amounts: Py<PyList>, indices: Py<PyList>, encode: PyObject,
           chunk: usize) -> PyResult<Self> {
        let n = consumers.bind(py).len();
        if nodes.bind(py).as_bytes().len() % 32 != 0 {
            return Err(PyValueError::new_err("the node array is not a whole number of 32-byte nodes"));
        }
        if payees.bind(py).len() != n || amounts.bind(py).len() != n || indices.bind(py).len() != n {
            return Err(PyValueError::new_err(format!(
                "{n} consumers, {} payees, {} amounts and {} tree indices: a value needs one of each",
                payees.bind(py).len(), amounts.bind(py).len(), indices.bind(py).len())));
        }
        Ok(Self { head: head.to_vec(), nodes, value_head: value_head.to_vec(), consumers, payees, amounts,
                  indices, encode, chunk: chunk.max(1), node_at: 0, value_at: 0, started: false, done: false })
    }

    fn __iter__(slf: PyRef<'_, Self>) -> PyRef<'_, Self> {
        slf
    }

    fn __next__<'py>(&mut self, py: Python<'py>) -> PyResult<Option<Bound<'py, PyBytes>>> {
        if self.done {
            return Ok(None);
        }
        let mut out = Vec::with_capacity(self.chunk + 4096);
        if !self.started {
            out.put(&self.head);
            out.put(b",\"tree\":[");
            self.started = true;
        }
        let nodes = self.nodes.bind(py).as_bytes();
        let node_count = nodes.len() / 32;
        if self.node_at < node_count {
            let take = (self.chunk.saturating_sub(out.len()) / 69 + 1).min(node_count - self.node_at);
            if self.node_at > 0 {
                out.put(b",");
            }
            put_nodes(&mut out, &nodes[self.node_at * 32..(self.node_at + take) * 32]);
            self.node_at += take;
            if self.node_at == node_count {
                out.put(b"],\"values\":[");
            }
        }
        let values = self.consumers.bind(py).len();
        while self.node_at == node_count && out.len() < self.chunk && self.value_at < values {
            if self.value_at > 0 {
                out.push(b',');
            }
            self.put_value(&mut out, py, self.value_at)?;
            self.value_at += 1;
        }
        if self.node_at == node_count && self.value_at == values {
            out.put(b"]}");
            self.done = true;
        }
        Ok(Some(PyBytes::new(py, &out)))
    }
}
