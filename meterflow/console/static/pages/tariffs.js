// Tariffs: the list, one tariff's bands on a 24-hour clock and its tiers as a table, a
// "what would this cost" preview, and an upload checked first by POST /tariffs/check so
// every error shows with its line.
import { $, api, clear, el, errorList, named, showError, t, table, withOffset } from "../lib.js";

const COLOURS = { sharp: "#cf222e", peak: "#e16f24", flat: "#2da44e", valley: "#1f6feb" };
const SVG = "http://www.w3.org/2000/svg";
let current = null;

function svg(tag, attrs, text) {
  const node = document.createElementNS(SVG, tag);
  for (const [k, v] of Object.entries(attrs)) node.setAttribute(k, v);
  if (text) node.textContent = text;
  return node;
}

function colour(band, i) {
  return COLOURS[band] || ["#8250df", "#bf8700", "#0a7ea4", "#6e7781"][i % 4];
}

// Spans of the day (minutes) as arcs of a clock face, midnight at the top.
function clock(spans) {
  const face = $("#clock");
  const title = face.querySelector("title");
  face.replaceChildren(title);
  const point = (minute, r) => {
    const a = (minute / 1440) * 2 * Math.PI - Math.PI / 2;
    return [Math.cos(a) * r, Math.sin(a) * r];
  };
  const names = [...new Set(spans.map((s) => s.band))];
  for (const s of spans) {
    const [x0, y0] = point(s.start_min, 100);
    const [x1, y1] = point(s.end_min, 100);
    const large = s.end_min - s.start_min > 720 ? 1 : 0;
    const path = s.end_min - s.start_min >= 1440
      ? "M 0 -100 A 100 100 0 1 1 -0.01 -100 Z"
      : `M 0 0 L ${x0} ${y0} A 100 100 0 ${large} 1 ${x1} ${y1} Z`;
    face.append(svg("path", { d: path, fill: colour(s.band, names.indexOf(s.band)), stroke: "#fff" },
      null));
  }
  for (let h = 0; h < 24; h += 3) {
    const [x, y] = point(h * 60, 86);
    face.append(svg("text", { x, y, "text-anchor": "middle", "dominant-baseline": "middle", class: "hour" }, String(h)));
  }
  const hhmm = (m) => `${String(Math.floor(m / 60)).padStart(2, "0")}:${String(m % 60).padStart(2, "0")}`;
  clear($("#clock-legend"), names.map((band, i) => el("li", {},
    el("span", { class: "swatch", "data-colour": colour(band, i) }), ` ${named("band", band)}: `,
    spans.filter((s) => s.band === band).map((s) => `${hhmm(s.start_min)}-${hhmm(s.end_min)}`).join(", "))));
  document.querySelectorAll(".swatch").forEach((s) => { s.style.background = s.dataset.colour; });
}

function details(v) {
  const parts = [el("p", {}, `${t(`kind.${v.kind}`)} · ${t(`commodity.${v.commodity}`)} · ${v.unit} · ${v.timezone} · ${t("tariffs.valid_from")} ${v.valid_from || "—"}`)];
  if (v.price) parts.push(el("p", {}, `${t("tariffs.price")}: ¥${v.price}/${v.unit}`));
  if (v.prices) parts.push(table(t("tariffs.prices"), [["band", t("tariffs.band")], ["price", t("tariffs.price")]],
    Object.entries(v.prices).map(([band, price]) => ({ band: named("band", band), price: `¥${price}` }))));
  if (v.steps.length) {
    parts.push(el("p", {}, `${t("tariffs.tier_period")}: ${v.tier_period}`));
    parts.push(table(t("tariffs.tiers"), [["step", t("tariffs.step")], [(s) => s.upto ?? "∞", t("tariffs.upto")],
      [(s) => (s.price ? `¥${s.price}` : Object.entries(s.prices || {}).map(([b, p]) => `${named("band", b)} ¥${p}`).join(", ")), t("tariffs.price")]],
      v.steps.map((s, i) => ({ ...s, step: i + 1 }))));
  }
  if (v.seasons.length) parts.push(el("p", {}, `${t("tariffs.seasons")}: ${v.seasons.map((s) => s.months.join(",")).join(" · ")}`));
  if (v.surcharges.length) parts.push(table(t("tariffs.surcharges"), [["name", t("common.name")], ["price", t("tariffs.price")]], v.surcharges));
  clear($("#tariff-details"), parts);
  clock(v.bands || (v.seasons[0] && v.seasons[0].bands) || [{ start_min: 0, end_min: 1440, band: "flat" }]);
}

