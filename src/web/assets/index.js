// The room list: open rooms with their tallies, refreshed while the page is visible, and the
// form that creates a room.
import { api, plural, renderBar } from "./common.js";

const REFRESH_MS = 5000;

const list = document.getElementById("rooms");
const status = document.getElementById("rooms-status");
const form = document.getElementById("create-form");
const title = document.getElementById("title");
const createError = document.getElementById("create-error");

function roomItem(room) {
  const li = document.createElement("li");
  li.className = "room";
  li.dataset.id = room.id;
  const link = document.createElement("a");
  link.href = `/r/${encodeURIComponent(room.id)}`;
  link.textContent = room.title;
  const meta = document.createElement("span");
  meta.className = "muted";
  meta.textContent = plural(room.participants, "participant", "participants");
  const bar = document.createElement("div");
  bar.className = "bar small";
  bar.setAttribute("aria-hidden", "true");
  bar.append(Object.assign(document.createElement("span"), { className: "pro" }));
  bar.append(Object.assign(document.createElement("span"), { className: "con" }));
  const tally = document.createElement("span");
  tally.className = "tally";
  tally.textContent = renderBar(bar, room.pro, room.con);
  li.append(link, meta, bar, tally);
  return li;
}

async function refresh() {
  try {
    const { rooms } = await api("GET", "/rooms");
    rooms.sort((a, b) => (a.created_at < b.created_at ? 1 : -1));
    list.replaceChildren(...rooms.map(roomItem));
    status.textContent = rooms.length === 0 ? "No open rooms yet: start one above." : plural(rooms.length, "open room", "open rooms");
  } catch (e) {
    status.textContent = `Could not load the rooms: ${e.message}`;
  }
}

form.addEventListener("submit", async (event) => {
  event.preventDefault();
  const text = title.value.trim();
  if (text.length === 0) {
    showCreateError("Type a question for the room first.");
    return;
  }
  const button = form.querySelector("button");
  button.disabled = true;
  try {
    const room = await api("POST", "/rooms", { title: text });
    window.location.assign(`/r/${encodeURIComponent(room.id)}`);
  } catch (e) {
    showCreateError(`The room was not created: ${e.message}`);
  } finally {
    button.disabled = false;
  }
});

function showCreateError(message) {
  createError.textContent = message;
  createError.hidden = false;
  title.setAttribute("aria-invalid", "true");
  title.focus();
}

title.addEventListener("input", () => {
  createError.hidden = true;
  title.removeAttribute("aria-invalid");
});

refresh();
setInterval(() => {
  if (document.visibilityState === "visible") refresh();
}, REFRESH_MS);
