"""modelconfigctl models: list, show, create, update, (de)activate and delete catalog models."""

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
from .refs import model_id, model_ref

# flag -> Model field, for the flags `create` and `update` share (besides --type, --alias and
# the activity flags, which need more than a copy).
_TEXT_FIELDS = (
    ("name", "model_name"),
    ("display_name", "display_name"),
    ("provider", "provider"),
    ("input_price", "input_price_per_1m_tokens"),
    ("cached_input_price", "cached_input_price_per_1m_tokens"),
    ("output_price", "output_price_per_1m_tokens"),
    ("price_per_image", "price_per_image"),
    ("context_window", "context_window"),
    ("max_output_tokens", "max_output_tokens"),
)


def _list(client: ModelConfigClient, args: argparse.Namespace) -> Message:
    """Every page, as one response carrying the revision of the last page."""
    models: list[pb.Model] = []
    token = ""
    while True:
        page = client.list_models(
            provider=args.provider,
            model_type=TYPES.get(args.type, pb.MODEL_TYPE_UNSPECIFIED),
            active_only=args.active_only,
            page_size=args.page_size,
            page_token=token,
            deprecation=args.deprecation,
        )
        models.extend(page.models)
        token = page.next_page_token
        if not token:
            return api.ListModelsResponse(models=models, revision=page.revision)


def _show_list(response: api.ListModelsResponse, args: argparse.Namespace) -> str:
    return fmt.table(
        ("ID", "NAME", "PROVIDER", "TYPE", "ACTIVE", "DEPRECATED", "LABEL"),
        (
            (
                m.id,
                m.model_name,
                m.provider,
                fmt.model_type(m.model_type),
                fmt.yes_no(m.is_active),
                m.deprecation_date or "-",
                m.label,
            )
            for m in response.models
        ),
    )


def _get(client: ModelConfigClient, args: argparse.Namespace) -> Message:
    return client.get_model(model_ref(args.ref)).model


def _show_model(model: pb.Model, args: argparse.Namespace) -> str:
    pairs = [
        ("id", model.id),
        ("name", model.model_name),
        ("display name", model.display_name),
        ("provider", model.provider),
        ("type", fmt.model_type(model.model_type)),
        ("active", fmt.yes_no(model.is_active)),
        ("input per 1M tokens", model.input_price_per_1m_tokens),
        ("cached input per 1M tokens", model.cached_input_price_per_1m_tokens),
        ("output per 1M tokens", model.output_price_per_1m_tokens),
        ("price per image", model.price_per_image),
        ("context window", model.context_window or ""),
        ("max output tokens", model.max_output_tokens or ""),
        ("aliases", ", ".join(model.aliases)),
        ("label", model.label),
        ("deprecated from", model.deprecation_date),
        ("successor", model.successor_id or ""),
    ]
    text = fmt.fields([(key, value) for key, value in pairs if value != ""])
    if model.image_prices:
        text += "\n\nprices per image:\n" + _indented(
            (f"{p.size} {p.quality}", " ".join(filter(None, (p.price, _checked(p)))))
            for p in model.image_prices
        )
    if model.price_sources:
        text += "\n\nprice sources:\n" + _indented(
            (_PRICE_NAMES.get(s.price, s.price), _checked(s)) for s in model.price_sources
        )
    return text


def _indented(pairs) -> str:
    return "\n".join(f"  {line}" for line in fmt.fields(list(pairs)).splitlines())


_PRICE_NAMES = {
    "input_price_per_1m_tokens": "input price",
    "cached_input_price_per_1m_tokens": "cached input price",
    "output_price_per_1m_tokens": "output price",
    "price_per_image": "price per image",
}


def _checked(price: pb.ImagePrice | pb.PriceSource) -> str:
    """`checked 2026-11-30, https://...`: where and when a price was checked, when known."""
    day = f"checked {price.checked_on}" if price.checked_on else ""
    known = ", ".join(part for part in (day, price.source_url) if part)
    return f"({known})" if isinstance(price, pb.ImagePrice) and known else known


def _fill(model: pb.Model, args: argparse.Namespace) -> list[str]:
    """Copy the flags given onto `model`; the Model fields they set, for an update mask."""
    mask = []
    for flag, field in _TEXT_FIELDS:
        value = getattr(args, flag)
        if value is not None:
            setattr(model, field, value)
            mask.append(field)
    if args.type is not None:
        model.model_type = TYPES[args.type]
        mask.append("model_type")
    if args.aliases is not None:
        model.aliases[:] = args.aliases
        mask.append("aliases")
    if args.active is not None:
        model.is_active = args.active
        mask.append("is_active")
    if args.deprecation_date is not None:
        model.deprecation_date = args.deprecation_date
        mask.append("deprecation_date")
    return mask


def _successor(client: ModelConfigClient, model: pb.Model, mask: list[str], ref: str | None):
    if ref is not None:
        model.successor_id = model_id(client, ref) if ref else 0
        mask.append("successor_id")


