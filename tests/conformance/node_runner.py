"""The TypeScript conformance runner: clients/node/conformance.mjs, played with node.

It plays a scenario through @modelconfig/client (its build in clients/node/dist, which `make
install` makes) and prints one line per failed step, as runner.py does for Python.
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

NODE_CLIENT = Path(__file__).resolve().parents[2] / "clients/node"
RUNNER = NODE_CLIENT / "conformance.mjs"


def run(target: str, path: Path) -> list[str]:
    """Play one scenario with the TypeScript client; the failures, one line each."""
    node = shutil.which("node")
    if node is None:
        return [f"{path.stem}: node is not on PATH (the TypeScript client needs node 20 or later)"]
    done = subprocess.run(
        [node, str(RUNNER), "--target", target, "--scenario", str(path)],
        cwd=NODE_CLIENT,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    if done.returncode == 0:
        return []
    failures = done.stdout.splitlines()
    if done.returncode != 1 or not failures:  # it crashed rather than reporting
        failures.append(f"{path.stem}: node exited {done.returncode}: {done.stderr.strip()}")
    return failures
