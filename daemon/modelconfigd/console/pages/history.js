// History: the recorded changes (ListChanges) with filters, what each changed (before and after),
// and revert with a reason; a refusal is shown with its reason.

import { call, enc, get, listAll } from "../api.js";
import { announce, askReason, count, errorBox, gate, h, may, roleNote, show } from "../ui.js";

// The filters live in the page's address (#/history?slot=...&accountId=...), so a filtered
// history can be linked to from the other pages and kept as a bookmark.
const FILTERS = ["slot", "accountId", "modelId", "actor"];
// Kinds the daemon never reverts (NOT_REVERTIBLE): disabled up front rather than refused.
const NOT_REVERTIBLE = new Set(["CHANGE_KIND_SEED", "CHANGE_KIND_SLOT_CREATED", "CHANGE_KIND_CATALOG",
  "CHANGE_KIND_CONFIGURATION_APPLIED"]);

export async function render(frame, ctx) {
  const filters = Object.fromEntries(FILTERS.map((key) => [key, ctx.query[key] || ""]));
  const [slots, models] = await Promise.all([get("/v1/slots"), listAll("/v1/models", "models")]);
  if (ctx.stale()) return;
  const byId = new Map(models.map((m) => [String(m.id), m]));
  const result = h("div", { class: "result" });
  const list = h("ol", { class: "changes", reversed: true });
  const more = h("div", { class: "more" });
  frame.append(
    h("h1", {}, "History"),
    h("p", { class: "intro" }, "Every committed change, newest first: who, when, through which call, ",
      "why, and exactly what it changed."),
    roleNote(ctx, "admin", "reverting a change"),
    filterForm(slots.slots || [], models, filters, ctx.reload),
    result, list, more);

  async function page(pageToken) {
    const query = { ...filters, pageSize: 25, pageToken };
    const response = await get("/v1/changes", query);
    for (const change of response.changes || []) list.append(changeItem(change, byId, ctx, result));
    if (!(response.changes || []).length && !pageToken) list.append(h("li", {}, "No change matches."));
    show(more, response.nextPageToken
      ? h("button", { type: "button", onclick: () => page(response.nextPageToken) }, "Older changes") : null);
  }
  await page("");
}

function filterForm(slots, models, filters, reload) {
  const field = (key, label, control) => h("div", { class: "field" }, h("label", { for: `history-${key}` }, label),
    control);
  const form = h("form", { class: "filters", "aria-label": "Filters" },
    h("fieldset", {}, h("legend", {}, "Filters"),
      field("slot", "Slot", h("select", { id: "history-slot", name: "slot" },
        h("option", { value: "" }, "any"),
        slots.map((s) => h("option", { value: s.name, selected: filters.slot === s.name }, s.name)))),
      field("accountId", "Account id", h("input", { id: "history-accountId", name: "accountId",
        value: filters.accountId, spellcheck: "false" })),
      field("modelId", "Model", h("select", { id: "history-modelId", name: "modelId" },
        h("option", { value: "" }, "any"),
        models.map((m) => h("option", { value: String(m.id), selected: filters.modelId === String(m.id) },
          `${m.displayName} (${m.modelName})`)))),
      field("actor", "Actor", h("input", { id: "history-actor", name: "actor", value: filters.actor,
        spellcheck: "false" })),
      h("button", { type: "submit" }, "Apply")));
  form.addEventListener("submit", (event) => {
    event.preventDefault();
    const query = new URLSearchParams();
    for (const key of FILTERS) {
      const value = form.elements[key].value.trim();
      if (value) query.set(key, value);
    }
    const search = query.toString();
    // pushState (not location.hash) and a re-render in this same event: the page is replaced at
    // once, and Back still returns to the previous filters (a hashchange).
    history.pushState(null, "", search ? `#/history?${search}` : "#/history");
    reload();
  });
  return form;
}

const KIND_NAMES = {
  CHANGE_KIND_SEED: "seed", CHANGE_KIND_MODEL_CREATED: "model created",
  CHANGE_KIND_MODEL_UPDATED: "model updated", CHANGE_KIND_MODEL_DELETED: "model deleted",
  CHANGE_KIND_SLOT_CREATED: "slot created", CHANGE_KIND_SLOT_UPDATED: "slot updated",
  CHANGE_KIND_SETTING: "setting", CHANGE_KIND_IMPORT: "import", CHANGE_KIND_CATALOG: "catalog",
  CHANGE_KIND_MODEL_RETIRED: "model retired", CHANGE_KIND_CONFIGURATION_APPLIED: "configuration applied",
};

/** Leaf values of a change side as path -> text, so any kind of change diffs the same way. */
function flatten(value, prefix = "", out = new Map()) {
  if (value === null || value === undefined) return out;
  if (Array.isArray(value)) {
    out.set(prefix, value.map((v) => (typeof v === "object" ? JSON.stringify(v) : String(v))).join(", "));
  } else if (typeof value === "object") {
    for (const [key, inner] of Object.entries(value)) {
      if (key === "label") continue; // derived from the prices and names shown beside it
      flatten(inner, prefix ? `${prefix}.${key}` : key, out);
    }
  } else {
    out.set(prefix, String(value));
  }
  return out;
}

