"""Many `meterroot` processes for the trials, without paying the start-up for each.

Measured on the 2-core CI machine, a `meterroot batch` of 40 events costs ~10 s of CPU, two
thirds of it importing Beam, web3 and pandas; the concurrency and kill trials start dozens of
runs. So a fork server imports the CLI once and forks each run from it: every run is its own
process (own pid, own open file of OUT's lock, own kill -9) executing `meterroot`'s `main(argv)`
from argument parsing to exit code, as `python -m pipelines.cli` would after its imports.

    python -m tests.integrity.forked     reads one JSON request a line on stdin, answers one
                                         JSON line on stdout:
    {"runs": [{"argv": [...], "delay": s, "env": {...}, "kill_after": s|null}, ...]}
    -> {"results": [{"code": c, "stdout": "...", "stderr": "...", "seconds": s}, ...]}

All runs of a request are forked at once; each waits its `delay` before `main`, and the server
SIGKILLs it `kill_after` seconds after its fork (code -9 when it was still running)."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import tempfile
import time
import traceback
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def _child(run: dict, out_path: str, err_path: str) -> None:
    code = 1
    try:
        out = os.open(out_path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
        err = os.open(err_path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
        os.dup2(out, 1)
        os.dup2(err, 2)
        sys.stdout = os.fdopen(1, "w", closefd=False)
        sys.stderr = os.fdopen(2, "w", closefd=False)
        signal.signal(signal.SIGINT, signal.SIG_DFL)
        os.environ.update(run.get("env") or {})
        time.sleep(run.get("delay") or 0)
        from pipelines.cli import main
        code = main([str(a) for a in run["argv"]])
    except SystemExit as exc:  # argparse's usage errors
        code = exc.code if isinstance(exc.code, int) else 2
    except BaseException:  # noqa: BLE001 - the trial reports it (a traceback is a finding)
        traceback.print_exc()
        code = 1
    finally:
        try:
            sys.stdout.flush()
            sys.stderr.flush()
        finally:
            os._exit(code)


def serve_request(request: dict) -> dict:
    with tempfile.TemporaryDirectory(prefix="meterroot-forked-") as tmp:
        children = []
        for k, run in enumerate(request["runs"]):
            out_path, err_path = f"{tmp}/{k}.out", f"{tmp}/{k}.err"
            started = time.monotonic()
            pid = os.fork()
            if pid == 0:
                _child(run, out_path, err_path)
            kill_after = run.get("kill_after")
            children.append({"pid": pid, "started": started, "out": out_path, "err": err_path,
                             "kill_at": None if kill_after is None else started + kill_after,
                             "status": None, "ended": None})
        while any(c["status"] is None for c in children):
            now = time.monotonic()
            for c in children:
                if c["status"] is not None:
                    continue
                if c["kill_at"] is not None and now >= c["kill_at"]:
                    os.kill(c["pid"], signal.SIGKILL)
                    c["kill_at"] = None
                pid, status = os.waitpid(c["pid"], os.WNOHANG)
                if pid:
                    c["status"], c["ended"] = os.waitstatus_to_exitcode(status), time.monotonic()
            time.sleep(0.005)
        return {"results": [{"code": c["status"], "stdout": Path(c["out"]).read_text(),
                             "stderr": Path(c["err"]).read_text(), "seconds": c["ended"] - c["started"]}
                            for c in children]}


def main() -> None:
    import pipelines.cli
    pipelines.cli.build_parser()  # imports every command's module
    import pipelines.batch  # noqa: F401 - Beam, and what a batch run loads lazily
    import expectations.runner  # noqa: F401
    import sinks.catalog  # noqa: F401
    import sinks.verify  # noqa: F401
    answers = sys.stdout
    sys.stdout = sys.stderr  # nothing but answers on the answer pipe
    answers.write("ready\n")
    answers.flush()
    for line in sys.stdin:
        answers.write(json.dumps(serve_request(json.loads(line))) + "\n")
        answers.flush()


class ForkServer:
    """The test side: `server.run([run, ...])` -> results, in order."""

    def __init__(self):
        self.proc = subprocess.Popen([sys.executable, "-m", "tests.integrity.forked"], cwd=REPO,
                                     stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
        ready = self.proc.stdout.readline()
        assert ready == "ready\n", f"the fork server did not start: {ready!r}"

    def run(self, runs: list[dict], at_once: int | None = None) -> list[dict]:
        """Fork `runs` together, or `at_once` of them at a time; the results in order."""
        step = at_once or max(len(runs), 1)
        results = []
        for start in range(0, len(runs), step):
            self.proc.stdin.write(json.dumps({"runs": runs[start:start + step]}) + "\n")
            self.proc.stdin.flush()
            line = self.proc.stdout.readline()
            assert line, "the fork server died"
            results += json.loads(line)["results"]
        return results

    def one(self, argv, **run) -> dict:
        return self.run([{"argv": [str(a) for a in argv], **run}])[0]

    def close(self) -> None:
        self.proc.stdin.close()
        self.proc.wait(timeout=60)


if __name__ == "__main__":
    main()
