"""ImportOverrides and `modelconfigctl import`: all rows or none, bad rows named by line."""

from __future__ import annotations

import json
import threading
import time

import pytest

from modelconfig import FailedPrecondition, InvalidArgument, NotFound
from modelconfig.cli import main as ctl
from modelconfig.v1 import model_config_service_pb2 as api
from modelconfig.v1 import resources_pb2 as pb


def record(line, account, slot, model) -> api.OverrideRecord:
    r = api.OverrideRecord(line=line, account_id=account, slot=slot)
    if isinstance(model, int):
        r.model_id = model
    else:
        r.model_name = model
    return r


def test_import_applies_every_row_with_one_revision(client):
    before = client.get_global_settings().revision
    rows = [record(i + 2, f"acct-{i}", "openai_model", "gpt-3.5-turbo") for i in range(250)]
    rows.append(record(300, "acct-0", "runware_model", "runware:97@1"))
    reply = client.import_overrides(rows, chunk_size=100)
    assert (reply.rows, reply.accounts, reply.revision) == (251, 250, before + 1)
    resolved = client.resolve_for_account("acct-0")
    assert {s.slot: s.source for s in resolved.slots}["runware_model"] == pb.SOURCE_ACCOUNT
    assert resolved.etag == f"a{reply.revision}"
    assert client.get_model_usage(2).account_override_count == 250


def test_import_replaces_existing_overrides(client):
    client.set_model("openai_model", "gpt-3.5-turbo", account_id="acme")
    client.import_overrides([record(2, "acme", "openai_model", 3)])
    assert client.resolve_for_account("acme", ["openai_model"]).slots[0].model.id == 3


@pytest.mark.parametrize(
    ("bad", "error", "reason"),
    [
        (record(7, "bad id", "openai_model", 1), InvalidArgument, "INVALID_ACCOUNT_ID"),
        (record(7, "x", "nope", 1), InvalidArgument, "UNKNOWN_SLOT"),
        (record(7, "x", "openai_model", "no-such-model"), NotFound, "MODEL_NOT_FOUND"),
        (record(7, "x", "openai_model", "dall-e-3"), FailedPrecondition, "MODEL_TYPE_MISMATCH"),
        (
            record(7, "x", "openai_model", "claude-3-haiku-20240307"),
            FailedPrecondition,
            "PROVIDER_MISMATCH",
        ),
        (record(7, "ok-3", "openai_model", 1), InvalidArgument, "DUPLICATE_ROW"),
    ],
)
def test_one_bad_row_rejects_the_import_naming_its_line(client, bad, error, reason):
    before = client.get_global_settings().revision
    rows = [record(i + 2, f"ok-{i}", "openai_model", 2) for i in range(5)] + [bad]
    with pytest.raises(error) as err:
        client.import_overrides(rows)
    assert err.value.reason == reason
    assert err.value.metadata["line"] == "7"
    assert [v.field for v in err.value.field_violations] == ["line 7"]
    assert client.get_global_settings().revision == before
    assert client.resolve_for_account("ok-0").etag == "a0"


def test_every_bad_row_is_listed(client):
    rows = [
        record(10, "bad id", "openai_model", 1),
        record(11, "fine", "openai_model", 1),
        record(12, "y", "openai_model", "dall-e-3"),
    ]
    with pytest.raises(InvalidArgument) as err:
        client.import_overrides(rows)
    assert [v.field for v in err.value.field_violations] == ["line 10", "line 12"]
    assert err.value.metadata["bad_rows"] == "2"


def test_inactive_model_row_is_refused(client):
    client.update_model(pb.Model(id=3, is_active=False), ["is_active"])
    with pytest.raises(FailedPrecondition) as err:
        client.import_overrides([record(2, "x", "openai_model", 3)])
    assert err.value.reason == "MODEL_INACTIVE"


def test_validate_only_import_changes_nothing(client):
    before = client.get_global_settings().revision
    reply = client.import_overrides([record(2, "x", "openai_model", 2)], validate_only=True)
    assert (reply.rows, reply.revision) == (1, before)
    assert client.resolve_for_account("x").etag == "a0"


def test_empty_import_is_invalid(client):
    with pytest.raises(InvalidArgument) as err:
        client.import_overrides([])
    assert err.value.reason == "EMPTY_IMPORT"


def test_readers_never_see_part_of_an_import(daemon):
    client = daemon.client
    accounts = [f"acct-{i}" for i in range(600)]
    probe = accounts[::60]
    seen: list[set[int]] = []
    done = threading.Event()

    def reader() -> None:
        while not done.is_set():
            batch = client.resolve_for_accounts(probe, ["openai_model"])
            seen.append({r.slots[0].model.id for r in batch.results})

    thread = threading.Thread(target=reader)
    thread.start()
    try:
        client.import_overrides(
            [record(i, a, "openai_model", 2) for i, a in enumerate(accounts, start=2)],
            chunk_size=50,
        )
    finally:
        done.set()
        thread.join()
    # One State answers a batch: either none of the import or all of it, never a mix.
    assert seen and all(models in ({1}, {2}) for models in seen)
    assert client.resolve_for_accounts(probe, ["openai_model"]).results[-1].slots[0].model.id == 2


