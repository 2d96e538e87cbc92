"""modelconfigctl changes: the audit trail, and reverting a change."""

from __future__ import annotations

import argparse
from datetime import datetime

from google.protobuf import timestamp_pb2
from google.protobuf.message import Message

from .._client import ModelConfigClient
from ..v1 import model_config_service_pb2 as api
from ..v1 import resources_pb2 as pb
from . import output as fmt
from .parsing import command, group


def _kind(change: pb.Change) -> str:
    return pb.ChangeKind.Name(change.kind).removeprefix("CHANGE_KIND_").lower()


def _model(model_id: int) -> str:
    return f"model {model_id}" if model_id else "none"


def summary(change: pb.Change) -> str:
    """One line saying what a change did."""
    revert = f" (reverts {change.reverted_revision})" if change.reverted_revision else ""
    if change.kind == pb.CHANGE_KIND_SETTING:
        where = change.account_id or "global"
        if not change.HasField("before"):
            return f"{where} {change.slot}".strip() + revert
        return (
            f"{where} {change.slot}: {_model(change.before.model_id)} -> "
            f"{_model(change.after.model_id)}{revert}"
        )
    if change.kind == pb.CHANGE_KIND_IMPORT:
        rows = fmt.plural(change.import_rows, "override")
        return f"{rows} of {fmt.plural(change.import_accounts, 'account')}{revert}"
    if change.kind == pb.CHANGE_KIND_MODEL_RETIRED:
        before, after = change.before.retirement, change.after.retirement
        moved = [
            *(f"global {s}" for s in after.global_slots),
            *(f"default {s}" for s in after.default_slots),
        ]
        if change.import_rows:
            moved.append(
                f"{fmt.plural(change.import_rows, 'override')} of "
                f"{fmt.plural(change.import_accounts, 'account')}"
            )
        what = ", ".join(moved) or "nothing used it"
        return f"{_model(before.model_id)} -> {after.model_id}: {what}{revert}"
    if change.kind == pb.CHANGE_KIND_CONFIGURATION_APPLIED:
        applied = change.after.applied
        parts = [
            (len(applied.models_created), "model created", "models created"),
            (len(applied.models_updated), "model updated", "models updated"),
            (len(applied.models_deleted), "model deleted", "models deleted"),
            (len(applied.slots_created) + len(applied.slots_updated), "slot", "slots"),
            (len(applied.global_settings_changed), "global setting", "global settings"),
            (change.import_rows, "override", "overrides"),
        ]
        done = ", ".join(fmt.plural(n, one, many) for n, one, many in parts if n)
        return f"configuration applied: {done}{revert}"
    paths = ", ".join(change.changed_fields.paths)
    if change.kind in (pb.CHANGE_KIND_SLOT_CREATED, pb.CHANGE_KIND_SLOT_UPDATED):
        return f"slot {change.slot}: {paths}{revert}"
    if change.model_id:
        return f"model {change.model_id}: {paths}{revert}"
    return ""


def _timestamp(text: str) -> timestamp_pb2.Timestamp:
    try:
        moment = datetime.fromisoformat(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(f"{text!r} is not an ISO time") from exc
    stamp = timestamp_pb2.Timestamp()
    stamp.FromDatetime(moment if moment.tzinfo else moment.astimezone())
    return stamp


def _list(client: ModelConfigClient, args: argparse.Namespace) -> Message:
    filters = {
        "model_id": args.model,
        "slot": args.slot,
        "account_id": args.account,
        "actor": args.actor,
        "min_revision": args.min_revision,
        "max_revision": args.max_revision,
    }
    if args.since is not None:
        filters["start_time"] = args.since
    if args.until is not None:
        filters["end_time"] = args.until
    found = []
    for change in client.iter_changes(page_size=min(args.limit, 1000), **filters):
        found.append(change)
        if len(found) == args.limit:
            break
    return api.ListChangesResponse(changes=found)


def _show_list(response: api.ListChangesResponse, args: argparse.Namespace) -> str:
    return fmt.table(
        ("REVISION", "TIME", "ACTOR", "METHOD", "KIND", "CHANGE", "REASON"),
        (
            (
                c.revision,
                c.time.ToDatetime().strftime("%Y-%m-%dT%H:%M:%SZ"),
                c.actor or "-",
                c.method or "-",
                _kind(c),
                summary(c),
                c.reason,
            )
            for c in response.changes
        ),
    )


def _revert(client: ModelConfigClient, args: argparse.Namespace) -> Message:
    return client.revert_change(
        args.revision,
        force=args.force,
        validate_only=args.validate_only,
        reason=args.reason,
        timeout=args.timeout,
    )


def _show_reverted(response: api.RevertChangeResponse, args: argparse.Namespace) -> str:
    if not response.HasField("change"):
        return f"nothing to restore: revision {args.revision}'s earlier values hold already"
    verb = "would record" if args.validate_only else "recorded"
    return (
        f"{verb}: {_kind(response.change)} {summary(response.change)}\n"
        f"{fmt.footer(revision=response.revision)}"
    )


def add_commands(subparsers) -> None:
    changes = group(subparsers, "changes", "the audit trail: who changed what, and reverting it")
    listing = command(changes, "list", _list, _show_list, "list changes, newest first")
    listing.add_argument("--model", type=int, default=0, help="only changes concerning this id")
    listing.add_argument("--slot", default="", help="only changes concerning this slot")
    listing.add_argument("--account", default="", help="only changes of this account")
    listing.add_argument("--actor", default="", help="only changes by this actor")
    listing.add_argument("--since", type=_timestamp, help="only from this ISO time on")
    listing.add_argument("--until", type=_timestamp, help="only before this ISO time")
    listing.add_argument("--min-revision", type=int, default=0, help="only from this revision")
    listing.add_argument("--max-revision", type=int, default=0, help="only up to this revision")
    listing.add_argument("--limit", type=int, default=50, help="at most this many (default 50)")
    reverting = command(
        changes, "revert", _revert, _show_reverted, "restore what a change replaced"
    )
    reverting.add_argument("revision", metavar="REVISION", type=int, help="the change's revision")
    reverting.add_argument(
        "--force", action="store_true", help="even if what it touched has changed since"
    )
    reverting.add_argument(
        "--validate-only", action="store_true", help="run every check and change nothing"
    )
