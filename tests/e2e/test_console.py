"""The console in a real headless Chromium against a real `modelconfigd` process with its HTTP port.

Each test drives the page as an operator would (Playwright, Debian's /usr/bin/chromium) and
checks the outcome through gRPC, the other door to the same rules: a setting changed through the
dropdown is the global setting with the typed reason in the audit trail; a dropdown offers exactly
the active models of its slot's provider and type; overrides are set and cleared; a stale page
gets a conflict and writes nothing; a change is reverted from the history; a reader sees write
controls disabled. One daemon (SQLite: the console is a client of the JSON API, whose engines are
covered elsewhere) and one browser serve the module; every test reads the state it starts from.
Screenshots of every page go to build/console-screenshots/.
"""

from __future__ import annotations

import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.sync_api import Browser, Page, expect, sync_playwright

from modelconfig import ModelConfigClient
from modelconfig.v1 import resources_pb2 as pb

from .certs import write_tokens
from .process_helpers import DaemonProcess, Daemons

CHROMIUM = Path("/usr/bin/chromium")
SHOTS = Path(__file__).resolve().parents[2] / "build" / "console-screenshots"
ADMIN = ("console-admin", "tok-console-admin-4f1e2d3c")
READER = ("console-reader", "tok-console-reader-8a7b6c5d")
WRITER = ("console-writer", "tok-console-writer-1a2b3c4d")
# Generous: the machine is shared and CI runs a CPU hog beside the tests.
WAIT_MS = 30_000
expect.set_options(timeout=WAIT_MS)
START_TIMEOUT = 60.0


class Console:
    """The daemon under test: its HTTP base URL and gRPC clients per role."""

    def __init__(self, daemon: DaemonProcess, http_port: int) -> None:
        self.daemon = daemon
        self.base = f"http://127.0.0.1:{http_port}"
        self.admin = ModelConfigClient(channel=daemon.channel(), token=ADMIN[1], timeout=15)

    def wait_http(self) -> None:
        deadline = time.monotonic() + START_TIMEOUT
        while True:
            try:
                with urllib.request.urlopen(f"{self.base}/console/", timeout=5) as response:
                    if response.status == 200:
                        return
            except (urllib.error.URLError, OSError):
                pass
            if time.monotonic() > deadline:
                raise AssertionError(self.daemon.describe("HTTP port never answered /console/"))
            time.sleep(0.2)

    def global_model_id(self, slot: str) -> int:
        settings = self.admin.get_global_settings()
        return next(s.model.id for s in settings.slots if s.slot == slot)

    def active_ids(self, provider: str, model_type: int) -> list[int]:
        return sorted(m.id for m in self.admin.iter_models(
            provider=provider, model_type=model_type, active_only=True))

    def revision(self) -> int:
        return self.admin.list_changes(page_size=1).changes[0].revision


@pytest.fixture(scope="module")
def console(tmp_path_factory) -> Iterator[Console]:
    workdir = tmp_path_factory.mktemp("console")
    tokens = write_tokens(
        workdir / "tokens.toml",
        *({"name": name, "role": role, "token": token}
          for role, (name, token) in (("admin", ADMIN), ("reader", READER), ("writer", WRITER))),
    )
    daemons = Daemons(workdir)
    try:
        daemon = daemons.start(
            f"sqlite:///{workdir}/modelconfig.db",
            env={"MODELCONFIG_TOKENS_FILE": str(tokens),
                 "MODELCONFIG_HTTP_LISTEN": "127.0.0.1:0"},
        )
        assert daemon.http_port, "the daemon did not say where it serves HTTP"
        running = Console(daemon, daemon.http_port)
        running.wait_http()
        yield running
    finally:
        daemons.close()


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    assert CHROMIUM.exists(), "Debian's chromium is missing: `make install` installs it"
    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(
            executable_path=str(CHROMIUM), headless=True, timeout=120_000)
        try:
            yield launched
        finally:
            launched.close()


