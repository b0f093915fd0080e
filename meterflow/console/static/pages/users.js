// Users and roles (admins): the users with their role, scope and state; a new user.
import { $, api, clear, confirm, el, named, showError, t, table, time } from "../lib.js";

async function toggle(user) {
  const disabled = !user.disabled;
  if (!(await confirm(t(disabled ? "users.confirm.disable" : "users.confirm.enable", { name: user.name })))) return;
  try {
    await api("PATCH", `/users/${encodeURIComponent(user.name)}`, { json: { disabled } });
    list();
  } catch (error) {
    showError($("#errors"), error);
  }
}

async function list() {
  try {
    const found = await api("GET", "/users");
    clear($("#user-list"), table(t("users.list"), [["name", t("signin.username")], [(u) => named("role", u.role), t("users.role")],
      [(u) => (u.scope.restricted ? [...u.scope.sites, ...u.scope.buildings].join(", ") : t("users.everything")), t("users.scope")],
      [(u) => (u.disabled ? t("users.disabled") : t("users.active")), t("common.status")], [(u) => time(u.created_at), t("common.time")],
      [(u) => el("button", { type: "button", onclick: () => toggle(u) }, `${t(u.disabled ? "users.enable" : "users.disable")} ${u.name}`), t("common.actions")]], found.items));
  } catch (error) {
    showError($("#errors"), error);
  }
}

$("#user-form").addEventListener("submit", async (e) => {
  e.preventDefault();
  const f = e.target;
  const sites = f.sites.value.split(",").map((s) => s.trim()).filter(Boolean);
  try {
    await api("POST", "/users", { json: { name: f.name.value.trim(), role: f.role.value, sites } });
    clear($("#user-result"), el("p", {}, t("users.created", { name: f.name.value.trim() })));
    f.reset();
    list();
  } catch (error) {
    showError($("#user-result"), error);
  }
});
list();
