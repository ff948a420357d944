"""One exception root for meterroot.

Caller mistakes (bad input, bad configuration) and our own broken invariants are different
types: the first are answered with exit code 2 and a message naming the bad value and the fix;
the second are bugs and exit 1.
"""


class MeterrootError(Exception):
    """Root of every error meterroot raises on purpose."""


class UsageError(MeterrootError, ValueError):
    """The caller asked for something that cannot be done as asked (exit code 2)."""


class InvalidTariff(UsageError):
    """The tariff file is unreadable or one of its entries breaks the contract."""


class InvalidInput(UsageError):
    """An input file or glob is missing, unreadable or of an unknown format."""


class LedgerMismatch(UsageError):
    """The output directory's ledger cannot be continued with this configuration."""


class InvalidTree(UsageError):
    """A Merkle tree dump or its values do not match the standard-v1 format."""


class ChainError(MeterrootError, RuntimeError):
    """A transaction reverted, timed out or the node refused it; names the tx hash."""


class InvariantBroken(MeterrootError, AssertionError):
    """Our own arithmetic or bookkeeping broke a rule it must always keep: a bug."""
