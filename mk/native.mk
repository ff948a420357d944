# The Rust extension behind the Merkle tree (native/keccak: pyo3 + tiny-keccak, leaves, nodes and dump;
# built by maturin from PyPI; cargo from rustup's usual place if it is not on PATH).
NATIVE_STAMP := $(VENV)/.native-keccak
NATIVE_SOURCES := native/keccak/Cargo.toml native/keccak/Cargo.lock native/keccak/pyproject.toml $(wildcard native/keccak/src/*.rs)

install: $(NATIVE_STAMP)

$(NATIVE_STAMP): $(STAMP) $(NATIVE_SOURCES)
	PATH="$$PATH:$$HOME/.cargo/bin" $(PY) -m pip install --quiet ./native/keccak
	$(PY) -c "import meterroot_keccak"
	touch $@
