"""How modelconfigctl fails: an exit code per kind of outcome, the error told once on stderr."""

from __future__ import annotations

import json
import sys

import grpc

from .._errors import ModelConfigError

# Exit codes, one per kind of outcome a script may want to tell apart (documented in the README
# and in --help). Usage errors exit 2, as argparse does.
EXIT_FAILED = 1  # anything else: a file that cannot be read, an unexpected status
EXIT_USAGE = 2  # the command line, or the request it makes, is malformed (INVALID_ARGUMENT)
EXIT_NOT_FOUND = 3  # NOT_FOUND
EXIT_REFUSED = 4  # a rule refuses it: FAILED_PRECONDITION, ALREADY_EXISTS, unmapped legacy values
EXIT_CONFLICT = 5  # someone else got there first: ABORTED (a stale etag, an import running)
EXIT_UNAVAILABLE = 6  # no daemon answered, or not in time: UNAVAILABLE, DEADLINE_EXCEEDED
EXIT_DENIED = 7  # UNAUTHENTICATED, PERMISSION_DENIED
EPILOG = (
    "exit codes: 0 done, 1 failed otherwise (e.g. a file), 2 usage or a malformed request, "
    "3 not found, 4 refused by a rule, 5 conflict (a stale etag, an import running), 6 no "
    "daemon answered in time, 7 not allowed (token, role)"
)
_EXIT_CODES = {
    grpc.StatusCode.INVALID_ARGUMENT: EXIT_USAGE,
    grpc.StatusCode.NOT_FOUND: EXIT_NOT_FOUND,
    grpc.StatusCode.FAILED_PRECONDITION: EXIT_REFUSED,
    grpc.StatusCode.ALREADY_EXISTS: EXIT_REFUSED,
    grpc.StatusCode.ABORTED: EXIT_CONFLICT,
    grpc.StatusCode.UNAVAILABLE: EXIT_UNAVAILABLE,
    grpc.StatusCode.DEADLINE_EXCEEDED: EXIT_UNAVAILABLE,
    grpc.StatusCode.UNAUTHENTICATED: EXIT_DENIED,
    grpc.StatusCode.PERMISSION_DENIED: EXIT_DENIED,
}
_BY_NUMBER = {code.value[0]: code for code in grpc.StatusCode}


class CommandError(Exception):
    """A failure found on this side of the wire: a file, a flag, a value that maps to nothing."""

    def __init__(
        self,
        message: str,
        *,
        reason: str,
        exit_code: int = EXIT_FAILED,
        report: str | None = None,
        extra: dict[str, object] | None = None,
    ) -> None:
        super().__init__(message)
        self.message, self.reason, self.exit_code = message, reason, exit_code
        self.report = report  # printed above the error line, e.g. a table of what failed
        self.extra = extra or {}  # more keys of the JSON error


def exit_code(error: ModelConfigError | CommandError) -> int:
    if isinstance(error, CommandError):
        return error.exit_code
    return _EXIT_CODES.get(error.code, EXIT_FAILED)


def exit_code_of_status(number: int) -> int:
    """The exit code for a status given as its number (a batch's per-account error)."""
    return _EXIT_CODES.get(_BY_NUMBER.get(number, grpc.StatusCode.UNKNOWN), EXIT_FAILED)


def _hint(error: ModelConfigError, target: str, timeout: float) -> str | None:
    if error.code == grpc.StatusCode.DEADLINE_EXCEEDED:
        return (
            f"{target} did not answer within {timeout:g} s; a busy daemon or a slow network "
            "may need a longer --timeout"
        )
    if error.code == grpc.StatusCode.UNAVAILABLE and not error.reason:
        return (
            f"no modelconfigd is reachable at {target}; start one or pass --target (or set "
            "MODELCONFIG_TARGET)"
        )
    return None


def report(
    error: ModelConfigError | CommandError, *, target: str, timeout: float, as_json: bool
) -> None:
    """The error on stderr: plain lines, or one JSON object carrying the same facts."""
    if isinstance(error, CommandError):
        document = {"code": None, "reason": error.reason, "message": error.message, **error.extra}
        lines = [error.report, ""] if error.report else []
        lines.append(f"error: {error.message}")
    else:
        hint = _hint(error, target, timeout)
        document = {
            "code": error.code.name,
            "reason": error.reason,
            "message": error.message,
            "metadata": error.metadata,
            "field_violations": [
                {"field": v.field, "description": v.description} for v in error.field_violations
            ],
            "precondition_violations": [
                {"type": v.type, "subject": v.subject, "description": v.description}
                for v in error.violations
            ],
            **({"hint": hint} if hint else {}),
        }
        head = " ".join(part for part in (error.code.name, error.reason) if part)
        lines = [f"error: {head}: {error.message}"]
        lines += [f"  {v.field}: {v.description}" for v in error.field_violations]
        lines += [f"  {v.type} {v.subject}: {v.description}" for v in error.violations]
        lines += [f"hint: {hint}"] if hint else []
    text = json.dumps(document, ensure_ascii=False) if as_json else "\n".join(lines)
    print(text, file=sys.stderr, flush=True)


def usage_error(prog: str, usage: str, message: str, *, as_json: bool) -> None:
    """A command line argparse refused, as argparse says it, or as JSON under --output json."""
    if as_json:
        document = {"code": None, "reason": "USAGE", "message": f"{prog}: {message}"}
        print(json.dumps(document, ensure_ascii=False), file=sys.stderr, flush=True)
    else:
        print(f"{usage}{prog}: error: {message}", file=sys.stderr, flush=True)
