// Slots: each slot's global model, chosen from a dropdown of exactly the active models the slot
// accepts (same provider and type), with the cost of a switch for a volume the user types.

import { call, enc, get, listAll } from "../api.js";
import { accepted, announce, askReason, errorBox, gate, h, modelOption, money, roleNote, show,
  typeName } from "../ui.js";

// The volume the estimates price, kept while the tab lives.
const volume = { inputTokens: 1000000, outputTokens: 1000000, images: 1000, weightByAccounts: false };

export async function render(frame, ctx) {
  const [settings, models] = await Promise.all([get("/v1/settings"), listAll("/v1/models", "models")]);
  if (ctx.stale()) return;
  const etag = settings.etag;
  frame.append(
    h("h1", {}, "Slots"),
    h("p", { class: "intro" }, "Each slot's global model: every account without its own override ",
      "uses it. A dropdown lists exactly the active models the slot accepts (its provider and type)."),
    roleNote(ctx, "admin", "changing a global model"),
  );

  const estimatesBySlot = new Map();
  const cards = [];
  const form = volumeForm(async () => {
    await Promise.all(cards.map((card) => card.estimate()));
    announce("Estimates updated for the new volume.");
  });
  frame.append(form, h("p", { class: "etag" }, "Global settings etag ", h("code", { id: "global-etag" }, etag)));
  const grid = h("div", { class: "slots" });
  frame.append(grid);

  for (const setting of settings.slots || []) {
    const card = slotCard(setting, models, etag, ctx, estimatesBySlot);
    cards.push(card);
    grid.append(card.element);
  }
  await Promise.all(cards.map((card) => card.estimate()));
}

function volumeForm(onSubmit) {
  const field = (key, text) => h("div", { class: "field" },
    h("label", { for: `volume-${key}` }, text),
    h("input", { id: `volume-${key}`, name: key, type: "number", min: 0, step: 1,
      value: String(volume[key]), inputmode: "numeric" }));
  const form = h("form", { class: "volume", "aria-label": "Volume to price" },
    h("fieldset", {}, h("legend", {}, "Volume per month, to price a switch"),
      field("inputTokens", "Input tokens"),
      field("outputTokens", "Output tokens"),
      field("images", "Images"),
      h("div", { class: "field check" },
        h("input", { id: "volume-weightByAccounts", name: "weightByAccounts", type: "checkbox",
          checked: volume.weightByAccounts }),
        h("label", { for: "volume-weightByAccounts" }, "Per account, × the accounts following")),
      h("button", { type: "submit" }, "Update estimates")));
  form.addEventListener("submit", (event) => {
    event.preventDefault();
    for (const key of ["inputTokens", "outputTokens", "images"]) {
      volume[key] = Math.max(0, Number(form.elements[key].value) || 0);
    }
    volume.weightByAccounts = form.elements.weightByAccounts.checked;
    onSubmit();
  });
  return form;
}

