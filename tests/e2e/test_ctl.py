"""modelconfigctl against a real daemon on each engine: its output, its changes, its errors."""

from __future__ import annotations

import importlib.metadata
import json
import socket
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import pytest
import yaml

from modelconfig import NotFound
from modelconfig.cli import estimate
from modelconfig.cli.main import main
from modelconfig.v1 import resources_pb2 as pb
from modelconfigd.adapters.migrations import load_seed

SEEDED_IDS = [str(m["id"]) for m in load_seed()["models"]]


@dataclass
class Run:
    code: int
    out: str
    err: str

    @property
    def rows(self) -> list[list[str]]:
        """The table's rows split into cells (labels hold spaces, so only the leading cells)."""
        lines = self.out.split("\n\n")[0].splitlines()[1:]
        return [line.split() for line in lines]


@pytest.fixture
def ctl(daemon, capsys):
    def run(*args: str) -> Run:
        code = main(["--target", daemon.address, *args])
        out, err = capsys.readouterr()
        return Run(code, out, err)

    return run


def ok(run: Run) -> Run:
    assert (run.code, run.err) == (0, ""), run
    return run


def resolved(ctl, account: str) -> dict[str, tuple[str, str]]:
    return {row[0]: (row[1], row[2]) for row in ok(ctl("resolve", account)).rows}


def unused_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


# -- models ------------------------------------------------------------------------------------


def test_models_list_shows_the_catalog_as_a_table(ctl):
    run = ok(ctl("models", "list"))
    assert run.out.splitlines()[0].split() == [
        "ID", "NAME", "PROVIDER", "TYPE", "ACTIVE", "DEPRECATED", "LABEL"]
    assert [row[0] for row in run.rows] == SEEDED_IDS
    assert run.rows[0][:5] == ["1", "gpt-4o-mini", "openai", "text", "yes"]
    assert run.rows[5][:5] == ["6", "runware-flux-1.1-pro", "runware", "image", "yes"]
    assert "GPT-4o Mini (gpt-4o-mini) - $0.15/$0.60 per 1M tokens" in run.out


def test_models_list_follows_page_tokens(ctl):
    assert [row[0] for row in ok(ctl("models", "list", "--page-size", "2")).rows] == SEEDED_IDS


def test_models_list_filters_by_provider_type_and_activity(ctl):
    assert [r[1] for r in ok(ctl("models", "list", "--provider", "anthropic")).rows][:2] == [
        "claude-3-5-sonnet-20241022", "claude-3-haiku-20240307"]
    assert [r[0] for r in ok(ctl("models", "list", "--type", "image")).rows] == [
        str(m["id"]) for m in load_seed()["models"] if m["model_type"] == "image"]
    ok(ctl("models", "deactivate", "3"))
    assert "3" not in [r[0] for r in ok(ctl("models", "list", "--active-only")).rows]
    assert ok(ctl("models", "list", "--provider", "openai")).rows[2][:5] == [
        "3", "gpt-4-turbo-2024-04-09", "openai", "text", "no"]


@pytest.mark.parametrize("ref", ["6", "runware-flux-1.1-pro", "runware:97@1"])
def test_models_get_by_id_name_or_alias(ctl, ref):
    out = ok(ctl("models", "get", ref)).out
    assert "id:              6\n" in out
    assert "name:            runware-flux-1.1-pro\n" in out
    assert "price per image: 0.04\n" in out
    assert "aliases:         runware:97@1, bfl:2@1\n" in out
    assert "input per 1M tokens" not in out  # not applicable to an image model


def test_models_get_unknown_is_not_found(ctl):
    run = ctl("models", "get", "no-such-model")
    assert run.code == 3
    assert run.err.startswith("error: NOT_FOUND MODEL_NOT_FOUND: ")
    assert "no-such-model" in run.err


def test_models_usage_lists_global_default_and_account_uses(ctl):
    ok(ctl("set", "openai_model", "gpt-3.5-turbo", "--account", "acme"))
    assert "account overrides: 0\n" in ok(ctl("models", "usage", "3")).out
    out = ok(ctl("models", "usage", "1")).out
    assert "global slots:      openai_model\n" in out
    assert "default slots:     openai_model\n" in out
    out = ok(ctl("models", "usage", "2")).out
    assert "global slots:      -\n" in out
    assert "account overrides: 1\n" in out
    assert "accounts:          acme\n" in out


def test_models_delete_removes_an_unused_model(ctl, client):
    model = client.create_model(pb.Model(model_name="o3-mini", provider="openai",
                                         model_type=pb.MODEL_TYPE_TEXT)).model
    assert ok(ctl("models", "delete", str(model.id))).out.startswith(f"deleted model {model.id}\n")
    with pytest.raises(NotFound):
        client.get_model(model.id)


def test_models_delete_of_a_used_model_lists_every_use(ctl, client):
    run = ctl("models", "delete", "1")
    assert run.code == 4
    assert run.err.startswith("error: FAILED_PRECONDITION MODEL_IN_USE: ")
    assert "\n  GLOBAL_SETTING openai_model: " in run.err
    assert "\n  SLOT_DEFAULT openai_model: " in run.err
    assert client.get_model(1).model.model_name == "gpt-4o-mini"


def test_models_deactivate_and_activate(ctl, client):
    name = "gpt-4-turbo-2024-04-09"
    assert ok(ctl("models", "deactivate", "3")).out == f"model 3 {name} is inactive\n"
    assert not client.get_model(3).model.is_active
    assert ok(ctl("models", "activate", "3")).out == f"model 3 {name} is active\n"
    assert client.get_model(3).model.is_active


