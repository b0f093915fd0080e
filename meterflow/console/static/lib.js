// What every console page shares: its context (texts, CSRF token, what the role may do),
// calls to the operators' API with the session cookie, safe DOM building, tables with
// CSV/XLSX links, confirmation dialogs and polling. No business rules live here: the API
// decides and explains (docs/console.md).

export const ctx = JSON.parse(document.getElementById("mf-context").textContent);

export function t(key, vars = {}) {
  let text = ctx.t[key] ?? key;
  for (const [name, value] of Object.entries(vars)) text = text.replaceAll(`{${name}}`, String(value));
  return text;
}

// A name from the API shown in the page's language when it has a text, else as it is.
export function named(prefix, value) {
  return ctx.t[`${prefix}.${value}`] ?? String(value ?? "");
}

export class ApiError extends Error {
  constructor(status, errors) {
    super(errors.map((e) => (e.field ? `${e.field}: ${e.reason}` : e.reason)).join("; "));
    this.status = status;
    this.errors = errors;
  }
}

// One call to /api/v1; the CSRF token goes with every call that may change something.
export async function api(method, path, { json, body, headers = {} } = {}) {
  const sent = { Accept: "application/json", ...headers };
  if (method !== "GET") sent["X-CSRF-Token"] = ctx.csrf;
  if (json !== undefined) {
    sent["Content-Type"] = "application/json";
    body = JSON.stringify(json);
  }
  const answer = await fetch(`/api/v1${path}`, { method, headers: sent, body, credentials: "same-origin" });
  if (answer.status === 401) {
    window.location.assign(`/console/login?next=${encodeURIComponent(location.pathname + location.search)}`);
    throw new ApiError(401, [{ field: "session", reason: t("common.signed_out") }]);
  }
  const type = answer.headers.get("content-type") || "";
  const data = type.includes("json") ? await answer.json() : await answer.text();
  if (!answer.ok) {
    const errors = (data && data.errors) || [{ field: "", reason: String(data || answer.statusText) }];
    throw new ApiError(answer.status, errors);
  }
  return data;
}

// Every page of a list (the API pages at most 1000 rows).
export async function all(path, limit = 1000) {
  const items = [];
  const join = path.includes("?") ? "&" : "?";
  for (let offset = 0; ; offset += limit) {
    const page = await api("GET", `${path}${join}limit=${limit}&offset=${offset}`);
    items.push(...page.items);
    if (page.items.length < limit) return items;
  }
}

export function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [name, value] of Object.entries(attrs)) {
    if (value === null || value === undefined || value === false) continue;
    if (name === "class") node.className = value;
    else if (name.startsWith("on")) node.addEventListener(name.slice(2), value);
    else node.setAttribute(name, value === true ? "" : value);
  }
  for (const child of children.flat()) {
    if (child === null || child === undefined) continue;
    node.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return node;
}

export function $(selector) {
  return document.querySelector(selector);
}

export function clear(node, ...children) {
  node.replaceChildren(...children.flat().filter((c) => c !== null && c !== undefined));
}

// A refusal as the API gave it: each field with its reason.
export function errorList(error) {
  const errors = error && Array.isArray(error.errors) ? error.errors : [{ field: "", reason: String(error) }];
  return el("ul", { class: "errors", role: "alert" },
    errors.map((e) => el("li", {}, e.field ? el("strong", {}, e.field + ": ") : null, e.reason,
      e.line ? ` (${t("common.line")} ${e.line})` : null)));
}

export function showError(container, error) {
  clear(container, errorList(error));
}

export function time(iso) {
  if (!iso) return "";
  const d = new Date(iso);
  return Number.isNaN(d.getTime()) ? iso : d.toLocaleString(ctx.lang);
}

// A table: columns are [key or function, header]; the caption names it for screen readers.
export function table(caption, columns, rows, { empty = t("common.none") } = {}) {
  if (!rows.length) return el("p", { class: "empty" }, empty);
  return el("table", { class: "data" },
    el("caption", { class: "sr-only" }, caption),
    el("thead", {}, el("tr", {}, columns.map(([, header]) => el("th", { scope: "col" }, header)))),
    el("tbody", {}, rows.map((row) => el("tr", {}, columns.map(([key]) => {
      const value = typeof key === "function" ? key(row) : row[key];
      return el("td", {}, value ?? "");
    })))));
}

// CSV and XLSX links of an API list that exports itself (format=csv|xlsx).
export function exportLinks(container, path) {
  const join = path.includes("?") ? "&" : "?";
  clear(container, t("common.export") + ": ",
    el("a", { href: `/api/v1${path}${join}format=csv`, download: "", class: "export-csv" }, "CSV"), " · ",
    el("a", { href: `/api/v1${path}${join}format=xlsx`, download: "", class: "export-xlsx" }, "XLSX"));
}

// A confirmation in a modal <dialog> (keyboard: Tab between the buttons, Esc cancels).
export function confirm(message) {
  const dialog = $("#confirm");
  $("#confirm-text").textContent = message;
  return new Promise((resolve) => {
    dialog.addEventListener("close", () => resolve(dialog.returnValue === "ok"), { once: true });
    dialog.returnValue = "";
    dialog.showModal();
    $("#confirm-ok").focus();
  });
}

// Run ``step`` now and every ``ms`` until it returns true or the page goes away.
export function poll(step, ms) {
  let stopped = false;
  const run = async () => {
    if (stopped) return;
    let done = false;
    try {
      done = await step();
    } catch (error) {
      console.warn(error);
    }
    if (!done && !stopped) setTimeout(run, ms);
  };
  run();
  return () => { stopped = true; };
}

export function key(prefix) {
  return `console:${prefix}:${crypto.randomUUID()}`;
}

export function formData(form) {
  return Object.fromEntries(new FormData(form).entries());
}

// <select> options from [value, label] pairs, keeping the current choice when it is still offered.
export function options(select, pairs, { blank = null } = {}) {
  const current = select.value;
  clear(select, blank === null ? null : el("option", { value: "" }, blank),
    pairs.map(([value, label]) => el("option", { value }, label)));
  if ([...select.options].some((o) => o.value === current)) select.value = current;
}

// A local datetime-local value as ISO 8601 with this browser's UTC offset.
export function withOffset(local) {
  if (!local) return null;
  const d = new Date(local);
  const minutes = -d.getTimezoneOffset();
  const sign = minutes >= 0 ? "+" : "-";
  const abs = Math.abs(minutes);
  const pad = (n) => String(n).padStart(2, "0");
  return `${local.length === 16 ? local + ":00" : local}${sign}${pad(Math.floor(abs / 60))}:${pad(abs % 60)}`;
}

export const POLL_MS = Number(ctx.params.poll_ms || 3000);
