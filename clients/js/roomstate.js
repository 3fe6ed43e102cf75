// roomstate client: one live room over the engine's public API (docs/api.md), for browsers and
// any runtime with `fetch` and `WebSocket`. An ES module with no dependencies and no build step.
//
// What it does for an application, so none has to write it again:
// - connects the room's WebSocket and reconnects with exponential backoff and jitter when it
//   drops; before a reconnect it asks the API whether the room closed or is gone and whether the
//   token still holds, and stops for good when one of them says so;
// - delivers every chat message exactly once and in seq order: after each (re)connect it fetches
//   what it missed with `GET /rooms/{id}/messages?after=` and merges it with what the new socket
//   sends meanwhile, dropping what it already delivered;
// - delivers room states, never an older seq after a newer one;
// - turns requests into promises that resolve on their `ack` and reject on their `error`;
//   requests still unanswered when the socket drops are sent again after the reconnect, which is
//   safe: votes are idempotent by nature and every `say` carries an idempotency key (one older
//   than the engine keeps keys for is not sent again but rejected, and a request over the
//   engine's frame limit is rejected with `too_large` instead of being sent on every socket).

/** Reconnect backoff: the first delay and the cap, before jitter. */
const BACKOFF_FIRST_MS = 500;
const BACKOFF_MAX_MS = 10000;
/** The API's largest page of messages. */
const PAGE = 500;
/** The close code of a socket whose token expired. */
const TOKEN_EXPIRED = 4001;
/** Close codes after which reconnecting is pointless. */
const FINAL_CLOSES = new Set([1000, 1008, 1009]);
/** `WebSocket.OPEN`, for runtimes whose socket class lacks the constant. */
const OPEN = 1;
/**
 * A request unanswered for this long is not sent again after a reconnect: the engine keeps an
 * idempotency key for 10 minutes, and a vote that old may undo a newer one.
 */
const RESEND_WITHIN_MS = 9 * 60 * 1000;
/** User names the engine accepts (docs/api.md "Names"). */
const USER_NAME = /^[A-Za-z0-9_.-]{1,64}$/;

/** An error the engine answered (`{"error": CODE, "message": ...}`), or a lost connection. */
export class RoomstateError extends Error {
  /**
   * @param {string} code API error code, or "disconnected" / "network"
   * @param {string} message human-readable text
   * @param {number} [status] HTTP status, when it came over HTTP
   */
  constructor(code, message, status) {
    super(message);
    this.name = "RoomstateError";
    this.code = code;
    this.status = status;
  }
}

function trimSlash(url) {
  return url.replace(/\/+$/, "");
}

function asError(e) {
  return e instanceof RoomstateError ? e : new RoomstateError("network", String(e?.message ?? e));
}

/** True for a refusal of the token itself (HTTP 401 / 403), which no retry mends. */
function tokenRefused(e) {
  return e instanceof RoomstateError && (e.status === 401 || e.status === 403);
}

const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

/** A unique idempotency key: letters, digits and `-` only (the API's key alphabet). */
function newKey() {
  const random = globalThis.crypto?.randomUUID?.() ?? `${Date.now()}-${Math.random().toString(36).slice(2)}`;
  return `k-${random}`;
}

/** The HTTP side of the API: rooms, views and message pages. */
export class RoomstateApi {
  /**
   * @param {object} options
   * @param {string} [options.baseUrl] the engine, e.g. "https://rooms.example" (default: this page's origin)
   * @param {string | (() => string | Promise<string>)} [options.token] a user token (auth.mode = "token"), or a function giving a fresh one
   * @param {typeof fetch} [options.fetch]
   */
  constructor({ baseUrl, token, fetch: fetchImpl } = {}) {
    this.baseUrl = trimSlash(baseUrl ?? globalThis.location?.origin ?? "");
    this.token = token;
    this.fetch = fetchImpl ?? globalThis.fetch.bind(globalThis);
  }

  /** The current token, asking the token function for one if one was given. */
  async currentToken() {
    return typeof this.token === "function" ? await this.token() : this.token;
  }