async function view(id) {
  try {
    const [shape, stored] = await Promise.all([api("GET", `/tariffs/${encodeURIComponent(id)}/outline`), api("GET", `/tariffs/${encodeURIComponent(id)}`)]);
    current = id;
    $("#view").hidden = false;
    $("#view-h").textContent = `${t("common.tariff")} ${id}`;
    details(shape.versions.at(-1));
    $("#tariff-text").textContent = stored.versions.at(-1).body;
    clear($("#preview-result"));
    $("#view-h").scrollIntoView();
  } catch (error) {
    showError($("#errors"), error);
  }
}

async function list() {
  try {
    const found = await api("GET", "/tariffs");
    clear($("#tariff-list"), table(t("tariffs.list"), [
      [(x) => el("button", { type: "button", class: "link", onclick: () => view(x.tariff_id) }, x.tariff_id), t("common.tariff")],
      ["valid_from", t("tariffs.valid_from")], [(x) => t(`commodity.${x.commodity}`), t("common.commodity")],
      [(x) => t(`kind.${x.kind}`), t("tariffs.kind")]], found.items));
  } catch (error) {
    showError($("#errors"), error);
  }
}

async function previewCost(e) {
  e.preventDefault();
  const f = e.target;
  try {
    const cost = await api("POST", `/tariffs/${encodeURIComponent(current)}/preview`, { json: {
      start: withOffset(f.start.value), end: withOffset(f.end.value), units: f.units.value.trim() } });
    clear($("#preview-result"), el("p", { class: "cost" }, t("tariffs.preview.cost", { units: cost.units, amount: cost.amount })),
      cost.by_band.length ? table(t("tariffs.bands"), [[(b) => named("band", b.band), t("tariffs.band")], ["units", t("room.units")], ["amount", t("common.amount")]], cost.by_band) : null,
      cost.by_step.length ? table(t("tariffs.tiers"), [["step", t("tariffs.step")], ["units", t("room.units")], ["amount", t("common.amount")]], cost.by_step) : null);
  } catch (error) {
    showError($("#preview-result"), error);
  }
}

async function upload(e) {
  e.preventDefault();
  const text = $("#tariff-text-in").value;
  const result = $("#upload-result");
  const type = text.trim().startsWith("{") ? "application/json" : "application/yaml";
  try {
    const checked = await api("POST", "/tariffs/check", { body: text, headers: { "Content-Type": type } });
    if (!checked.valid) {
      clear(result, el("p", {}, t("tariffs.upload.invalid")), errorList({ errors: checked.errors }), context(text, checked.errors));
      return;
    }
    const stored = await api("POST", "/tariffs", { body: text, headers: { "Content-Type": type } });
    clear(result, el("p", {}, t("tariffs.upload.done", { tariff: stored.tariff_id, valid_from: stored.valid_from })));
    list();
  } catch (error) {
    showError(result, error);
  }
}

// The lines around each error, the error's own line marked.
function context(text, errors) {
  const lines = text.split("\n");
  return errors.filter((e) => e.line).map((e) => el("pre", { class: "source" },
    lines.slice(Math.max(0, e.line - 3), e.line + 2).map((line, i) => {
      const n = Math.max(0, e.line - 3) + i + 1;
      return el("span", { class: n === e.line ? "bad-line" : "" }, `${String(n).padStart(4)} | ${line}\n`);
    })));
}

$("#preview-form").addEventListener("submit", previewCost);
$("#upload-form")?.addEventListener("submit", upload);
list();
