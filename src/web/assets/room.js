// One live room. The page asks the API for the room, asks for a name, then opens the room's
// WebSocket (which joins the user). The socket's frames keep the count, the bar and the chat up
// to date; the transcript before the socket opened comes from GET /rooms/{id}/messages. When the
// socket drops the page reconnects with backoff, and it shows the final view once the room is
// closed. Everything shown comes from the API of API.md; user text only ever goes through
// textContent.
//
// In token mode (GET /auth says so) the name is not asked for: the page takes the user token
// from its link (`/r/{id}#token=...`, see takeToken), asks GET /auth whose it is, and opens the
// socket with `?token=`. Without a token, or when the engine refuses it, the page says how to get
// a fresh link instead of retrying.
import {
  api,
  authInfo,
  clock,
  dropToken,
  plural,
  renderBar,
  takeToken,
  tokenTrouble,
  USER_RE,
  verdict,
} from "./common.js";

/** Reconnect backoff: first delay, cap (both before jitter). */
const BACKOFF_FIRST_MS = 500;
const BACKOFF_MAX_MS = 10000;
/** The API's largest page of messages. */
const PAGE = 500;
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
const roomPath = `/rooms/${encodeURIComponent(roomId)}`;

let user = null;
/** Token mode: the user token the socket is opened with. */
let token = null;
let tokenMode = false;
/** The token was refused: no more reconnecting until the page gets a new link. */
let halted = false;
/** The current socket; frames and closes of older sockets are ignored. */
let socket = null;
/** True once the current socket's first state frame has come. */
let live = false;
let closed = false;
/** Failed connection attempts since the last good one. */
let attempt = 0;
let reconnectTimer = null;
let reqCounter = 0;
/** Requests sent and not yet answered: req -> {kind, side?, text?}. */
const pending = new Map();
let myVote = null;
/** The transcript shown is complete up to this seq. */
let complete = 0;
let historyDone = false;
let maxSeen = 0;
const seen = new Set();
let lastViewSeq = 0;
let noticeTimer = null;

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

function showNotice(message) {
  el.notice.textContent = message;
  el.notice.hidden = false;
  clearTimeout(noticeTimer);
  noticeTimer = setTimeout(() => {
    el.notice.hidden = true;
  }, NOTICE_MS);
}

function setConn(state, text) {
  el.conn.dataset.state = state;
  el.conn.textContent = text;
}

function applyView(view) {
  if (view.seq < lastViewSeq) return;
  lastViewSeq = view.seq;
  el.title.textContent = view.title;
  document.title = `${view.title} · roomstate`;
  el.count.dataset.participants = String(view.participants);
  el.count.textContent =
    view.status === "closed"
      ? `Peak: ${plural(view.participants_peak, "participant", "participants")}`
      : `${plural(view.participants, "participant", "participants")} here now`;
  el.tally.textContent = renderBar(el.bar, view.pro, view.con);
}

function setMyVote(side) {
  myVote = side;
  store(voteKey(), side);
  updateControls();
}

function updateControls() {
  el.votePro.setAttribute("aria-pressed", String(myVote === "pro"));
  el.voteCon.setAttribute("aria-pressed", String(myVote === "con"));
  const busy = [...pending.values()].some((p) => p.kind !== "say");
  el.votePro.disabled = !live || busy;
  el.voteCon.disabled = !live || busy;
  el.retract.disabled = !live || busy || myVote === null;
  el.send.disabled = !live;
  el.myVote.textContent = myVote ? `You voted ${myVote}.` : "You have not voted.";
}

