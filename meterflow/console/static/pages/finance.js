// Finance and reports: income by day, month or year with a chart, the orders, energy by
// band and year over year; every table also as CSV and XLSX from the API itself.
import { $, api, clear, el, exportLinks, named, showError, t, table, time } from "../lib.js";
import { barsChart } from "../chart.js";

let incomeChart = null;

function query(form, extra = {}) {
  const params = new URLSearchParams();
  for (const [k, v] of new FormData(form).entries()) if (String(v).trim()) params.set(k, String(v).trim());
  for (const [k, v] of Object.entries(extra)) params.set(k, v);
  return params.toString();
}

async function income(e) {
  e?.preventDefault();
  const form = $("#income-form");
  const q = query(form);
  try {
    const found = await api("GET", `/finance/income?${q}`);
    exportLinks($("#income-exports"), `/finance/income?${q}`);
    const cols = [["bucket", t("finance.bucket")], ["payments", t("finance.payments")], ["topups", t("finance.topups")],
      ["refunds", t("finance.refunds")], ["adjustments", t("finance.adjustments")], ["net", t("finance.net")], ["charges", t("finance.charges")]];
    clear($("#income-table"), table(t("finance.income"), cols, [...found.items,
      { bucket: t("finance.total"), payments: "", ...found.totals }]));
    // Chart heights only (fen to yuan for the axis); the table above is the exact record.
    const columns = [found.items.map((i) => i.topups_fen / 100), found.items.map((i) => i.refunds_fen / 100),
      found.items.map((i) => i.charges_fen / 100)];
    const box = $("#income-chart");
    if (incomeChart) incomeChart.destroy();
    clear(box);
    incomeChart = found.items.length ? barsChart(box, found.items.map((i) => i.bucket), columns,
      [t("finance.topups"), t("finance.refunds"), t("finance.charges")]) : null;
    clear($("#errors"));
  } catch (error) {
    showError($("#errors"), error);
  }
}

async function orders(e) {
  e?.preventDefault();
  const q = query($("#orders-form"));
  try {
    const found = await api("GET", `/finance/orders?${q}`);
    exportLinks($("#orders-exports"), `/finance/orders?${q}`);
    clear($("#orders-table"), table(t("finance.orders"), [[(o) => time(o.at), t("common.time")], [(o) => named("op", o.kind), t("finance.kind")],
      ["account_id", t("common.account")], ["meter_id", t("common.meter")], [(o) => `¥${o.amount}`, t("common.amount")],
      ["operator", t("common.by")], ["note", t("common.note")]], found.items));
  } catch (error) {
    showError($("#orders-table"), error);
  }
}

async function energy(e) {
  e?.preventDefault();
  const q = query($("#energy-form"), { by_band: "true", compare: "yoy" });
  try {
    const found = await api("GET", `/reports/energy?${q}`);
    exportLinks($("#energy-exports"), `/reports/energy?${q}`);
    clear($("#energy-table"),
      table(t("finance.energy"), [["bucket", t("finance.bucket")], [(i) => named("band", i.band), t("tariffs.band")],
        ["units", t("room.units")], [(i) => `¥${i.amount}`, t("common.amount")]], found.items),
      el("p", { class: "yoy" }, t("finance.yoy", { units: found.total.units, amount: found.total.amount,
        before: found.previous?.total.units ?? "—", change: found.previous?.units_change_percent ?? "—" })));
  } catch (error) {
    showError($("#energy-table"), error);
  }
}

$("#income-form").addEventListener("submit", income);
$("#orders-form").addEventListener("submit", orders);
$("#energy-form").addEventListener("submit", energy);
income();
orders();
