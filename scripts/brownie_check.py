"""`make brownie-check`: eth-brownie (in .venv-brownie) compiles the contracts and deploys them on
its default development network, which is Anvil from node_modules/.bin."""
from __future__ import annotations

import os
import subprocess
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def run(cmd: list[str]) -> str:
    print("$", " ".join(cmd), flush=True)
    env = dict(os.environ, PATH=f"{ROOT / 'node_modules' / '.bin'}:{os.environ.get('PATH', '')}")
    proc = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=900)
    print(proc.stdout[-4000:], proc.stderr[-4000:], sep="\n")
    if proc.returncode != 0:
        raise SystemExit(f"brownie-check failed: {' '.join(cmd)} exited {proc.returncode}")
    return proc.stdout


def main() -> None:
    brownie = os.environ.get("BROWNIE_BIN", str(ROOT / ".venv-brownie" / "bin" / "brownie"))
    out = run([brownie, "compile"])
    if "Marketplace" not in out and not (ROOT / "build" / "brownie" / "contracts" / "Marketplace.json").exists():
        raise SystemExit("brownie compile did not produce Marketplace")
    out = run([brownie, "run", "scripts/deploy.py", "--network", "development"])
    if "Marketplace deployed at" not in out:
        raise SystemExit("brownie run scripts/deploy.py did not deploy the Marketplace")
    print("brownie-check: compile and deploy OK")


if __name__ == "__main__":
    main()
