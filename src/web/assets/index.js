// The room list: open rooms with their tallies, refreshed while the page is visible, and the
// form that creates a room — for whoever `auth.create_rooms` lets (GET /auth): anyone, the
// bearer of a user token (taken from the link, `/#token=...`), or only the administrator.
import { RoomstateApi } from "./roomstate.js?v={{roomstate.js}}";
import { renderBar, takeToken } from "./common.js?v={{common.js}}";
import { errorText, localized, t } from "./i18n.js?v={{i18n.js}}";

const REFRESH_MS = 5000;

const list = document.getElementById("rooms");
const status = document.getElementById("rooms-status");
const form = document.getElementById("create-form");
const title = document.getElementById("title");
const createError = document.getElementById("create-error");
const createNote = document.getElementById("create-note");

/** The API; in token mode it sends the user token POST /rooms needs. */
let api = new RoomstateApi();
/** The rooms last listed (null before the first answer), or the error of the last try. */
let rooms = null;
let listError = null;
/** What the create form says: a key and its parameters, or null. */
let createProblem = null;
let note = null;

function roomItem(room) {
  const li = document.createElement("li");
  li.className = "room";
  li.dataset.id = room.id;
  const link = document.createElement("a");
  link.href = `/r/${encodeURIComponent(room.id)}`;
  link.textContent = room.title;
  const meta = document.createElement("span");
  meta.className = "muted";
  meta.textContent = t("index.rooms.participants", { n: room.participants });
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

function renderList() {
  if (listError) status.textContent = t("index.rooms.error", { message: errorText(listError) });
  if (rooms === null) {
    if (!listError) status.textContent = t("index.rooms.loading");
    return;
  }
  list.replaceChildren(...rooms.map(roomItem));
  if (listError) return;
  status.textContent =
    rooms.length === 0 ? t("index.rooms.none") : t("index.rooms.count", { n: rooms.length });
}

async function refresh() {
  try {
    const found = await api.listRooms();
    found.sort((a, b) => (a.created_at < b.created_at ? 1 : -1));
    rooms = found;
    listError = null;
  } catch (e) {
    listError = e;
  }
  renderList();
}

function renderCreate() {
  createError.hidden = createProblem === null;
  if (createProblem) createError.textContent = t(...createProblem);
  createNote.hidden = note === null;
  if (note) createNote.textContent = t(note);
}

form.addEventListener("submit", async (event) => {
  event.preventDefault();
  const text = title.value.trim();
  if (text.length === 0) {
    showCreateError(["index.create.empty"]);
    return;
  }
  const button = form.querySelector("button");
  button.disabled = true;
  try {
    const room = await api.createRoom(text);
    window.location.assign(`/r/${encodeURIComponent(room.id)}`);
  } catch (e) {
    const key = e.status === 401 || e.status === 403 ? "index.create.needLink" : "index.create.failed";
    showCreateError([key, { message: errorText(e) }]);
  } finally {
    button.disabled = false;
  }
});

function showCreateError(problem) {
  createProblem = problem;
  renderCreate();
  title.setAttribute("aria-invalid", "true");
  title.focus();
}

title.addEventListener("input", () => {
  createProblem = null;
  renderCreate();
  title.removeAttribute("aria-invalid");
});

/** Who may create rooms here; the form says so when it is not the person at the page. */
async function setUpCreating() {
  let auth;
  try {
    auth = await api.auth({ token: null });
  } catch (e) {
    // The form stays; a create that fails says why.
    return;
  }
  let token = null;
  if (auth.mode === "token") {
    token = takeToken();
    api = new RoomstateApi({ token: token || undefined });
  }
  if (auth.create_rooms === "admin") note = "index.create.adminOnly";
  else if (auth.create_rooms === "users" && !token) note = "index.create.usersOnly";
  if (note === null) return;
  renderCreate();
  title.disabled = true;
  form.querySelector("button").disabled = true;
}

localized(() => {
  document.title = t("doc.index");
  renderList();
  renderCreate();
});
setUpCreating();
refresh();
setInterval(() => {
  if (document.visibilityState === "visible") refresh();
}, REFRESH_MS);
