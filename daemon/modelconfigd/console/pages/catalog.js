// Catalog: the models with filters (the ListModels filters); create, edit, activate, deactivate,
// retire to a successor, delete; before deactivating or deleting, what uses the model (:usage).

import { call, enc, get, listAll } from "../api.js";
import { announce, askReason, count, errorBox, gate, h, roleNote, show, typeName } from "../ui.js";

const filters = { provider: "", modelType: "", activeOnly: false, deprecation: "" };

// The editable fields: [JSON name, proto field, label, input type].
const FIELDS = [
  ["modelName", "model_name", "Model name (the provider's id)", "text"],
  ["displayName", "display_name", "Display name", "text"],
  ["provider", "provider", "Provider", "text"],
  ["modelType", "model_type", "Type", "type"],
  ["inputPricePer1mTokens", "input_price_per_1m_tokens", "Input price, USD per 1M tokens", "price"],
  ["cachedInputPricePer1mTokens", "cached_input_price_per_1m_tokens",
    "Cached input price, USD per 1M tokens", "price"],
  ["outputPricePer1mTokens", "output_price_per_1m_tokens", "Output price, USD per 1M tokens", "price"],
  ["pricePerImage", "price_per_image", "Price per image, USD", "price"],
  ["contextWindow", "context_window", "Context window (tokens)", "int"],
  ["maxOutputTokens", "max_output_tokens", "Max output tokens", "int"],
  ["aliases", "aliases", "Aliases (comma separated)", "list"],
  ["deprecationDate", "deprecation_date", "Deprecation date", "date"],
];

export async function render(frame, ctx) {
  const [all, listed] = await Promise.all([
    listAll("/v1/models", "models"),
    listAll("/v1/models", "models", filters),
  ]);
  if (ctx.stale()) return;
  const byId = new Map(all.map((m) => [String(m.id), m]));
  const providers = [...new Set(all.map((m) => m.provider))].sort();
  const result = h("div", { class: "result" });
  const create = gate(h("button", { type: "button", class: "primary",
    onclick: () => editModel(null, ctx, result) }, "New model"), ctx, "admin");
  frame.append(
    h("h1", {}, "Catalog"),
    h("p", { class: "intro" }, "Every model and its prices. Inactive models are never offered in a ",
      "slot; an account override of one is kept but skipped."),
    roleNote(ctx, "admin", "changing the catalog"),
    filterForm(providers, ctx),
    h("div", { class: "buttons" }, create),
    result,
    h("p", { class: "count" }, `${listed.length} of ${all.length} models`),
    modelTable(listed, byId, ctx, result),
  );
}

function filterForm(providers, ctx) {
  const select = (key, label, options) => h("div", { class: "field" },
    h("label", { for: `filter-${key}` }, label),
    h("select", { id: `filter-${key}`, name: key },
      options.map(([value, text]) => h("option", { value, selected: filters[key] === value }, text))));
  const form = h("form", { class: "filters", "aria-label": "Filters" },
    h("fieldset", {}, h("legend", {}, "Filters"),
      select("provider", "Provider", [["", "any"], ...providers.map((p) => [p, p])]),
      select("modelType", "Type", [["", "any"], ["MODEL_TYPE_TEXT", "text"], ["MODEL_TYPE_IMAGE", "image"]]),
      select("deprecation", "Deprecation", [["", "any"], ["DEPRECATION_FILTER_CURRENT", "current"],
        ["DEPRECATION_FILTER_SCHEDULED", "scheduled"], ["DEPRECATION_FILTER_PAST", "past its date"]]),
      h("div", { class: "field check" },
        h("input", { id: "filter-activeOnly", name: "activeOnly", type: "checkbox", checked: filters.activeOnly }),
        h("label", { for: "filter-activeOnly" }, "Active only")),
      h("button", { type: "submit" }, "Apply")));
  form.addEventListener("submit", (event) => {
    event.preventDefault();
    for (const key of ["provider", "modelType", "deprecation"]) filters[key] = form.elements[key].value;
    filters.activeOnly = form.elements.activeOnly.checked;
    ctx.reload();
  });
  return form;
}

