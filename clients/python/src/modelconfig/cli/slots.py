"""modelconfigctl slots: list, create and change the slots models are chosen for."""

from __future__ import annotations

import argparse

from google.protobuf.message import Message

from .._client import ModelConfigClient
from ..v1 import model_config_service_pb2 as api
from ..v1 import resources_pb2 as pb
from . import output as fmt
from .errors import EXIT_USAGE, CommandError
from .output import TYPES
from .parsing import command, group
from .refs import model_id


def _list(client: ModelConfigClient, args: argparse.Namespace) -> Message:
    return client.list_slots()


def _show_list(response: api.ListSlotsResponse, args: argparse.Namespace) -> str:
    table = fmt.table(
        ("SLOT", "PROVIDER", "TYPE", "DEFAULT", "DISPLAY NAME"),
        (
            (
                s.name,
                s.required_provider,
                fmt.model_type(s.required_model_type),
                fmt.name(s.default_model),
                s.display_name,
            )
            for s in response.slots
        ),
    )
    return f"{table}\n\n{fmt.footer(revision=response.revision)}"


def _create(client: ModelConfigClient, args: argparse.Namespace) -> Message:
    slot = pb.Slot(
        name=args.name,
        display_name=args.display_name,
        required_provider=args.provider,
        required_model_type=TYPES[args.type],
        default_model_id=model_id(client, args.default),
    )
    return client.create_slot(slot, reason=args.reason)


def _update(client: ModelConfigClient, args: argparse.Namespace) -> Message:
    slot = pb.Slot(name=args.name)
    mask: list[str] = []
    if args.display_name is not None:
        slot.display_name, mask = args.display_name, [*mask, "display_name"]
    if args.default is not None:
        slot.default_model_id, mask = model_id(client, args.default), [*mask, "default_model_id"]
    if args.provider is not None:
        slot.required_provider, mask = args.provider, [*mask, "required_provider"]
    if args.type is not None:
        slot.required_model_type, mask = TYPES[args.type], [*mask, "required_model_type"]
    if not mask:
        raise CommandError(
            "slots update: nothing to change; name a field to change (see --help)",
            reason="NOTHING_TO_CHANGE",
            exit_code=EXIT_USAGE,
        )
    return client.update_slot(slot, mask, reason=args.reason)


def _show_written(response: api.CreateSlotResponse, args: argparse.Namespace) -> str:
    s = response.slot
    takes = f"{s.required_provider} {fmt.model_type(s.required_model_type)} models"
    return (
        f"slot {s.name}: {takes}, default {fmt.name(s.default_model)}\n"
        f"{fmt.footer(revision=response.revision)}"
    )


def add_commands(subparsers) -> None:
    slots = group(subparsers, "slots", "the slots models are chosen for")
    command(slots, "list", _list, _show_list, "list every slot with its default")
    creating = command(
        slots, "create", _create, _show_written, "add a slot (no code change needed)"
    )
    creating.add_argument("name", metavar="NAME", help="e.g. google_model")
    creating.add_argument("--provider", required=True, help="the provider it requires")
    creating.add_argument(
        "--type", required=True, choices=sorted(TYPES), help="the model type it requires"
    )
    creating.add_argument(
        "--default", required=True, metavar="MODEL", help="its default model: id, name or alias"
    )
    creating.add_argument("--display-name", default="", help="a human-readable name")
    updating = command(
        slots, "update", _update, _show_written, "change a slot's default or display name"
    )
    updating.add_argument("name", metavar="NAME", help="the slot")
    updating.add_argument("--default", metavar="MODEL", help="a new default model")
    updating.add_argument("--display-name", help="a new display name")
    updating.add_argument("--provider", help="a new provider (only while no setting uses it)")
    updating.add_argument(
        "--type", choices=sorted(TYPES), help="a new type (only while no setting uses it)"
    )
