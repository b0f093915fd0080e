// Account opening: one account with one meter or many (POST /accounts, then an initial
// top-up with the key open:<account>:initial, as the CSV import uses), drafts saved and
// opened again with one click (/account-drafts), and CSV import (POST /accounts/import)
// with every refused line and field shown.
import { $, all, api, clear, el, errorList, options, showError, t, table, time } from "../lib.js";

const form = $("#open-form");
const rows = $("#meter-rows");
let draftId = null;

function meterRow(meter = {}) {
  const n = rows.children.length + 1;
  const select = (name, values, value) => el("select", { id: `m-${name}-${n}`, name: `${name}`, "aria-label": `${t(`meter.${name}`)} ${n}` },
    values.map(([v, label]) => el("option", { value: v, selected: v === value }, label)));
  const row = el("tr", {},
    el("td", {}, el("input", { id: `m-id-${n}`, name: "meter_id", required: true, value: meter.meter_id || "", "aria-label": `${t("common.meter")} ${n}` })),
    el("td", {}, select("commodity", [["electricity", t("commodity.electricity")], ["water", t("commodity.water")]], meter.commodity)),
    el("td", {}, select("protocol", [["mqtt", "MQTT"], ["modbus", "Modbus"], ["dlt645", "DL/T 645"], ["cjt188", "CJ/T 188"]], meter.protocol)),
    el("td", {}, el("input", { id: `m-address-${n}`, name: "address", value: meter.address || "", "aria-label": `${t("open.address")} ${n}` })),
    el("td", {}, el("button", { type: "button", class: "link", onclick: () => { row.remove(); } }, t("common.remove"))));
  rows.append(row);
}

// The form as the body of POST /accounts plus the initial top-up.
function collect() {
  const data = Object.fromEntries(new FormData(form).entries());
  const meters = [...rows.children].map((tr) => {
    const value = (name) => tr.querySelector(`[name=${name}]`).value.trim();
    const meter = { meter_id: value("meter_id"), commodity: value("commodity"), protocol: value("protocol") };
    if (value("address")) meter.address = value("address");
    return meter;
  });
  const commodities = new Set(meters.map((m) => m.commodity));
  const tariffs = ["electricity", "water"].filter((c) => commodities.has(c)).map((c) => data[`tariff_${c}`]).filter(Boolean);
  const account = {
    account_id: data.account_id.trim(), name: data.name.trim(), meters, tariffs,
    thresholds: [data.l1.trim(), data.l2.trim(), data.l3.trim()], overdraft: data.overdraft.trim(),
  };
  if (data.room_id.trim()) account.room_id = data.room_id.trim();
  return { account, topup: data.topup.trim() };
}

function fill(draft) {
  const { account = {}, topup = "" } = draft;
  form.account_id.value = account.account_id || "";
  form.name.value = account.name || "";
  form.room_id.value = account.room_id || "";
  [form.l1.value, form.l2.value, form.l3.value] = account.thresholds || ["50", "20", "10"];
  form.overdraft.value = account.overdraft || "0";
  form.topup.value = topup;
  rows.replaceChildren();
  (account.meters && account.meters.length ? account.meters : [{}]).forEach(meterRow);
  for (const c of ["electricity", "water"]) {
    const select = form[`tariff_${c}`];
    const chosen = (account.tariffs || []).find((id) => [...select.options].some((o) => o.value === id));
    select.value = chosen || "";
  }
}

async function drafts() {
  try {
    const found = await api("GET", "/account-drafts");
    clear($("#drafts"), table(t("open.drafts"), [["title", t("open.draft.title")], ["created_by", t("common.by")],
      [(d) => time(d.updated_at), t("common.time")],
      [(d) => el("span", {},
        el("button", { type: "button", class: "open-draft", "data-draft": d.draft_id, onclick: () => openDraft(d.draft_id) }, `${t("open.draft.open")} ${d.title}`), " ",
        el("button", { type: "button", class: "link", onclick: () => discard(d.draft_id) }, `${t("open.draft.discard")} ${d.title}`)), t("common.actions")]],
      found.items, { empty: t("open.drafts.none") }));
  } catch (error) {
    showError($("#drafts"), error);
  }
}

async function openDraft(id) {
  const draft = await api("GET", `/account-drafts/${id}`);
  draftId = id;
  form.draft_title.value = draft.title;
  fill(draft.body);
  form.account_id.focus();
  $("#open-result").textContent = t("open.draft.opened", { title: draft.title });
}

async function discard(id) {
  await api("DELETE", `/account-drafts/${id}`);
  if (draftId === id) draftId = null;
  drafts();
}

async function saveDraft() {
  const title = form.draft_title.value.trim() || form.account_id.value.trim() || t("open.draft.untitled");
  try {
    const body = { title, body: collect() };
    const saved = draftId ? await api("PUT", `/account-drafts/${draftId}`, { json: body }) : await api("POST", "/account-drafts", { json: body });
    draftId = saved.draft_id;
    $("#open-result").textContent = t("open.draft.saved", { title });
    drafts();
  } catch (error) {
    showError($("#open-result"), error);
  }
}

async function open(e) {
  e.preventDefault();
  const { account, topup } = collect();
  const result = $("#open-result");
  try {
    const opened = await api("POST", "/accounts", { json: account });
    const lines = [el("p", {}, t("open.done", { account: opened.account_id, meters: opened.meters.length }))];
    if (topup) {
      const paid = await api("POST", "/topups", { json: { account_id: account.account_id, amount: topup, note: t("open.topup") },
        headers: { "Idempotency-Key": `open:${account.account_id}:initial` } });
      lines.push(el("p", {}, t("open.topup.done", { amount: paid.amount })));
    }
    if (draftId) {
      await api("DELETE", `/account-drafts/${draftId}`);
      draftId = null;
      drafts();
    }
    lines.push(el("p", {}, el("a", { href: opened.room_id ? `/console/rooms/${encodeURIComponent(opened.room_id)}` : "/console/rooms" }, t("open.goto"))));
    clear(result, lines);
  } catch (error) {
    showError(result, error);
  }
}

async function importFile(e) {
  e.preventDefault();
  const file = $("#import-file").files[0];
  const result = $("#import-result");
  if (!file) return;
  try {
    const done = await api("POST", "/accounts/import", { body: await file.text(), headers: { "Content-Type": "text/csv" } });
    clear(result, el("p", {}, t("open.import.done", { rows: done.rows, opened: done.opened.length, topups: done.topups.length })));
  } catch (error) {
    clear(result, el("p", {}, t("open.import.refused")), errorList(error));
  }
}

async function start() {
  meterRow();
  $("#add-meter").addEventListener("click", () => { meterRow(); rows.lastElementChild.querySelector("input").focus(); });
  $("#save-draft").addEventListener("click", saveDraft);
  form.addEventListener("submit", open);
  $("#import-form").addEventListener("submit", importFile);
  try {
    const tariffs = (await api("GET", "/tariffs")).items;
    for (const c of ["electricity", "water"]) {
      const ids = [...new Set(tariffs.filter((x) => x.commodity === c).map((x) => x.tariff_id))];
      options(form[`tariff_${c}`], ids.map((id) => [id, id]), { blank: t("common.none") });
    }
    const rooms = await all("/monitor/rooms");
    clear($("#room-list"), rooms.map((r) => el("option", { value: r.room_id }, `${r.building_name || r.building_id} ${r.room_name || ""}`)));
  } catch (error) {
    showError($("#open-result"), error);
  }
  drafts();
}

start();
