"""`meterroot serve`: the read-only HTTP API over an output directory (SPEC §14).

    published   what it reads from OUT (batches up to the ledger HEAD, trees, proofs, reports),
                cached per file version
    app         the aiohttp application: routes, pagination, ETags, errors, the OpenAPI document
"""
