// Room monitoring: every room of a site as a grid by building and floor, refreshed by
// polling GET /monitor/rooms (a cheap view) without reloading the page.
import { $, all, clear, el, options, poll, POLL_MS, showError, t, time } from "../lib.js";
import { badges, matches } from "../state.js";

const form = $("#filters");
const site = $("#f-site");
const building = $("#f-building");
let rooms = [];

function label(mark) {
  return mark.startsWith("l") && mark.length === 2 ? `L${mark[1]}` : t(`state.${mark}`);
}

function tile(room) {
  const marks = badges(room);
  const money = `¥${room.balance ?? "—"}`;
  const summary = `${room.room_name || room.room_id}: ${marks.map(label).join(", ")}; ${t("common.balance")} ${money}`;
  return el("li", {},
    el("a", { href: `/console/rooms/${encodeURIComponent(room.room_id)}`, class: `tile ${marks.join(" ")}`,
              "data-room": room.room_id, "aria-label": summary },
      el("span", { class: "name" }, room.room_name || room.room_id),
      el("span", { class: "balance" }, money),
      el("span", { class: "marks" }, marks.map((m) => el("span", { class: `badge ${m}` }, label(m)))),
      el("span", { class: "today" }, `${t("rooms.today")} ${room.today_kwh} kWh · ${room.today_m3} m³ · ¥${room.today_yuan}`)));
}

function draw() {
  const { state, q } = Object.fromEntries(new FormData(form).entries());
  const shown = rooms.filter((r) => (!building.value || r.building_id === building.value) && matches(r, state, q.trim()));
  const byBuilding = new Map();
  for (const room of shown) {
    const b = byBuilding.get(room.building_id) || { name: room.building_name, floors: new Map() };
    const floor = b.floors.get(room.floor_id) || { level: room.floor_level, rooms: [] };
    floor.rooms.push(room);
    b.floors.set(room.floor_id, floor);
    byBuilding.set(room.building_id, b);
  }
  const sections = [...byBuilding.entries()].map(([id, b]) => el("section", { class: "building", "aria-label": b.name || id },
    el("h2", {}, `${t("rooms.building")} ${b.name || id}`),
    [...b.floors.entries()].sort((x, y) => y[1].level - x[1].level).map(([floorId, f]) => el("div", { class: "floor" },
      el("h3", { id: `floor-${floorId}` }, `${t("rooms.floor")} ${f.level}`),
      el("ul", { class: "tiles", "aria-labelledby": `floor-${floorId}` }, f.rooms.map(tile))))));
  clear($("#grid"), sections.length ? sections : el("p", { class: "empty" }, t("rooms.none")));
}

async function refresh() {
  if (!site.value) return false;
  const asked = site.value;
  try {
    const found = await all(`/monitor/rooms?site_id=${encodeURIComponent(asked)}`);
    if (asked !== site.value) return false; // the site changed meanwhile: its own refresh draws
    rooms = found;
    const names = new Map(rooms.map((r) => [r.building_id, r.building_name || r.building_id]));
    options(building, [...names.entries()].sort(), { blank: t("common.all") });
    draw();
    const alarms = rooms.filter((r) => r.alarm_level > 0 || r.supply === "disconnected").length;
    $("#live").textContent = t("rooms.updated", { time: time(new Date().toISOString()), rooms: rooms.length, alarms });
    clear($("#errors"));
  } catch (error) {
    showError($("#errors"), error);
  }
  return false;
}

async function start() {
  try {
    const sites = await all("/sites");
    options(site, sites.map((s) => [s.site_id, s.name || s.site_id]));
    const wanted = new URLSearchParams(location.search).get("site");
    if (wanted) site.value = wanted;
  } catch (error) {
    showError($("#errors"), error);
    return;
  }
  form.addEventListener("input", draw);
  form.addEventListener("submit", (e) => e.preventDefault());
  site.addEventListener("change", () => { rooms = []; refresh(); });
  poll(refresh, POLL_MS);
}

start();