function modelText(id, byId) {
  if (!id || id === "0") return "none";
  const m = byId.get(String(id));
  return m ? `${m.displayName} (#${id})` : `#${id} (deleted)`;
}

function diffTable(change, byId) {
  const before = flatten(change.before || {});
  const after = flatten(change.after || {});
  // The API prints fields at their defaults too: an empty value is no value, and a row whose
  // sides agree is no difference.
  for (const side of [before, after]) {
    for (const [key, value] of side) if (value === "" || value === "0") side.delete(key);
  }
  const keys = [...new Set([...before.keys(), ...after.keys()])]
    .filter((key) => before.get(key) !== after.get(key));
  const setting = change.kind === "CHANGE_KIND_SETTING";
  const shown = (key, text) => (text === undefined ? (setting && key === "modelId" ? "none" : "—")
    : /(^|\.)(modelId|successorId)$/.test(key) ? modelText(text, byId) : text);
  const rows = keys.map((key) => h("tr", { class: "changed" },
    h("th", { scope: "row" }, key === "modelId" ? "model" : key),
    h("td", { class: "before", "data-label": "Before" }, shown(key, before.get(key))),
    h("td", { class: "after", "data-label": "After" }, shown(key, after.get(key)))));
  const counts = change.importRows && change.importRows !== "0"
    ? h("p", {}, `${count(change.importRows, "account override")} of ${count(change.importAccounts, "account")}.`)
    : null;
  if (!rows.length) return counts || h("p", { class: "muted" }, "No before and after recorded for this kind.");
  return [h("table", { class: "diff stack" },
    h("thead", {}, h("tr", {}, h("th", { scope: "col" }, "Field"), h("th", { scope: "col" }, "Before"),
      h("th", { scope: "col" }, "After"))),
    h("tbody", {}, rows)), counts];
}

function changeItem(change, byId, ctx, result) {
  const revision = String(change.revision);
  const kind = KIND_NAMES[change.kind] || change.kind;
  const subject = [
    change.scope === "SCOPE_GLOBAL" ? "global" : null,
    change.accountId ? `account ${change.accountId}` : null,
    change.slot ? `slot ${change.slot}` : null,
    change.modelId && change.modelId !== "0" ? `model ${modelText(change.modelId, byId)}` : null,
  ].filter(Boolean).join(" · ");
  const revert = gate(h("button", { type: "button", "aria-label": `Revert revision ${revision}` }, "Revert"),
    ctx, "admin");
  if (may(ctx, "admin") && NOT_REVERTIBLE.has(change.kind)) {
    revert.disabled = true;
    revert.title = `A ${kind} change cannot be reverted.`;
  }
  revert.addEventListener("click", async () => {
    const forceId = `force-${revision}`;
    const answer = await askReason({
      title: `Revert revision ${revision}`, confirm: "Revert",
      body: h("p", {}, "Records a new change that restores what this one replaced, checked by every rule."),
      extra: h("div", { class: "field check" }, h("input", { id: forceId, name: "force", type: "checkbox" }),
        h("label", { for: forceId }, "Force: revert even if a later change touched the same thing")),
    });
    if (!answer) return;
    try {
      const response = await call("POST", `/v1/changes/${enc(revision)}:revert`,
        { body: { force: answer.form.elements.force.checked }, reason: answer.reason });
      const made = response.change ? `as revision ${response.change.revision}` : "(nothing to restore)";
      announce(`Revision ${revision} reverted ${made}.`);
      ctx.reload();
    } catch (error) {
      show(result, errorBox(error, { onReload: ctx.reload }));
      result.scrollIntoView({ block: "nearest" });
    }
  });
  const time = change.time ? new Date(change.time) : null;
  return h("li", { class: "card change", dataset: { revision, kind: change.kind || "" } },
    h("header", {},
      h("h2", {}, `r${revision} · ${kind}`),
      h("p", { class: "meta" },
        time ? h("time", { datetime: change.time }, time.toISOString().replace("T", " ").slice(0, 19), " UTC") : "",
        " · by ", h("strong", { class: "actor" }, change.actor || "unknown"),
        change.method ? ` via ${change.method}` : "",
        change.revertedRevision && change.revertedRevision !== "0" ? ` · reverts r${change.revertedRevision}` : ""),
      subject ? h("p", { class: "subject" }, subject) : null,
      h("p", { class: "reason" }, change.reason ? ["Reason: ", h("q", {}, change.reason)] : h("span", { class: "muted" }, "No reason given."))),
    diffTable(change, byId),
    h("div", { class: "buttons" }, revert));
}