function prices(m) {
  if (m.modelType === "MODEL_TYPE_IMAGE") return m.pricePerImage ? `$${m.pricePerImage} per image` : "—";
  const parts = [m.inputPricePer1mTokens && `in $${m.inputPricePer1mTokens}`,
    m.cachedInputPricePer1mTokens && `cached $${m.cachedInputPricePer1mTokens}`,
    m.outputPricePer1mTokens && `out $${m.outputPricePer1mTokens}`].filter(Boolean);
  return parts.length ? `${parts.join(" / ")} per 1M tokens` : "—";
}

function modelTable(models, byId, ctx, result) {
  const row = (m) => {
    const active = m.isActive === true;
    const name = m.displayName || m.modelName;
    const button = (text, handler) => gate(h("button", { type: "button", onclick: handler,
      "aria-label": `${text} ${name}` }, text), ctx, "admin");
    const successor = m.successorId && m.successorId !== "0" ? byId.get(String(m.successorId)) : null;
    return h("tr", { dataset: { modelId: String(m.id) }, class: active ? "" : "inactive" },
      h("td", { "data-label": "Id" }, String(m.id)),
      h("th", { scope: "row", "data-label": "Model" }, h("span", { class: "name" }, name), " ",
        h("code", {}, m.modelName),
        (m.aliases || []).length ? h("small", {}, ` aka ${m.aliases.join(", ")}`) : null),
      h("td", { "data-label": "Provider" }, `${m.provider} · ${typeName(m.modelType)}`),
      h("td", { "data-label": "Prices" }, prices(m)),
      h("td", { "data-label": "Status" },
        h("span", { class: `badge ${active ? "on" : "off"}` }, active ? "active" : "inactive"),
        m.deprecationDate ? h("small", {}, ` deprecated from ${m.deprecationDate}`) : null,
        successor ? h("small", {}, ` → ${successor.displayName}`) : null),
      h("td", { class: "actions", "data-label": "Actions" },
        h("button", { type: "button", onclick: () => showUsage(m, result),
          "aria-label": `Usage of ${name}` }, "Usage"),
        button("Edit", () => editModel(m, ctx, result)),
        active ? button("Deactivate", () => deactivate(m, ctx, result))
          : button("Activate", () => activate(m, ctx, result)),
        button("Retire", () => retire(m, byId, ctx, result)),
        button("Delete", () => remove(m, ctx, result))));
  };
  return h("div", { class: "table-wrap" }, h("table", { class: "models stack" },
    h("caption", { class: "visually-hidden" }, "Models"),
    h("thead", {}, h("tr", {}, ["Id", "Model", "Provider", "Prices", "Status", "Actions"]
      .map((t) => h("th", { scope: "col" }, t)))),
    h("tbody", {}, models.map(row))));
}

async function usageOf(m) {
  return get(`/v1/models/${enc(m.id)}:usage`, { pageSize: 20 });
}

function usageList(usage) {
  const items = [];
  const global = usage.globalSlots || [];
  const defaults = usage.defaultSlots || [];
  const overrides = Number(usage.accountOverrideCount || 0);
  if (global.length) items.push(h("li", {}, `the global setting of ${global.join(", ")}`));
  if (defaults.length) items.push(h("li", {}, `the default of ${defaults.join(", ")}`));
  if (overrides) {
    items.push(h("li", {}, `${count(overrides, "account override")} (`,
      (usage.accountIds || []).join(", "), overrides > (usage.accountIds || []).length ? ", …" : "", ")"));
  }
  if ((usage.successorOf || []).length) {
    items.push(h("li", {}, `the successor of model ${usage.successorOf.join(", ")}`));
  }
  return items.length ? h("ul", { class: "usage" }, items)
    : h("p", { class: "usage" }, "Nothing uses it.");
}

async function showUsage(m, result) {
  try {
    const usage = await usageOf(m);
    show(result, h("div", { class: "notice", role: "status" },
      h("p", {}, h("strong", {}, m.displayName), " is used by:"), usageList(usage)));
    announce(`Usage of ${m.displayName} shown.`);
  } catch (error) {
    show(result, errorBox(error));
  }
}