def open_console(browser: Browser, console: Console, token: str, route: str = "slots",
                 width: int = 1280, height: int = 900) -> Page:
    """A fresh tab (its own sessionStorage), signed in with `token`, on `#/route`."""
    context = browser.new_context(viewport={"width": width, "height": height})
    page = context.new_page()
    page.set_default_timeout(WAIT_MS)
    errors: list[str] = []
    page.on("pageerror", lambda error: errors.append(str(error)))
    PAGE_ERRORS[page] = errors
    page.goto(f"{console.base}/console/#/{route}")
    page.fill("#token", token)
    page.click("#signin button[type=submit]")
    expect(page.locator("#caller-name")).to_be_visible()
    wait_ready(page)
    return page


PAGE_ERRORS: dict[Page, list[str]] = {}


def close(page: Page) -> None:
    """Closes the tab; a script error it raised on the way (uncaught) fails the test."""
    errors = PAGE_ERRORS.pop(page, [])
    page.context.close()
    assert not errors, f"the console raised: {errors}"


def wait_ready(page: Page) -> None:
    """Waits until the current page has rendered everything it loaded."""
    expect(page.locator("section.page[data-ready=true]")).to_have_count(1)


def goto(page: Page, route: str) -> None:
    page.evaluate("route => { location.hash = route; }", f"#/{route}")
    expect(page.locator(f"section.page[data-page={route.split('/')[0]}][data-ready=true]")).to_have_count(1)


def screenshot(page: Page, name: str) -> None:
    SHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SHOTS / f"{name}.png"), full_page=True)


def confirm_dialog(page: Page, reason: str) -> None:
    dialog = page.locator("dialog[open]")
    expect(dialog).to_be_visible()
    dialog.locator("textarea[name=reason]").fill(reason)
    dialog.locator("button[value=confirm]").click()
    expect(page.locator("dialog[open]")).to_have_count(0)


def unlabelled(page: Page) -> list[str]:
    """The form controls on the page without a label or an accessible name."""
    return page.evaluate("""() => [...document.querySelectorAll("input, select, textarea, button")]
        .filter((e) => !(e.labels && e.labels.length) && !e.getAttribute("aria-label")
                       && !(e.tagName === "BUTTON" && e.textContent.trim()))
        .map((e) => e.outerHTML.slice(0, 80))""")


def option_ids(page: Page, select: str) -> list[int]:
    values = page.locator(f"{select} option").evaluate_all("os => os.map(o => o.value)")
    return sorted(int(v) for v in values if v)


# -- sign-in and every page ----------------------------------------------------------------------

def test_sign_in_names_the_caller_and_every_page_renders(console: Console, browser: Browser):
    # An unknown token: the page says so and shows no page behind the sign-in.
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    page = context.new_page()
    page.set_default_timeout(WAIT_MS)
    page.goto(f"{console.base}/console/")
    page.fill("#token", "tok-not-in-the-file")
    page.click("#signin button[type=submit]")
    expect(page.locator("#who")).to_contain_text("not known")
    expect(page.locator("#main h1")).to_have_text("Sign in")
    context.close()

    page = open_console(browser, console, ADMIN[1])
    expect(page.locator("#caller-name")).to_have_text(ADMIN[0])
    expect(page.locator("#caller-role")).to_have_text("admin")
    # The token survives a reload of the tab (sessionStorage), and is in no URL.
    page.reload()
    expect(page.locator("#caller-role")).to_have_text("admin")
    assert ADMIN[1] not in page.url
    for route in ("slots", "catalog", "account/acct-screenshot", "history"):
        goto(page, route)
        expect(page.locator("#main [role=alert]")).to_have_count(0)
        assert unlabelled(page) == [], route
        screenshot(page, f"{route.split('/')[0]}-1280")
    # The README's picture (docs/console.png is a copy): a switch previewed, not applied.
    goto(page, "slots")
    page.select_option("#global-openai_model", "13")
    expect(page.locator("article[data-slot=openai_model] .preview")).to_contain_text("GPT-5 Mini")
    page.set_viewport_size({"width": 1280, "height": 1040})
    SHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SHOTS / "readme.png"))
    close(page)

    phone = open_console(browser, console, ADMIN[1], width=390, height=844)
    for route in ("slots", "catalog", "account/acct-screenshot", "history"):
        goto(phone, route)
        # Readable at 390px: nothing wider than the viewport.
        width = phone.evaluate("document.documentElement.scrollWidth")
        assert width <= 390, f"{route} is {width}px wide at a 390px viewport"
        screenshot(phone, f"{route.split('/')[0]}-390")
    close(phone)


