"""Slots as data: ListSlots, CreateSlot and UpdateSlot over a real port, on both engines.

A new slot works with every settings RPC without a code change; a slot accepts only a default
that fits it, and keeps its provider and type while any setting uses it.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import grpc
import pytest

from modelconfig import AlreadyExists, FailedPrecondition, InvalidArgument, NotFound
from modelconfig.cli.main import main
from modelconfig.v1 import resources_pb2 as pb

SEEDED = [
    # name, display name, provider, type, default id, default name
    ("openai_model", "OpenAI Model", "openai", pb.MODEL_TYPE_TEXT, 1, "gpt-4o-mini"),
    ("dalle_model", "DALL-E Model", "openai", pb.MODEL_TYPE_IMAGE, 7, "dall-e-3"),
    ("runware_model", "Runware Model", "runware", pb.MODEL_TYPE_IMAGE, 6, "runware-flux-1.1-pro"),
    (
        "anthropic_model", "Anthropic Model", "anthropic", pb.MODEL_TYPE_TEXT, 4,
        "claude-3-5-sonnet-20241022",
    ),
]
GEMINI = "gemini-1.5-pro"


def rows(slots) -> list[tuple]:
    return [
        (
            s.name, s.display_name, s.required_provider, s.required_model_type,
            s.default_model_id, s.default_model.model_name,
        )
        for s in slots
    ]


def revision(client) -> int:
    return client.get_global_settings().revision


def create_gemini(client) -> pb.Model:
    return client.create_model(pb.Model(
        model_name=GEMINI, display_name="Gemini 1.5 Pro", provider="google",
        model_type=pb.MODEL_TYPE_TEXT, is_active=True, input_price_per_1m_tokens="1.25",
        output_price_per_1m_tokens="5",
    )).model


def google_slot(default_model_id: int, **fields) -> pb.Slot:
    """A google_model slot; `fields` replace any of its values (default_model_id included)."""
    values = {
        "name": "google_model", "display_name": "Google Model", "required_provider": "google",
        "required_model_type": pb.MODEL_TYPE_TEXT, "default_model_id": default_model_id,
    }
    return pb.Slot(**{**values, **fields})


@pytest.fixture
def gemini_slot(client) -> pb.Slot:
    """A google_model slot whose default is a new google model."""
    gemini = create_gemini(client)
    return client.create_slot(google_slot(gemini.id)).slot


def slot_of(client, name: str) -> pb.Slot:
    return next(s for s in client.list_slots().slots if s.name == name)


def deactivate(client, model_id: int) -> None:
    client.update_model(pb.Model(id=model_id, is_active=False), ["is_active"])


# -- ListSlots ---------------------------------------------------------------------------------


def test_list_slots_returns_the_seeded_slots_in_order(client):
    reply = client.list_slots()
    assert rows(reply.slots) == SEEDED
    assert reply.slots[0].default_model.label == (
        "GPT-4o Mini (gpt-4o-mini) - $0.15/$0.60 per 1M tokens")
    assert reply.revision == revision(client) == 1


# -- CreateSlot --------------------------------------------------------------------------------


def test_create_slot_stores_it_last_with_its_default(client):
    gemini = create_gemini(client)
    before = client.get_global_settings()
    reply = client.create_slot(google_slot(gemini.id))
    assert reply.revision == before.revision + 1
    assert rows([reply.slot]) == [
        ("google_model", "Google Model", "google", pb.MODEL_TYPE_TEXT, gemini.id, GEMINI)]
    listed = client.list_slots()
    assert rows(listed.slots) == [*SEEDED, rows([reply.slot])[0]]
    assert listed.revision == reply.revision
    after = client.get_global_settings()
    assert after.etag != before.etag and after.revision == reply.revision


def test_create_slot_display_name_defaults_to_its_name(client):
    reply = client.create_slot(pb.Slot(
        name="openai_backup", required_provider="openai", required_model_type=pb.MODEL_TYPE_TEXT,
        default_model_id=2,
    ))
    assert reply.slot.display_name == "openai_backup"
    assert reply.slot.default_model.model_name == "gpt-3.5-turbo"


def test_a_new_slot_works_with_every_settings_rpc(client, gemini_slot):
    gemini_id = gemini_slot.default_model_id
    settings = client.get_global_settings()
    new = settings.slots[-1]
    assert (new.slot, new.HasField("model"), new.default_model.model_name) == (
        "google_model", False, GEMINI)
    assert (new.required_provider, new.required_model_type, new.display_name) == (
        "google", pb.MODEL_TYPE_TEXT, "Google Model")
    got = client.resolve_for_account("acme", ["google_model"]).slots[0]
    assert (got.model.id, got.source) == (gemini_id, pb.SOURCE_DEFAULT)

    client.set_global_model("google_model", GEMINI)
    got = client.resolve_for_account("acme", ["google_model"]).slots[0]
    assert got.source == pb.SOURCE_GLOBAL
    assert client.get_global_settings().slots[-1].model.id == gemini_id

    client.set_model("google_model", gemini_id, account_id="acme")
    everything = client.resolve_for_account("acme")
    assert [s.slot for s in everything.slots][-1] == "google_model"
    assert everything.slots[-1].source == pb.SOURCE_ACCOUNT
    client.clear_account_model("acme", "google_model")
    client.clear_global_model("google_model")
    got = client.resolve_for_account("acme", ["google_model"]).slots[0]
    assert got.source == pb.SOURCE_DEFAULT


def test_a_new_slot_refuses_models_of_another_provider(client, gemini_slot):
    with pytest.raises(FailedPrecondition) as err:
        client.set_model("google_model", "gpt-4o-mini", account_id="acme")
    assert err.value.reason == "PROVIDER_MISMATCH"
    assert err.value.metadata["required_provider"] == "google"


def test_accounts_with_overrides_from_before_the_slot_resolve_it_to_its_default(client):
    client.set_model("openai_model", 2, account_id="acme")
    client.set_model("anthropic_model", 5, account_id="acme")
    gemini = create_gemini(client)
    client.create_slot(google_slot(gemini.id))
    resolved = {s.slot: (s.model.id, s.source) for s in client.resolve_for_account("acme").slots}
    assert resolved == {
        "openai_model": (2, pb.SOURCE_ACCOUNT),
        "dalle_model": (7, pb.SOURCE_GLOBAL),
        "runware_model": (6, pb.SOURCE_GLOBAL),
        "anthropic_model": (5, pb.SOURCE_ACCOUNT),
        "google_model": (gemini.id, pb.SOURCE_DEFAULT),
    }
    # The account's override of the new slot joins its older ones.
    client.set_model("google_model", gemini.id, account_id="acme")
    resolved = {s.slot: s.source for s in client.resolve_for_account("acme").slots}
    assert resolved["google_model"] == resolved["openai_model"] == pb.SOURCE_ACCOUNT


def test_daemon_processes_share_a_new_slot_by_polling_and_after_restart(daemons, database_url):
    first = daemons.start(database_url)
    second = daemons.start(database_url)
    a, b = first.client(), second.client()
    a.set_model("openai_model", 3, account_id="globex")  # an account from before the slot
    gemini = create_gemini(b)
    created = b.create_slot(google_slot(gemini.id))

    deadline = time.monotonic() + 15
    while a.list_slots().revision < created.revision:
        assert time.monotonic() < deadline, first.describe("never saw the slot made elsewhere")
        time.sleep(0.05)
    assert [s.name for s in a.list_slots().slots][-1] == "google_model"
    a.set_model("google_model", GEMINI, account_id="acme")
    a.set_model("openai_model", 2, account_id="acme")
    got = a.resolve_for_account("acme", ["google_model"]).slots[0]
    assert (got.model.id, got.source) == (gemini.id, pb.SOURCE_ACCOUNT)

    second.terminate()
    assert second.wait_exit() == 0, second.describe("non-zero exit after SIGTERM")
    third = daemons.start(database_url)
    client = third.client()
    assert rows(client.list_slots().slots)[-1] == (
        "google_model", "Google Model", "google", pb.MODEL_TYPE_TEXT, gemini.id, GEMINI)
    acme = {s.slot: s.source for s in client.resolve_for_account("acme").slots}
    assert acme["google_model"] == acme["openai_model"] == pb.SOURCE_ACCOUNT
    globex = {s.slot: (s.model.id, s.source) for s in client.resolve_for_account("globex").slots}
    assert globex["google_model"] == (gemini.id, pb.SOURCE_DEFAULT)
    assert globex["openai_model"] == (3, pb.SOURCE_ACCOUNT)


def test_create_slot_with_a_taken_name_is_already_exists(client):
    before = revision(client)
    with pytest.raises(AlreadyExists) as err:
        client.create_slot(pb.Slot(
            name="openai_model", required_provider="openai",
            required_model_type=pb.MODEL_TYPE_TEXT, default_model_id=2,
        ))
    assert err.value.code == grpc.StatusCode.ALREADY_EXISTS
    assert err.value.reason == "SLOT_NAME_TAKEN"
    assert rows(client.list_slots().slots) == SEEDED
    assert revision(client) == before


@pytest.mark.parametrize(
    ("fields", "field"),
    [
        ({"name": "Bad Name"}, "slot.name"),
        ({"name": ""}, "slot.name"),
        ({"name": "9lives"}, "slot.name"),
        ({"required_provider": ""}, "slot.required_provider"),
        ({"required_provider": "Google"}, "slot.required_provider"),
        ({"required_model_type": pb.MODEL_TYPE_UNSPECIFIED}, "slot.required_model_type"),
        ({"default_model_id": 0}, "slot.default_model_id"),
    ],
    ids=["spaces", "empty", "digit-first", "no-provider", "upper-provider", "no-type",
         "no-default"],
)
def test_malformed_create_slot_is_invalid_argument(client, fields, field):
    before = revision(client)
    with pytest.raises(InvalidArgument) as err:
        client.create_slot(google_slot(**{"default_model_id": 1, **fields}))
    assert err.value.reason == "INVALID_SLOT"
    assert [v.field for v in err.value.field_violations] == [field]
    assert revision(client) == before
    assert len(client.list_slots().slots) == 4


def test_create_slot_with_an_unknown_default_is_not_found(client):
    with pytest.raises(NotFound) as err:
        client.create_slot(google_slot(999))
    assert err.value.reason == "MODEL_NOT_FOUND"
    assert err.value.metadata["model_id"] == "999"
    assert len(client.list_slots().slots) == 4


@pytest.mark.parametrize(
    ("slot", "reason", "sides"),
    [
        (google_slot(1), "PROVIDER_MISMATCH", ("'openai'", "'google'")),
        (
            pb.Slot(name="openai_text", required_provider="openai",
                    required_model_type=pb.MODEL_TYPE_TEXT, default_model_id=7),
            "MODEL_TYPE_MISMATCH",
            ("image", "text"),
        ),
    ],
    ids=["provider", "type"],
)
def test_create_slot_with_a_default_that_does_not_fit_names_both_sides(client, slot, reason,
                                                                     sides):
    before = revision(client)
    with pytest.raises(FailedPrecondition) as err:
        client.create_slot(slot)
    assert err.value.reason == reason
    assert all(side in err.value.message for side in sides), err.value.message
    assert slot.name in err.value.message
    assert revision(client) == before


def test_create_slot_with_an_inactive_default_is_model_inactive(client):
    deactivate(client, 3)
    with pytest.raises(FailedPrecondition) as err:
        client.create_slot(pb.Slot(
            name="openai_legacy", required_provider="openai",
            required_model_type=pb.MODEL_TYPE_TEXT, default_model_id=3,
        ))
    assert err.value.reason == "MODEL_INACTIVE"
    assert "gpt-4-turbo-2024-04-09" in err.value.message
    assert len(client.list_slots().slots) == 4


def test_a_new_slots_default_is_protected_like_any_default(client, gemini_slot):
    gemini_id = gemini_slot.default_model_id
    assert list(client.get_model_usage(gemini_id).default_slots) == ["google_model"]
    with pytest.raises(FailedPrecondition) as err:
        deactivate(client, gemini_id)
    assert err.value.reason == "MODEL_IN_USE"
    with pytest.raises(FailedPrecondition) as err:
        client.delete_model(gemini_id)
    assert [(v.type, v.subject) for v in err.value.violations] == [
        ("SLOT_DEFAULT", "google_model")]


# -- UpdateSlot --------------------------------------------------------------------------------


def test_moving_the_default_and_global_away_lets_the_model_be_deactivated(client):
    with pytest.raises(FailedPrecondition) as err:
        deactivate(client, 1)
    assert err.value.reason == "MODEL_IN_USE"
    assert ("SLOT_DEFAULT", "openai_model") in [(v.type, v.subject) for v in err.value.violations]

    reply = client.update_slot(pb.Slot(name="openai_model", default_model_id=2),
                               ["default_model_id"])
    assert (reply.slot.default_model_id, reply.slot.default_model.model_name) == (
        2, "gpt-3.5-turbo")
    with pytest.raises(FailedPrecondition) as err:  # the global setting still holds it
        deactivate(client, 1)
    assert [(v.type, v.subject) for v in err.value.violations] == [
        ("GLOBAL_SETTING", "openai_model")]

    client.set_global_model("openai_model", 2)
    deactivate(client, 1)
    assert not client.get_model(1).model.is_active
    got = client.resolve_for_account("acme", ["openai_model"]).slots[0]
    assert (got.model.id, got.source) == (2, pb.SOURCE_GLOBAL)


def test_update_slot_default_is_what_resolution_falls_back_to(client):
    client.clear_global_model("openai_model")
    client.update_slot(pb.Slot(name="openai_model", default_model_id=3), ["default_model_id"])
    got = client.resolve_for_account("acme", ["openai_model"]).slots[0]
    assert (got.model.id, got.source) == (3, pb.SOURCE_DEFAULT)
    assert client.get_global_settings().slots[0].default_model.id == 3


def test_update_slot_display_name(client):
    before = client.get_global_settings()
    reply = client.update_slot(pb.Slot(name="dalle_model", display_name="Images (OpenAI)"),
                               ["display_name"])
    assert reply.slot.display_name == "Images (OpenAI)"
    assert reply.revision == before.revision + 1
    assert slot_of(client, "dalle_model").display_name == "Images (OpenAI)"
    assert client.get_global_settings().slots[1].display_name == "Images (OpenAI)"
    assert slot_of(client, "dalle_model").default_model_id == 7  # untouched


def test_update_slot_without_a_mask_changes_the_populated_fields(client):
    client.update_slot(pb.Slot(name="dalle_model", display_name="Pictures"))
    slot = slot_of(client, "dalle_model")
    assert (slot.display_name, slot.required_provider, slot.default_model_id) == (
        "Pictures", "openai", 7)


@pytest.mark.parametrize(
    ("slot", "mask"),
    [
        (pb.Slot(name="openai_model", required_provider="anthropic", default_model_id=4),
         ["required_provider", "default_model_id"]),
        (pb.Slot(name="openai_model", required_model_type=pb.MODEL_TYPE_IMAGE,
                 default_model_id=7), ["required_model_type", "default_model_id"]),
    ],
    ids=["provider", "type"],
)
def test_provider_or_type_change_of_a_slot_with_a_global_is_slot_in_use(client, slot, mask):
    before = revision(client)
    with pytest.raises(FailedPrecondition) as err:
        client.update_slot(slot, mask)
    assert err.value.reason == "SLOT_IN_USE"
    assert err.value.metadata["slot"] == "openai_model"
    assert "global setting" in err.value.message
    assert rows(client.list_slots().slots) == SEEDED
    assert revision(client) == before


def test_provider_change_of_a_slot_with_overrides_only_is_slot_in_use(client):
    client.set_model("anthropic_model", 5, account_id="acme")  # anthropic_model has no global
    with pytest.raises(FailedPrecondition) as err:
        client.update_slot(
            pb.Slot(name="anthropic_model", required_provider="openai", default_model_id=2),
            ["required_provider", "default_model_id"],
        )
    assert err.value.reason == "SLOT_IN_USE"
    assert "account overrides" in err.value.message
    assert slot_of(client, "anthropic_model").required_provider == "anthropic"


def test_provider_and_type_of_an_unused_slot_can_change_when_the_default_fits(client):
    created = client.create_slot(pb.Slot(
        name="spare_model", required_provider="openai", required_model_type=pb.MODEL_TYPE_TEXT,
        default_model_id=2,
    ))
    reply = client.update_slot(
        pb.Slot(name="spare_model", required_provider="runware",
                required_model_type=pb.MODEL_TYPE_IMAGE, default_model_id=6),
        ["required_provider", "required_model_type", "default_model_id"],
    )
    assert reply.revision == created.revision + 1
    assert rows([slot_of(client, "spare_model")]) == [
        ("spare_model", "spare_model", "runware", pb.MODEL_TYPE_IMAGE, 6,
         "runware-flux-1.1-pro")]
    client.set_model("spare_model", "runware:97@1", account_id="acme")


def test_provider_change_of_an_unused_slot_whose_default_no_longer_fits_is_refused(client):
    client.create_slot(pb.Slot(
        name="spare_model", required_provider="openai", required_model_type=pb.MODEL_TYPE_TEXT,
        default_model_id=2,
    ))
    with pytest.raises(FailedPrecondition) as err:
        client.update_slot(pb.Slot(name="spare_model", required_provider="anthropic"),
                           ["required_provider"])
    assert err.value.reason == "PROVIDER_MISMATCH"
    assert "'openai'" in err.value.message and "'anthropic'" in err.value.message
    assert slot_of(client, "spare_model").required_provider == "openai"


@pytest.mark.parametrize(
    ("default", "error", "reason"),
    [
        (999, NotFound, "MODEL_NOT_FOUND"),
        (4, FailedPrecondition, "PROVIDER_MISMATCH"),
        (7, FailedPrecondition, "MODEL_TYPE_MISMATCH"),
    ],
)
def test_update_slot_to_a_default_that_does_not_fit_is_refused(client, default, error, reason):
    before = revision(client)
    with pytest.raises(error) as err:
        client.update_slot(pb.Slot(name="openai_model", default_model_id=default),
                           ["default_model_id"])
    assert err.value.reason == reason
    assert slot_of(client, "openai_model").default_model_id == 1
    assert revision(client) == before


def test_update_slot_to_an_inactive_default_is_model_inactive(client):
    deactivate(client, 3)
    with pytest.raises(FailedPrecondition) as err:
        client.update_slot(pb.Slot(name="openai_model", default_model_id=3),
                           ["default_model_id"])
    assert err.value.reason == "MODEL_INACTIVE"
    assert "gpt-4-turbo-2024-04-09" in err.value.message
    assert (err.value.metadata["slot"], err.value.metadata["model_id"]) == ("openai_model", "3")


def test_update_of_an_unknown_slot_is_not_found(client):
    with pytest.raises(NotFound) as err:
        client.update_slot(pb.Slot(name="gemini_model", display_name="x"), ["display_name"])
    assert err.value.reason == "SLOT_NOT_FOUND"
    assert err.value.metadata["slot"] == "gemini_model"


def test_update_slot_with_an_unknown_mask_path_is_invalid_update_mask(client):
    before = revision(client)
    with pytest.raises(InvalidArgument) as err:
        client.update_slot(pb.Slot(name="openai_model", display_name="x"),
                           ["display_name", "colour"])
    assert err.value.reason == "INVALID_UPDATE_MASK"
    assert err.value.metadata["paths"] == "colour"
    assert slot_of(client, "openai_model").display_name == "OpenAI Model"
    assert revision(client) == before


def test_no_op_update_slot_keeps_the_revision_and_etag(client):
    before = client.get_global_settings()
    reply = client.update_slot(
        pb.Slot(name="openai_model", display_name="OpenAI Model", default_model_id=1),
        ["display_name", "default_model_id"],
    )
    assert reply.revision == before.revision
    assert rows([reply.slot]) == SEEDED[:1]
    assert client.get_global_settings() == before


def test_every_slot_change_bumps_the_revision_and_global_etag_once(client):
    gemini = create_gemini(client)
    steps = [
        lambda: client.create_slot(google_slot(gemini.id)),
        lambda: client.update_slot(pb.Slot(name="google_model", display_name="Gemini"),
                                   ["display_name"]),
        lambda: client.update_slot(pb.Slot(name="openai_model", default_model_id=2),
                                   ["default_model_id"]),
    ]
    for step in steps:
        before = client.get_global_settings()
        reply = step()
        after = client.get_global_settings()
        assert reply.revision == after.revision == before.revision + 1
        assert after.etag != before.etag


def test_slot_changes_leave_account_etags_alone(client):
    reply = client.set_model("openai_model", 2, account_id="acme")
    client.update_slot(pb.Slot(name="openai_model", default_model_id=3), ["default_model_id"])
    assert client.resolve_for_account("acme").etag == reply.etag


# -- the command line --------------------------------------------------------------------------


@dataclass
class Run:
    code: int
    out: str
    err: str


@pytest.fixture
def ctl(daemon, capsys):
    def run(*args: str) -> Run:
        code = main(["--target", daemon.address, *args])
        out, err = capsys.readouterr()
        return Run(code, out, err)

    return run


def test_ctl_slots_list(ctl):
    run = ctl("slots", "list")
    assert (run.code, run.err) == (0, "")
    lines = run.out.split("\n\n")[0].splitlines()
    assert lines[0].split() == ["SLOT", "PROVIDER", "TYPE", "DEFAULT", "DISPLAY", "NAME"]
    assert [line.split() for line in lines[1:]] == [
        ["openai_model", "openai", "text", "gpt-4o-mini", "OpenAI", "Model"],
        ["dalle_model", "openai", "image", "dall-e-3", "DALL-E", "Model"],
        ["runware_model", "runware", "image", "runware-flux-1.1-pro", "Runware", "Model"],
        ["anthropic_model", "anthropic", "text", "claude-3-5-sonnet-20241022", "Anthropic",
         "Model"],
    ]
    assert run.out.endswith("\n\nrevision: 1\n")


def test_ctl_slots_create_by_default_name(ctl, client):
    create_gemini(client)
    run = ctl("slots", "create", "google_model", "--provider", "google", "--type", "text",
              "--default", GEMINI)
    assert (run.code, run.err) == (0, "")
    current = revision(client)
    assert run.out == (
        f"slot google_model: google text models, default {GEMINI}\nrevision: {current}\n")
    assert slot_of(client, "google_model").default_model.model_name == GEMINI


def test_ctl_slots_create_with_a_default_that_does_not_fit_fails(ctl, client):
    run = ctl("slots", "create", "google_model", "--provider", "google", "--type", "text",
              "--default", "gpt-4o-mini")
    assert (run.code, run.out) == (4, "")
    assert run.err.startswith("error: FAILED_PRECONDITION PROVIDER_MISMATCH: ")
    assert len(client.list_slots().slots) == 4


def test_ctl_slots_update_default(ctl, client):
    run = ctl("slots", "update", "openai_model", "--default", "gpt-3.5-turbo")
    assert (run.code, run.err) == (0, "")
    assert run.out.startswith("slot openai_model: openai text models, default gpt-3.5-turbo\n")
    assert slot_of(client, "openai_model").default_model_id == 2
