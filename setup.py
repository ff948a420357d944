"""meterroot: usage events of infrastructure nodes -> Merkle-rooted settlement batches."""
from setuptools import find_packages, setup

# Pinned: these versions resolve together (apache-beam 2.77 caps pyarrow < 26, numpy < 2.5,
# protobuf < 7) and the code relies on their behaviour.
INSTALL_REQUIRES = [
    "apache-beam==2.77.0",
    "pyarrow==25.0.1",
    "numpy==2.4.6",
    "protobuf==6.33.6",
    "duckdb==2.0.1",
    "PyYAML==6.0.4",
    "eth-abi==6.0.0",
    "eth-account==0.14.0",
    "coincurve==21.0.0",  # C secp256k1 for eth-keys: signing and recovering permits, demo consumers' keys
    "eth-hash==0.8.0",
    "eth-utils==6.0.0",
    "safe-pysha3==1.0.7",  # C keccak backend for eth-hash: < 1 us a hash instead of ~5 us
    "web3==8.0.0",
    "great-expectations==1.24.1",
    "zstandard==0.25.0",  # .zst inputs, read frame by frame so a truncated one is refused
    # The gateway, the consumer SDK (meterroot/) and `meterroot serve`: aiohttp is web3's own HTTP stack already.
    "aiohttp==3.14.5",
    "httpx==0.28.1",
    "prometheus-client==0.26.0",
    "uvloop==0.23.0",      # the gateway's event loop (libuv): fewer syscalls and less Python per request
    "httptools==0.9.0",    # llhttp: the gateway's upstream client parses answers in C
]

TEST_REQUIRES = [
    "pytest==9.2.0",
    "hypothesis==6.170.17",
]

setup(
    name="meterroot",
    version="0.1.0",
    description=__doc__,
    packages=find_packages(include=["settlement*", "transforms*", "pipelines*", "sinks*", "expectations*",
                                    "meterroot*"]),
    package_data={"": ["*.json", "*.yaml"]},
    include_package_data=True,
    python_requires=">=3.11,<3.12",
    install_requires=INSTALL_REQUIRES,
    extras_require={"test": TEST_REQUIRES},
    entry_points={"console_scripts": ["meterroot = pipelines.cli:main"]},
)