# -- slots ---------------------------------------------------------------------------------------

def test_slot_dropdowns_offer_exactly_the_active_models_the_slot_accepts(
        console: Console, browser: Browser):
    # An inactive model of the right provider and type, which no dropdown may offer.
    hidden = console.admin.create_model(pb.Model(
        model_name="gpt-console-inactive", provider="openai", model_type=pb.MODEL_TYPE_TEXT,
        input_price_per_1m_tokens="1", output_price_per_1m_tokens="2", is_active=False),
        reason="console test: an inactive model").model
    page = open_console(browser, console, ADMIN[1])
    settings = console.admin.get_global_settings()
    assert len(settings.slots) >= 4
    for setting in settings.slots:
        expected = console.active_ids(setting.required_provider, setting.required_model_type)
        offered = option_ids(page, f"#global-{setting.slot}")
        assert offered == expected, setting.slot
        # A model of another provider (the refusal PROVIDER_MISMATCH) cannot even be picked.
        others = {m.id for m in console.admin.iter_models()
                  if m.provider != setting.required_provider}
        assert others and not others & set(offered)
        assert hidden.id not in offered
    # Labels carry the name and the prices, as the daemon words them.
    text = page.locator("#global-openai_model option[value='1']").inner_text()
    assert text == "GPT-4o Mini (gpt-4o-mini) - $0.15/$0.60 per 1M tokens"
    image = page.locator("#global-runware_model option[value='6']").inner_text()
    assert image.endswith("per image") and "$0.04" in image
    close(page)


def test_change_a_global_setting_through_the_dropdown(console: Console, browser: Browser):
    page = open_console(browser, console, ADMIN[1])
    before = console.global_model_id("openai_model")
    target = next(i for i in console.active_ids("openai", pb.MODEL_TYPE_TEXT) if i != before)
    # The cost of the switch for a typed volume, from EstimateCost.
    page.fill("#volume-inputTokens", "2000000")
    page.fill("#volume-outputTokens", "500000")
    page.click("form.volume button[type=submit]")
    current_row = page.locator("table.costs-table[data-slot=openai_model] tr.current")
    expect(current_row).to_contain_text("current")
    estimate = console.admin.estimate_cost(
        "openai_model", scope=pb.SCOPE_GLOBAL, input_tokens=2_000_000, output_tokens=500_000)
    current = next(e for e in estimate.estimates if e.current)
    expect(current_row).to_contain_text(f"${current.cost}")

    page.select_option("#global-openai_model", str(target))
    # Choosing only previews: nothing is written until the switch is confirmed with a reason.
    card = page.locator("article[data-slot=openai_model]")
    expect(card.locator(".preview")).to_contain_text("Not applied yet")
    assert console.global_model_id("openai_model") == before
    card.get_by_role("button", name="Switch openai_model to the chosen model").click()
    expect(page.locator("dialog[open] .switch-cost")).to_be_visible()
    reason = "console test: move openai_model"
    confirm_dialog(page, reason)
    expect(page.locator("#live")).to_contain_text("now uses")
    wait_ready(page)
    expect(page.locator("#global-openai_model")).to_have_value(str(target))
    screenshot(page, "slots-after-switch")

    assert console.global_model_id("openai_model") == target
    change = console.admin.list_changes(slot="openai_model", page_size=1).changes[0]
    assert (change.reason, change.actor, change.method) == (reason, ADMIN[0], "SetModel")
    assert (change.before.model_id, change.after.model_id) == (before, target)
    close(page)