def _create(client: ModelConfigClient, args: argparse.Namespace) -> Message:
    model = pb.Model()
    _successor(client, model, _fill(model, args), args.successor)
    model.is_active = args.active is not False  # active unless --inactive
    return client.create_model(model, reason=args.reason).model


def _show_created(model: pb.Model, args: argparse.Namespace) -> str:
    kind = fmt.a(f"{model.provider} {fmt.model_type(model.model_type)} model")
    state = "active" if model.is_active else "inactive: no slot selects it until activated"
    head = f"created model {model.id} {model.model_name}, {kind} ({state})"
    return f"{head}\n{_show_model(model, args)}"


def _update(client: ModelConfigClient, args: argparse.Namespace) -> Message:
    model = pb.Model()
    mask = _fill(model, args)
    _successor(client, model, mask, args.successor)
    if args.clear_aliases:
        if args.aliases:
            raise CommandError(
                "models update: --alias and --clear-aliases contradict each other",
                reason="CONTRADICTING_FLAGS",
                exit_code=EXIT_USAGE,
            )
        mask.append("aliases")
    if not mask:
        raise CommandError(
            "models update: nothing to change; name a field to change (see --help)",
            reason="NOTHING_TO_CHANGE",
            exit_code=EXIT_USAGE,
        )
    model.id = model_id(client, args.ref)
    return client.update_model(model, mask, reason=args.reason).model


def _show_updated(model: pb.Model, args: argparse.Namespace) -> str:
    return f"updated model {model.id} {model.model_name}\n{_show_model(model, args)}"


def _usage(client: ModelConfigClient, args: argparse.Namespace) -> Message:
    """One page of accounts, or with --all every page, as one response."""
    found = model_id(client, args.ref)
    usage = client.get_model_usage(found, page_size=args.page_size, page_token=args.page_token)
    if args.all and usage.next_page_token:
        accounts = client.iter_model_accounts(found, page_size=args.page_size or 1000)
        usage.account_ids[:] = list(accounts)
        usage.next_page_token = ""
    args.model_id = found
    return usage


def _show_usage(usage: api.GetModelUsageResponse, args: argparse.Namespace) -> str:
    accounts = ", ".join(usage.account_ids) or "-"
    if usage.next_page_token:
        accounts += ", ... (--all lists every one)"
    lines = fmt.fields(
        [
            ("model", args.model_id),
            ("global slots", ", ".join(usage.global_slots) or "-"),
            ("default slots", ", ".join(usage.default_slots) or "-"),
            ("account overrides", usage.account_override_count),
            ("accounts", accounts),
            ("revision", usage.revision),
        ]
    )
    if usage.next_page_token:
        lines += f"\nnext page: --page-token {usage.next_page_token}"
    return lines


def _delete(client: ModelConfigClient, args: argparse.Namespace) -> Message:
    args.model_id = model_id(client, args.ref)
    return client.delete_model(args.model_id, reason=args.reason)


def _show_deleted(response: api.DeleteModelResponse, args: argparse.Namespace) -> str:
    return f"deleted model {args.model_id}\n{fmt.footer(revision=response.revision)}"


def _set_active(client: ModelConfigClient, args: argparse.Namespace) -> Message:
    model = pb.Model(id=model_id(client, args.ref), is_active=args.active)
    return client.update_model(model, ["is_active"], reason=args.reason).model


def _show_activity(model: pb.Model, args: argparse.Namespace) -> str:
    return f"model {model.id} {model.model_name} is {'active' if model.is_active else 'inactive'}"


def _retire(client: ModelConfigClient, args: argparse.Namespace) -> Message:
    old, new = model_id(client, args.ref), model_id(client, args.successor_ref)
    return client.retire_model(old, new, validate_only=args.validate_only, reason=args.reason)


def _show_retired(response: api.RetireModelResponse, args: argparse.Namespace) -> str:
    old, new = response.model, response.successor
    moved = [
        f"global setting of {', '.join(response.global_slots)}" if response.global_slots else "",
        f"default of {', '.join(response.default_slots)}" if response.default_slots else "",
        f"{fmt.plural(response.account_overrides, 'override')} of "
        f"{fmt.plural(response.accounts, 'account')}"
        if response.account_overrides
        else "",
    ]
    what = "; ".join(m for m in moved if m) or "no setting used it"
    verb = "would retire" if args.validate_only else "retired"
    head = f"{verb} model {old.id} {old.model_name} to {new.id} {new.model_name}: {what}"
    return f"{head}\n{fmt.footer(revision=response.revision)}"