async function write(ctx, result, label, method, path, options) {
  try {
    const response = await call(method, path, options);
    announce(label);
    ctx.reload();
    return response;
  } catch (error) {
    show(result, errorBox(error, { onReload: ctx.reload }));
    return null;
  }
}

async function activate(m, ctx, result) {
  const answer = await askReason({ title: `Activate ${m.displayName}`, confirm: "Activate",
    body: h("p", {}, "Slots of its provider and type will offer it again; account overrides of it ",
      "win again.") });
  if (!answer) return;
  await write(ctx, result, `${m.displayName} is active.`, "PATCH", `/v1/models/${enc(m.id)}`,
    { body: { id: String(m.id), isActive: true }, reason: answer.reason });
}

async function deactivate(m, ctx, result) {
  let usage;
  try {
    usage = await usageOf(m);
  } catch (error) {
    show(result, errorBox(error));
    return;
  }
  const blocking = [...(usage.globalSlots || []), ...(usage.defaultSlots || [])];
  const answer = await askReason({
    title: `Deactivate ${m.displayName}`, confirm: "Deactivate",
    body: [h("p", {}, "What uses it now:"), usageList(usage),
      blocking.length ? h("p", { class: "notice error" }, "A global setting or slot default uses it, ",
        "so it cannot be deactivated: retire it to a successor instead.")
        : Number(usage.accountOverrideCount || 0)
          ? h("p", {}, "Those account overrides are kept but skipped while it is inactive.") : null],
    canConfirm: () => (blocking.length ? `Used by ${blocking.join(", ")}` : null),
  });
  if (!answer) return;
  await write(ctx, result, `${m.displayName} is inactive.`, "PATCH", `/v1/models/${enc(m.id)}`,
    { body: { id: String(m.id), isActive: false }, reason: answer.reason });
}

async function remove(m, ctx, result) {
  let usage;
  try {
    usage = await usageOf(m);
  } catch (error) {
    show(result, errorBox(error));
    return;
  }
  const used = (usage.globalSlots || []).length + (usage.defaultSlots || []).length
    + Number(usage.accountOverrideCount || 0) + (usage.successorOf || []).length;
  const answer = await askReason({
    title: `Delete ${m.displayName}`, confirm: "Delete",
    body: [h("p", {}, "What uses it now:"), usageList(usage),
      used ? h("p", { class: "notice error" }, "Only a model nothing uses can be deleted.") : null],
    canConfirm: () => (used ? "Something still uses it" : null),
  });
  if (!answer) return;
  await write(ctx, result, `${m.displayName} was deleted.`, "DELETE", `/v1/models/${enc(m.id)}`,
    { reason: answer.reason });
}

async function retire(m, byId, ctx, result) {
  const candidates = [...byId.values()].filter((c) => c.isActive === true && String(c.id) !== String(m.id)
    && c.provider === m.provider && c.modelType === m.modelType);
  const selectId = `successor-${m.id}`;
  const preview = h("div", { class: "preview", "aria-live": "polite" });
  const select = h("select", { id: selectId, name: "successor" },
    h("option", { value: "" }, "choose a successor"),
    candidates.map((c) => h("option", { value: String(c.id) }, c.label)));
  select.addEventListener("change", async () => {
    if (!select.value) return show(preview);
    try {
      const r = await call("POST", `/v1/models/${enc(m.id)}:retire`,
        { body: { successorId: select.value, validateOnly: true } });
      show(preview, h("p", {}, "Would move: ",
        `global settings ${(r.globalSlots || []).join(", ") || "none"}; `,
        `slot defaults ${(r.defaultSlots || []).join(", ") || "none"}; `,
        `${count(r.accountOverrides, "account override")} of ${count(r.accounts, "account")}.`));
    } catch (error) {
      show(preview, errorBox(error));
    }
  });
  const answer = await askReason({
    title: `Retire ${m.displayName}`, confirm: "Retire",
    body: h("p", {}, "Every global setting, slot default and account override that selects it moves ",
      "to the successor, and it is deactivated: one change, revertible from the history."),
    extra: [h("div", { class: "field" }, h("label", { for: selectId }, "Successor (same provider and type, active)"),
      select), preview],
  });
  if (!answer) return;
  const successor = answer.form.elements.successor.value;
  if (!successor) {
    show(result, h("p", { class: "notice error", role: "alert" }, "Choose a successor to retire to."));
    return;
  }
  await write(ctx, result, `${m.displayName} was retired.`, "POST", `/v1/models/${enc(m.id)}:retire`,
    { body: { successorId: successor }, reason: answer.reason });
}