  /**
   * One JSON request; resolves with the body, rejects with a `RoomstateError`. The token goes
   * along as `Authorization: Bearer` unless `headers` already has an `Authorization`.
   */
  async request(method, path, body, headers = {}) {
    const all = { Accept: "application/json", ...headers };
    if (body !== undefined) all["Content-Type"] = "application/json";
    if (all.Authorization === undefined) {
      const token = await this.currentToken();
      if (token) all.Authorization = `Bearer ${token}`;
    }
    if (!all.Authorization) delete all.Authorization;
    let response;
    try {
      response = await this.fetch(`${this.baseUrl}${path}`, {
        method,
        headers: all,
        body: body === undefined ? undefined : JSON.stringify(body),
      });
    } catch (e) {
      throw new RoomstateError("network", `${method} ${path}: ${e.message}`);
    }
    const text = await response.text();
    let json = null;
    try {
      json = text ? JSON.parse(text) : null;
    } catch (e) {
      json = null;
    }
    if (!response.ok) {
      throw new RoomstateError(
        json?.error ?? "internal",
        json?.message ?? `${method} ${path}: HTTP ${response.status}`,
        response.status,
      );
    }
    return json;
  }

  listRooms() {
    return this.request("GET", "/rooms").then((b) => b.rooms);
  }

  createRoom(title) {
    return this.request("POST", "/rooms", { title });
  }

  getRoom(room) {
    return this.request("GET", `/rooms/${encodeURIComponent(room)}`);
  }

  /** Messages with seq > `after`, oldest first, at most `limit` (1..500). */
  messages(room, after = 0, limit = PAGE) {
    return this.request(
      "GET",
      `/rooms/${encodeURIComponent(room)}/messages?after=${after}&limit=${limit}`,
    ).then((b) => b.messages);
  }

  /** Every message with seq > `after`, page by page. */
  async messagesAfter(room, after = 0) {
    const all = [];
    for (;;) {
      const page = await this.messages(room, after, PAGE);
      all.push(...page);
      if (page.length < PAGE) return all;
      after = page[page.length - 1].seq;
    }
  }

  /**
   * `GET /auth` (docs/auth.md): the engine's mode (`{mode, create_rooms}`) and, with a token,
   * what it makes of it (`user`, `expires_at`, `rooms`); `room` adds the check that the token is
   * good for that room. `token` defaults to this API's; `null` asks without one. A refused token
   * rejects with the 401 / 403. An engine without the route is in open mode.
   */
  async auth({ token, room } = {}) {
    const given = token === undefined ? await this.currentToken() : token;
    const query = room ? `?room=${encodeURIComponent(room)}` : "";
    try {
      return await this.request("GET", `/auth${query}`, undefined, {
        Authorization: given ? `Bearer ${given}` : "",
      });
    } catch (e) {
      if (e.status === 404) return { mode: "open", create_rooms: "anyone" };
      throw e;
    }
  }
}

/**
 * One user in one live room. Events (listen with `addEventListener`; `event.detail` holds the
 * value): `state` (room view), `message` (chat message, once each, in seq order), `closed`
 * (final room view, after every message; the client stops), `status` ("connecting" | "live" |
 * "reconnecting" | "closed" | "failed"), `retry` ({attempt, delay, error}: the next connect is
 * `delay` ms away), `catchup` ({active}: missed messages are being fetched, or are in), `failed`
 * (a `RoomstateError`: the client stopped for good without the room closing: room gone, token
 * refused, user refused), `problem` (a `RoomstateError` that did not belong to a request).
 */
