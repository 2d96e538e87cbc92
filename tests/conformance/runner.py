"""The Python conformance runner: plays scenarios (see README.md) through the Python client.

Also the shared checking logic other Python-driven runners (grpcurl) use: subset matching of a
response's proto3 JSON form, `${name}` substitution and `save`.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from google.protobuf import json_format

from modelconfig import ModelConfigClient, ModelConfigError
from modelconfig.v1 import model_config_service_pb2 as api

SCENARIOS = Path(__file__).parent / "scenarios"
SERVICE = api.DESCRIPTOR.services_by_name["ModelConfigService"]
_SAVED = re.compile(r"\$\{(\w+)\}")


def scenarios() -> list[Path]:
    return sorted(SCENARIOS.glob("*.json"))


def load(path: Path) -> dict[str, Any]:
    return json.loads(path.read_text("utf-8"))


def substitute(value: Any, saved: dict[str, str]) -> Any:
    """`${name}` in any string replaced by a saved value."""
    if isinstance(value, str):
        return _SAVED.sub(lambda m: saved[m.group(1)], value)
    if isinstance(value, list):
        return [substitute(v, saved) for v in value]
    if isinstance(value, dict):
        return {k: substitute(v, saved) for k, v in value.items()}
    return value


def mismatch(expected: Any, actual: Any, where: str = "") -> str | None:
    """Where `actual` fails to contain `expected` (see README.md), or None."""
    if isinstance(expected, dict):
        if not isinstance(actual, dict):
            return f"{where or 'response'}: expected an object, got {json.dumps(actual)}"
        for key, value in expected.items():
            if key not in actual:
                return f"{where}.{key}: missing (expected {json.dumps(value)})"
            found = mismatch(value, actual[key], f"{where}.{key}")
            if found:
                return found
        return None
    if isinstance(expected, list):
        if not isinstance(actual, list):
            return f"{where}: expected a list, got {json.dumps(actual)}"
        open_ended = bool(expected) and expected[-1] == "..."
        items = expected[:-1] if open_ended else expected
        if len(actual) < len(items) or (not open_ended and len(actual) != len(items)):
            return f"{where}: expected {len(items)} items, got {len(actual)}"
        for i, value in enumerate(items):
            found = mismatch(value, actual[i], f"{where}[{i}]")
            if found:
                return found
        return None
    if expected != actual:
        return f"{where}: expected {json.dumps(expected)}, got {json.dumps(actual)}"
    return None


def pick(values: Any, path: str) -> str:
    for part in path.split("."):
        values = values[int(part)] if isinstance(values, list) else values[part]
    return str(values)


def check(
    step: dict[str, Any], code: str, error: dict[str, Any], responses: list[Any]
) -> str | None:
    """What differs between a step's expectation and what happened, or None."""
    expect = step["expect"]
    if code != expect.get("code", "OK"):
        detail = f" ({error.get('reason')}: {error.get('message')})" if error else ""
        return f"expected {expect.get('code', 'OK')}, got {code}{detail}"
    if "reason" in expect and error.get("reason") != expect["reason"]:
        return f"expected reason {expect['reason']}, got {error.get('reason')}"
    if "metadata" in expect:
        found = mismatch(expect["metadata"], error.get("metadata", {}), "metadata")
        if found:
            return found
    if "response" in expect:
        return mismatch(expect["response"], responses[0] if responses else None)
    if "responses" in expect:
        return mismatch(expect["responses"], responses, "responses")
    return None


# -- the Python client -------------------------------------------------------------------------


def _message(method, values: dict[str, Any]):
    return json_format.ParseDict(values, method.input_type._concrete_class())


def _as_json(message) -> Any:
    return json_format.MessageToDict(message, preserving_proto_field_name=True)


def _call(client: ModelConfigClient, step: dict[str, Any]) -> tuple[str, dict, list[Any]]:
    method = SERVICE.methods_by_name[step["call"]]
    metadata = list(step.get("metadata", {}).items())
    try:
        if method.client_streaming:
            requests = iter([_message(method, r) for r in step["requests"]])
            responses = [client.invoke(step["call"], requests, metadata=metadata)]
        elif method.server_streaming:
            request = _message(method, step["request"])
            stream = client.invoke(step["call"], request, metadata=metadata)
            responses = _take(stream, step.get("take", 1))
        else:
            request = _message(method, step["request"])
            responses = [client.invoke(step["call"], request, metadata=metadata)]
    except ModelConfigError as error:
        return error.code.name, _error(error), []
    return "OK", {}, [_as_json(r) for r in responses]


def _take(stream: Iterator[Any], count: int) -> list[Any]:
    taken = []
    for response in stream:
        taken.append(response)
        if len(taken) == count:
            break
    stream.close()  # cancels the call
    return taken


def _error(error: ModelConfigError) -> dict[str, Any]:
    return {"reason": error.reason, "metadata": dict(error.metadata), "message": error.message}


def run(target: str, path: Path) -> list[str]:
    """Play one scenario; the failures, one line each (empty: it passed)."""
    scenario = load(path)
    saved: dict[str, str] = {}
    failures = []
    with ModelConfigClient(target, timeout=10) as client:
        for number, raw in enumerate(scenario["steps"], start=1):
            step = substitute(raw, saved)
            code, error, responses = _call(client, step)
            problem = check(step, code, error, responses)
            if problem:
                failures.append(f"{path.stem}: step {number} ({step['call']}): {problem}")
                break  # later steps build on this one
            for name, field_path in step.get("save", {}).items():
                saved[name] = pick(responses[0], field_path)
    return failures