function fieldControl([key, , label, kind], model) {
  const id = `model-${key}`;
  const value = model ? model[key] : undefined;
  let control;
  if (kind === "type") {
    control = h("select", { id, name: key, required: true },
      [["MODEL_TYPE_TEXT", "text"], ["MODEL_TYPE_IMAGE", "image"]].map(([v, t]) =>
        h("option", { value: v, selected: value === v }, t)));
  } else {
    const text = kind === "list" ? (value || []).join(", ") : value === undefined ? "" : String(value);
    control = h("input", { id, name: key, value: text,
      type: kind === "date" ? "date" : kind === "int" ? "number" : "text",
      inputmode: kind === "price" ? "decimal" : undefined, min: kind === "int" ? 0 : undefined,
      required: ["modelName", "provider"].includes(key) });
  }
  return h("div", { class: "field" }, h("label", { for: id }, label), control);
}

function readForm(form) {
  const model = {};
  for (const [key, , , kind] of FIELDS) {
    const raw = form.elements[key].value.trim();
    if (kind === "list") model[key] = raw ? raw.split(",").map((s) => s.trim()).filter(Boolean) : [];
    else if (kind === "int") model[key] = raw ? Number(raw) : 0;
    else model[key] = raw;
  }
  return model;
}

function same(a, b) {
  return JSON.stringify(a ?? "") === JSON.stringify(b ?? "")
    || (Array.isArray(a) && !a.length && b === undefined) || (a === 0 && b === undefined);
}

async function editModel(m, ctx, result) {
  const active = h("div", { class: "field check" },
    h("input", { id: "model-isActive", name: "isActive", type: "checkbox" }),
    h("label", { for: "model-isActive" }, "Active (slots may select it)"));
  const answer = await askReason({
    title: m ? `Edit ${m.displayName}` : "New model",
    confirm: m ? "Save" : "Create",
    extra: [h("div", { class: "grid" }, FIELDS.map((f) => fieldControl(f, m))), m ? null : active],
  });
  if (!answer) return;
  const values = readForm(answer.form);
  if (!m) {
    const model = Object.fromEntries(Object.entries(values).filter(([, v]) => v !== "" && v !== 0
      && !(Array.isArray(v) && !v.length)));
    model.isActive = answer.form.elements.isActive.checked;
    await write(ctx, result, `${model.displayName || model.modelName} was created.`, "POST", "/v1/models",
      { body: model, reason: answer.reason });
    return;
  }
  const changed = FIELDS.filter(([key]) => !same(values[key], m[key]));
  if (!changed.length) {
    announce("Nothing changed.");
    return;
  }
  const body = { id: String(m.id) };
  for (const [key] of changed) body[key] = values[key];
  // Without a mask the daemon changes every populated field (AIP-134), here exactly the changed
  // ones. A field being emptied is not populated, so only then is a mask needed (in the JSON
  // form, lowerCamelCase, as protobuf's JSON mapping spells a FieldMask).
  const emptied = changed.some(([key]) => values[key] === "" || values[key] === 0
    || (Array.isArray(values[key]) && !values[key].length));
  await write(ctx, result, `${m.displayName} was saved.`, "PATCH", `/v1/models/${enc(m.id)}`,
    { query: emptied ? { updateMask: changed.map(([key]) => key).join(",") } : {}, body,
      reason: answer.reason });
}