function slotCard(setting, models, etag, ctx, estimatesBySlot) {
  const slot = setting.slot;
  const current = setting.model ? String(setting.model.id) : "";
  const options = accepted(models, setting.requiredProvider, setting.requiredModelType);
  const selectId = `global-${slot}`;
  const select = h("select", { id: selectId, name: slot, dataset: { slot, current } },
    current ? null : h("option", { value: "", selected: true },
      `None: the default, ${setting.defaultModel ? setting.defaultModel.label : "?"}`),
    options.map((m) => modelOption(m, current)));
  gate(select, ctx, "admin");
  const clear = gate(h("button", { type: "button", disabled: !current,
    title: current ? undefined : "No global setting to clear: the slot uses its default." },
  "Clear global setting"), ctx, "admin");
  const result = h("div", { class: "result" });
  const costs = h("div", { class: "costs", "aria-live": "polite" });

  // Choosing in the dropdown only previews (keyboard users move through options with the
  // arrow keys, each a change event); the switch itself is the button, which asks for a reason.
  const apply = gate(h("button", { type: "button", class: "primary", disabled: true,
    title: "Choose another model in the dropdown first.", "aria-label": `Switch ${slot} to the chosen model` }, "Switch…"), ctx, "admin");
  const preview = h("p", { class: "preview", "aria-live": "polite" });
  const chosenModel = () => models.find((m) => String(m.id) === select.value);
  const switchCost = () => (estimatesBySlot.get(slot) || []).find((e) => String(e.model.id) === select.value);

  const element = h("article", { class: "card slot", dataset: { slot } },
    h("h2", {}, setting.displayName || slot, " ", h("code", {}, slot)),
    h("p", { class: "accepts" }, "Accepts active ", h("strong", {}, setting.requiredProvider), " ",
      h("strong", {}, typeName(setting.requiredModelType)), " models. Default: ",
      setting.defaultModel ? setting.defaultModel.label : "none", "."),
    h("div", { class: "field" }, h("label", { for: selectId }, "Global model"), select),
    preview,
    h("div", { class: "buttons" }, apply, clear),
    result,
    costs);

  async function write(label, path, body, reason) {
    try {
      await call("POST", path, { body, reason });
      announce(label);
      ctx.reload();
    } catch (error) {
      select.value = current;
      select.dispatchEvent(new Event("change"));
      show(result, errorBox(error, { onReload: ctx.reload }));
    }
  }

  select.addEventListener("change", () => {
    const chosen = chosenModel();
    const changed = Boolean(chosen) && select.value !== current;
    if (!apply.classList.contains("gated")) {
      apply.disabled = !changed;
      apply.title = changed ? "" : "Choose another model in the dropdown first.";
    }
    const estimate = switchCost();
    show(preview, changed ? [`Switch to ${chosen.displayName}`,
      estimate && estimate.difference ? `: ${money(estimate.difference, true)} per month for the volume above` : "",
      ". Not applied yet."] : []);
  });

  apply.addEventListener("click", async () => {
    const chosen = chosenModel();
    if (!chosen || select.value === current) return;
    const estimate = switchCost();
    const answer = await askReason({
      title: `Switch ${slot}`,
      body: [
        h("p", {}, "From ", h("strong", {}, setting.model ? setting.model.label : "none (the default)"),
          " to ", h("strong", {}, chosen.label), "."),
        estimate && estimate.difference
          ? h("p", { class: "switch-cost" }, `For the volume priced: ${money(estimate.cost)} per month, `,
            `${money(estimate.difference, true)} against the current model.`) : null,
      ],
      confirm: "Switch",
    });
    if (!answer) {
      announce("Switch cancelled; nothing was written.");
      apply.focus();
      return;
    }
    await write(`${slot} now uses ${chosen.label}.`, `/v1/settings/${enc(slot)}:set`,
      { scope: "SCOPE_GLOBAL", modelId: String(chosen.id), etag }, answer.reason);
  });

  clear.addEventListener("click", async () => {
    const answer = await askReason({
      title: `Clear the global setting of ${slot}`,
      body: h("p", {}, "Accounts without an override will use the slot's default, ",
        setting.defaultModel ? setting.defaultModel.label : "", "."),
      confirm: "Clear",
    });
    if (!answer) return;
    await write(`${slot} now uses its default.`, `/v1/settings/${enc(slot)}:clear`, { etag },
      answer.reason);
  });

  async function estimate() {
    const image = setting.requiredModelType === "MODEL_TYPE_IMAGE";
    const query = image ? { images: volume.images } : {
      inputTokens: volume.inputTokens, outputTokens: volume.outputTokens };
    query.weightByAccounts = volume.weightByAccounts;
    try {
      const response = await get(`/v1/slots/${enc(slot)}:estimateCost`, { scope: "SCOPE_GLOBAL", ...query });
      estimatesBySlot.set(slot, response.estimates || []);
      show(costs, costTable(slot, response.estimates || [], image),
        volume.weightByAccounts ? h("p", { class: "muted weight" },
          `Times the accounts following the global setting: ${response.accountsFollowing || 0}. `,
          `With their own override, not moved by a switch: ${response.accountsOverriding || 0}.`)
          : null);
    } catch (error) {
      estimatesBySlot.set(slot, []);
      show(costs, errorBox(error));
    }
  }
  return { element, estimate };
}

function costTable(slot, estimates, image) {
  const caption = image ? "Cost of a switch, for the images per month above"
    : "Cost of a switch, for the tokens per month above";
  return h("table", { class: "costs-table", dataset: { slot } },
    h("caption", {}, caption),
    h("thead", {}, h("tr", {}, h("th", { scope: "col" }, "Model"), h("th", { scope: "col" }, "Per month"),
      h("th", { scope: "col" }, "Change"))),
    h("tbody", {}, estimates.map((e) => h("tr", { class: e.current ? "current" : "" },
      h("th", { scope: "row" }, e.model.displayName || e.model.modelName, e.current ? " (current)" : ""),
      h("td", { "data-label": "Per month" }, e.cost ? money(e.cost)
        : `missing ${(e.missingPrices || []).join(", ")}`),
      h("td", { "data-label": "Change" }, e.current ? "—" : money(e.difference, true))))));
}
