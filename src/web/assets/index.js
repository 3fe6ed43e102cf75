// The room list: open rooms with their tallies, refreshed while the page is visible, and the
// form that creates a room — for whoever `auth.create_rooms` lets (GET /auth): anyone, the
// bearer of a user token (taken from the link, `/#token=...`), or only the administrator.
import { api, authInfo, plural, renderBar, takeToken } from "./common.js";

const REFRESH_MS = 5000;

const list = document.getElementById("rooms");
const status = document.getElementById("rooms-status");
const form = document.getElementById("create-form");
const title = document.getElementById("title");
const createError = document.getElementById("create-error");
const createNote = document.getElementById("create-note");

/** Token mode: the user token POST /rooms is sent with. */
let createToken = null;

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
    const room = await api("POST", "/rooms", { title: text }, createToken || undefined);
    window.location.assign(`/r/${encodeURIComponent(room.id)}`);
  } catch (e) {
    if (e.status === 401 || e.status === 403)
      showCreateError(
        `The room was not created: ${e.message}. Starting a debate needs a valid personal link ` +
          "from the application that sent you here; ask it for a fresh one.",
      );
    else showCreateError(`The room was not created: ${e.message}`);
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

/** Who may create rooms here; the form says so when it is not the person at the page. */
async function setUpCreating() {
  let auth;
  try {
    auth = await authInfo();
  } catch (e) {
    // The form stays; a create that fails says why.
    return;
  }
  if (auth.mode === "token") createToken = takeToken();
  let note = null;
  if (auth.create_rooms === "admin") note = "New debates are opened by the administrator of this server.";
  else if (auth.create_rooms === "users" && !createToken)
    note =
      "Starting a debate needs a personal link from the application that sent you here " +
      "(its links end in “#token=…”).";
  if (note === null) return;
  createNote.textContent = note;
  createNote.hidden = false;
  title.disabled = true;
  form.querySelector("button").disabled = true;
}

setUpCreating();
refresh();
setInterval(() => {
  if (document.visibilityState === "visible") refresh();
}, REFRESH_MS);