export class RoomClient extends EventTarget {
  /**
   * @param {object} options
   * @param {string} options.room room id
   * @param {string} [options.user] user name (open mode; with a token the engine takes it from `sub`)
   * @param {string} [options.baseUrl]
   * @param {string | (() => string | Promise<string>)} [options.token]
   * @param {number} [options.after] seq of the last message the application already has (default 0: the whole transcript)
   * @param {typeof WebSocket} [options.WebSocket]
   * @param {typeof fetch} [options.fetch]
   */
  constructor({ room, user, baseUrl, token, after = 0, WebSocket: WebSocketImpl, fetch: fetchImpl }) {
    super();
    if (!room) throw new TypeError("RoomClient needs a room id");
    // An upgrade refused for its user shows in a browser only as a dropped socket.
    if (user && !USER_NAME.test(user)) {
      throw new TypeError(`not a user name the engine accepts: ${JSON.stringify(user)}`);
    }
    this.room = room;
    this.user = user;
    this.api = new RoomstateApi({ baseUrl, token, fetch: fetchImpl });
    this.WebSocket = WebSocketImpl ?? globalThis.WebSocket;
    /** Every message up to this seq has been delivered. */
    this.delivered = after;
    this.lastStateSeq = 0;
    this.status = "idle";
    /** The current socket (null between two); its frames are the only ones heeded. */
    this.socket = null;
    /** Per socket: {ws, live, catchingUp, buffered, error}. */
    this.conn = null;
    this.attempt = 0;
    this.timer = null;
    this.stopped = false;
    this.reqCounter = 0;
    /** Requests not answered yet: req -> {frame, resolve, reject}. */
    this.pending = new Map();
    /** Catch-ups and the final fetch run one after the other, each from `delivered`. */
    this.sync = Promise.resolve();
    this.firstState = null;
  }

  /**
   * Connects; resolves with the first room state, or rejects if the room cannot be joined
   * (gone, closed, token or user refused).
   */
  connect() {
    if (!this.firstState) {
      this.firstState = new Promise((resolve, reject) => {
        this.resolveFirst = resolve;
        this.rejectFirst = reject;
      });
      this.open();
    }
    return this.firstState;
  }

  /** Votes `side` ("pro" | "con"); resolves with `{seq}` once durable. */
  vote(side) {
    return this.send({ type: "vote", side });
  }

  /** Takes the vote back; resolves with `{seq}`. */
  retract() {
    return this.send({ type: "retract" });
  }

  /** Posts `text`; resolves with `{seq}`. Safe to retry: the request carries an idempotency key. */
  say(text, { key } = {}) {
    return this.send({ type: "say", text }, key ?? newKey());
  }

  /** Leaves the room (closes the socket) and stops reconnecting. */
  close() {
    this.stop("closed");
    this.dropSocket();
  }

  // ---- internals ----

  setStatus(status) {
    if (this.status === status) return;
    this.status = status;
    this.emit("status", status);
  }

  emit(type, detail) {
    this.dispatchEvent(new CustomEvent(type, { detail }));
  }

  stop(status) {
    this.stopped = true;
    clearTimeout(this.timer);
    this.setStatus(status);
    for (const [, p] of this.pending) {
      p.reject(new RoomstateError("disconnected", "the client stopped before the answer came"));
    }
    this.pending.clear();
  }

  dropSocket() {
    const ws = this.socket;
    this.socket = null;
    this.conn = null;
    if (ws) ws.close(1000);
  }

  /** Stops for good on `error` (room gone, token or user refused). */
  fail(error) {
    if (this.stopped) return;
    this.stop("failed");
    this.dropSocket();
    if (this.rejectFirst) this.rejectFirst(error);
    this.resolveFirst = this.rejectFirst = null;
    this.emit("failed", error);
  }

  /**
   * The room is closed: the final state now, then — once every message is delivered (what is
   * not yet is fetched from the API, whose transcript of a closed room is final) — `closed`.
   */
  finish(view) {
    if (this.stopped) return;
    this.deliverState(view);
    this.stop("closed");
    this.dropSocket();
    if (this.rejectFirst) this.rejectFirst(new RoomstateError("room_closed", "the room is closed"));
    this.resolveFirst = this.rejectFirst = null;
    this.sync = this.sync.then(async () => {
      this.emit("catchup", { active: true });
      try {
        for (const m of await this.api.messagesAfter(this.room, this.delivered)) this.deliver(m);
      } catch (e) {
        this.emit("problem", asError(e));
      }
      this.emit("catchup", { active: false });
      this.emit("closed", view);
    });
  }

  send(frame, req) {
    if (this.stopped) {
      return Promise.reject(new RoomstateError("disconnected", "the client is stopped"));
    }
    const id = req ?? `r-${++this.reqCounter}-${Date.now().toString(36)}`;
    return new Promise((resolve, reject) => {
      const text = JSON.stringify({ ...frame, req: id });
      const bytes = new TextEncoder().encode(text).length;
      const entry = { text, bytes, since: Date.now(), resolve, reject };
      this.pending.set(id, entry);
      this.transmit(entry);
    });
  }