def test_models_deactivate_of_a_used_model_fails(ctl, client):
    run = ctl("models", "deactivate", "1")
    assert run.code == 4
    assert "FAILED_PRECONDITION MODEL_IN_USE" in run.err
    assert client.get_model(1).model.is_active


# -- settings ----------------------------------------------------------------------------------


def test_settings_shows_every_slot_with_requirements_default_and_etag(ctl, client):
    run = ok(ctl("settings"))
    assert run.out.splitlines()[0].split() == ["SLOT", "MODEL", "PROVIDER", "TYPE", "DEFAULT"]
    assert run.rows == [
        ["openai_model", "gpt-4o-mini", "openai", "text", "gpt-4o-mini"],
        ["dalle_model", "dall-e-3", "openai", "image", "dall-e-3"],
        ["runware_model", "runware-flux-1.1-pro", "runware", "image", "runware-flux-1.1-pro"],
        ["anthropic_model", "-", "anthropic", "text", "claude-3-5-sonnet-20241022"],
    ]
    current = client.get_global_settings()
    assert run.out.endswith(f"\n\netag: {current.etag}  revision: {current.revision}\n")


def test_resolve_shows_model_and_source_per_slot(ctl):
    assert resolved(ctl, "acme") == {
        "openai_model": ("gpt-4o-mini", "global"),
        "dalle_model": ("dall-e-3", "global"),
        "runware_model": ("runware-flux-1.1-pro", "global"),
        "anthropic_model": ("claude-3-5-sonnet-20241022", "default"),
    }
    assert "\n\naccount: acme  etag: " in ctl("resolve", "acme").out


def test_resolve_only_the_named_slots_in_order(ctl):
    assert ok(ctl("resolve", "acme", "anthropic_model", "openai_model")).rows == [
        ["anthropic_model", "claude-3-5-sonnet-20241022", "default"],
        ["openai_model", "gpt-4o-mini", "global"],
    ]


def test_set_for_an_account_overrides_only_that_account(ctl):
    run = ok(ctl("set", "openai_model", "gpt-3.5-turbo", "--account", "acme"))
    assert run.out.startswith("set openai_model = gpt-3.5-turbo (account acme)\netag: ")
    assert resolved(ctl, "acme")["openai_model"] == ("gpt-3.5-turbo", "account")
    assert resolved(ctl, "globex")["openai_model"] == ("gpt-4o-mini", "global")


def test_set_globally_by_id_with_the_current_etag(ctl, client):
    etag = client.get_global_settings().etag
    run = ok(ctl("set", "anthropic_model", "5", "--etag", etag, "--global"))
    assert run.out.startswith("set anthropic_model = claude-3-haiku-20240307 (global)\n")
    assert resolved(ctl, "acme")["anthropic_model"] == ("claude-3-haiku-20240307", "global")


def test_set_with_a_stale_etag_is_aborted(ctl, client):
    stale = client.get_global_settings().etag
    ok(ctl("set", "openai_model", "gpt-3.5-turbo", "--global"))
    run = ctl("set", "openai_model", "gpt-4-turbo-2024-04-09", "--etag", stale, "--global")
    assert run.code == 5
    assert run.err.startswith("error: ABORTED ETAG_MISMATCH: ")
    assert resolved(ctl, "acme")["openai_model"] == ("gpt-3.5-turbo", "global")


def test_set_validate_only_changes_nothing(ctl, client):
    before = client.get_global_settings()
    run = ok(ctl("set", "openai_model", "gpt-3.5-turbo", "--validate-only", "--global"))
    assert run.out.startswith("valid, nothing changed: openai_model = gpt-3.5-turbo (global)\n")
    assert client.get_global_settings() == before


def test_set_of_a_wrong_provider_model_fails_with_the_violation(ctl):
    run = ctl("set", "openai_model", "claude-3-haiku-20240307", "--global")
    assert (run.code, run.out) == (4, "")
    first, violation = run.err.splitlines()
    assert first.startswith("error: FAILED_PRECONDITION PROVIDER_MISMATCH: ")
    assert "requires provider 'openai'" in first
    assert violation.startswith("  PROVIDER models/5: ")
    assert resolved(ctl, "acme")["openai_model"] == ("gpt-4o-mini", "global")


def test_set_of_an_unknown_slot_shows_the_field_violation(ctl):
    run = ctl("set", "gemini_model", "gpt-4o-mini", "--global")
    assert run.code == 2
    assert run.err.startswith("error: INVALID_ARGUMENT UNKNOWN_SLOT: ")
    assert "\n  slot: unknown slot 'gemini_model'" in run.err


def test_clear_returns_the_account_to_the_global_setting(ctl):
    ok(ctl("set", "openai_model", "gpt-3.5-turbo", "--account", "acme"))
    assert ok(ctl("clear", "openai_model", "--account", "acme")).out.startswith(
        "cleared openai_model (account acme)\netag: ")
    assert resolved(ctl, "acme")["openai_model"] == ("gpt-4o-mini", "global")
    run = ctl("clear", "openai_model", "--account", "acme")
    assert run.code == 3
    assert run.err.startswith("error: NOT_FOUND OVERRIDE_NOT_FOUND: ")


# -- --json ------------------------------------------------------------------------------------


def json_of(ctl, *args: str) -> dict:
    return json.loads(ok(ctl("--json", *args)).out)


