"""`meterroot --help` starts without Beam (0.7 s of imports, pandas with it): each command
imports the pipeline machinery it runs, when it runs."""
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
HEAVY = ("apache_beam", "pandas", "great_expectations")


def test_help_imports_neither_beam_nor_pandas():
    script = ("import sys, pipelines.cli as cli; cli.build_parser(); "
              f"print(','.join(m for m in {HEAVY!r} if m in sys.modules))")
    done = subprocess.run([sys.executable, "-c", script], cwd=REPO, capture_output=True, text=True, check=True)
    assert done.stdout.strip() == ""


def test_generate_choices_are_those_of_the_modules_behind_them():
    from pipelines import generate_cli
    from settlement.synthetic import SHAPES
    from sinks.event_files import FORMATS
    assert generate_cli.SHAPES == SHAPES and generate_cli.FORMATS == FORMATS