def _add_field_flags(parser: argparse.ArgumentParser, *, creating: bool) -> None:
    # Unset flags stay None: an update sends only the fields given (its mask).
    parser.add_argument(
        "--name", required=creating, help="the provider's id of it, e.g. gpt-4o-mini"
    )
    parser.add_argument("--display-name", help="a human-readable name (default: --name)")
    parser.add_argument("--provider", required=creating, help="in lower case, e.g. openai")
    parser.add_argument(
        "--type", required=creating, choices=sorted(TYPES), help="what it produces"
    )
    for flag, what in (
        ("--input-price", "USD per 1M input tokens, e.g. 0.15"),
        ("--cached-input-price", "USD per 1M cached input tokens (text models)"),
        ("--output-price", "USD per 1M output tokens"),
        ("--price-per-image", "USD per generated image (image models)"),
    ):
        parser.add_argument(flag, metavar="USD", help=what + ("" if creating else "; '' clears"))
    parser.add_argument("--context-window", type=int, metavar="TOKENS", help="tokens")
    parser.add_argument("--max-output-tokens", type=int, metavar="TOKENS", help="tokens")
    parser.add_argument(
        "--alias",
        dest="aliases",
        action="append",
        metavar="ALIAS",
        help="another name it is known by; repeat for more"
        + ("" if creating else " (replaces the aliases it has)"),
    )
    parser.add_argument(
        "--deprecation-date",
        metavar="YYYY-MM-DD",
        help="the day (UTC) it counts as deprecated from" + ("" if creating else "; '' clears"),
    )
    parser.add_argument(
        "--successor",
        metavar="MODEL",
        help="the model that replaces it (id, name or alias)" + ("" if creating else "; '' clears"),
    )
    activity = parser.add_mutually_exclusive_group()
    if not creating:
        activity.add_argument(
            "--active", dest="active", action="store_const", const=True, help="let slots select it"
        )
    activity.add_argument(
        "--inactive",
        dest="active",
        action="store_const",
        const=False,
        help="keep slots from selecting it" + (" (default: active)" if creating else ""),
    )


def add_commands(subparsers) -> None:
    models = group(subparsers, "models", "the model catalog")
    listing = command(models, "list", _list, _show_list, "list catalog models")
    listing.add_argument("--provider", default="", help="only this provider, e.g. openai")
    listing.add_argument("--type", choices=sorted(TYPES), help="only this model type")
    listing.add_argument("--active-only", action="store_true", help="only active models")
    lifecycle = listing.add_mutually_exclusive_group()
    lifecycle.set_defaults(deprecation=pb.DEPRECATION_FILTER_UNSPECIFIED)
    for flag, value, help_text in (
        ("--deprecated", pb.DEPRECATION_FILTER_SCHEDULED, "only models with a deprecation date"),
        ("--past-deprecation", pb.DEPRECATION_FILTER_PAST, "only models past that date (UTC)"),
        ("--current", pb.DEPRECATION_FILTER_CURRENT, "only models not (yet) deprecated"),
    ):
        lifecycle.add_argument(
            flag, dest="deprecation", action="store_const", const=value, help=help_text
        )
    listing.add_argument(
        "--page-size", type=int, default=0, help="models per request (default: the daemon's)"
    )
    shown = command(models, "show", _get, _show_model, "show one model", aliases=["get"])
    shown.add_argument("ref", metavar="MODEL", help="the model's id, name or alias")
    creating = command(models, "create", _create, _show_created, "add a model to the catalog")
    _add_field_flags(creating, creating=True)
    updating = command(
        models, "update", _update, _show_updated, "change the fields of a model that are given"
    )
    updating.add_argument("ref", metavar="MODEL", help="the model's id, name or alias")
    _add_field_flags(updating, creating=False)
    updating.add_argument("--clear-aliases", action="store_true", help="remove every alias")
    usage = command(models, "usage", _usage, _show_usage, "show which settings use a model")
    usage.add_argument("ref", metavar="MODEL", help="the model's id, name or alias")
    usage.add_argument("--all", action="store_true", help="list every account, page after page")
    usage.add_argument(
        "--page-size", type=int, default=0, help="accounts per page (default: the daemon's, 100)"
    )
    usage.add_argument("--page-token", default="", help="the page a previous call pointed to")
    retiring = command(
        models,
        "retire",
        _retire,
        _show_retired,
        "move every setting that uses a model to its successor and deactivate it (one change)",
    )
    retiring.add_argument("ref", metavar="MODEL", help="the model to retire: id, name or alias")
    retiring.add_argument(
        "--to", dest="successor_ref", required=True, metavar="MODEL", help="its successor"
    )
    retiring.add_argument(
        "--validate-only", action="store_true", help="say what would move, change nothing"
    )
    for name, run, show, help in (
        ("delete", _delete, _show_deleted, "delete a model nothing uses"),
        ("activate", _set_active, _show_activity, "let slots select a model"),
        ("deactivate", _set_active, _show_activity, "stop slots from selecting a model"),
    ):
        changing = command(models, name, run, show, help)
        changing.add_argument("ref", metavar="MODEL", help="the model's id, name or alias")
        changing.set_defaults(active=name == "activate")