def test_a_switch_by_keyboard_alone_with_the_focus_visible(console: Console, browser: Browser):
    page = open_console(browser, console, ADMIN[1])
    before = console.global_model_id("anthropic_model")
    select = page.locator("#global-anthropic_model")
    select.focus()
    page.keyboard.press("ArrowDown")
    chosen = int(select.input_value())
    assert chosen != before
    page.keyboard.press("Tab")
    focused = page.locator(":focus")
    expect(focused).to_have_attribute("aria-label", "Switch anthropic_model to the chosen model")
    # The focus ring is drawn (:focus-visible), not left to the browser's default or removed.
    assert focused.evaluate("e => getComputedStyle(e).outlineStyle") == "solid"
    page.keyboard.press("Enter")
    expect(page.locator("dialog[open] textarea")).to_be_focused()
    page.keyboard.type("console test: by keyboard")
    page.keyboard.press("Tab")
    expect(page.locator("dialog[open] button[value=confirm]")).to_be_focused()
    page.keyboard.press("Enter")
    expect(page.locator("#live")).to_contain_text("now uses")
    # The page re-renders with the focus back in the slot's card, not at the top of the page.
    expect(page.locator("#global-anthropic_model")).to_be_focused()
    assert console.global_model_id("anthropic_model") == chosen
    change = console.admin.list_changes(slot="anthropic_model", page_size=1).changes[0]
    assert change.reason == "console test: by keyboard"
    close(page)


def test_a_stale_page_shows_the_conflict_and_writes_nothing(console: Console, browser: Browser):
    page = open_console(browser, console, ADMIN[1])
    loaded = console.global_model_id("runware_model")
    others = [i for i in console.active_ids("runware", pb.MODEL_TYPE_IMAGE) if i != loaded]
    # Someone else changes the global settings after the page loaded.
    console.admin.set_global_model("runware_model", others[0], reason="console test: meanwhile")
    revision = console.revision()

    page.select_option("#global-runware_model", str(others[1]))
    page.get_by_role("button", name="Switch runware_model to the chosen model").click()
    confirm_dialog(page, "console test: from a stale page")
    conflict = page.locator("article[data-slot=runware_model] .notice.conflict")
    expect(conflict).to_be_visible()
    expect(conflict.locator(".reason")).to_have_text("ETAG_MISMATCH")
    expect(page.locator("#live")).to_contain_text("Conflict")
    screenshot(page, "slots-conflict")
    assert console.global_model_id("runware_model") == others[0]
    assert console.revision() == revision  # nothing written

    # Reload shows what the other writer chose.
    conflict.get_by_role("button", name="Reload").click()
    wait_ready(page)
    expect(page.locator("#global-runware_model")).to_have_value(str(others[0]))
    close(page)


# -- account -------------------------------------------------------------------------------------

def test_set_and_clear_an_account_override(console: Console, browser: Browser):
    account = "acct-console-1"
    page = open_console(browser, console, ADMIN[1], route="account")
    page.fill("#account-id", account)
    page.click("form.account-form button[type=submit]")
    expect(page.locator("#account-shown")).to_have_text(account)
    wait_ready(page)
    row = page.locator("tr[data-slot=anthropic_model]")
    expect(row).not_to_have_attribute("data-source", "SOURCE_ACCOUNT")
    expect(row.get_by_role("button", name="Clear the override of anthropic_model")).to_be_disabled()

    target = console.admin.get_model("claude-haiku-4-5-20251001").model
    page.select_option("#override-anthropic_model", str(target.id))
    row.get_by_role("button", name="Set the override of anthropic_model").click()
    confirm_dialog(page, "console test: haiku for this account")
    expect(page.locator("#live")).to_contain_text("now overrides")
    wait_ready(page)
    row = page.locator("tr[data-slot=anthropic_model]")
    expect(row).to_have_attribute("data-source", "SOURCE_ACCOUNT")
    expect(row.locator("td.model")).to_contain_text(target.label)
    resolved = console.admin.resolve_for_account(account, ["anthropic_model"]).slots[0]
    assert (resolved.source, resolved.model.id) == (pb.SOURCE_ACCOUNT, target.id)
    screenshot(page, "account-override")

    row.get_by_role("button", name="Clear the override of anthropic_model").click()
    confirm_dialog(page, "console test: back to the default")
    expect(page.locator("#live")).to_contain_text("no longer overrides")
    wait_ready(page)
    expect(page.locator("tr[data-slot=anthropic_model]")).not_to_have_attribute(
        "data-source", "SOURCE_ACCOUNT")
    resolved = console.admin.resolve_for_account(account, ["anthropic_model"]).slots[0]
    assert resolved.source != pb.SOURCE_ACCOUNT
    # The account's history, one link away: both changes, newest first, with their reasons.
    page.get_by_role("link", name="History of its overrides").click()
    expect(page.locator("#history-accountId")).to_have_value(account)
    expect(page.locator("li.change .reason")).to_have_text(
        ["Reason: console test: back to the default",
         "Reason: console test: haiku for this account"])
    changes = console.admin.list_changes(account_id=account).changes
    assert [c.reason for c in changes] == ["console test: back to the default",
                                           "console test: haiku for this account"]
    close(page)