  transmit(entry) {
    const ws = this.socket;
    if (ws && this.conn?.live && ws.readyState === OPEN) ws.send(entry.text);
    // Otherwise it goes out when a socket is live again (see `onState`).
  }

  /** The unanswered request whose frame is the largest: `[req, entry]`, or null. */
  largestPending() {
    let largest = null;
    for (const pair of this.pending) if (!largest || pair[1].bytes > largest[1].bytes) largest = pair;
    return largest;
  }

  socketUrl(token) {
    const base = this.api.baseUrl.replace(/^http/, "ws");
    const params = new URLSearchParams();
    if (this.user) params.set("user", this.user);
    if (token) params.set("token", token);
    return `${base}/rooms/${encodeURIComponent(this.room)}/ws?${params}`;
  }

  async open() {
    if (this.stopped) return;
    this.setStatus(this.attempt === 0 ? "connecting" : "reconnecting");
    let token;
    try {
      token = await this.api.currentToken();
    } catch (e) {
      // A token function may say "no" for good with a 401 / 403 RoomstateError.
      if (tokenRefused(e)) return this.fail(e);
      return this.retry(new RoomstateError("unauthorized", `no token: ${e?.message ?? e}`));
    }
    // A browser does not show why an upgrade was refused (404, 409, 401): ask the API whether
    // the room still takes sockets, and this token, before trying again.
    if (this.attempt > 0 && (await this.isOver(token))) return;
    if (this.stopped) return;
    const ws = new this.WebSocket(this.socketUrl(token));
    const conn = { ws, live: false, catchingUp: false, buffered: [], error: null };
    this.socket = ws;
    this.conn = conn;
    ws.onmessage = (event) => {
      if (conn !== this.conn) return;
      let frame;
      try {
        frame = JSON.parse(event.data);
      } catch (e) {
        return;
      }
      this.onFrame(conn, frame);
    };
    ws.onclose = (event) => {
      if (conn !== this.conn) return;
      this.socket = null;
      this.conn = null;
      this.onClose(conn, event.code);
    };
  }

  onFrame(conn, frame) {
    switch (frame.type) {
      case "state":
        return this.onState(conn, frame);
      case "message": {
        const message = { seq: frame.seq, user: frame.user, text: frame.text, sent_at: frame.sent_at };
        // During a catch-up it waits for the messages before it, which the API is giving.
        if (conn.catchingUp) conn.buffered.push(message);
        else this.deliver(message);
        return;
      }
      case "ack":
        return this.answer(frame.req, (p) => p.resolve({ seq: frame.seq }));
      case "error": {
        const error = new RoomstateError(frame.error, frame.message);
        if (frame.req !== null && frame.req !== undefined && this.pending.has(frame.req)) {
          return this.answer(frame.req, (p) => p.reject(error));
        }
        if (frame.error === "too_large" && conn.live) {
          // A frame over the engine's limit is refused unread (the socket then closes with
          // 1009). The largest unanswered request is over it, and would be on every socket.
          const largest = this.largestPending();
          if (largest) return this.answer(largest[0], (p) => p.reject(error));
        }
        conn.error = error;
        if (frame.req === null || frame.req === undefined) this.emit("problem", error);
        return;
      }
      case "closed": {
        const view = { ...frame };
        delete view.type;
        return this.finish(view);
      }
      default:
        return;
    }
  }

  answer(req, settle) {
    const p = this.pending.get(req);
    if (!p) return;
    this.pending.delete(req);
    settle(p);
  }

  onState(conn, frame) {
    const view = { ...frame };
    delete view.type;
    if (conn.live) return this.deliverState(view);
    conn.live = true;
    // Messages up to this state's seq that this client has not delivered come from the API;
    // later ones come over this socket and wait until those are in.
    if (view.messages > 0) {
      conn.catchingUp = true;
      this.sync = this.sync.then(() => this.catchUp(conn));
    }
    this.attempt = 0;
    this.deliverState(view);
    this.setStatus("live");
    if (this.resolveFirst) {
      this.resolveFirst(view);
      this.resolveFirst = this.rejectFirst = null;
    }
    // Requests unanswered when the last socket dropped: send them again (idempotent), unless
    // the engine may have forgotten them.
    const now = Date.now();
    for (const [req, entry] of [...this.pending]) {
      if (now - entry.since <= RESEND_WITHIN_MS) {
        this.transmit(entry);
        continue;
      }
      this.answer(req, (p) =>
        p.reject(new RoomstateError("disconnected", "no answer within 9 minutes; not sent again, as the engine may have forgotten it")),
      );
    }
  }

