// A room: its accounts' balance, meters, usage, chart, readings, alarms and commands, and
// the actions the role may take. Each action shows its outcome as it happens (a payment:
// recorded, applied; a command: pending, sent, applied, failed or expired).
import { $, api, clear, confirm, el, key, options, poll, POLL_MS, showError, t, table, time } from "../lib.js";
import { lineChart } from "../chart.js";

const roomId = JSON.parse($("#mf-context").textContent).params.room_id;
const pick = $("#account");
let account = null;
let chart = null;
const pending = new Map(); // form id -> idempotency key of a request not yet answered

function fact(name, value, id) {
  return el("div", {}, el("dt", {}, name), el("dd", { id }, value));
}

function drawSummary(acc, act) {
  const keep = acc.keep_supply && acc.keep_supply.manual;
  clear($("#facts"),
    fact(t("common.account"), acc.account_id, "f-account"),
    fact(t("common.name"), acc.name || "—", "f-name"),
    fact(t("common.balance"), `¥${acc.balance}`, "f-balance"),
    fact(t("room.alarm"), acc.alarm_level ? `L${acc.alarm_level}` : t("state.normal"), "f-alarm"),
    fact(t("room.supply"), t(`supply.${acc.supply}`) + (keep ? ` · ${t("state.keep")}` : ""), "f-supply"),
    fact(t("room.thresholds"), acc.thresholds.map((x) => `¥${x}`).join(" / "), "f-thresholds"),
    fact(t("room.today"), `${act.today.units} · ¥${act.today.amount}`, "f-today"),
    fact(t("room.month"), `${act.month.units} · ¥${act.month.amount}`, "f-month"),
    fact(t("room.pending"), String((acc.pending_payments || []).length), "f-pending"),
    fact(t("room.as_of"), time(acc.as_of), "f-as-of"));
  if ($("#th-1") && !$("#thresholds-form").contains(document.activeElement)) {
    [$("#th-1").value, $("#th-2").value, $("#th-3").value] = acc.thresholds;
  }
}

function drawTables(acc, act) {
  clear($("#meters"), table(t("room.meters"), [["meter_id", t("common.meter")], [(m) => t(`commodity.${m.commodity}`), t("common.commodity")],
    ["protocol", t("open.protocol")], ["tariff_id", t("common.tariff")]], acc.meters));
  clear($("#commands"), table(t("room.commands"), [[(c) => time(c.issued_at), t("common.time")], ["meter_id", t("common.meter")],
    [(c) => t(`op.${c.action}`), t("batches.operation")], [(c) => t(`origin.${c.origin}`), t("room.origin")],
    [(c) => el("span", { class: `status ${c.status}`, "data-command": c.command_id }, t(`status.${c.status}`)), t("common.status")],
    [(c) => time(c.acked_at), t("room.acked")]], act.commands));
  clear($("#alarms"), table(t("page.alarms"), [[(a) => time(a.at), t("common.time")], ["kind", t("alarms.kind")],
    [(a) => (a.level ? `L${a.level}` : ""), t("room.alarm")], [(a) => (a.balance ? `¥${a.balance}` : ""), t("common.balance")],
    ["detail", t("common.detail")]], act.alarms));
  clear($("#readings"), table(t("room.readings"), [[(r) => time(r.ts), t("common.time")], ["meter_id", t("common.meter")],
    ["value", t("room.value")], ["unit", t("room.unit")], ["source", t("room.source")]], act.readings));
  clear($("#rejections"), table(t("room.rejections"), [[(r) => time(r.ts), t("common.time")], ["meter_id", t("common.meter")],
    ["value", t("room.value")], ["reason", t("room.reason")]], act.rejections));
}

function drawChart(act) {
  const days = act.series.map((d) => Date.parse(`${d.day}T12:00:00`) / 1000);
  // Chart heights only: the balance and units are drawn, never computed with.
  const balance = act.series.map((d) => (d.balance_fen === null ? null : d.balance_fen / 100));
  const units = act.series.map((d) => Number(d.units));
  const data = [days, balance, units];
  if (chart) chart.setData(data);
  else chart = lineChart($("#chart"), data, [`${t("common.balance")} (¥)`, t("room.units")]);
}

async function refresh() {
  if (!account) return false;
  try {
    const [acc, act] = await Promise.all([
      api("GET", `/accounts/${encodeURIComponent(account)}`),
      api("GET", `/accounts/${encodeURIComponent(account)}/activity?days=31`),
    ]);
    drawSummary(acc, act);
    drawTables(acc, act);
    drawChart(act);
  } catch (error) {
    showError($("#errors"), error);
  }
  return false;
}

function outcome(text) {
  const item = el("li", { role: "status" }, text);
  $("#outcomes").prepend(item);
  return item;
}

function follow(item, label, path, done) {
  poll(async () => {
    try {
      const found = await api("GET", path);
      item.textContent = `${label}: ${t(`status.${found.status}`)}`;
      item.dataset.status = found.status;
      return done.includes(found.status);
    } catch (error) {
      item.textContent = `${label}: ${error.message}`;
      return true;
    }
  }, POLL_MS);
}

