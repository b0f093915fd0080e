// A room's state at a glance, from GET /monitor/rooms (one row per room).

export function badges(room) {
  const found = [];
  if (!room.online) found.push("offline");
  if (room.supply === "disconnected" || room.supply_state === "cut_confirmed") found.push("disconnected");
  else if (room.supply_state === "cut_requested") found.push("cut_requested");
  if (room.keep_supply) found.push("keep");
  if (room.alarm_level > 0) found.push(`l${room.alarm_level}`);
  if (!found.length || (found.length === 1 && found[0] === "keep")) found.unshift("normal");
  return found;
}

export function matches(room, state, query) {
  const marks = badges(room);
  if (state === "alarm" && !(room.alarm_level > 0 || marks.includes("disconnected"))) return false;
  if (state && state !== "alarm" && !marks.includes(state)) return false;
  if (query) {
    const q = query.toLowerCase();
    const words = [room.room_id, room.room_name, ...(room.account_ids || [])].join(" ").toLowerCase();
    if (!words.includes(q)) return false;
  }
  return true;
}
