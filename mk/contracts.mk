# Solidity: `make contracts` recompiles contracts/*.sol with the pinned solcjs into the committed
# contracts/build/*.json; `make contracts-check` fails when those artifacts are stale.
.PHONY: contracts contracts-check test-chain
contracts: node_modules/.installed
	node contracts/compile.js

contracts-check: node_modules/.installed
	node contracts/compile.js --check

test-chain: install
	$(PY) -m pytest tests/chain -q -p no:cacheprovider
