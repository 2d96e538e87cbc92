// Account: what one account resolves to per slot and where it came from (override, global,
// default), a skipped override shown as such, and setting and clearing overrides.

import { call, enc, get, listAll } from "../api.js";
import { accepted, announce, askReason, errorBox, gate, h, modelOption, roleNote, show,
  sourceName } from "../ui.js";

export async function render(frame, ctx) {
  const accountId = ctx.params[0] || "";
  const form = h("form", { class: "account-form", role: "search" },
    h("div", { class: "field" }, h("label", { for: "account-id" }, "Account id"),
      h("input", { id: "account-id", name: "account", value: accountId, required: true,
        spellcheck: "false", autocomplete: "off" })),
    h("button", { type: "submit" }, "Show"));
  form.addEventListener("submit", (event) => {
    event.preventDefault();
    const id = form.elements.account.value.trim();
    if (id) location.hash = `#/account/${enc(id)}`;
  });
  frame.append(h("h1", {}, "Account"),
    h("p", { class: "intro" }, "The model an account uses for each slot: its override if that model ",
      "is active, else the global setting, else the slot's default."),
    roleNote(ctx, "writer", "setting or clearing an override"),
    form);
  if (!accountId) {
    frame.append(await knownAccounts());
    return;
  }
  const [resolved, settings, models] = await Promise.all([
    get(`/v1/accounts/${enc(accountId)}:resolve`),
    get("/v1/settings"),
    listAll("/v1/models", "models"),
  ]);
  if (ctx.stale()) return;
  const slotsByName = new Map((settings.slots || []).map((s) => [s.slot, s]));
  const result = h("div", { class: "result" });
  frame.append(
    h("h2", {}, "Account ", h("code", { id: "account-shown" }, accountId)),
    h("p", { class: "etag" }, "Account etag ", h("code", {}, resolved.etag), " · ",
      h("a", { href: `#/history?accountId=${enc(accountId)}` }, "History of its overrides")),
    result,
    h("div", { class: "table-wrap" }, h("table", { class: "resolved stack" },
      h("caption", { class: "visually-hidden" }, `Resolved models of ${accountId}`),
      h("thead", {}, h("tr", {}, ["Slot", "Model in use", "Source", "Override"]
        .map((t) => h("th", { scope: "col" }, t)))),
      h("tbody", {}, (resolved.slots || []).map((r) =>
        slotRow(r, slotsByName.get(r.slot), models, accountId, resolved.etag, ctx, result))))),
  );
}

async function knownAccounts() {
  const response = await get("/v1/accounts", { pageSize: 50 });
  const accounts = response.accounts || [];
  return h("section", { class: "known" }, h("h2", {}, "Accounts with overrides"),
    accounts.length
      ? h("ul", {}, accounts.map((a) => h("li", {},
        h("a", { href: `#/account/${enc(a.accountId)}` }, a.accountId),
        ` · ${(a.overrides || []).length} override${(a.overrides || []).length === 1 ? "" : "s"}`)))
      : h("p", {}, "No account overrides any slot yet."),
    response.nextPageToken ? h("p", {}, "First 50 shown.") : null);
}

function slotRow(r, setting, models, accountId, etag, ctx, result) {
  const slot = r.slot;
  const overrideId = r.source === "SOURCE_ACCOUNT" ? String(r.model.id)
    : r.skippedOverride ? String(r.skippedOverride.id) : "";
  const options = setting ? accepted(models, setting.requiredProvider, setting.requiredModelType) : [];
  const selectId = `override-${slot}`;
  const select = gate(h("select", { id: selectId, name: slot, dataset: { slot } },
    h("option", { value: "", selected: !options.some((m) => String(m.id) === overrideId) },
      "choose a model"),
    options.map((m) => modelOption(m, overrideId))), ctx, "writer");
  const set = gate(h("button", { type: "button", "aria-label": `Set the override of ${slot}` }, "Set"),
    ctx, "writer");
  const clear = gate(h("button", { type: "button", "aria-label": `Clear the override of ${slot}`,
    disabled: !overrideId, title: overrideId ? undefined : "This account does not override the slot." },
  "Clear"), ctx, "writer");

  set.addEventListener("click", async () => {
    const chosen = models.find((m) => String(m.id) === select.value);
    if (!chosen) {
      show(result, h("p", { class: "notice error", role: "alert" }, `Choose a model for ${slot} first.`));
      return;
    }
    const answer = await askReason({ title: `Override ${slot} for ${accountId}`, confirm: "Set override",
      body: h("p", {}, "The account will use ", h("strong", {}, chosen.label), " for this slot.") });
    if (!answer) return;
    await write(ctx, result, `${accountId} now overrides ${slot} with ${chosen.label}.`,
      `/v1/accounts/${enc(accountId)}/settings/${enc(slot)}:set`,
      { modelId: String(chosen.id), etag }, answer.reason);
  });
  clear.addEventListener("click", async () => {
    const answer = await askReason({ title: `Clear the override of ${slot} for ${accountId}`, confirm: "Clear",
      body: h("p", {}, "The account will follow the global setting (or the slot's default).") });
    if (!answer) return;
    await write(ctx, result, `${accountId} no longer overrides ${slot}.`,
      `/v1/accounts/${enc(accountId)}/settings/${enc(slot)}:clear`, { etag }, answer.reason);
  });

  return h("tr", { dataset: { slot, source: r.source || "" } },
    h("th", { scope: "row", "data-label": "Slot" }, setting ? setting.displayName : slot, " ", h("code", {}, slot)),
    h("td", { "data-label": "Model in use", class: "model" }, r.model ? r.model.label : "",
      r.deprecated ? [" ", h("span", { class: "badge warn" }, "deprecated")] : null),
    h("td", { "data-label": "Source" }, h("span", { class: `badge source ${r.source}` }, sourceName(r.source)),
      r.skippedOverride ? h("p", { class: "skipped" }, "Override skipped: ",
        h("strong", {}, r.skippedOverride.label), " is inactive. It is kept and wins again once the ",
        "model is reactivated.") : null),
    h("td", { "data-label": "Override" }, h("div", { class: "override" },
      h("label", { for: selectId, class: "visually-hidden" }, `Override model for ${slot}`),
      select, set, clear)));
}

async function write(ctx, result, label, path, body, reason) {
  try {
    await call("POST", path, { body, reason });
    announce(label);
    ctx.reload();
  } catch (error) {
    show(result, errorBox(error, { onReload: ctx.reload }));
  }
}
