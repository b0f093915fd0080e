// The audit log (admins): who changed what, when, before and after.
import { $, api, clear, el, exportLinks, showError, t, table, time } from "../lib.js";

async function show(e) {
  e?.preventDefault();
  const params = new URLSearchParams();
  for (const [k, v] of new FormData($("#audit-form")).entries()) if (String(v).trim()) params.set(k, String(v).trim());
  const q = params.toString();
  try {
    const found = await api("GET", `/audit?limit=500${q ? "&" + q : ""}`);
    const exports = el("p", { class: "exports" });
    exportLinks(exports, `/audit?limit=1000${q ? "&" + q : ""}`);
    clear($("#audit-list"), exports, table(t("page.audit"), [[(a) => time(a.at), t("common.time")], ["user_name", t("audit.user")], ["role", t("users.role")],
      ["action", t("audit.action")], ["target", t("audit.target")],
      [(a) => el("details", {}, el("summary", {}, t("audit.change")), el("pre", {}, JSON.stringify({ before: a.before, after: a.after }, null, 1))), t("audit.change")]], found.items));
  } catch (error) {
    showError($("#errors"), error);
  }
}

$("#audit-form").addEventListener("submit", show);
show();