def test_a_skipped_override_is_shown_as_such(console: Console, browser: Browser):
    account = "acct-console-skipped"
    model = console.admin.create_model(pb.Model(
        model_name="claude-console-temp", display_name="Claude Console Temp", provider="anthropic",
        model_type=pb.MODEL_TYPE_TEXT, input_price_per_1m_tokens="1",
        output_price_per_1m_tokens="5", is_active=True), reason="console test").model
    console.admin.set_model("anthropic_model", model.id, account_id=account, reason="console test")
    console.admin.update_model(pb.Model(id=model.id, is_active=False), ["is_active"],
                               reason="console test: deactivate")
    page = open_console(browser, console, ADMIN[1], route=f"account/{account}")
    row = page.locator("tr[data-slot=anthropic_model]")
    expect(row.locator(".skipped")).to_contain_text("Claude Console Temp")
    expect(row.locator(".skipped")).to_contain_text("inactive")
    expect(row).not_to_have_attribute("data-source", "SOURCE_ACCOUNT")
    # The kept override can still be cleared.
    expect(row.get_by_role("button", name="Clear the override of anthropic_model")).to_be_enabled()
    screenshot(page, "account-skipped")
    close(page)


# -- history -------------------------------------------------------------------------------------

def test_revert_from_the_history_and_a_refusal_with_its_reason(console: Console, browser: Browser):
    first = console.admin.get_model("claude-haiku-4-5-20251001").model.id
    second = console.admin.get_model("claude-opus-4-5-20251101").model.id
    a = console.admin.set_global_model("anthropic_model", first, reason="console test: A").revision
    b = console.admin.set_global_model("anthropic_model", second, reason="console test: B").revision

    page = open_console(browser, console, ADMIN[1], route="history")
    page.select_option("#history-slot", "anthropic_model")
    page.click("form.filters button[type=submit]")
    wait_ready(page)
    items = page.locator("li.change")
    expect(items.first).to_have_attribute("data-revision", str(b))
    for slot in page.locator("li.change .subject").all_inner_texts():
        assert "anthropic_model" in slot
    # The diff names the models on both sides.
    newest = page.locator(f"li.change[data-revision='{b}']")
    expect(newest.locator("td.before")).to_contain_text("Claude Haiku 4.5")
    expect(newest.locator("td.after")).to_contain_text("Claude Opus 4.5")
    expect(newest.locator(".reason")).to_contain_text("console test: B")
    screenshot(page, "history-filtered")

    # Reverting A while B changed the same slot since: refused, with the reason shown.
    revision = console.revision()
    page.get_by_role("button", name=f"Revert revision {a}").click()
    confirm_dialog(page, "console test: revert A")
    refusal = page.locator(".result .notice.error")
    expect(refusal.locator(".reason")).to_have_text("CHANGED_SINCE")
    assert console.revision() == revision
    assert console.global_model_id("anthropic_model") == second

    page.get_by_role("button", name=f"Revert revision {b}").click()
    confirm_dialog(page, "console test: revert B")
    expect(page.locator("#live")).to_contain_text(f"Revision {b} reverted")
    wait_ready(page)
    assert console.global_model_id("anthropic_model") == first
    change = console.admin.list_changes(slot="anthropic_model", page_size=1).changes[0]
    assert (change.reverted_revision, change.reason, change.actor) == (
        b, "console test: revert B", ADMIN[0])
    expect(page.locator("li.change").first).to_contain_text(f"reverts r{b}")
    close(page)


