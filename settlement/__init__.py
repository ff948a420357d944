"""The pure settlement core: schema, tariff, fee math, epochs, Merkle tree, manifests.

Nothing here imports apache_beam or web3, and nothing here does I/O.
"""
