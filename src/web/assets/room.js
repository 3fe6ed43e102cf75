// One live room. The page asks the API for the room, asks for a name, then hands the room to
// the JavaScript client (roomstate.js, the same file as clients/js/roomstate.js): it opens the
// socket (which joins the user), fetches the transcript and whatever a reconnect missed, delivers
// every message once and in seq order, reconnects with backoff, turns votes and messages into
// promises, and says when the room closed. This file only shows what the client reports: the
// count, the bar and the chat, "Reconnecting…", and the final view once the room is closed.
// Everything shown comes from the public API (docs/api.md); user text only ever goes through
// textContent.
// Words come from i18n.js; a change of language re-renders from the state kept here.
//
// In token mode (GET /auth says so) the name is not asked for: the page takes the user token
// from its link (`/r/{id}#token=...`, see takeToken), asks GET /auth whose it is, and the client
// opens the socket with `?token=`. Without a token, or when the engine refuses it, the page says
// how to get a fresh link instead of retrying.
import { RoomClient, RoomstateApi } from "./roomstate.js?v={{roomstate.js}}";
import { dropToken, renderBar, takeToken, tokenTrouble, USER_RE } from "./common.js?v={{common.js}}";
import { clock, errorText, localized, t, verdict } from "./i18n.js?v={{i18n.js}}";

/** How long an error notice stays up. */
const NOTICE_MS = 10000;

const $ = (id) => document.getElementById(id);
const el = {
  title: $("title"),
  notice: $("notice"),
  closed: $("closed"),
  result: $("result"),
  closedDetail: $("closed-detail"),
  join: $("join"),
  joinForm: $("join-form"),
  user: $("user"),
  userError: $("user-error"),
  live: $("live"),
  conn: $("conn"),
  meLine: $("me-line"),
  me: $("me"),
  meBefore: $("me-before"),
  meAfter: $("me-after"),
  count: $("count"),
  bar: $("bar"),
  tally: $("tally"),
  voteControls: $("vote-controls"),
  votePro: $("vote-pro"),
  voteCon: $("vote-con"),
  retract: $("retract"),
  myVote: $("my-vote"),
  messages: $("messages"),
  noMessages: $("no-messages"),
  sayForm: $("say-form"),
  say: $("say"),
  send: $("send"),
  signin: $("signin"),
  signinText: $("signin-text"),
};

