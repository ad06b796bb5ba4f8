"""Every third-party module Merit imports is declared in pyproject.toml, so an install that resolves
web3, fastapi or matplotlib differently cannot take one away. deptry checks it, configured in
pyproject.toml's [tool.deptry]."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def deptry(path: Path) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "deptry", "--no-ansi", "."], cwd=path, capture_output=True, text=True, timeout=120
    )


def test_every_import_is_declared():
    out = deptry(ROOT)
    assert out.returncode == 0, out.stdout + out.stderr


def test_an_undeclared_import_in_the_tests_fails_the_check(tmp_path):
    """The configuration scans tests/ too (deptry's default skips it), and a declaration removed from
    pyproject.toml is noticed."""
    pyproject = (ROOT / "pyproject.toml").read_text()
    assert '    "pillow>=' in pyproject
    (tmp_path / "pyproject.toml").write_text(
        "\n".join(line for line in pyproject.splitlines() if not line.startswith('    "pillow>='))
    )
    (tmp_path / "backend").mkdir()
    (tmp_path / "backend" / "__init__.py").write_text("import numpy\n")
    (tmp_path / "tests").mkdir()
    (tmp_path / "tests" / "test_images.py").write_text("from PIL import Image\n")
    shutil.copy(ROOT / "README.md", tmp_path / "README.md")
    out = deptry(tmp_path)
    assert out.returncode != 0
    flagged = [line for line in (out.stdout + out.stderr).splitlines() if line.startswith("tests/test_images.py:")]
    assert flagged and "'PIL'" in flagged[0], out.stdout + out.stderr