# -- roles ---------------------------------------------------------------------------------------

def test_a_reader_sees_the_write_controls_disabled(console: Console, browser: Browser):
    page = open_console(browser, console, READER[1])
    expect(page.locator("#caller-role")).to_have_text("reader")
    selects = page.locator("article.slot select")
    assert selects.count() >= 4
    for i in range(selects.count()):
        expect(selects.nth(i)).to_be_disabled()
        expect(selects.nth(i)).to_have_attribute(
            "title", "Needs the admin role; you are signed in as reader.")
    expect(page.locator(".notice.role")).to_contain_text("reader")
    screenshot(page, "slots-reader")

    goto(page, "catalog")
    expect(page.get_by_role("button", name="New model")).to_be_disabled()
    for label in ("Edit", "Deactivate", "Retire", "Delete"):
        expect(page.get_by_role("button", name=f"{label} GPT-4o Mini", exact=True)).to_be_disabled()
    # Reading what uses a model is a read: allowed.
    page.get_by_role("button", name="Usage of GPT-4o Mini").click()
    expect(page.locator(".result")).to_contain_text("is used by")

    goto(page, "account/acct-console-1")
    expect(page.locator("#override-openai_model")).to_be_disabled()
    expect(page.get_by_role("button", name="Set the override of openai_model")).to_be_disabled()

    goto(page, "history")
    page.select_option("#history-slot", "openai_model")
    page.click("form.filters button[type=submit]")
    wait_ready(page)
    reverts = page.locator("li.change button", has_text="Revert")
    assert reverts.count() > 0
    for i in range(reverts.count()):
        expect(reverts.nth(i)).to_be_disabled()
    close(page)


def test_a_writer_may_override_accounts_but_not_change_global_settings(
        console: Console, browser: Browser):
    page = open_console(browser, console, WRITER[1], route="account/acct-console-writer")
    expect(page.locator("#override-openai_model")).to_be_enabled()
    expect(page.get_by_role("button", name="Set the override of openai_model")).to_be_enabled()
    goto(page, "slots")
    expect(page.locator("#global-openai_model")).to_be_disabled()
    close(page)


# -- catalog -------------------------------------------------------------------------------------

def test_create_a_model_and_see_what_uses_one_before_deactivating(
        console: Console, browser: Browser):
    page = open_console(browser, console, ADMIN[1], route="catalog")
    page.get_by_role("button", name="New model").click()
    dialog = page.locator("dialog[open]")
    dialog.locator("#model-modelName").fill("gpt-console-new")
    dialog.locator("#model-displayName").fill("GPT Console New")
    dialog.locator("#model-provider").fill("openai")
    dialog.locator("#model-inputPricePer1mTokens").fill("0.30")
    dialog.locator("#model-outputPricePer1mTokens").fill("1.20")
    dialog.locator("#model-isActive").check()
    confirm_dialog(page, "console test: a new model")
    expect(page.locator("#live")).to_contain_text("was created")
    wait_ready(page)
    created = console.admin.get_model("gpt-console-new").model
    assert (created.display_name, created.input_price_per_1m_tokens, created.is_active) == (
        "GPT Console New", "0.30", True)
    expect(page.locator(f"tr[data-model-id='{created.id}']")).to_contain_text("active")

    # Editing a price sends only that field (update mask).
    page.get_by_role("button", name="Edit GPT Console New", exact=True).click()
    page.locator("dialog[open] #model-outputPricePer1mTokens").fill("1.50")
    confirm_dialog(page, "console test: new output price")
    expect(page.locator("#live")).to_contain_text("was saved")
    wait_ready(page)
    assert console.admin.get_model(created.id).model.output_price_per_1m_tokens == "1.50"

    # A model a global setting uses: the dialog lists the use and will not deactivate it.
    in_use = console.admin.get_model(console.global_model_id("dalle_model")).model
    page.get_by_role("button", name=f"Deactivate {in_use.display_name}", exact=True).click()
    dialog = page.locator("dialog[open]")
    expect(dialog.locator(".usage")).to_contain_text("global setting of dalle_model")
    expect(dialog.locator("button[value=confirm]")).to_be_disabled()
    screenshot(page, "catalog-deactivate-in-use")
    dialog.get_by_role("button", name="Cancel").click()

    # The new model is unused: deactivating it is allowed.
    page.get_by_role("button", name="Deactivate GPT Console New", exact=True).click()
    expect(page.locator("dialog[open] .usage")).to_contain_text("Nothing uses it")
    confirm_dialog(page, "console test: deactivate the new model")
    expect(page.locator("#live")).to_contain_text("is inactive")
    wait_ready(page)
    assert console.admin.get_model(created.id).model.is_active is False
    close(page)


