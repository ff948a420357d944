#!/usr/bin/env node
// Compiles the meterroot contracts with the pinned solcjs into contracts/build/<Name>.json.
//
//   node contracts/compile.js            write the artifacts
//   node contracts/compile.js --check    exit 1 if a committed artifact differs from a fresh build
//
// Deterministic: fixed compiler, settings and source unit names (paths relative to the
// repository), so the same sources give byte-identical artifacts on every machine.
'use strict';

const crypto = require('crypto');
const fs = require('fs');
const path = require('path');
const solc = require('solc');

const ROOT = path.resolve(__dirname, '..');
const BUILD_DIR = path.join(ROOT, 'contracts', 'build');

// source unit name (relative to the repository) -> contract name
const CONTRACTS = {
  'contracts/SettlementRegistry.sol': 'SettlementRegistry',
  'contracts/CounterNFT.sol': 'CounterNFT',
  'contracts/test/TestToken.sol': 'TestToken',
  'contracts/test/TestWallet.sol': 'TestWallet',
  'contracts/test/FeeToken.sol': 'FeeToken',
  'contracts/AvailabilityFeed.sol': 'AvailabilityFeed',
};

const SETTINGS = {
  remappings: [
    '@openzeppelin/contracts/=node_modules/@openzeppelin/contracts/',
    '@chainlink/contracts/=node_modules/@chainlink/contracts/',
  ],
  optimizer: { enabled: true, runs: 1000 },
  evmVersion: 'cancun',
  metadata: { bytecodeHash: 'ipfs' },
  outputSelection: {
    '*': { '*': ['abi', 'evm.bytecode.object', 'evm.deployedBytecode.object'] },
  },
};

function sha256(text) {
  return crypto.createHash('sha256').update(text).digest('hex');
}

function readSource(unitName) {
  return fs.readFileSync(path.join(ROOT, unitName), 'utf8');
}

function compile() {
  const sources = {};
  for (const unitName of Object.keys(CONTRACTS)) sources[unitName] = { content: readSource(unitName) };
  const input = { language: 'Solidity', sources, settings: SETTINGS };

  const imported = {};
  const findImports = (unitName) => {
    const resolved = path.resolve(ROOT, unitName);
    if (!resolved.startsWith(path.join(ROOT, 'node_modules') + path.sep)) {
      return { error: `import ${unitName} is outside node_modules; only remapped imports are allowed` };
    }
    try {
      imported[unitName] = readSource(unitName);
      return { contents: imported[unitName] };
    } catch (err) {
      return { error: `cannot read ${unitName}: ${err.message} (run npm ci)` };
    }
  };

  const output = JSON.parse(solc.compile(JSON.stringify(input), { import: findImports }));
  const errors = (output.errors || []).filter((e) => e.severity === 'error');
  for (const e of output.errors || []) process.stderr.write(e.formattedMessage + '\n');
  if (errors.length) throw new Error(`solc reported ${errors.length} error(s)`);

  // Every source unit that went into the build, sorted, with its digest: the input's identity.
  const allSources = { ...Object.fromEntries(Object.entries(sources).map(([k, v]) => [k, v.content])), ...imported };
  const sourceDigests = Object.keys(allSources).sort().map((name) => [name, sha256(allSources[name])]);
  const inputHash = sha256(JSON.stringify({ settings: SETTINGS, sources: sourceDigests }));

  const artifacts = {};
  for (const [unitName, contractName] of Object.entries(CONTRACTS)) {
    const contract = output.contracts[unitName][contractName];
    artifacts[contractName] = {
      contractName,
      sourceName: unitName,
      sourceHash: sha256(allSources[unitName]),
      inputHash,
      compiler: { name: 'solc', version: solc.version(), settings: SETTINGS },
      abi: contract.abi,
      bytecode: '0x' + contract.evm.bytecode.object,
      deployedBytecode: '0x' + contract.evm.deployedBytecode.object,
    };
  }
  return artifacts;
}

function artifactText(artifact) {
  return JSON.stringify(artifact, null, 2) + '\n';
}

function main(argv) {
  const check = argv.includes('--check');
  const artifacts = compile();
  const stale = [];
  for (const [name, artifact] of Object.entries(artifacts)) {
    const file = path.join(BUILD_DIR, `${name}.json`);
    const text = artifactText(artifact);
    if (check) {
      const committed = fs.existsSync(file) ? fs.readFileSync(file, 'utf8') : null;
      if (committed !== text) stale.push(path.relative(ROOT, file));
    } else {
      fs.mkdirSync(BUILD_DIR, { recursive: true });
      const tmp = `${file}.tmp-${process.pid}`;
      fs.writeFileSync(tmp, text);
      fs.renameSync(tmp, file);
      process.stdout.write(`wrote ${path.relative(ROOT, file)}\n`);
    }
  }
  if (stale.length) {
    process.stderr.write(`stale contract artifacts: ${stale.join(', ')}; run: make contracts\n`);
    return 1;
  }
  if (check) process.stdout.write('contract artifacts are current\n');
  return 0;
}

process.exitCode = main(process.argv.slice(2));
