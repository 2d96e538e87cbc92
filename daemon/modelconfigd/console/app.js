// The console's shell: sign-in (a bearer token kept in sessionStorage, GET /v1/caller for the
// role), the hash router (#/slots, #/catalog, #/account/<id>, #/history) and the page frame.

import { ApiError, get, getToken, setToken } from "./api.js";
import { errorBox, h } from "./ui.js";
import * as slots from "./pages/slots.js";
import * as catalog from "./pages/catalog.js";
import * as account from "./pages/account.js";
import * as history from "./pages/history.js";

const PAGES = { slots, catalog, account, history };
const ctx = { caller: { name: "", role: "reader", authenticated: false }, signedIn: false };

async function whoAmI() {
  const who = document.getElementById("who");
  try {
    ctx.caller = await get("/v1/caller");
    ctx.signedIn = true;
    who.textContent = "";
    who.append("Signed in as ", h("strong", { id: "caller-name" }, ctx.caller.name),
      " · role ", h("strong", { id: "caller-role" }, ctx.caller.role),
      ctx.caller.authenticated ? "" : " (this daemon checks no tokens)");
  } catch (error) {
    ctx.signedIn = false;
    ctx.caller = { name: "", role: "", authenticated: false };
    who.textContent = error instanceof ApiError && error.code === 16
      ? (getToken() ? "That token is not known to the daemon." : "Sign in with a bearer token.")
      : `The daemon did not answer: ${error.message}`;
  }
  document.getElementById("signout").disabled = !getToken();
}

/** #/name/param?key=value: the page, its path parameters and its query (filters). */
function route() {
  const [path, search = ""] = (location.hash || "#/slots").split("?");
  const [, name = "slots", ...rest] = path.split("/");
  return { name: PAGES[name] ? name : "slots", params: rest.map(decodeURIComponent),
    query: Object.fromEntries(new URLSearchParams(search)) };
}

let rendering = 0;

async function render() {
  const main = document.getElementById("main");
  const { name, params, query } = route();
  for (const link of document.querySelectorAll(".nav a")) {
    const current = link.getAttribute("href") === `#/${name}`;
    if (current) link.setAttribute("aria-current", "page");
    else link.removeAttribute("aria-current");
  }
  document.title = `${name[0].toUpperCase()}${name.slice(1)} · modelconfig console`;
  if (!ctx.signedIn) {
    main.replaceChildren(h("section", { class: "page" }, h("h1", {}, "Sign in"),
      h("p", {}, "Enter a bearer token from the daemon's tokens file above. The token stays in this",
        " browser tab (sessionStorage) and is sent only to this daemon.")));
    return;
  }
  const ticket = ++rendering;
  // A page re-rendered after a write puts the focus back on the same control (by id or
  // accessible name), so a keyboard user is not sent back to the top of the page.
  const focused = document.activeElement;
  const focusKey = focused && main.contains(focused)
    ? { id: focused.id, label: focused.getAttribute("aria-label") } : null;
  const frame = h("section", { class: "page", dataset: { page: name } });
  main.replaceChildren(frame);
  try {
    await PAGES[name].render(frame, { ...ctx, params, query, reload: render,
      stale: () => ticket !== rendering });
  } catch (error) {
    if (ticket !== rendering) return;
    frame.append(error instanceof ApiError ? errorBox(error) : h("p", { role: "alert" }, String(error)));
  }
  if (ticket !== rendering) return;
  if (focusKey && (focusKey.id || focusKey.label)) {
    const again = focusKey.id ? document.getElementById(focusKey.id)
      : [...frame.querySelectorAll("[aria-label]")].find((e) => e.getAttribute("aria-label") === focusKey.label);
    // A control disabled by the change (a Switch with nothing left to switch) hands the focus
    // to the first enabled control of its card or row.
    const target = again && again.disabled
      ? again.closest("article, tr, li")?.querySelector(
        "select:not(:disabled), input:not(:disabled), button:not(:disabled)")
      : again;
    if (target) target.focus();
  }
  frame.dataset.ready = "true";
}

document.getElementById("signin").addEventListener("submit", async (event) => {
  event.preventDefault();
  const field = document.getElementById("token");
  setToken(field.value.trim());
  field.value = "";
  await whoAmI();
  await render();
});

document.getElementById("signout").addEventListener("click", async () => {
  setToken("");
  await whoAmI();
  await render();
});

window.addEventListener("hashchange", () => {
  // A result said on another page is not about this one.
  document.getElementById("live").textContent = "";
  render();
  document.getElementById("main").focus({ preventScroll: true });
});

await whoAmI();
await render();
