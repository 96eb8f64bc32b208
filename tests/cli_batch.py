"""Run several `flask` commands in one process: `python -m tests.cli_batch '<json>'`, the
JSON a list of argument lists. Prints a JSON list of {"code", "stdout", "stderr"}, one per
command, in order. A test's setup that runs three commands starts one interpreter (and
imports the app once) instead of three; each command runs through Flask's CLI as `flask`
would run it, against the database the environment names."""

from __future__ import annotations

import json
import sys


def main(argv: list[str]) -> int:
    """Run each command; print what each wrote and its exit code."""
    from wsgi import app

    runner = app.test_cli_runner()
    results = []
    for args in json.loads(argv[0]):
        outcome = runner.invoke(args=args)
        results.append(
            {"code": outcome.exit_code, "stdout": outcome.stdout, "stderr": outcome.stderr}
        )
    print(json.dumps(results))
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