const roomId = decodeURIComponent(window.location.pathname.replace(/^\/r\//, ""));
/** Reads need no token. */
const api = new RoomstateApi();

/** The room's client once the user is in; null before, and after the page gave up. */
let client = null;
let user = null;
/** Token mode: the user token the client opens the socket with. */
let token = null;
let tokenMode = false;

// What the page shows, kept so that a change of language can show it again.
/** The newest room view. */
let view = null;
/** Instead of the room's title: "room.gone.title" or "room.unavailable.title". */
let titleKey = null;
/** The client's status: "connecting" | "live" | "reconnecting" | "closed" | "failed". */
let status = "connecting";
/** The connection badge: a status, or "offline" once the page stopped trying. */
let badge = "connecting";
/** Milliseconds until the next reconnect, when the client said. */
let retryDelay = null;
/** The final view of a closed room. */
let finalView = null;
let myVote = null;
/** Votes and retracts sent and not yet answered. */
let busy = 0;
/** Functions giving the text of the notice, the name error and the sign-in card. */
let notice = null;
let noticeTimer = null;
let userError = null;
let signinText = null;
const seen = new Set();

// ---- storage (best effort: a browser may refuse it) ----

function stored(key) {
  try {
    return window.localStorage.getItem(key);
  } catch (e) {
    return null;
  }
}

function store(key, value) {
  try {
    if (value === null) window.localStorage.removeItem(key);
    else window.localStorage.setItem(key, value);
  } catch (e) {
    // Not kept across reloads; nothing else depends on it.
  }
}

const voteKey = () => `roomstate:vote:${roomId}:${user}`;

// ---- rendering ----

function renderTitle() {
  if (titleKey || !view) {
    el.title.textContent = t(titleKey || "room.loading");
    document.title = t("doc.room");
    return;
  }
  el.title.textContent = view.title;
  document.title = t(finalView ? "doc.roomClosed" : "doc.roomTitle", { title: view.title });
}

function renderView() {
  renderTitle();
  el.meBefore.textContent = t(finalView ? "room.me.beforeClosed" : "room.me.before");
  el.meAfter.textContent = t(finalView ? "room.me.afterClosed" : "room.me.after");
  if (!view) return;
  el.count.dataset.participants = String(view.participants);
  el.count.textContent =
    view.status === "closed"
      ? t("room.count.peak", { n: view.participants_peak })
      : t("room.count.now", { n: view.participants });
  el.tally.textContent = renderBar(el.bar, view.pro, view.con);
}

function renderConn() {
  el.conn.dataset.state = badge === "offline" ? "closed" : badge;
  el.conn.textContent =
    badge === "reconnecting" && retryDelay !== null
      ? t("conn.retryIn", { s: Math.max(1, Math.round(retryDelay / 1000)) })
      : t(`conn.${badge}`);
}

function renderControls() {
  const live = client !== null && status === "live";
  el.votePro.setAttribute("aria-pressed", String(myVote === "pro"));
  el.voteCon.setAttribute("aria-pressed", String(myVote === "con"));
  el.votePro.disabled = !live || busy > 0;
  el.voteCon.disabled = !live || busy > 0;
  el.retract.disabled = !live || busy > 0 || myVote === null;
  el.send.disabled = !live;
  el.myVote.textContent = t(myVote ? `room.myVote.${myVote}` : "room.myVote.none");
}

function renderClosed() {
  if (!finalView) return;
  const v = finalView;
  el.result.textContent = t("closed.result", { verdict: verdict(v.pro, v.con) });
  const parts = [];
  if (v.closed_at) parts.push(t("closed.at", { time: clock(v.closed_at) }));
  parts.push(t("closed.tally", { pro: v.pro, con: v.con }));
  parts.push(
    t("closed.summary", {
      messages: t("closed.messages", { n: v.messages }),
      peak: t("closed.peak", { n: v.participants_peak }),
    }),
  );
  if (user && myVote) parts.push(t(`room.myVote.${myVote}`));
  el.closedDetail.textContent = parts.join(" ");
}

function renderTexts() {
  el.notice.hidden = notice === null;
  if (notice) el.notice.textContent = notice();
  el.userError.hidden = userError === null;
  if (userError) el.userError.textContent = userError();
  if (signinText) el.signinText.textContent = signinText();
  for (const time of el.messages.querySelectorAll("time")) time.textContent = clock(time.dateTime);
}

function render() {
  renderView();
  renderConn();
  renderControls();
  renderClosed();
  renderTexts();
}

function showNotice(text) {
  notice = text;
  renderTexts();
  clearTimeout(noticeTimer);
  noticeTimer = setTimeout(() => {
    notice = null;
    renderTexts();
  }, NOTICE_MS);
}

function applyView(v) {
  if (view && v.seq < view.seq) return;
  view = v;
  renderView();
}

function setMyVote(side) {
  myVote = side;
  store(voteKey(), side);
  renderControls();
}

function addMessage(m) {
  if (seen.has(m.seq)) return;
  seen.add(m.seq);
  const li = document.createElement("li");
  li.dataset.seq = String(m.seq);
  if (m.user === user) li.className = "mine";
  const who = document.createElement("strong");
  who.className = "who";
  who.textContent = m.user;
  const time = document.createElement("time");
  time.dateTime = m.sent_at;
  time.textContent = clock(m.sent_at);
  const text = document.createElement("p");
  text.className = "text";
  text.textContent = m.text;
  li.append(who, " ", time, text);

  const list = el.messages;
  const atBottom = list.scrollHeight - list.scrollTop - list.clientHeight < 40;
  let before = list.lastElementChild;
  while (before && Number(before.dataset.seq) > m.seq) before = before.previousElementSibling;
  if (before) before.after(li);
  else list.prepend(li);
  el.noMessages.hidden = true;
  if (atBottom) list.scrollTop = list.scrollHeight;
}

function busyTranscript(active) {
  // A screen reader reads the live list once the backlog is in, not message by message.
  if (active) el.messages.setAttribute("aria-busy", "true");
  else el.messages.removeAttribute("aria-busy");
}

/** The final view: result, bar, transcript; no more voting or chat. */
function showClosed(v) {
  finalView = v;
  badge = "closed";
  applyView(v);
  el.closed.hidden = false;
  el.join.hidden = true;
  el.live.hidden = false;
  el.voteControls.hidden = true;
  el.sayForm.hidden = true;
  render();
}

/** A closed room seen on load: its final view and the whole transcript, from GET alone. */
async function closedOnLoad(v) {
  showClosed(v);
  busyTranscript(true);
  try {
    for (const m of await api.messagesAfter(roomId, 0)) addMessage(m);
  } catch (e) {
    showNotice(() => t("room.transcriptFailed", { message: errorText(e) }));
  } finally {
    busyTranscript(false);
  }
}

/** Stops the client for good (no more reconnecting). */
function stopClient() {
  const c = client;
  client = null;
  if (c) c.close();
}

/** Token mode without a usable token: say how to get one, and stop trying. */
function signinNeeded(text) {
  stopClient();
  signinText = text;
  badge = "offline";
  el.join.hidden = true;
  el.live.hidden = true;
  el.signin.hidden = false;
  render();
}

function roomGone() {
  stopClient();
  titleKey = "room.gone.title";
  el.live.hidden = true;
  el.join.hidden = true;
  renderTitle();
  showNotice(() => t("room.gone.notice"));
}

// ---- the client ----

/** Opens the room as `user` (or the token's user) through the client; its events drive the page. */
function connectClient() {
  const c = new RoomClient({
    room: roomId,
    user: tokenMode ? undefined : user,
    token: tokenMode ? token : undefined,
  });
  client = c;
  // For debugging and the browser tests: the page's client.
  window.roomstate = { client: c };
  const on = (type, handle) =>
    c.addEventListener(type, (event) => {
      if (c === client) handle(event.detail);
    });
  on("status", (s) => {
    status = s;
    if (s === "connecting" || s === "live" || s === "reconnecting") {
      badge = s;
      retryDelay = null;
      renderConn();
    }
    renderControls();
  });
  on("retry", ({ delay, attempt }) => {
    retryDelay = delay;
    renderConn();
    // Once the delay is over, the client is trying: "Reconnecting…".
    setTimeout(() => {
      if (c === client && status === "reconnecting" && c.attempt === attempt) {
        retryDelay = null;
        renderConn();
      }
    }, delay);
  });
  on("state", applyView);
  on("message", addMessage);
  on("catchup", ({ active }) => busyTranscript(active));
  on("closed", showClosed);
  on("failed", (e) => {
    if (e.code === "not_found") return roomGone();
    if (e.status === 401 || e.status === 403) {
      if (e.status === 401) dropToken();
      return signinNeeded(() => tokenTrouble(e));
    }
    stopClient();
    badge = "offline";
    render();
    showNotice(() => t("room.refused", { message: errorText(e) }));
  });
  on("problem", (e) => {
    // An expired token: the close (4001) follows, and the client's check after it fails with
    // the 401 that says what to do. A lost connection shows in the badge.
    if (e.code === "unauthorized" || e.code === "network") return;
    if (e.status !== undefined) showNotice(() => t("room.historyFailed", { message: errorText(e) }));
    else showNotice(() => t("room.refused", { message: errorText(e) }));
  });
  // Failures and the room's close come as events.
  c.connect().catch(() => {});
}

/** What to do with a refused request. */
function refused(e) {
  // A closed room: the client gets the `closed` frame, or learns it before reconnecting.
  // A stopped client: the page already says why.
  if (e.code === "room_closed" || e.code === "disconnected") return;
  showNotice(() => t("room.refused", { message: errorText(e) }));
}

/** The client, if it can send now; otherwise says so. */
function liveClient() {
  if (client && status === "live") return client;
  showNotice(() => t("room.notConnected"));
  return null;
}

/** Votes or retracts; the buttons wait for the answer. */
function castVote(send, side) {
  const c = liveClient();
  if (!c) return;
  busy += 1;
  renderControls();
  send(c)
    .then(() => setMyVote(side), refused)
    .finally(() => {
      busy -= 1;
      renderControls();
    });
}

// ---- controls ----

el.joinForm.addEventListener("submit", (event) => {
  event.preventDefault();
  const name = el.user.value.trim();
  userError = null;
  if (name === "") userError = () => t("room.name.empty");
  else if (!USER_RE.test(name)) userError = () => t("room.name.bad", { name });
  renderTexts();
  if (userError) {
    el.user.setAttribute("aria-invalid", "true");
    el.user.focus();
    return;
  }
  el.user.removeAttribute("aria-invalid");
  store("roomstate:user", name);
  enter(name);
});

/** Goes live as `name`: the client's socket joins the room. */
function enter(name) {
  user = name;
  myVote = stored(voteKey());
  if (myVote !== "pro" && myVote !== "con") myVote = null;
  el.me.textContent = user;
  el.meLine.hidden = false;
  el.join.hidden = true;
  el.live.hidden = false;
  connectClient();
  render();
  el.say.focus();
}

el.user.addEventListener("input", () => {
  userError = null;
  renderTexts();
  el.user.removeAttribute("aria-invalid");
});

for (const [button, side] of [
  [el.votePro, "pro"],
  [el.voteCon, "con"],
]) {
  // Sent even when it looks like our vote already: the remembered vote may be stale (another
  // tab), and the same side again changes nothing on the server.
  button.addEventListener("click", () => castVote((c) => c.vote(side), side));
}

el.retract.addEventListener("click", () => castVote((c) => c.retract(), null));

el.sayForm.addEventListener("submit", (event) => {
  event.preventDefault();
  const text = el.say.value;
  if (text.trim() === "") return;
  const c = liveClient();
  if (!c) return;
  el.say.value = "";
  c.say(text).catch((e) => {
    if (el.say.value === "") el.say.value = text;
    refused(e);
  });
});

// ---- start ----

// A fresh link opened in this tab while the page is up (only the fragment changes, so the
// browser does not load the page again): keep its token and start over with it.
window.addEventListener("hashchange", () => {
  if (!new URLSearchParams(window.location.hash.replace(/^#/, "")).has("token")) return;
  takeToken();
  window.location.reload();
});

async function start() {
  let v;
  try {
    const auth = await api.auth({ token: null });
    if (auth.mode === "token") {
      tokenMode = true;
      // Taken at once, so the token leaves the address bar whatever happens next.
      token = takeToken();
    }
    v = await api.getRoom(roomId);
  } catch (e) {
    if (e.code === "not_found") roomGone();
    else {
      titleKey = "room.unavailable.title";
      renderTitle();
      showNotice(() => t("room.unavailable.notice", { message: errorText(e) }));
    }
    return;
  }
  applyView(v);
  if (v.status === "closed") {
    await closedOnLoad(v);
    return;
  }
  if (tokenMode) {
    await enterWithToken();
    return;
  }
  el.join.hidden = false;
  el.user.value = stored("roomstate:user") || "";
  el.user.focus();
}

/** Token mode: the user is whoever the engine says the token is for. */
async function enterWithToken() {
  if (!token) {
    signinNeeded(() => t("token.none"));
    return;
  }
  let me;
  try {
    me = await api.auth({ token, room: roomId });
  } catch (e) {
    if (e.status === 401 || e.status === 403) {
      if (e.status === 401) dropToken();
      signinNeeded(() => tokenTrouble(e));
    } else {
      showNotice(() => t("room.checkLinkFailed", { message: errorText(e) }));
    }
    return;
  }
  enter(me.user);
}

localized(render);
start();