def run_ctl(daemon, *args: str) -> int:
    return ctl.main(["--target", daemon.address, *args])


def test_ctl_imports_csv(daemon, tmp_path, capsys):
    path = tmp_path / "overrides.csv"
    path.write_text(
        "account_id,slot,model\nacme,openai_model,gpt-3.5-turbo\n"
        "acme,runware_model,6\nbeta,anthropic_model,claude-3-haiku-20240307\n"
    )
    assert run_ctl(daemon, "import", str(path)) == 0
    assert "imported 3 overrides for 2 accounts" in capsys.readouterr().out
    resolved = daemon.client.resolve_for_account("beta", ["anthropic_model"])
    assert resolved.slots[0].model.model_name == "claude-3-haiku-20240307"


def test_ctl_imports_json_lines_with_progress(daemon, tmp_path, capsys):
    path = tmp_path / "overrides.jsonl"
    path.write_text(
        "\n".join(
            json.dumps({"account_id": f"a{i}", "slot": "openai_model", "model": 2})
            for i in range(20)
        )
    )
    assert run_ctl(daemon, "import", str(path), "--progress") == 0
    out, err = capsys.readouterr()
    assert "imported 20 overrides for 20 accounts" in out
    assert "20/20 rows" in err


def test_ctl_names_the_bad_line_and_applies_nothing(daemon, tmp_path, capsys):
    path = tmp_path / "overrides.csv"
    path.write_text("account_id,slot,model\nacme,openai_model,2\nbeta,openai_model,dall-e-3\n")
    assert run_ctl(daemon, "import", str(path)) == 4  # refused by a rule
    err = capsys.readouterr().err
    assert "MODEL_TYPE_MISMATCH" in err and "line 3" in err
    assert daemon.client.resolve_for_account("acme").etag == "a0"


@pytest.mark.parametrize(
    ("name", "text", "message"),
    [
        ("x.csv", "account,slot\n", "header"),
        ("x.csv", "account_id,slot,model\na,b\n", ":2: expected 3 columns"),
        ("x.jsonl", '{"account_id": "a"}\n', ":1: expected an object"),
        ("x.jsonl", "{not json\n", ":1: not JSON"),
        ("x.txt", "", "cannot tell the format"),
    ],
)
def test_ctl_refuses_malformed_files_before_sending(daemon, tmp_path, capsys, name, text, message):
    path = tmp_path / name
    path.write_text(text)
    assert run_ctl(daemon, "import", str(path)) == 1
    assert message in capsys.readouterr().err


def test_a_second_concurrent_import_is_aborted(client):
    from modelconfig import ImportInProgress

    release = threading.Event()
    outcome: list[object] = []

    def slow_rows():
        yield record(2, "first", "openai_model", 2)
        release.wait(30)

    def first_import() -> None:
        while True:
            try:
                outcome.append(client.import_overrides(slow_rows(), chunk_size=1))
                return
            except ImportInProgress:  # a probe below got in first and ran for a moment: again
                if release.is_set():
                    raise

    def first_is_running() -> bool:
        try:
            client.import_overrides([record(2, "probe", "openai_model", 2)], validate_only=True)
        except ImportInProgress:
            return True
        return False

    thread = threading.Thread(target=first_import)
    thread.start()
    try:
        deadline = time.monotonic() + 15
        while not first_is_running():
            assert time.monotonic() < deadline, "the first import never showed as running"
            time.sleep(0.02)
        with pytest.raises(ImportInProgress) as err:
            client.import_overrides([record(2, "second", "openai_model", 2)])
        assert err.value.reason == "IMPORT_IN_PROGRESS"
    finally:
        release.set()
        thread.join()
    assert outcome and outcome[0].rows == 1
    assert client.import_overrides([record(2, "second", "openai_model", 2)]).rows == 1


def test_ctl_reads_a_csv_saved_with_a_byte_order_mark(daemon, tmp_path, capsys):
    path = tmp_path / "overrides.csv"
    rows = "account_id,slot,model\nacme,openai_model,gpt-3.5-turbo\n"
    path.write_text(rows, encoding="utf-8-sig")
    assert path.read_bytes().startswith(b"\xef\xbb\xbf")
    assert run_ctl(daemon, "import", str(path)) == 0
    resolved = daemon.client.resolve_for_account("acme", slots=["openai_model"])
    assert resolved.slots[0].model.model_name == "gpt-3.5-turbo"
