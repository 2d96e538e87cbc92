"""The Go conformance runner: plays scenarios with clients/go/cmd/conformance (the Go client).

`make install` (and so `make test`) builds it to build/go/bin/modelconfig-conformance; it prints
the failed steps itself, one line each, in the format every runner shares.
"""

from __future__ import annotations

import subprocess
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
BINARY = ROOT / "build/go/bin/modelconfig-conformance"


def run(target: str, path: Path) -> list[str]:
    """Play one scenario with the Go runner; the failures, one line each."""
    if not BINARY.exists():
        return [f"{path.stem}: {BINARY} is not built: run `make go`"]
    done = subprocess.run(
        [str(BINARY), "-target", target, "-scenario", str(path)],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    if done.returncode == 0:
        return []
    failures = done.stdout.splitlines()
    return failures or [f"{path.stem}: exited {done.returncode}: {done.stderr.strip()}"]