function addMessage(m) {
  if (seen.has(m.seq)) return;
  seen.add(m.seq);
  maxSeen = Math.max(maxSeen, m.seq);
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

/** Loads the transcript after `complete`, page by page, while `current()` holds. */
async function loadHistory(current) {
  let after = complete;
  // A screen reader reads the live list once the backlog is in, not message by message.
  el.messages.setAttribute("aria-busy", "true");
  try {
    for (;;) {
      const { messages } = await api("GET", `${roomPath}/messages?after=${after}&limit=${PAGE}`);
      if (!current()) return;
      messages.forEach(addMessage);
      if (messages.length < PAGE) break;
      after = messages[messages.length - 1].seq;
    }
  } finally {
    el.messages.removeAttribute("aria-busy");
  }
  historyDone = true;
  // Everything up to the first state frame is in the pages, and every later message came
  // over the socket, none skipped.
  complete = Math.max(complete, maxSeen);
}

function showClosed(view) {
  closed = true;
  live = false;
  clearTimeout(reconnectTimer);
  if (socket) {
    const s = socket;
    socket = null;
    s.close(1000);
  }
  pending.clear();
  applyView(view);
  el.result.textContent = `Final result: ${verdict(view.pro, view.con)}`;
  const parts = [];
  if (view.closed_at) parts.push(`Closed at ${clock(view.closed_at)}.`);
  parts.push(`Pro ${view.pro}, con ${view.con}.`);
  parts.push(`${plural(view.messages, "message", "messages")}, at most ${plural(view.participants_peak, "participant", "participants")} at once.`);
  if (user && myVote) parts.push(`You voted ${myVote}.`);
  el.closedDetail.textContent = parts.join(" ");
  el.closed.hidden = false;
  el.join.hidden = true;
  el.live.hidden = false;
  el.voteControls.hidden = true;
  el.sayForm.hidden = true;
  setConn("closed", "Room closed");
  document.title = `Closed: ${view.title} · roomstate`;
}

/** A closed room seen on load or after a refused reconnect: its final view and transcript. */
async function closedFromServer(view) {
  showClosed(view);
  try {
    await loadHistory(() => true);
  } catch (e) {
    showNotice(`Could not load the transcript: ${e.message}`);
  }
}

// ---- the socket ----

function connect() {
  if (closed || halted) return;
  const proto = window.location.protocol === "https:" ? "wss:" : "ws:";
  const who = tokenMode ? `token=${encodeURIComponent(token)}` : `user=${encodeURIComponent(user)}`;
  const url = `${proto}//${window.location.host}${roomPath}/ws?${who}`;
  setConn(attempt === 0 ? "connecting" : "reconnecting", attempt === 0 ? "Connecting…" : "Reconnecting…");
  const ws = new WebSocket(url);
  socket = ws;
  live = false;
  historyDone = false;
  updateControls();
  ws.onmessage = (event) => {
    if (ws !== socket) return;
    let frame;
    try {
      frame = JSON.parse(event.data);
    } catch (e) {
      return;
    }
    onFrame(ws, frame);
  };
  ws.onclose = (event) => {
    if (ws !== socket) return;
    socket = null;
    live = false;
    pending.clear();
    updateControls();
    // 4001: the token expired; the same token would only be refused again.
    if (event.code === 4001) {
      dropToken();
      signinNeeded(tokenTrouble({ status: 401, message: "token expired" }));
      return;
    }
    if (!closed) scheduleReconnect();
  };
}

function onFrame(ws, frame) {
  switch (frame.type) {
    case "state":
      if (!live) {
        live = true;
        attempt = 0;
        setConn("live", "Live");
        updateControls();
        loadHistory(() => ws === socket).catch((e) => {
          showNotice(`Could not load earlier messages: ${e.message}`);
        });
      }
      applyView(frame);
      break;
    case "message":
      addMessage(frame);
      if (historyDone) complete = Math.max(complete, frame.seq);
      break;
    case "ack": {
      const req = pending.get(frame.req);
      pending.delete(frame.req);
      if (req && req.kind === "vote") setMyVote(req.side);
      else if (req && req.kind === "retract") setMyVote(null);
      else updateControls();
      break;
    }
    case "error": {
      const req = pending.get(frame.req);
      pending.delete(frame.req);
      updateControls();
      if (frame.error === "room_closed") {
        checkRoom().catch(() => {});
        break;
      }
      // The token expired: the close (4001) that follows says what to do.
      if (frame.error === "unauthorized" && frame.req === null) break;
      if (req && req.kind === "say" && el.say.value === "") el.say.value = req.text;
      showNotice(`Refused: ${frame.message}`);
      break;
    }
    case "closed":
      showClosed(frame);
      break;
    default:
      break;
  }
}

function send(frame, request) {
  if (!socket || !live || socket.readyState !== WebSocket.OPEN) {
    showNotice("Not connected right now; try again in a moment.");
    return false;
  }
  reqCounter += 1;
  const req = `r${reqCounter}`;
  pending.set(req, request);
  socket.send(JSON.stringify({ ...frame, req }));
  updateControls();
  return true;
}

/** Asks the API about the room: false when there is nothing to reconnect to. */
async function checkRoom() {
  const view = await api("GET", roomPath);
  if (view.status === "closed") {
    if (!closed) await closedFromServer(view);
    return false;
  }
  applyView(view);
  return true;
}

function scheduleReconnect() {
  const cap = Math.min(BACKOFF_MAX_MS, BACKOFF_FIRST_MS * 2 ** attempt);
  const delay = Math.round(cap / 2 + (Math.random() * cap) / 2);
  attempt += 1;
  setConn("reconnecting", `Connection lost. Reconnecting in ${Math.max(1, Math.round(delay / 1000))} s…`);
  clearTimeout(reconnectTimer);
  reconnectTimer = setTimeout(async () => {
    if (closed || halted) return;
    try {
      if (!(await checkRoom())) return;
      // A refused upgrade shows no status to a page: ask about the token first.
      if (tokenMode) await authInfo(token, roomId);
    } catch (e) {
      if (e.code === "not_found") {
        roomGone();
        return;
      }
      if (e.status === 401 || e.status === 403) {
        if (e.status === 401) dropToken();
        signinNeeded(tokenTrouble(e));
        return;
      }
      // The server is not answering: wait longer.
      scheduleReconnect();
      return;
    }
    connect();
  }, delay);
}

/** Token mode without a usable token: say how to get one, and stop trying. */
function signinNeeded(message) {
  halted = true;
  live = false;
  clearTimeout(reconnectTimer);
  if (socket) {
    const s = socket;
    socket = null;
    s.close(1000);
  }
  pending.clear();
  el.join.hidden = true;
  el.live.hidden = true;
  el.signinText.textContent = message;
  el.signin.hidden = false;
  setConn("closed", "Not connected");
}

function roomGone() {
  closed = true;
  el.live.hidden = true;
  el.join.hidden = true;
  el.title.textContent = "No such room";
  showNotice("This room does not exist (any more). Pick one from the list of rooms.");
}

// ---- controls ----

el.joinForm.addEventListener("submit", (event) => {
  event.preventDefault();
  const name = el.user.value.trim();
  let problem = null;
  if (name === "") problem = "Type a name first.";
  else if (!USER_RE.test(name))
    problem = `“${name}” cannot be used: a name is 1–64 letters, digits, “.”, “_” or “-”, with no spaces.`;
  if (problem) {
    el.userError.textContent = problem;
    el.userError.hidden = false;
    el.user.setAttribute("aria-invalid", "true");
    el.user.focus();
    return;
  }
  el.userError.hidden = true;
  el.user.removeAttribute("aria-invalid");
  store("roomstate:user", name);
  enter(name);
});

/** Goes live as `name`: opening the socket joins the room. */
function enter(name) {
  user = name;
  myVote = stored(voteKey());
  if (myVote !== "pro" && myVote !== "con") myVote = null;
  el.me.textContent = user;
  el.meLine.hidden = false;
  el.join.hidden = true;
  el.live.hidden = false;
  updateControls();
  connect();
  el.say.focus();
}

el.user.addEventListener("input", () => {
  el.userError.hidden = true;
  el.user.removeAttribute("aria-invalid");
});

for (const [button, side] of [
  [el.votePro, "pro"],
  [el.voteCon, "con"],
]) {
  button.addEventListener("click", () => {
    // Sent even when it looks like our vote already: the remembered vote may be stale (another
    // tab), and the same side again changes nothing on the server.
    send({ type: "vote", side }, { kind: "vote", side });
  });
}

el.retract.addEventListener("click", () => {
  send({ type: "retract" }, { kind: "retract" });
});

el.sayForm.addEventListener("submit", (event) => {
  event.preventDefault();
  const text = el.say.value;
  if (text.trim() === "") return;
  if (send({ type: "say", text }, { kind: "say", text })) el.say.value = "";
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
  let view;
  let auth;
  try {
    auth = await authInfo();
    if (auth.mode === "token") {
      tokenMode = true;
      // Taken at once, so the token leaves the address bar whatever happens next.
      token = takeToken();
    }
    view = await api("GET", roomPath);
  } catch (e) {
    if (e.code === "not_found") roomGone();
    else {
      el.title.textContent = "Room unavailable";
      showNotice(`Could not load the room: ${e.message} Reload the page to try again.`);
    }
    return;
  }
  applyView(view);
  if (view.status === "closed") {
    await closedFromServer(view);
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
    signinNeeded(
      "This room needs a personal link: open it from the application that sent you here " +
        "(its links end in “#token=…”).",
    );
    return;
  }
  let me;
  try {
    me = await authInfo(token, roomId);
  } catch (e) {
    if (e.status === 401 || e.status === 403) {
      if (e.status === 401) dropToken();
      signinNeeded(tokenTrouble(e));
    } else {
      showNotice(`Could not check your link: ${e.message} Reload the page to try again.`);
    }
    return;
  }
  enter(me.user);
}

start();
