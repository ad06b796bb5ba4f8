"""`make brownie-check`: eth-brownie (in .venv-brownie) compiles the contracts and deploys them on its
default development network (Anvil from node_modules/.bin), in a fresh copy of this checkout.

The copy holds what a clone holds (git's tracked files, plus untracked ones git does not ignore, so
uncommitted work is checked too) and node_modules, which `make setup` installs: no build/ or any other
folder made by an earlier run, so `brownie compile` is checked as a newcomer's first run.

brownie's development network is Anvil on port 8545 (a port under cmd_settings in
brownie-config.yaml makes brownie 1.22 fail with a TypeError); if a node already listens there,
brownie deploys on it instead of starting its own.

    python scripts/brownie_check.py [--keep]     # BROWNIE_BIN: the brownie executable
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def fresh_copy(dest: Path) -> Path:
    """``dest`` with the checkout's files as a clone has them, and a link to its node_modules."""
    listed = (
        subprocess.run(
            ["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
            cwd=ROOT,
            capture_output=True,
            check=True,
        )
        .stdout.decode()
        .split("\0")
    )
    for name in filter(None, listed):
        source = ROOT / name
        if source.is_file():  # a file deleted but not yet committed is listed too
            (dest / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, dest / name)
    modules = ROOT / "node_modules"
    if not modules.is_dir():
        raise SystemExit("brownie-check: node_modules is missing; run `make setup` first")
    (dest / "node_modules").symlink_to(modules)
    return dest


def run(cmd: list[str], cwd: Path) -> str:
    print("$", " ".join(cmd), flush=True)
    env = dict(os.environ, PATH=f"{ROOT / 'node_modules' / '.bin'}:{os.environ.get('PATH', '')}")
    proc = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True, timeout=900)
    print(proc.stdout[-4000:], proc.stderr[-4000:], sep="\n")
    if proc.returncode != 0:
        raise SystemExit(f"brownie-check failed: {' '.join(cmd)} exited {proc.returncode}")
    return proc.stdout


def check(project: Path, brownie: str) -> None:
    if (project / "build").exists():
        raise SystemExit(f"brownie-check: {project / 'build'} exists; the check must start from a fresh clone")
    run([brownie, "compile"], project)
    if not (project / "build" / "contracts" / "Marketplace.json").exists():
        raise SystemExit("brownie compile did not write build/contracts/Marketplace.json")
    out = run([brownie, "run", "scripts/deploy.py", "--network", "development"], project)
    if "Marketplace deployed at" not in out:
        raise SystemExit("brownie run scripts/deploy.py did not deploy the Marketplace")


def main(argv: list[str]) -> None:
    brownie = os.environ.get("BROWNIE_BIN", str(ROOT / ".venv-brownie" / "bin" / "brownie"))
    if not Path(brownie).exists():
        raise SystemExit(f"brownie-check: no brownie at {brownie}; `make brownie-check` installs it")
    tmp = Path(tempfile.mkdtemp(prefix="merit-brownie-"))
    try:
        check(fresh_copy(tmp / "merit"), str(Path(brownie).resolve()))
    finally:
        if "--keep" in argv:
            print(f"kept {tmp}")
        else:
            shutil.rmtree(tmp, ignore_errors=True)
    print("brownie-check: compile and deploy OK in a fresh copy")


if __name__ == "__main__":
    main(sys.argv[1:])
