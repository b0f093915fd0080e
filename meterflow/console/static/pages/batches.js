// Batches: pick rooms (some, a whole floor or a whole building), create a batch of one
// operation over their accounts (POST /batches, now or at a time), follow its progress
// and cancel it. The API runs the items and checks each against the creator's role and scope.
import { $, all, api, clear, confirm, el, key, named, options, poll, POLL_MS, showError, t, table, time, withOffset } from "../lib.js";

const form = $("#batch-form");
let rooms = [];
let stopFollow = null;

function picked() {
  return [...document.querySelectorAll("#b-rooms input:checked")].map((box) => rooms.find((r) => r.room_id === box.value));
}

function count() {
  const accounts = picked().flatMap((r) => r.account_ids || []);
  $("#b-count").textContent = t("batches.count", { rooms: picked().length, accounts: accounts.length });
}

function drawRooms() {
  const building = form.building_id.value;
  const floor = form.floor_id.value;
  const shown = rooms.filter((r) => (!building || r.building_id === building) && (!floor || r.floor_id === floor));
  clear($("#b-rooms"),
    el("button", { type: "button", class: "link", onclick: () => { document.querySelectorAll("#b-rooms input").forEach((b) => { b.checked = true; }); count(); } }, t("batches.all")),
    el("button", { type: "button", class: "link", onclick: () => { document.querySelectorAll("#b-rooms input").forEach((b) => { b.checked = false; }); count(); } }, t("batches.none")),
    shown.map((r) => el("label", { class: "check" },
      el("input", { type: "checkbox", value: r.room_id, checked: true, name: "room", onchange: count }),
      ` ${r.building_name || r.building_id} ${r.floor_level}F ${r.room_name || r.room_id}`)));
  count();
}

let loading = 0; // the newest site asked for wins over slower answers for an earlier one

async function loadSite() {
  const mine = ++loading;
  const found = await all(`/monitor/rooms?site_id=${encodeURIComponent(form.site_id.value)}`);
  if (mine !== loading) return;
  rooms = found;
  options(form.building_id, [...new Map(rooms.map((r) => [r.building_id, r.building_name || r.building_id])).entries()], { blank: t("common.all") });
  loadFloors();
}

function loadFloors() {
  const building = form.building_id.value;
  const floors = new Map(rooms.filter((r) => !building || r.building_id === building)
    .map((r) => [r.floor_id, `${r.building_name || r.building_id} ${r.floor_level}F`]));
  options(form.floor_id, [...floors.entries()], { blank: t("common.all") });
  drawRooms();
}

function showFields() {
  const op = form.operation.value;
  form.querySelectorAll("fieldset[data-for]").forEach((f) => { f.hidden = !f.dataset.for.split(" ").includes(op); });
}

function body() {
  const f = Object.fromEntries(new FormData(form).entries());
  const accounts = [...new Set(picked().flatMap((r) => r.account_ids || []))];
  const made = { operation: f.operation, account_ids: accounts };
  if (f.run_at) made.run_at = withOffset(f.run_at);
  if (f.operation === "topup") Object.assign(made, { amount: f.amount.trim(), note: f.note });
  if (f.operation === "set_tariff") made.tariff_id = f.tariff_id;
  if (f.operation === "set_thresholds") made.thresholds = [f.l1.trim(), f.l2.trim(), f.l3.trim()];
  if (f.operation === "disconnect" || f.operation === "reconnect") made.reason = f.reason;
  return made;
}

async function create(e) {
  e.preventDefault();
  const made = body();
  if (!(await confirm(t("batches.confirm", { operation: named("op", made.operation), accounts: made.account_ids.length })))) return;
  try {
    made.batch_id = key("batch").replace(/^console:batch:/, "b-").slice(0, 64);
    const batch = await api("POST", "/batches", { json: made });
    $("#batch-result").textContent = t("batches.created", { batch: batch.batch_id });
    follow(batch.batch_id);
    list();
  } catch (error) {
    showError($("#batch-result"), error);
  }
}

function drawBatch(batch) {
  const p = batch.progress;
  $("#detail").hidden = false;
  $("#detail-h").textContent = `${t("batches.batch")} ${batch.batch_id} · ${named("op", batch.operation)}`;
  $("#batch-progress").max = Math.max(1, p.total);
  $("#batch-progress").value = p.finished;
  $("#batch-status").textContent = t("batches.progress", { status: named("batch", batch.status), done: p.done, failed: p.failed, pending: p.pending, total: p.total });
  $("#batch-status").dataset.status = batch.status;
  $("#batch-cancel").hidden = !["scheduled", "running"].includes(batch.status);
  clear($("#batch-items"), table(t("batches.items"), [["item", "#"], ["target", t("batches.target")],
    [(i) => named("batch", i.status), t("common.status")], [(i) => (i.result && i.result.reason ? `${i.result.field || ""}: ${i.result.reason}` : ""), t("common.detail")]], batch.items));
}

function follow(id) {
  if (stopFollow) stopFollow();
  $("#batch-cancel").onclick = async () => {
    if (!(await confirm(t("batches.confirm.cancel", { batch: id })))) return;
    try {
      drawBatch(await api("POST", `/batches/${encodeURIComponent(id)}/cancel`));
      list();
    } catch (error) {
      showError($("#batch-items"), error);
    }
  };
  stopFollow = poll(async () => {
    const batch = await api("GET", `/batches/${encodeURIComponent(id)}`);
    drawBatch(batch);
    const finished = ["done", "cancelled"].includes(batch.status);
    if (finished) list();
    return finished;
  }, POLL_MS);
}

async function list() {
  try {
    const found = await api("GET", "/batches");
    clear($("#batch-list"), table(t("batches.list"), [
      [(b) => el("button", { type: "button", class: "link", onclick: () => follow(b.batch_id) }, b.batch_id), t("batches.batch")],
      [(b) => named("op", b.operation), t("batches.operation")], [(b) => named("batch", b.status), t("common.status")],
      [(b) => `${b.done}/${b.total}` + (b.failed ? ` (${b.failed} ✗)` : ""), t("batches.done")],
      [(b) => time(b.run_at), t("batches.run_at")], ["created_by", t("common.by")]], found.items));
  } catch (error) {
    showError($("#batch-list"), error);
  }
}

async function start() {
  list();
  if (!form) return;
  showFields();
  form.operation.addEventListener("change", showFields);
  form.addEventListener("submit", create);
  try {
    const sites = await all("/sites");
    options(form.site_id, sites.map((s) => [s.site_id, s.name || s.site_id]));
    const tariffs = await api("GET", "/tariffs");
    options(form.tariff_id, [...new Set(tariffs.items.map((x) => x.tariff_id))].map((id) => [id, id]));
    form.site_id.addEventListener("change", loadSite);
    form.building_id.addEventListener("change", loadFloors);
    form.floor_id.addEventListener("change", drawRooms);
    if (form.site_id.value) await loadSite();
  } catch (error) {
    showError($("#batch-result"), error);
  }
}

start();
