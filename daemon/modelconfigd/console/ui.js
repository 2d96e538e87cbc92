// Small DOM helpers shared by the pages: element building, the live region, error and conflict
// boxes, the reason dialog, and role gating (what the role may not do is disabled, with why).

export function h(tag, attrs = {}, ...children) {
  const element = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs || {})) {
    if (value === undefined || value === null || value === false) continue;
    if (key.startsWith("on") && typeof value === "function") {
      element.addEventListener(key.slice(2).toLowerCase(), value);
    } else if (key === "class") {
      element.className = value;
    } else if (key === "dataset") {
      Object.assign(element.dataset, value);
    } else if (key in element && typeof value !== "string") {
      element[key] = value;
    } else {
      element.setAttribute(key, value === true ? "" : value);
    }
  }
  for (const child of children.flat(Infinity)) {
    if (child === undefined || child === null || child === false) continue;
    element.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return element;
}

/** Says a result in the page's aria-live region (and shows it). */
export function announce(message, kind = "ok") {
  const live = document.getElementById("live");
  live.className = `live ${kind}`;
  live.textContent = "";
  // A new text node after a tick, so screen readers announce a repeated message again.
  setTimeout(() => { live.textContent = message; }, 20);
}

/** A refusal as the daemon said it: message, status code and ErrorInfo reason, violations. */
export function errorBox(error, { onReload } = {}) {
  const conflict = error.reason === "ETAG_MISMATCH";
  const box = h("div", { class: conflict ? "notice conflict" : "notice error", role: "alert" },
    h("p", {}, h("strong", {}, conflict ? "Conflict: " : "Refused: "),
      conflict
        ? "someone else changed this since the page loaded; nothing was written. "
        : "", error.message),
    h("p", { class: "code" },
      h("span", { class: "label" }, "status "), h("code", {}, error.codeName || ""),
      error.reason ? [h("span", { class: "label" }, " reason "),
        h("code", { class: "reason" }, error.reason)] : []),
    // Violations that only repeat the message add nothing.
    (error.violations || []).filter((v) => !error.message.includes(v.split(": ").slice(1).join(": "))).length
      ? h("ul", {}, error.violations.map((v) => h("li", {}, v))) : null,
  );
  box.dataset.reason = error.reason || "";
  if (conflict && onReload) {
    box.append(h("button", { type: "button", onclick: onReload }, "Reload to see the current state"));
  }
  announce(`${conflict ? "Conflict" : "Refused"}: ${error.reason || error.codeName}. ${error.message}`,
    "error");
  return box;
}

/** Puts `content` into `slot` (an element), replacing what it showed. */
export function show(slot, ...content) {
  slot.replaceChildren(...content.flat().filter(Boolean));
}

const RANK = { reader: 1, writer: 2, admin: 3 };

/** Disables `control` when the signed-in role is below `needed`, saying why; returns it. */
export function gate(control, ctx, needed) {
  if ((RANK[ctx.caller.role] || 0) < RANK[needed]) {
    control.disabled = true;
    control.title = `Needs the ${needed} role; you are signed in as ${ctx.caller.role}.`;
    control.classList.add("gated");
  }
  return control;
}

export function may(ctx, needed) {
  return (RANK[ctx.caller.role] || 0) >= RANK[needed];
}

/** A visible line at the top of a page saying what this role may not do there. */
export function roleNote(ctx, needed, what) {
  if (may(ctx, needed)) return "";
  return h("p", { class: "notice role" },
    `Read only for you: ${what} needs the ${needed} role, and you are signed in as `,
    h("strong", {}, ctx.caller.role), ". Those controls are disabled.");
}

/**
 * A modal dialog asking for the reason of a change (X-Change-Reason), with optional extra
 * content and controls. Resolves to {reason, form} when confirmed, null when cancelled.
 */
export function askReason({ title, body = [], confirm = "Apply", extra = [], reasonRequired = true,
  canConfirm = null, withReason = true }) {
  return new Promise((resolve) => {
    const reasonId = `reason-${Math.random().toString(36).slice(2)}`;
    const confirmButton = h("button", { type: "submit", value: "confirm", class: "primary" }, confirm);
    const form = h("form", { method: "dialog" },
      h("h2", {}, title),
      body,
      extra,
      withReason ? h("div", { class: "field" },
        h("label", { for: reasonId }, "Reason for the change (kept in the history)"),
        h("textarea", { id: reasonId, name: "reason", rows: 2, maxlength: 1000,
          required: reasonRequired })) : null,
      h("div", { class: "buttons" },
        confirmButton,
        h("button", { type: "button", value: "cancel", onclick: () => dialog.close("cancel") },
          "Cancel")),
    );
    const dialog = h("dialog", { "aria-label": title }, form);
    if (canConfirm) {
      const blocked = canConfirm();
      if (blocked) {
        confirmButton.disabled = true;
        confirmButton.title = blocked;
      }
    }
    dialog.addEventListener("close", () => {
      const confirmed = dialog.returnValue === "confirm";
      const reason = form.elements.reason ? form.elements.reason.value.trim() : "";
      dialog.remove();
      resolve(confirmed ? { reason, form } : null);
    });
    document.body.append(dialog);
    dialog.showModal();
    const first = form.querySelector("select, input, textarea");
    if (first) first.focus();
  });
}

export function sourceName(source) {
  return {
    SOURCE_ACCOUNT: "account override",
    SOURCE_GLOBAL: "global setting",
    SOURCE_DEFAULT: "slot default",
  }[source] || source || "";
}

export function typeName(type) {
  return { MODEL_TYPE_TEXT: "text", MODEL_TYPE_IMAGE: "image" }[type] || "unspecified";
}

/** An exact decimal string as dollars with at least cents; `signed` adds + to increases. */
export function money(text, signed = false) {
  if (text === undefined || text === null || text === "") return "";
  const raw = String(text);
  const sign = raw.startsWith("-") ? "-" : signed && Number(raw) > 0 ? "+" : "";
  let [whole, fraction = ""] = raw.replace(/^[-+]/, "").split(".");
  if (fraction.length < 2) fraction = fraction.padEnd(2, "0");
  return `${sign}$${whole}.${fraction}`;
}

/** The models a slot accepts: active, of the slot's provider and type. */
export function accepted(models, provider, type) {
  return models.filter((m) => m.isActive === true && m.provider === provider && m.modelType === type);
}

export function modelOption(model, selectedId) {
  return h("option", { value: String(model.id), selected: String(model.id) === String(selectedId) },
    model.label || model.displayName || model.modelName);
}

/** "1 account override", "3 account overrides". */
export function count(n, noun) {
  const number = Number(n || 0);
  return `${number} ${noun}${number === 1 ? "" : "s"}`;
}

export function loading(main, text = "Loading…") {
  main.replaceChildren(h("p", { class: "loading" }, text));
}
