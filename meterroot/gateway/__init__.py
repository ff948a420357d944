"""The provider gateway (`meterroot gateway`, SPEC §13): an asyncio reverse proxy in front of a
provider's service that authenticates consumers by their Sign-In with Ethereum session, refuses
those without an available deposit, with a pending withdrawal or with too little permitted,
meters every request and writes usage files (SPEC §1) atomically.

Modules:
    metering     the metering table: JSON-RPC method -> units and quantities
    usage_files  rolling usage files, each published whole (temp + rename)
    sessions     sign-in nonces and session tokens
    credit       what each consumer owes this provider against its latest permit
    app          the aiohttp application wiring them together
"""
