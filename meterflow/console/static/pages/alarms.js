// Alarms of every account in the user's scope, and the notifications sent for them with
// each delivery attempt.
import { $, api, clear, exportLinks, named, showError, t, table, time } from "../lib.js";

async function start() {
  try {
    const [alarms, notes] = await Promise.all([api("GET", "/alarms?limit=500"), api("GET", "/notifications?limit=500")]);
    exportLinks($("#alarms-exports"), "/alarms?limit=500");
    clear($("#alarm-list"), table(t("alarms.list"), [[(a) => time(a.at), t("common.time")], ["account_id", t("common.account")],
      [(a) => named("alarm", a.kind), t("alarms.kind")], [(a) => (a.level ? `L${a.level}` : ""), t("room.alarm")],
      [(a) => (a.balance ? `¥${a.balance}` : ""), t("common.balance")], ["detail", t("common.detail")]], alarms.items));
    const columns = [[(n) => time(n.created_at), t("common.time")], ["account_id", t("common.account")],
      ["channel", t("alarms.channel")], ["recipient", t("alarms.recipient")], [(n) => named("note", n.status), t("common.status")],
      ["attempts", t("alarms.attempts")]];
    clear($("#notification-list"), table(t("alarms.notifications"), columns, notes.items));
    exportLinks($("#notes-exports"), "/notifications?limit=500");
  } catch (error) {
    showError($("#errors"), error);
  }
}

start();
