"""Many bad invocations of `merit`, run in one child process (``run_many``): each must exit non-zero
with one line that names the problem (exit 1: ``error: ...``; exit 2: click's usage error), and none
may print a traceback, fall through to the catch-all ("re-run with --debug"), or hang."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
DEAD = "http://127.0.0.1:1"

# The child: runs each argv through the real entry point (backend.cli.main.run) in turn.
RUN_MANY = r"""
import contextlib, io, json, sys
from backend.cli import main
main._register()
for argv in json.loads(sys.argv[1]):
    sys.argv = ["merit", *argv]
    err = io.StringIO()
    main.err_console.file = err
    code = None
    with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()):
        try:
            main.run()
            code = 0
        except SystemExit as exc:
            code = exc.code if isinstance(exc.code, int) else 1
        except BaseException as exc:
            import traceback
            traceback.print_exc(file=err)
            code = "raised"
    print(json.dumps({"argv": argv, "code": code, "stderr": err.getvalue()}), flush=True)
"""


def run_many(cases: list[list[str]], home: Path, **env: str) -> list[dict]:
    child = subprocess.run(
        [sys.executable, "-c", RUN_MANY, json.dumps(cases)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=600,
        env={"PATH": "/usr/bin:/bin", "HOME": str(home), "MERIT_HOME": str(home / "merit"), **env},
    )
    results = [json.loads(line) for line in child.stdout.splitlines() if line.startswith("{")]
    assert len(results) == len(cases), child.stderr[-3000:]
    return results


def assert_clear(result: dict, needle: str) -> None:
    code, text = result["code"], result["stderr"]
    assert code in (1, 2), result
    assert "Traceback" not in text and "re-run with --debug" not in text, result
    if code == 1:
        lines = text.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith("error: ") and len(lines[0]) < 1100, result
    else:
        assert "Usage: " in text, result
    assert needle in text, (needle, result)


@pytest.fixture
def files(tmp_path):
    (tmp_path / "adir").mkdir()
    (tmp_path / "afile").write_text("x")
    (tmp_path / "deep.yaml").write_text("a: " + "[" * 100_000)
    (tmp_path / "deep.json").write_text("[" * 100_000)
    aliases = ["a: &a [x, x, x, x, x, x, x, x, x]"]
    for prev, name in zip("abcdefg", "bcdefgh"):
        aliases.append(f"{name}: &{name} [{', '.join(['*' + prev] * 9)}]")
    (tmp_path / "aliases.yaml").write_text("\n".join(aliases) + "\n")
    (tmp_path / "binary.yaml").write_bytes(bytes(range(256)))
    return tmp_path


def test_bad_flags_and_files_get_one_clear_line(files):
    d = str(files)
    cases = {
        # files where files are expected
        "cannot read spec file": ["project", "create", "--spec", f"{d}/adir", "--chain", DEAD],
        "larger than the 1048576 bytes": ["project", "create", "--spec", "/dev/zero", "--chain", DEAD],
        "nests too deeply": ["project", "create", "--spec", f"{d}/deep.yaml", "--chain", DEAD],
        "nests 100000 levels deep": ["project", "create", "--spec", f"{d}/deep.json", "--chain", DEAD],
        "uses YAML aliases": ["project", "create", "--spec", f"{d}/aliases.yaml", "--chain", DEAD],
        "not a text file": ["project", "create", "--spec", f"{d}/binary.yaml", "--chain", DEAD],
        # paths the command writes to
        "File exists": ["project", "example", f"{d}/afile"],
        "cannot use /proc/merit-nope": ["project", "example", "/proc/merit-nope"],
        # numbers and names
        "'--seed'": ["project", "example", f"{d}/ex", "--seed", "-5"],
        "'--log-level'": ["api", "serve", "--log-level", "loud"],
        "does not fit in a uint256": ["aggregator", "register", "--stake", "1e999 ether", "--chain", DEAD],
        "'inf' does not fit": ["aggregator", "register", "--stake", "inf", "--chain", DEAD],
        "more characters)' does not fit": ["aggregator", "register", "--stake", "1" * 5000, "--chain", DEAD],
        "unknown unit": ["aggregator", "register", "--stake", "0.1 bananas", "--chain", DEAD],
        "not an Ethereum address": ["project", "evict", "1", "0xnothex", "--chain", DEAD],
        "not a valid CID": ["ipfs", "pin", "../../etc/passwd"],
        "'--timeout'": ["chain", "wait", "--timeout", "nan"],
        "less than or equal to 86400": ["chain", "wait", "--timeout", "inf", "--chain", DEAD],
        "less than or equal to 3600": ["aggregator", "run", "1", "--validation", f"{d}/afile", "--poll", "inf"],
        "'--poll'": ["aggregator", "run", "1", "--validation", f"{d}/afile", "--poll", "nan"],
    }
    results = run_many(list(cases.values()), files)
    for needle, result in zip(cases, results):
        assert_clear(result, needle)


def test_broken_configuration_gets_one_clear_line(files):
    home = files / "merit"
    home.mkdir()
    config = home / "config.toml"
    for text, needle in (
        ("chain = [\n", "is not valid TOML"),
        ("a = " + "[" * 100_000, "nests too deeply"),
        ('rpc_timeout = "x"\n', "MERIT_RPC_TIMEOUT"),
        ("rpc_timeout = inf\n", "finite number"),
    ):
        config.write_text(text)
        (result,) = run_many([["project", "list", "--chain", DEAD]], files)
        assert_clear(result, needle)
    config.unlink()
    (result,) = run_many([["project", "list", "--chain", DEAD]], files, MERIT_RPC_TIMEOUT="nan")
    assert_clear(result, "MERIT_RPC_TIMEOUT")


def test_an_error_quoting_brackets_is_printed_not_read_as_markup(files):
    """rich read '[/x]' in a message as a closing tag and raised MarkupError inside the error handler."""
    (result,) = run_many([["project", "create", "--spec", f"{files}/[/x].yaml", "--chain", DEAD]], files)
    assert_clear(result, "[/x].yaml")