def test_json_models_list_holds_every_page(ctl):
    got = json_of(ctl, "models", "list", "--page-size", "3")
    assert [m["id"] for m in got["models"]] == SEEDED_IDS  # int64 is a JSON string
    assert got["models"][0]["model_name"] == "gpt-4o-mini"
    assert "next_page_token" not in got
    assert got["revision"] == "1"


def test_json_models_get_has_proto_field_names(ctl):
    got = json_of(ctl, "models", "get", "runware:97@1")
    assert got["model_name"] == "runware-flux-1.1-pro"
    assert got["model_type"] == "MODEL_TYPE_IMAGE"
    assert got["aliases"] == ["runware:97@1", "bfl:2@1"]
    assert got["price_per_image"] == "0.04"


def test_json_settings_and_resolve(ctl, client):
    settings = json_of(ctl, "settings")
    assert [s["slot"] for s in settings["slots"]] == [
        "openai_model", "dalle_model", "runware_model", "anthropic_model"]
    assert settings["slots"][0]["model"]["model_name"] == "gpt-4o-mini"
    assert "model" not in settings["slots"][3]
    assert settings["etag"] == client.get_global_settings().etag
    got = json_of(ctl, "resolve", "acme", "openai_model")
    assert got["account_id"] == "acme"
    assert got["slots"][0]["source"] == "SOURCE_GLOBAL"
    assert got["etag"]


def test_json_set_usage_and_delete(ctl, client):
    got = json_of(ctl, "set", "openai_model", "2", "--account", "acme")
    assert got["setting"]["model"]["model_name"] == "gpt-3.5-turbo"
    assert got["revision"] == "2"
    usage = json_of(ctl, "models", "usage", "2")
    assert (usage["account_override_count"], usage["account_ids"]) == ("1", ["acme"])
    model = client.create_model(pb.Model(model_name="o3-mini", provider="openai",
                                         model_type=pb.MODEL_TYPE_TEXT)).model
    assert json_of(ctl, "models", "delete", str(model.id)) == {"revision": "4"}


# -- reaching the daemon and using the command line --------------------------------------------


def test_unreachable_target_exits_6_with_a_hint(capsys):
    target = f"127.0.0.1:{unused_port()}"
    assert main(["--target", target, "settings"]) == 6
    out, err = capsys.readouterr()
    assert out == ""
    assert err.startswith("error: UNAVAILABLE: ")
    assert f"hint: no modelconfigd is reachable at {target}" in err


def test_target_defaults_to_modelconfig_target(daemon, capsys, monkeypatch):
    monkeypatch.setenv("MODELCONFIG_TARGET", daemon.address)
    assert main(["resolve", "acme", "openai_model"]) == 0
    assert "gpt-4o-mini" in capsys.readouterr().out


@pytest.mark.parametrize("argv", [
    [],
    ["models"],
    ["models", "list", "--type", "video"],
    ["models", "usage"],
    ["clear", "openai_model"],
    ["settings", "set", "openai_model", "gpt-4o-mini"],  # no --global
    ["settings", "clear", "openai_model", "--account", "acme"],
    ["accounts", "set", "", "openai_model", "gpt-4o-mini"],
    ["models", "create", "--name", "x", "--provider", "openai"],  # no --type
    ["--output", "xml", "models", "list"],
    ["completion", "fish"],
])
def test_usage_errors_exit_2(argv, capsys):
    with pytest.raises(SystemExit) as exited:
        main(["--target", "127.0.0.1:1", *argv])
    assert exited.value.code == 2
    assert "usage: modelconfigctl" in capsys.readouterr().err


def test_console_script_is_installed(daemon):
    script = Path(sys.executable).parent / "modelconfigctl"
    done = subprocess.run([script, "--target", daemon.address, "resolve", "acme"],
                          capture_output=True, text=True, timeout=30, check=False)
    assert (done.returncode, done.stderr) == (0, "")
    assert "anthropic_model  claude-3-5-sonnet-20241022  default" in done.stdout


def test_estimate_prints_every_candidate_cheapest_first_with_the_difference(ctl):
    run = ok(ctl("estimate", "openai_model", "--input-tokens", "10M", "--output-tokens", "2M"))
    rows = [line.split() for line in run.out.splitlines()[1:]]
    rows = [row for row in rows if row and row[0] != "revision:"]
    assert rows[0] == ["gpt-5-nano", "$1.30", "-$1.40"]  # 10 x 0.05 + 2 x 0.40, the cheapest
    assert ["gpt-4o-mini", "$2.70", "current"] in rows
    assert ["gpt-3.5-turbo", "$8.00", "$5.30"] in rows
    assert rows[-1] == ["gpt-4-turbo-2024-04-09", "$160.00", "$157.30"]


def test_estimate_names_a_missing_price(ctl):
    run = ok(ctl("estimate", "dalle_model", "--images", "1k", "--input-tokens", "5"))
    assert "unknown" in run.out and "input_price_per_1m_tokens" in run.out


@pytest.mark.parametrize("volume", ["1.5x", "2.5", "-3", "1e6"])
def test_estimate_refuses_a_count_it_cannot_read(volume, capsys):
    with pytest.raises(SystemExit) as exited:
        main(["--target", "127.0.0.1:1", "estimate", "openai_model", "--input-tokens", volume])
    assert exited.value.code == 2
    assert "count" in capsys.readouterr().err


def test_estimate_reads_counts_as_people_write_them():
    assert [estimate.count(t) for t in ("1000", "2.5k", "10M", "1_000", "3,000", "1B")] == [
        1000,
        2500,
        10_000_000,
        1000,
        3000,
        10**9,
    ]