async function act(formId, message, call) {
  if (!(await confirm(message))) return;
  const idem = pending.get(formId) || key(formId);
  pending.set(formId, idem);
  try {
    await call(idem);
    pending.delete(formId);
    refresh();
  } catch (error) {
    if (error.status && error.status < 500) pending.delete(formId);
    const item = outcome("");
    clear(item, el("span", {}, t("room.refused") + " "), el("span", { class: "error" }, error.message));
    item.setAttribute("role", "alert");
  }
}

function money(formId, kind) {
  const form = $(`#${formId}`);
  if (!form) return;
  form.addEventListener("submit", (e) => {
    e.preventDefault();
    const amount = form.amount.value.trim();
    act(formId, t(`room.confirm.${kind}`, { amount, account }), async (idem) => {
      const paid = await api("POST", `/${kind}s`, { json: { account_id: account, amount, note: form.note.value }, headers: { "Idempotency-Key": idem } });
      form.reset();
      const label = `${t(`room.${kind}`)} ¥${paid.amount}`;
      follow(outcome(`${label}: ${t("status.recorded")}`), label, `/payments/${paid.payment_id}`, ["applied", "refused"]);
    });
  });
}

function command(buttonId, action) {
  const button = $(`#${buttonId}`);
  if (!button) return;
  button.addEventListener("click", () => act(buttonId, t(`room.confirm.${action}`, { account }), async (idem) => {
    const made = await api("POST", `/accounts/${encodeURIComponent(account)}/${action}`,
      { json: { reason: t("room.by_console") }, headers: { "Idempotency-Key": idem } });
    for (const c of made.commands) {
      const label = `${t(`op.${action}`)} ${c.meter_id}`;
      follow(outcome(`${label}: ${t("status.pending")}`), label, `/commands/${encodeURIComponent(c.command_id)}`, ["applied", "failed", "expired"]);
    }
  }));
}

function keepSupply(buttonId, manual) {
  const button = $(`#${buttonId}`);
  if (!button) return;
  button.addEventListener("click", () => act(buttonId, t(manual ? "room.confirm.keep_on" : "room.confirm.keep_off", { account }), async () => {
    const acc = await api("GET", `/accounts/${encodeURIComponent(account)}`);
    const current = acc.keep_supply || {};
    await api("PUT", `/accounts/${encodeURIComponent(account)}/keep-supply`, { json: {
      manual, night: current.night ?? null, holidays: current.holidays ?? [], timezone: current.timezone ?? "Asia/Shanghai" } });
    outcome(`${t(manual ? "room.keep.on" : "room.keep.off")}: ${t("status.saved")}`);
  }));
}

function wire() {
  money("topup-form", "topup");
  money("refund-form", "refund");
  command("disconnect", "disconnect");
  command("reconnect", "reconnect");
  keepSupply("keep-on", true);
  keepSupply("keep-off", false);
  const thresholds = $("#thresholds-form");
  thresholds?.addEventListener("submit", (e) => {
    e.preventDefault();
    const levels = [thresholds.l1.value.trim(), thresholds.l2.value.trim(), thresholds.l3.value.trim()];
    act("thresholds-form", t("room.confirm.thresholds", { account, levels: levels.join(" / ") }), async () => {
      await api("PATCH", `/accounts/${encodeURIComponent(account)}`, { json: { thresholds: levels } });
      outcome(`${t("room.thresholds")}: ${t("status.saved")}`);
    });
  });
  const tariff = $("#tariff-form");
  tariff?.addEventListener("submit", (e) => {
    e.preventDefault();
    const id = tariff.tariff_id.value;
    act("tariff-form", t("room.confirm.tariff", { account, tariff: id }), async () => {
      const made = await api("POST", `/tariffs/${encodeURIComponent(id)}/assignments`, { json: { account_id: account } });
      outcome(`${t("room.tariff")} ${id}: ${t("status.saved")} (${made.items ? made.items.length : ""})`);
    });
  });
}

async function start() {
  try {
    const [room, accounts] = await Promise.all([
      api("GET", `/rooms/${encodeURIComponent(roomId)}`),
      api("GET", `/accounts?room_id=${encodeURIComponent(roomId)}`),
    ]);
    $("#room-title").textContent = `${t("page.room")} ${room.name || roomId}`;
    document.title = `${t("page.room")} ${room.name || roomId} · MeterFlow`;
    options(pick, accounts.items.map((a) => [a.account_id, `${a.account_id} ${a.name || ""}`]));
    $("#account-pick").hidden = accounts.items.length < 2;
    account = pick.value || null;
    pick.addEventListener("change", () => { account = pick.value; refresh(); });
    if ($("#tariff-id")) {
      const tariffs = await api("GET", "/tariffs");
      const ids = [...new Set(tariffs.items.map((x) => x.tariff_id))];
      options($("#tariff-id"), ids.map((id) => [id, id]));
    }
    if (!account) $("#facts").replaceChildren(el("p", {}, t("room.no_account")));
  } catch (error) {
    showError($("#errors"), error);
    return;
  }
  wire();
  poll(refresh, POLL_MS);
}

start();