  deliverState(view) {
    if (view.seq < this.lastStateSeq) return;
    this.lastStateSeq = view.seq;
    this.emit("state", view);
  }

  deliver(message) {
    if (message.seq <= this.delivered) return;
    this.delivered = message.seq;
    this.emit("message", message);
  }

  /**
   * Delivers what this client missed before `conn`'s first state (from the API), then what came
   * over `conn` meanwhile. Complete and in order: the API has every message up to that state's
   * seq, and the socket every later one, none skipped. A fetch that fails is tried again while
   * `conn` is up; once it is gone its held messages are dropped, and the next socket's catch-up
   * fetches them (it starts from `delivered`, so nothing is skipped).
   */
  async catchUp(conn) {
    this.emit("catchup", { active: true });
    try {
      for (let wait = BACKOFF_FIRST_MS; ; wait = Math.min(BACKOFF_MAX_MS, wait * 2)) {
        if (this.stopped) return;
        try {
          for (const m of await this.api.messagesAfter(this.room, this.delivered)) this.deliver(m);
          break;
        } catch (e) {
          this.emit("problem", asError(e));
          if (conn !== this.conn) return;
          await sleep(wait);
          if (conn !== this.conn) return;
        }
      }
      conn.buffered.sort((a, b) => a.seq - b.seq);
      for (const m of conn.buffered) this.deliver(m);
    } finally {
      conn.buffered = [];
      conn.catchingUp = false;
      this.emit("catchup", { active: false });
    }
  }

  onClose(conn, code) {
    if (this.stopped) return;
    const refused = conn.error;
    if (!conn.live && refused?.code === "room_closed") {
      // Closed between the upgrade and the join: the API has its final view and transcript.
      this.isOver().then((over) => over || this.retry(null));
      return;
    }
    if (!conn.live && this.rejectFirst && refused && FINAL_CLOSES.has(code)) {
      // The room refused this user for good on the first try: no point retrying.
      return this.fail(refused);
    }
    // A normal close without a `closed` frame, or an expired token: look again at once (the
    // check before the connect says whether the room closed, and a token function gives a fresh
    // token), but only right after a good connection, never in a loop.
    const soon = (code === 1000 || code === TOKEN_EXPIRED) && this.attempt === 0;
    this.retry(null, soon);
  }

  /** True (and the client stopped) when the room is closed or gone, or the token refused. */
  async isOver(token) {
    try {
      const view = await this.api.getRoom(this.room);
      if (view.status === "closed") {
        this.finish(view);
        return true;
      }
    } catch (e) {
      if (e instanceof RoomstateError && e.code === "not_found") {
        this.fail(e);
        return true;
      }
      // The server is not answering: the socket will fail too, and back off.
      return false;
    }
    if (token) {
      try {
        const who = await this.api.auth({ token, room: this.room });
        if (this.user && who?.user && who.user !== this.user) {
          const message = `the token is for user ${who.user}, not ${this.user}`;
          this.fail(new RoomstateError("forbidden", message, 403));
          return true;
        }
      } catch (e) {
        if (tokenRefused(e)) {
          this.fail(e);
          return true;
        }
      }
    }
    return this.stopped;
  }

  retry(error, immediately = false) {
    if (this.stopped) return;
    this.setStatus("reconnecting");
    const exp = Math.min(BACKOFF_MAX_MS, BACKOFF_FIRST_MS * 2 ** this.attempt);
    const delay = immediately ? 0 : Math.round(exp / 2 + Math.random() * (exp / 2));
    this.attempt += 1;
    if (error) this.emit("problem", error);
    this.emit("retry", { attempt: this.attempt, delay, error: error ?? null });
    clearTimeout(this.timer);
    this.timer = setTimeout(() => this.open(), delay);
  }
}