def test_version_prints_the_client_package_version(capsys):
    with pytest.raises(SystemExit) as exited:
        main(["--version"])
    assert exited.value.code == 0
    version = importlib.metadata.version("modelconfig-client")
    assert capsys.readouterr().out == f"modelconfigctl {version}\n"


def test_a_reader_that_leaves_early_gets_no_traceback(daemon):
    """`modelconfigctl models list | true`: the reader is gone before anything is written."""
    command = f"'{sys.executable}' -m modelconfig.cli --target {daemon.address} "
    done = subprocess.run(
        f"{command} models list | true",
        shell=True,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert "Traceback" not in done.stderr, done.stderr
    assert done.stderr == ""


def test_the_command_line_needs_nothing_of_the_daemon(daemon):
    """An operator's machine has the client package only: no modelconfigd, Peewee or driver."""
    blocked = "; ".join(f"sys.modules[{name!r}] = None" for name in (
        "modelconfigd", "peewee", "psycopg"))  # importing one of them now fails
    program = (f"import sys; {blocked}; from modelconfig.cli.main import main; "
               f"sys.exit(main(['--target', {daemon.address!r}, 'models', 'list']))")
    done = subprocess.run([sys.executable, "-c", program], capture_output=True, text=True,
                          timeout=60, check=False)
    assert (done.returncode, done.stderr) == (0, ""), done
    assert "gpt-4o-mini" in done.stdout


# -- global options, before or after the command ----------------------------------------------


@dataclass
class Called:
    code: int
    out: str
    err: str


@pytest.fixture
def call(capsys):
    """modelconfigctl with the arguments as given: no --target added in front."""
    def run(*args: str) -> Called:
        code = main(list(args))
        out, err = capsys.readouterr()
        return Called(code, out, err)

    return run


def test_global_options_work_after_the_command(daemon, call):
    run = call("models", "show", "gpt-4o-mini", "--target", daemon.address, "--output", "json")
    assert (run.code, run.err) == (0, "")
    assert json.loads(run.out)["model_name"] == "gpt-4o-mini"
    run = call("accounts", "resolve", "acme", "openai_model", "--json", "--target", daemon.address)
    assert json.loads(run.out)["slots"][0]["model"]["model_name"] == "gpt-4o-mini"


def test_an_option_after_the_command_wins_over_the_one_before(daemon, call):
    run = call("--target", "127.0.0.1:1", "--output", "yaml", "settings",
               "--target", daemon.address, "--output", "json")
    assert run.code == 0, run
    assert json.loads(run.out)["slots"][0]["slot"] == "openai_model"


def test_an_option_before_the_command_holds_when_not_repeated_after(daemon, call):
    run = call("--target", daemon.address, "--json", "models", "list", "--page-size", "2")
    assert [m["id"] for m in json.loads(run.out)["models"]] == SEEDED_IDS


def test_reason_after_the_command_is_recorded(daemon, call, client):
    run = call("settings", "set", "openai_model", "gpt-3.5-turbo", "--global",
               "--target", daemon.address, "--reason", "ticket OPS-7")
    assert run.code == 0, run
    assert client.list_changes(page_size=1).changes[0].reason == "ticket OPS-7"


def test_yaml_output_holds_the_same_fields_as_json(ctl):
    got = yaml.safe_load(ok(ctl("--output", "yaml", "models", "show", "runware:97@1")).out)
    assert got == json_of(ctl, "models", "show", "runware:97@1")
    assert "runware:97@1" in got["aliases"]


@pytest.mark.parametrize("timeout", ["0", "-1", "soon", "nan", "inf", "1e300"])
def test_a_timeout_that_is_not_a_number_of_seconds_is_a_usage_error(timeout, capsys):
    with pytest.raises(SystemExit) as exited:
        main(["--target", "127.0.0.1:1", "settings", "--timeout", timeout])
    assert exited.value.code == 2
    err = capsys.readouterr().err
    assert err.splitlines()[-1] == (
        f"modelconfigctl settings: error: argument --timeout: {timeout!r} is not a number of "
        "seconds from 0 to 86400, e.g. 2.5")
    assert "Traceback" not in err


@pytest.fixture
def silent_target():
    """A port that accepts connections and never answers: every call runs into its deadline."""
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen(8)
        yield f"127.0.0.1:{listener.getsockname()[1]}"


def test_a_call_past_its_timeout_exits_6_naming_the_deadline(silent_target, call):
    started = time.monotonic()
    run = call("--target", silent_target, "--timeout", "0.5", "settings")
    assert time.monotonic() - started < 5
    assert (run.code, run.out) == (6, "")
    first, hint = run.err.splitlines()
    assert first.startswith("error: DEADLINE_EXCEEDED: ")
    assert hint == (f"hint: {silent_target} did not answer within 0.5 s; a busy daemon or a "
                    "slow network may need a longer --timeout")


# -- errors as JSON ----------------------------------------------------------------------------


def json_error(run) -> dict:
    assert run.out == ""
    assert len(run.err.splitlines()) == 1, run.err  # one object, on one line
    return json.loads(run.err)


def test_json_error_carries_code_reason_message_and_metadata(ctl):
    run = ctl("--output", "json", "models", "show", "no-such-model")
    assert run.code == 3
    error = json_error(run)
    assert (error["code"], error["reason"]) == ("NOT_FOUND", "MODEL_NOT_FOUND")
    assert "no-such-model" in error["message"]
    assert "no-such-model" in error["metadata"].values()


def test_json_error_carries_field_and_precondition_violations(ctl):
    run = ctl("set", "gemini_model", "gpt-4o-mini", "--global", "--json")
    assert run.code == 2
    error = json_error(run)
    [violation] = error["field_violations"]
    assert violation["field"] == "slot"
    assert violation["description"].startswith("unknown slot 'gemini_model'")
    run = ctl("models", "delete", "gpt-4o-mini", "--json")
    assert run.code == 4
    error = json_error(run)
    assert error["reason"] == "MODEL_IN_USE"
    assert {"GLOBAL_SETTING", "SLOT_DEFAULT"} <= {v["type"] for v in
                                                    error["precondition_violations"]}


def test_json_error_of_an_unreachable_daemon_has_the_hint(call):
    target = f"127.0.0.1:{unused_port()}"
    run = call("settings", "--target", target, "--json")
    assert run.code == 6
    assert f"reachable at {target}" in json_error(run)["hint"]


def test_json_usage_error_is_json_too(capsys):
    with pytest.raises(SystemExit) as exited:
        main(["--json", "models", "list", "--type", "video"])
    assert exited.value.code == 2
    out, err = capsys.readouterr()
    error = json.loads(err)
    assert (out, error["reason"]) == ("", "USAGE")
    assert "invalid choice: 'video'" in error["message"]


def test_a_file_that_cannot_be_read_is_one_line_exit_1(ctl, tmp_path):
    run = ctl("import", str(tmp_path / "absent.csv"))
    assert (run.code, run.out) == (1, "")
    assert run.err == f"error: cannot read {tmp_path / 'absent.csv'}: No such file or directory\n"


# -- completion --------------------------------------------------------------------------------


@pytest.mark.parametrize("shell", ["bash", "zsh"])
def test_completion_prints_a_script_that_knows_the_commands(shell, call):
    run = call("completion", shell)
    assert (run.code, run.err) == (0, "")
    assert "modelconfigctl" in run.out
    for word in ("import-legacy", "accounts", "deactivate", "--timeout"):
        assert word in run.out


def test_the_bash_completion_script_is_valid_bash(call, tmp_path):
    script = tmp_path / "modelconfigctl.bash"
    script.write_text(call("completion", "bash").out)
    done = subprocess.run(["bash", "-n", str(script)], capture_output=True, text=True,
                          check=False)
    assert (done.returncode, done.stderr) == (0, "")


# -- models: show, create, update, and a name wherever an id goes ------------------------------


def test_models_show_is_get(ctl):
    assert ok(ctl("models", "show", "6")).out == ok(ctl("models", "get", "6")).out


def test_models_create_takes_every_field(ctl, client):
    run = ok(ctl("models", "create", "--name", "test-text-1", "--display-name", "Test Text 1",
                 "--provider", "openai", "--type", "text", "--input-price", "0.10",
                 "--cached-input-price", "0.025", "--output-price", "0.40",
                 "--context-window", "1047576", "--max-output-tokens", "32768",
                 "--alias", "test-t1", "--alias", "test-text-one"))
    model = client.get_model("test-t1").model
    assert run.out.startswith(f"created model {model.id} test-text-1, an openai text model "
                              "(active)\n")
    assert (model.display_name, model.is_active) == ("Test Text 1", True)
    assert (model.input_price_per_1m_tokens, model.cached_input_price_per_1m_tokens,
            model.output_price_per_1m_tokens) == ("0.10", "0.025", "0.40")
    assert (model.context_window, model.max_output_tokens) == (1047576, 32768)
    assert list(model.aliases) == ["test-t1", "test-text-one"]


def test_models_create_inactive_image_model(ctl, client):
    run = ok(ctl("models", "create", "--name", "test-image-1", "--provider", "openai",
                 "--type", "image", "--price-per-image", "0.02", "--inactive"))
    model = client.get_model("test-image-1").model
    assert run.out.startswith(f"created model {model.id} test-image-1, an openai image model "
                              "(inactive: ")
    assert (model.is_active, model.price_per_image) == (False, "0.02")


def test_models_create_of_a_taken_name_is_refused(ctl):
    run = ctl("models", "create", "--name", "test-text-2", "--provider", "openai", "--type", "text",
              "--alias", "gpt-4o-mini")
    assert run.code == 4
    assert run.err.startswith("error: ALREADY_EXISTS ")


def test_models_update_sends_only_the_flags_given(ctl, client):
    before = client.create_model(pb.Model(
        model_name="test-text-3", provider="openai", model_type=pb.MODEL_TYPE_TEXT,
        input_price_per_1m_tokens="1", output_price_per_1m_tokens="2", context_window=1000,
        is_active=True)).model
    run = ok(ctl("models", "update", "test-text-3", "--output-price", "1.25",
                 "--display-name", "Test 3"))
    assert run.out.startswith(f"updated model {before.id} test-text-3\n")
    after = client.get_model(before.id).model
    assert (after.output_price_per_1m_tokens, after.display_name) == ("1.25", "Test 3")
    assert after.input_price_per_1m_tokens == before.input_price_per_1m_tokens
    assert after.context_window == before.context_window
    assert list(client.list_changes(page_size=1).changes[0].changed_fields.paths) == [
        "display_name", "output_price_per_1m_tokens"]


def test_models_update_aliases_replaces_or_clears_them(ctl, client):
    model = client.create_model(pb.Model(model_name="test-text-4", provider="openai",
                                         model_type=pb.MODEL_TYPE_TEXT, aliases=["test-4"])).model
    ok(ctl("models", "update", "test-4", "--alias", "test-four", "--alias", "test-iv"))
    assert list(client.get_model(model.id).model.aliases) == ["test-four", "test-iv"]
    ok(ctl("models", "update", "test-four", "--clear-aliases"))
    assert list(client.get_model(model.id).model.aliases) == []


def test_models_update_with_nothing_to_change_is_a_usage_error(ctl):
    run = ctl("models", "update", "gpt-4o-mini")
    assert (run.code, run.out) == (2, "")
    assert run.err == (
        "error: models update: nothing to change; name a field to change (see --help)\n")


def test_models_update_of_an_unknown_model_is_not_found(ctl):
    assert ctl("models", "update", "no-such-model", "--display-name", "x").code == 3


def test_models_commands_take_a_name_or_alias(ctl, client):
    assert ok(ctl("models", "deactivate", "gpt-4-turbo-2024-04-09")).out.startswith("model 3 ")
    assert not client.get_model(3).model.is_active
    ok(ctl("models", "activate", "gpt-4-turbo-2024-04-09"))
    assert client.get_model(3).model.is_active
    assert "global slots:      runware_model\n" in ok(ctl("models", "usage", "runware:97@1")).out
    spare = client.create_model(pb.Model(
        model_name="test-spare", provider="openai", model_type=pb.MODEL_TYPE_TEXT,
        aliases=["test-extra"])).model
    assert ok(ctl("models", "delete", "test-extra")).out.startswith(f"deleted model {spare.id}\n")


def test_models_usage_pages_through_accounts(ctl, client):
    for account in ("a1", "a2", "a3"):
        client.set_model("openai_model", 2, account_id=account)
    first = ok(ctl("models", "usage", "2", "--page-size", "2")).out
    assert "accounts:          a1, a2, ... (--all lists every one)\n" in first
    token = first.rsplit("next page: --page-token ", 1)[1].strip()
    second = ok(ctl("models", "usage", "2", "--page-size", "2", "--page-token", token)).out
    assert "accounts:          a3\n" in second
    assert "next page" not in second
    every = ok(ctl("models", "usage", "2", "--page-size", "2", "--all")).out
    assert "accounts:          a1, a2, a3\n" in every
    assert json_of(ctl, "models", "usage", "2", "--all")["account_ids"] == ["a1", "a2", "a3"]


# -- accounts and settings ---------------------------------------------------------------------


def test_accounts_set_clear_and_resolve(ctl):
    run = ok(ctl("accounts", "set", "acme", "openai_model", "gpt-3.5-turbo"))
    assert run.out.startswith("set openai_model = gpt-3.5-turbo (account acme)\netag: ")
    assert ok(ctl("accounts", "resolve", "acme", "openai_model")).rows == [
        ["openai_model", "gpt-3.5-turbo", "account", "deprecated", "since", "2026-10-23"]]
    assert ok(ctl("accounts", "clear", "acme", "openai_model")).out.startswith(
        "cleared openai_model (account acme)\n")
    assert resolved(ctl, "acme")["openai_model"] == ("gpt-4o-mini", "global")


def test_accounts_set_validate_only_and_a_stale_etag(ctl, client):
    etag = client.resolve_for_account("acme").etag
    ok(ctl("accounts", "set", "acme", "openai_model", "2", "--validate-only"))
    assert resolved(ctl, "acme")["openai_model"] == ("gpt-4o-mini", "global")
    ok(ctl("accounts", "set", "acme", "openai_model", "2", "--etag", etag))
    assert ctl("accounts", "set", "acme", "openai_model", "3", "--etag", etag).code == 5


def test_accounts_resolve_without_an_account_is_a_usage_error(ctl):
    run = ctl("accounts", "resolve")
    assert run.code == 2
    assert "name an ACCOUNT, or --file" in run.err


def test_accounts_resolve_file_resolves_in_batches(ctl, client, tmp_path):
    client.set_model("openai_model", "gpt-3.5-turbo", account_id="acct-1500")
    ids = [f"acct-{n}" for n in range(1, 1502)]  # two calls of at most 1,000
    path = tmp_path / "accounts.txt"
    path.write_text("\ufeff" + "\n".join(ids) + "\n\n")
    run = ok(ctl("accounts", "resolve", "--file", str(path), "openai_model"))
    rows = run.rows
    assert len(rows) == 1501
    assert rows[0] == ["acct-1", "openai_model", "gpt-4o-mini", "global"]
    # gpt-3.5-turbo's deprecation date has passed: the note says so.
    assert rows[1499] == [
        "acct-1500", "openai_model", "gpt-3.5-turbo", "account",
        "deprecated", "since", "2026-10-23"]
    assert run.out.endswith("accounts: 1,501 accounts  revision: 2\n")
    got = json_of(ctl, "accounts", "resolve", "--file", str(path), "openai_model")
    assert [r["account_id"] for r in got["results"]] == ids
    assert got["results"][1499]["slots"][0]["source"] == "SOURCE_ACCOUNT"
    got = yaml.safe_load(ok(ctl("accounts", "resolve", "--file", str(path), "-o", "yaml")).out)
    assert len(got["results"]) == 1501 and len(got["results"][0]["slots"]) == 4


def test_accounts_resolve_file_names_accounts_it_could_not_resolve(ctl, tmp_path):
    path = tmp_path / "accounts.txt"
    path.write_text("acme\nnot valid!\nglobex\n")
    run = ctl("accounts", "resolve", "--file", str(path), "openai_model")
    assert run.code == 2
    assert [row[:2] for row in run.rows] == [
        ["acme", "openai_model"], ["not", "valid!"], ["globex", "openai_model"]]
    assert "INVALID_ACCOUNT_ID" in run.out
    assert run.err.startswith("error: 1 account could not be resolved, the first (not valid!): ")


def test_settings_get_set_and_clear_need_global(ctl, client):
    assert ok(ctl("settings", "get")).out == ok(ctl("settings")).out
    run = ok(ctl("settings", "set", "anthropic_model", "claude-3-haiku-20240307", "--global"))
    assert run.out.startswith("set anthropic_model = claude-3-haiku-20240307 (global)\n")
    assert resolved(ctl, "acme")["anthropic_model"] == ("claude-3-haiku-20240307", "global")
    run = ok(ctl("settings", "clear", "anthropic_model", "--global"))
    assert run.out.startswith("cleared anthropic_model (global)\n")
    assert resolved(ctl, "acme")["anthropic_model"] == ("claude-3-5-sonnet-20241022", "default")


def test_settings_set_without_global_changes_nothing(ctl, client, capsys):
    before = client.get_global_settings()
    with pytest.raises(SystemExit) as exited:
        ctl("settings", "set", "openai_model", "gpt-3.5-turbo")
    assert exited.value.code == 2
    assert "the following arguments are required: --global" in capsys.readouterr().err
    assert client.get_global_settings() == before


# -- plain English -----------------------------------------------------------------------------


def test_counts_are_singular_or_plural(ctl, tmp_path):
    path = tmp_path / "one.csv"
    path.write_text("account_id,slot,model\nacme,openai_model,gpt-3.5-turbo\n")
    assert "imported 1 override for 1 account: 1 changed" in ok(ctl("import", str(path))).out
    path.write_text("account_id,slot,model\nacme,openai_model,2\nacme,dalle_model,7\n")
    assert "would import 2 overrides for 1 account\n" in ok(
        ctl("import", str(path), "--validate-only")).out
    assert "1 override of 1 account" in ok(ctl("changes", "list")).out


def test_tokens_new_as_json(call):
    made = json.loads(call("tokens", "new", "--name", "ops", "--role", "admin", "--json").out)
    assert (made["name"], made["role"]) == ("ops", "admin")
    assert made["token"].startswith("mct_") and len(made["sha256"]) == 64


# -- import-legacy -----------------------------------------------------------------------------


def write(tmp_path, name: str, text: str) -> str:
    path = tmp_path / name
    path.write_text(text)
    return str(path)


def test_import_legacy_global_string_settings(ctl, client, tmp_path):
    path = write(tmp_path, "global.json", json.dumps(
        {"openai_model": "gpt-3.5-turbo", "dalle_model": "dall-e-3",
         "runware_model": "runware:97@1"}))
    run = ok(ctl("import-legacy", path))
    assert "set openai_model = gpt-3.5-turbo (global)" in run.out
    assert "set runware_model = runware-flux-1.1-pro (global)" in run.out
    settings = {s.slot: s.model.id for s in client.get_global_settings().slots}
    assert (settings["openai_model"], settings["dalle_model"], settings["runware_model"]) == (
        2, 7, 6)
    assert client.list_changes(page_size=1).changes[0].reason == (
        "modelconfigctl import-legacy global.json")


def test_import_legacy_account_configs_in_one_revision(ctl, client, tmp_path):
    path = write(tmp_path, "accounts.jsonl", "\n".join(json.dumps(item) for item in (
        {"account_id": "42", "openai_model_id": 2},
        {"account_id": 43, "openai_model": "gpt-4-turbo-2024-04-09", "dalle_model_id": None},
        {"account_id": "44", "runware_model": "runware:97@1", "openai_model_id": "2"},
    )) + "\n")
    revision = client.get_global_settings().revision
    run = ok(ctl("import-legacy", path))
    assert "imported 4 overrides for 3 accounts: 4 changed" in run.out
    assert client.get_global_settings().revision == revision + 1  # one import, one revision
    assert resolved(ctl, "42")["openai_model"] == ("gpt-3.5-turbo", "account")
    assert resolved(ctl, "43")["openai_model"] == ("gpt-4-turbo-2024-04-09", "account")
    assert resolved(ctl, "43")["dalle_model"] == ("dall-e-3", "global")  # null: no override
    assert resolved(ctl, "44")["runware_model"] == ("runware-flux-1.1-pro", "account")


def test_import_legacy_reads_a_json_list_with_global_settings_too(ctl, client, tmp_path):
    path = write(tmp_path, "all.json", json.dumps([
        {"openai_model": "gpt-3.5-turbo"},
        {"account_id": "42", "openai_model": "gpt-4o-mini"},
    ]))
    run = ok(ctl("import-legacy", path))
    assert "imported 1 override for 1 account" in run.out
    assert resolved(ctl, "42")["openai_model"] == ("gpt-4o-mini", "account")
    assert resolved(ctl, "43")["openai_model"] == ("gpt-3.5-turbo", "global")


LEGACY_WITH_GAPS = [
    {"openai_model": "gpt-0-retired", "dalle_model": "dall-e-3"},  # a choice the catalog lacks
    {"account_id": "42", "openai_model_id": 9999},
    {"account_id": "43", "gemini_model": "gpt-4o-mini", "openai_model": "gpt-3.5-turbo"},
]


def test_import_legacy_applies_nothing_unless_everything_maps(ctl, client, tmp_path):
    path = write(tmp_path, "old.jsonl", "\n".join(map(json.dumps, LEGACY_WITH_GAPS)))
    before = client.get_global_settings()
    run = ctl("import-legacy", path)
    assert (run.code, run.out) == (4, "")
    report = [line.split(None, 4) for line in run.err.splitlines()[1:4]]
    assert report == [
        ["1", "(global)", "openai_model", "gpt-0-retired",
         "NOT MAPPED: no model has this name or alias"],
        ["2", "42", "openai_model_id", "9999", "NOT MAPPED: no model has this id"],
        ["3", "43", "gemini_model", "gpt-4o-mini", "NOT MAPPED: no such slot"],
    ]
    assert run.err.splitlines()[-1] == (
        f"error: 3 values of {path} map to no slot or model; nothing was applied "
        "(--skip-unmapped applies the rest)")
    assert client.get_global_settings() == before
    assert resolved(ctl, "43")["openai_model"] == ("gpt-4o-mini", "global")


def test_import_legacy_unmapped_as_json(ctl, tmp_path):
    path = write(tmp_path, "old.json", json.dumps(LEGACY_WITH_GAPS))
    run = ctl("import-legacy", path, "--json")
    assert run.code == 4
    error = json_error(run)
    assert error["reason"] == "UNMAPPED_VALUES"
    assert error["unmapped"][1] == {"line": 2, "account_id": "42", "key": "openai_model_id",
                                    "value": 9999, "problem": "no model has this id"}


def test_import_legacy_skip_unmapped_applies_the_rest(ctl, client, tmp_path):
    path = write(tmp_path, "old.jsonl", "\n".join(map(json.dumps, LEGACY_WITH_GAPS)))
    run = ok(ctl("import-legacy", path, "--skip-unmapped"))
    assert "skipped 3 unmapped values" in run.out
    assert "set dalle_model = dall-e-3 (global)" in run.out
    assert "imported 1 override for 1 account" in run.out
    assert resolved(ctl, "43")["openai_model"] == ("gpt-3.5-turbo", "account")
    assert resolved(ctl, "42")["openai_model"] == ("gpt-4o-mini", "global")


def test_import_legacy_dry_run_prints_the_mapping_and_applies_nothing(ctl, client, tmp_path):
    path = write(tmp_path, "old.jsonl", json.dumps(
        {"account_id": "42", "openai_model_id": 1, "runware_model": "runware:97@1"}))
    before = client.get_global_settings().revision
    run = ok(ctl("import-legacy", path, "--dry-run"))
    assert [line.split(None, 4) for line in run.out.splitlines()[1:3]] == [
        ["1", "42", "openai_model_id", "1", "openai_model = 1 gpt-4o-mini"],
        ["1", "42", "runware_model", "runware:97@1", "runware_model = 6 runware-flux-1.1-pro"],
    ]
    assert run.out.endswith("\n\ndry run: nothing applied\n")
    assert client.get_global_settings().revision == before
    got = json_of(ctl, "import-legacy", path, "--dry-run")
    assert got["mapped"][1] == {"line": 1, "account_id": "42", "key": "runware_model",
                                "value": "runware:97@1", "slot": "runware_model",
                                "model_id": 6, "model_name": "runware-flux-1.1-pro"}
    assert got["unmapped"] == []


def test_import_legacy_dry_run_with_unmapped_values_exits_4(ctl, tmp_path):
    path = write(tmp_path, "old.json", json.dumps(LEGACY_WITH_GAPS))
    run = ctl("import-legacy", path, "--dry-run")
    assert run.code == 4
    assert "NOT MAPPED: no such slot" in run.out
    assert run.err.startswith("error: 3 values of ")


def test_import_legacy_checks_every_write_before_the_first(ctl, client, tmp_path):
    """A model of the wrong provider is found by the daemon: nothing is applied either."""
    path = write(tmp_path, "old.json", json.dumps([
        {"account_id": "42", "openai_model": "gpt-3.5-turbo"},
        {"openai_model": "claude-3-haiku-20240307"},
    ]))
    before = client.get_global_settings().revision
    run = ctl("import-legacy", path)
    assert run.code == 4
    assert "PROVIDER_MISMATCH" in run.err
    assert client.get_global_settings().revision == before


def test_import_legacy_refuses_a_file_that_is_not_the_old_shape(ctl, tmp_path):
    run = ctl("import-legacy", write(tmp_path, "old.jsonl", '{"account_id": "1"}\nnot json\n'))
    assert run.code == 1
    assert run.err.startswith(f"error: {tmp_path}/old.jsonl:2: neither a JSON document")
    run = ctl("import-legacy", write(tmp_path, "old.json", '[{"account_id": null}]'))
    assert run.err == (f"error: {tmp_path}/old.json:1: account_id must be a non-empty string "
                       "or number\n")


def test_import_legacy_a_slot_given_two_models_maps_to_neither(ctl, tmp_path):
    path = write(tmp_path, "old.jsonl", "\n".join(map(json.dumps, [
        {"account_id": "42", "openai_model": "gpt-4o-mini", "openai_model_id": 1},  # agree
        {"account_id": "43", "openai_model": "gpt-4o-mini", "openai_model_id": 2},
    ])))
    run = ctl("import-legacy", path, "--dry-run")
    assert run.code == 4
    assert [line.split(None, 4) for line in run.out.splitlines()[1:]][:3] == [
        ["1", "42", "openai_model", "gpt-4o-mini", "openai_model = 1 gpt-4o-mini"],
        ["2", "43", "openai_model", "gpt-4o-mini",
         "NOT MAPPED: openai_model is given models 1 and 2"],
        ["2", "43", "openai_model_id", "2", "NOT MAPPED: openai_model is given models 1 and 2"],
    ]
