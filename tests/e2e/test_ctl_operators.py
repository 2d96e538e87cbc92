"""modelconfigctl's operator commands against a real daemon: export and apply (the round trip
into an empty daemon), retire and its revert, accounts list, the lifecycle and price sources in
models list/show, and estimates at an image size and quality."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from modelconfig.cli.main import main
from modelconfig.v1 import resources_pb2 as pb


def run(capsys, *args: str) -> tuple[int, str, str]:
    code = main(list(args))
    out, err = capsys.readouterr()
    return code, out, err


@pytest.fixture
def ctl(daemon, capsys):
    def call(*args: str) -> tuple[int, str, str]:
        return run(capsys, "--target", daemon.address, *args)

    return call


def ok(result: tuple[int, str, str]) -> str:
    code, out, err = result
    assert (code, err) == (0, ""), result
    return out


# -- export and apply --------------------------------------------------------------------------


def customize(client) -> None:
    client.create_model(pb.Model(model_name="o3", provider="openai",
                                 model_type=pb.MODEL_TYPE_TEXT, is_active=True,
                                 input_price_per_1m_tokens="2", output_price_per_1m_tokens="8"))
    client.set_model("anthropic_model", "claude-haiku-4-5", scope=pb.SCOPE_GLOBAL)
    client.set_model("openai_model", "gpt-5-mini", account_id="acme")
    client.set_model("dalle_model", "dall-e-3", account_id="globex")
    client.update_model(pb.Model(id=3, deprecation_date="2026-01-31", successor_id=9),
                        ["deprecation_date", "successor_id"])


@pytest.mark.parametrize("kind", ["jsonl", "csv"])
def test_export_apply_into_an_empty_daemon_export_gives_identical_files(
    ctl, client, capsys, daemons, tmp_path, kind
):
    customize(client)
    first, second = tmp_path / "first", tmp_path / "second"
    first.mkdir(), second.mkdir()
    out = ok(ctl("export", str(first / "prod.yaml"), "--overrides-format", kind))
    assert "to " + str(first / f"prod.overrides.{kind}") in out
    assert "2 overrides" in out
    document = yaml.safe_load((first / "prod.yaml").read_text())
    assert document["overrides"] == {"file": f"prod.overrides.{kind}", "count": 2}
    assert document["global_settings"]["anthropic_model"] == 16
    assert "label" not in document["models"][0]  # derived by the daemon: not kept
    empty = daemons.start(f"sqlite:///{tmp_path}/empty.db")
    target = ("--target", empty.address)
    out = ok(run(capsys, *target, "apply", str(first / "prod.yaml")))
    assert "+ model 23 o3" in out
    assert "~ global setting anthropic_model: none -> 16 claude-haiku-4-5-20251001" in out
    assert "~ 2 overrides of 2 accounts" in out and "applied in one change" in out
    ok(run(capsys, *target, "export", str(second / "prod.yaml"), "--overrides-format", kind))
    for name in ("prod.yaml", f"prod.overrides.{kind}"):
        assert (second / name).read_bytes() == (first / name).read_bytes(), name
    out = ok(run(capsys, *target, "apply", str(first / "prod.yaml")))
    assert out.startswith("nothing to change")


def test_apply_dry_run_prints_the_diff_and_changes_nothing(ctl, client, tmp_path):
    path = tmp_path / "prod.yaml"
    ok(ctl("export", str(path)))
    revision = client.get_global_settings().revision
    text = path.read_text().replace("display_name: GPT-4 Turbo\n", "display_name: GPT-4 T\n")
    path.write_text(text)
    (tmp_path / "prod.overrides.jsonl").write_text(
        '{"account_id": "acme", "slot": "openai_model", "model": "gpt-5-nano"}\n'
    )
    out = ok(ctl("apply", str(path), "--dry-run"))
    assert out.splitlines()[:3] == [
        '~ model 3 gpt-4-turbo-2024-04-09: display_name: "GPT-4 Turbo" -> "GPT-4 T"',
        "~ 1 override of 1 account",
        "would apply (dry run, nothing changed)",
    ]
    assert client.get_global_settings().revision == revision
    assert client.get_model(3).model.display_name == "GPT-4 Turbo"
    got = json.loads(ok(ctl("--output", "json", "apply", str(path))))
    assert got["models_updated"] == ["3"] and got["overrides_changed"] == "1"
    assert client.resolve_for_account("acme", ["openai_model"]).slots[0].model.id == 14


def test_apply_refused_by_a_rule_exits_4_and_changes_nothing(ctl, client, tmp_path):
    path = tmp_path / "prod.yaml"
    ok(ctl("export", str(path)))
    (tmp_path / "prod.overrides.jsonl").write_text(
        '{"account_id": "acme", "slot": "dalle_model", "model": 1}\n'
    )
    revision = client.get_global_settings().revision
    code, out, err = ctl("apply", str(path))
    assert (code, out) == (4, "")
    assert "MODEL_TYPE_MISMATCH" in err and "requires an image model" in err
    assert client.get_global_settings().revision == revision


def test_apply_of_a_file_that_is_no_configuration_is_a_failure(ctl, tmp_path):
    path = tmp_path / "x.yaml"
    path.write_text("just: text\n")
    code, out, err = ctl("apply", str(path))
    assert code != 0 and out == "" and "not a configuration" in err


# -- retire ------------------------------------------------------------------------------------


def test_models_retire_moves_everything_and_the_revert_moves_it_back(ctl, client):
    client.set_model("openai_model", "gpt-4o-mini", account_id="acme")
    out = ok(ctl("models", "retire", "gpt-4o-mini", "--to", "gpt-5-mini", "--validate-only"))
    assert out.startswith("would retire model 1 gpt-4o-mini to 13 gpt-5-mini: global setting "
                          "of openai_model; default of openai_model; 1 override of 1 account")
    assert client.get_model(1).model.is_active
    out = ok(ctl("models", "retire", "gpt-4o-mini", "--to", "gpt-5-mini",
                 "--reason", "gpt-4o-mini is retired"))
    assert out.startswith("retired model 1 gpt-4o-mini to 13 gpt-5-mini")
    assert client.resolve_for_account("acme", ["openai_model"]).slots[0].model.id == 13
    change = client.list_changes(page_size=1).changes[0]
    assert change.reason == "gpt-4o-mini is retired"
    ok(ctl("changes", "revert", str(change.revision)))
    assert client.resolve_for_account("acme", ["openai_model"]).slots[0].model.id == 1
    code, _, err = ctl("models", "retire", "gpt-4o-mini", "--to", "dall-e-3")
    assert code == 4 and "SUCCESSOR_MISMATCH" in err


# -- accounts list -----------------------------------------------------------------------------


def test_accounts_list_pages_and_filters(ctl, client):
    for account in ("c", "a", "b"):
        client.set_model("openai_model", "gpt-5-nano", account_id=account)
    client.set_model("dalle_model", "dall-e-3", account_id="b")
    out = ok(ctl("accounts", "list"))
    assert [line.split()[0] for line in out.splitlines()[1:4]] == ["a", "b", "c"]
    assert "openai_model=14, dalle_model=7" in out and out.rstrip().endswith("3 accounts")
    out = ok(ctl("accounts", "list", "--page-size", "2"))
    assert "2 accounts shown; next page: --page-token " in out
    assert ok(ctl("accounts", "list", "--page-size", "2", "--all")).rstrip().endswith("3 accounts")
    out = ok(ctl("accounts", "list", "--model", "dall-e-3"))
    assert out.rstrip().endswith("1 account")
    code, _, err = ctl("accounts", "list", "--slot", "nope")
    assert code == 2 and "UNKNOWN_SLOT" in err


# -- lifecycle and prices ----------------------------------------------------------------------


def test_models_list_filters_on_deprecation_and_show_has_sources(ctl, client):
    out = ok(ctl("models", "list", "--past-deprecation"))
    names = [line.split()[1] for line in out.splitlines()[1:]]
    assert "gpt-3.5-turbo" in names and "gpt-4o-mini" not in names
    assert "2026-10-23" in out
    out = ok(ctl("models", "show", "dall-e-3"))
    assert "\nprices per image:\n  1024x1024 standard: 0.04 (checked 2026-11-30, https://" in out
    assert "\n  1024x1792 hd:       0.12 (checked 2026-11-30, https://" in out
    out = ok(ctl("models", "show", "gpt-4o-mini"))
    assert "\nprice sources:\n  input price:        checked 2026-11-30, https://developers." in out
    ok(ctl("models", "update", "gpt-4o-mini", "--deprecation-date", "2026-01-01",
           "--successor", "gpt-5-mini"))
    model = client.get_model(1).model
    assert (model.deprecation_date, model.successor_id) == ("2026-01-01", 13)
    out = ok(ctl("resolve", "acme", "openai_model"))
    assert "deprecated since 2026-01-01, successor 13" in out
    ok(ctl("models", "update", "gpt-4o-mini", "--deprecation-date", "", "--successor", ""))
    model = client.get_model(1).model
    assert (model.deprecation_date, model.successor_id) == ("", 0)


def test_estimate_prices_images_at_a_size_and_quality(ctl):
    out = ok(ctl("estimate", "dalle_model", "--images", "1k", "--image-size", "1024x1792",
                 "--quality", "hd"))
    assert out.splitlines()[1].split() == ["dall-e-3", "$120.00", "current"]
    code, _, err = ctl("estimate", "dalle_model", "--images", "1k", "--quality", "hd")
    assert code == 2 and "INVALID_IMAGE_TIER" in err


def test_a_relative_overrides_file_is_read_beside_the_yaml(ctl, tmp_path, monkeypatch):
    path = tmp_path / "sub" / "prod.yaml"
    path.parent.mkdir()
    ok(ctl("export", str(path)))
    monkeypatch.chdir(tmp_path)  # elsewhere: the overrides file is found beside the YAML
    assert ok(ctl("apply", str(Path("sub") / "prod.yaml"))).startswith("nothing to change")


def test_changes_list_says_what_a_retirement_and_an_apply_did(ctl, client, tmp_path):
    client.set_model("openai_model", "gpt-4o-mini", account_id="acme")
    path = tmp_path / "before.yaml"
    ok(ctl("export", str(path)))
    ok(ctl("models", "retire", "1", "--to", "13"))
    ok(ctl("apply", str(path)))
    lines = ok(ctl("changes", "list", "--limit", "2")).splitlines()
    assert "configuration applied: 1 model updated, 1 slot, 1 global setting, 1 override" in (
        lines[1])
    assert ("model 1 -> 13: global openai_model, default openai_model, 1 override of 1 account"
            in lines[2])
