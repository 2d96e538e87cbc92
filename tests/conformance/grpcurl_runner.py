"""The grpcurl conformance runner: plays scenarios with the real grpcurl binary, over reflection.

grpcurl prints responses in the proto3 JSON mapping (proto field names, int64 as strings, no
default values) and, with -format-error, a failed call's status as JSON with its details.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

from . import runner

GRPCURL = Path(sys.executable).parent / "grpcurl"
CODES = [
    "OK", "CANCELLED", "UNKNOWN", "INVALID_ARGUMENT", "DEADLINE_EXCEEDED", "NOT_FOUND",
    "ALREADY_EXISTS", "PERMISSION_DENIED", "RESOURCE_EXHAUSTED", "FAILED_PRECONDITION",
    "ABORTED", "OUT_OF_RANGE", "UNIMPLEMENTED", "INTERNAL", "UNAVAILABLE", "DATA_LOSS",
    "UNAUTHENTICATED",
]
_ERROR_INFO = "type.googleapis.com/google.rpc.ErrorInfo"


def _objects(text: str) -> list[Any]:
    """The JSON objects grpcurl printed one after another."""
    decoder, found, at = json.JSONDecoder(), [], 0
    while True:
        while at < len(text) and text[at].isspace():
            at += 1
        if at >= len(text):
            return found
        value, at = decoder.raw_decode(text, at)
        found.append(value)


def _call(target: str, step: dict[str, Any]) -> tuple[str, dict, list[Any]]:
    method = runner.SERVICE.methods_by_name[step["call"]]
    requests = step["requests"] if method.client_streaming else [step["request"]]
    command = [str(GRPCURL), "-plaintext", "-format-error", "-d", "@"]
    for key, value in step.get("metadata", {}).items():
        command += ["-H", f"{key}: {value}"]
    if method.server_streaming:
        # The feed never ends by itself: read for a moment, then take what came.
        command += ["-max-time", "3"]
    command += [target, f"{runner.SERVICE.full_name}/{step['call']}"]
    done = subprocess.run(
        command,
        input="\n".join(json.dumps(r) for r in requests),
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    if method.server_streaming and done.stdout.strip():
        return "OK", {}, _objects(done.stdout)[: step.get("take", 1)]
    if done.returncode == 0:
        return "OK", {}, _objects(done.stdout)
    status = _objects(done.stdout or done.stderr)
    if not status or "code" not in status[0]:
        return "UNKNOWN", {"message": (done.stderr or done.stdout).strip()}, []
    info = next((d for d in status[0].get("details", []) if d.get("@type") == _ERROR_INFO), {})
    error = {
        "reason": info.get("reason"),
        "metadata": info.get("metadata", {}),
        "message": status[0].get("message"),
    }
    return CODES[status[0]["code"]], error, []


def run(target: str, path: Path) -> list[str]:
    """Play one scenario with grpcurl; the failures, one line each."""
    scenario = runner.load(path)
    saved: dict[str, str] = {}
    for number, raw in enumerate(scenario["steps"], start=1):
        step = runner.substitute(raw, saved)
        code, error, responses = _call(target, step)
        problem = runner.check(step, code, error, responses)
        if problem:
            return [f"{path.stem}: step {number} ({step['call']}): {problem}"]
        for name, field_path in step.get("save", {}).items():
            saved[name] = runner.pick(responses[0], field_path)
    return []