def test_retire_a_model_to_its_successor(console: Console, browser: Browser):
    old = console.admin.create_model(pb.Model(
        model_name="gpt-console-retiring", display_name="GPT Console Retiring", provider="openai",
        model_type=pb.MODEL_TYPE_TEXT, input_price_per_1m_tokens="1",
        output_price_per_1m_tokens="4", is_active=True), reason="console test").model
    console.admin.set_model("openai_model", old.id, account_id="acct-console-retire",
                            reason="console test")
    successor = console.admin.get_model("gpt-4o-mini").model
    page = open_console(browser, console, ADMIN[1], route="catalog")
    page.get_by_role("button", name="Retire GPT Console Retiring", exact=True).click()
    dialog = page.locator("dialog[open]")
    # Only active models of the same provider and type are offered as successors.
    offered = option_ids(page, "dialog[open] select[name=successor]")
    assert offered == [i for i in console.active_ids("openai", pb.MODEL_TYPE_TEXT) if i != old.id]
    dialog.locator("select[name=successor]").select_option(str(successor.id))
    # A dry run (validate_only) says what would move before anything does.
    expect(dialog.locator(".preview")).to_contain_text("1 account override of 1 account")
    assert console.admin.get_model(old.id).model.is_active is True
    confirm_dialog(page, "console test: retire")
    expect(page.locator("#live")).to_contain_text("was retired")
    retired = console.admin.get_model(old.id).model
    assert (retired.is_active, retired.successor_id) == (False, successor.id)
    resolved = console.admin.resolve_for_account("acct-console-retire", ["openai_model"]).slots[0]
    assert (resolved.source, resolved.model.id) == (pb.SOURCE_ACCOUNT, successor.id)
    close(page)


def test_the_history_shows_what_a_model_creation_set(console: Console, browser: Browser):
    created = console.admin.create_model(pb.Model(
        model_name="gpt-console-history", display_name="GPT Console History", provider="openai",
        model_type=pb.MODEL_TYPE_TEXT, input_price_per_1m_tokens="0.70",
        output_price_per_1m_tokens="2.80", is_active=False), reason="console test: history").model
    page = open_console(browser, console, ADMIN[1], route="history")
    refusal = page.locator("#main .notice.error")
    listed = page.locator("li.change")
    expect(listed.first.or_(refusal)).to_be_visible()
    assert refusal.count() == 0, refusal.inner_text()
    item = page.locator("li.change[data-kind=CHANGE_KIND_MODEL_CREATED]").first
    expect(item).to_contain_text("GPT Console History")
    expect(item.locator(".reason")).to_contain_text("console test: history")
    rows = item.locator("table.diff tbody tr")
    fields = dict(zip(rows.locator("th").all_inner_texts(),
                      rows.locator("td.after").all_inner_texts(), strict=True))
    assert fields["model.modelName"] == created.model_name
    assert fields["model.inputPricePer1mTokens"] == "0.70"
    assert fields["model.outputPricePer1mTokens"] == "2.80"
    close(page)
