"""`python -m meterroot.gateway …`: `meterroot gateway …` without loading the other commands
(the batch command imports Beam, seconds of start-up a gateway does not need)."""
from __future__ import annotations

import argparse
import sys

from pipelines import gateway_cli
from pipelines.cli import quiet_logging
from settlement.errors import MeterrootError, UsageError


def main(argv: list[str] | None = None) -> int:
    quiet_logging()
    parser = argparse.ArgumentParser(prog="meterroot")
    gateway_cli.register(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(["gateway", *(sys.argv[1:] if argv is None else argv)])
    try:
        return int(args.func(args) or 0)
    except UsageError as exc:
        print(f"meterroot gateway: error: {exc}", file=sys.stderr)
        return 2
    except MeterrootError as exc:
        print(f"meterroot gateway: failed: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 1


if __name__ == "__main__":
    sys.exit(main())
