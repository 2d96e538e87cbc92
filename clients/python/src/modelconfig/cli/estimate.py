"""modelconfigctl estimate: what a volume of use costs under a slot's model and its alternatives."""

from __future__ import annotations

import argparse
import re
from decimal import Decimal

from google.protobuf.message import Message

from .._client import ModelConfigClient
from ..v1 import model_config_service_pb2 as api
from ..v1 import resources_pb2 as pb
from . import output as fmt
from .parsing import command

_SUFFIXES = {"": 1, "k": 10**3, "m": 10**6, "b": 10**9, "g": 10**9}
_COUNT = re.compile(r"^(\d+(?:\.\d+)?)([kmbg]?)$", re.IGNORECASE)


def count(text: str) -> int:
    """`10M` -> 10,000,000; `2.5k` -> 2,500; `1_000` and `1,000` too. Whole counts only."""
    match = _COUNT.fullmatch(text.strip().replace("_", "").replace(",", ""))
    if match is None:
        raise argparse.ArgumentTypeError(f"{text!r} is not a count such as 1000, 2.5k or 10M")
    number, suffix = match.groups()
    value = Decimal(number) * _SUFFIXES[suffix.lower()]
    if value != value.to_integral_value():
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole count")
    return int(value)


def _estimate(client: ModelConfigClient, args: argparse.Namespace) -> Message:
    return client.estimate_cost(
        args.slot,
        account_id=args.account or "",
        # A read: without --account it prices what follows the global setting.
        scope=pb.SCOPE_ACCOUNT if args.account else pb.SCOPE_GLOBAL,
        input_tokens=args.input_tokens,
        cached_input_tokens=args.cached_input_tokens,
        output_tokens=args.output_tokens,
        images=args.images,
        weight_by_accounts=args.weighted,
        image_size=args.image_size,
        image_quality=args.image_quality,
    )


def _show(response: api.EstimateCostResponse, args: argparse.Namespace) -> str:
    table = fmt.table(
        ("MODEL", "COST", "DIFFERENCE", "", "MISSING PRICES"),
        (
            (
                fmt.name(e.model),
                fmt.money(e.cost) or "unknown",
                "" if e.current else (fmt.money(e.difference) if e.difference else ""),
                "current" if e.current else "",
                ", ".join(e.missing_prices),
            )
            for e in response.estimates
        ),
    )
    lines = [table, ""]
    if args.weighted:
        lines.append(
            f"for {fmt.plural(response.accounts_following, 'account')} following the global "
            f"setting; {fmt.plural(response.accounts_overriding, 'account')} with their own "
            "override would not move with a switch"
        )
    lines.append(fmt.footer(revision=response.revision))
    return "\n".join(lines)


def add_commands(subparsers) -> None:
    estimating = command(
        subparsers,
        "estimate",
        _estimate,
        _show,
        "what a volume per period costs under a slot's model and every model it accepts",
    )
    estimating.add_argument("slot", metavar="SLOT", help="the slot, e.g. openai_model")
    estimating.add_argument(
        "--account", help="price this account's model (default: what follows the global setting)"
    )
    for flag, help_text in (
        ("--input-tokens", "input tokens per period, e.g. 10M"),
        ("--cached-input-tokens", "cached input tokens per period"),
        ("--output-tokens", "output tokens per period, e.g. 2M"),
        ("--images", "images per period"),
    ):
        estimating.add_argument(flag, type=count, default=0, help=help_text)
    estimating.add_argument(
        "--image-size", default="", metavar="WxH", help="price images at this size (with --quality)"
    )
    estimating.add_argument(
        "--quality", dest="image_quality", default="", help="price images at this quality, e.g. hd"
    )
    estimating.add_argument(
        "--weighted",
        action="store_true",
        help="the volume is per account: multiply by the accounts a global switch moves",
    )
