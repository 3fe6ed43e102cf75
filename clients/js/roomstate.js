// roomstate client: one live room over the engine's public API (docs/api.md), for browsers and
// any runtime with `fetch` and `WebSocket`. An ES module with no dependencies and no build step.
//
// What it does for an application, so none has to write it again:
// - connects the room's WebSocket and reconnects with exponential backoff and jitter when it
//   drops, asking for a fresh token first if the engine closed it for an expired one (4001);
// - delivers every chat message exactly once and in seq order: after each (re)connect it fetches
//   what it missed with `GET /rooms/{id}/messages?after=` and drops what it already delivered;
// - delivers room states, never an older seq after a newer one;
// - turns requests into promises that resolve on their `ack` and reject on their `error`;
//   requests still unanswered when the socket drops are sent again after the reconnect, which is
//   safe: votes are idempotent by nature and every `say` carries an idempotency key.

/** Reconnect backoff: the first delay and the cap, before jitter. */
const BACKOFF_FIRST_MS = 500;
const BACKOFF_MAX_MS = 10000;
/** The API's largest page of messages. */
const PAGE = 500;
/** The close code of a socket whose token expired. */
const TOKEN_EXPIRED = 4001;
/** Close codes after which reconnecting is pointless. */
const FINAL_CLOSES = new Set([1000, 1008, 1009]);

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

  /** One JSON request; resolves with the body, rejects with a `RoomstateError`. */
  async request(method, path, body, headers = {}) {
    const token = await this.currentToken();
    const all = { ...headers };
    if (body !== undefined) all["Content-Type"] = "application/json";
    if (token) all.Authorization = `Bearer ${token}`;
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
}

/**
 * One user in one live room. Events (listen with `addEventListener`; `event.detail` holds the
 * value): `state` (room view), `message` (chat message, once each, in seq order), `closed`
 * (final room view; the client stops), `status` ("connecting" | "live" | "reconnecting" |
 * "closed" | "failed"), `problem` (a `RoomstateError` that did not belong to a request).
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
    this.room = room;
    this.user = user;
    this.api = new RoomstateApi({ baseUrl, token, fetch: fetchImpl });
    this.WebSocket = WebSocketImpl ?? globalThis.WebSocket;
    /** Every message up to this seq has been delivered. */
    this.delivered = after;
    this.lastStateSeq = 0;
    this.status = "idle";
    this.socket = null;
    this.attempt = 0;
    this.timer = null;
    this.stopped = false;
    this.reqCounter = 0;
    /** Requests not answered yet: req -> {frame, resolve, reject, sent}. */
    this.pending = new Map();
    /** Messages that came over the socket while the gap before them was being fetched. */
    this.buffered = new Map();
    this.catchingUp = false;
    this.firstState = null;
  }

  /** Connects; resolves with the first room state, or rejects if the room cannot be joined. */
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
    if (this.socket) this.socket.close(1000);
    this.socket = null;
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

  send(frame, req) {
    if (this.stopped) {
      return Promise.reject(new RoomstateError("disconnected", "the client is stopped"));
    }
    const id = req ?? `r-${++this.reqCounter}-${Date.now().toString(36)}`;
    return new Promise((resolve, reject) => {
      const entry = { frame: { ...frame, req: id }, resolve, reject };
      this.pending.set(id, entry);
      this.transmit(entry);
    });
  }

  transmit(entry) {
    if (this.socket && this.status === "live") {
      this.socket.send(JSON.stringify(entry.frame));
    }
    // Otherwise it goes out when the socket is live again (see `onState`).
  }

  async socketUrl() {
    const base = this.api.baseUrl.replace(/^http/, "ws");
    const params = new URLSearchParams();
    if (this.user) params.set("user", this.user);
    const token = await this.api.currentToken();
    if (token) params.set("token", token);
    return `${base}/rooms/${encodeURIComponent(this.room)}/ws?${params}`;
  }

  async open() {
    if (this.stopped) return;
    this.setStatus(this.attempt === 0 ? "connecting" : "reconnecting");
    // A browser does not show why an upgrade was refused (404, 409): ask the API whether the
    // room still takes sockets before trying again.
    if (this.attempt > 0 && (await this.roomIsOver())) return;
    let url;
    try {
      url = await this.socketUrl();
    } catch (e) {
      return this.retry(new RoomstateError("unauthorized", `no token: ${e.message}`));
    }
    if (this.stopped) return;
    const ws = new this.WebSocket(url);
    this.socket = ws;
    this.lastError = null;
    ws.onmessage = (event) => {
      if (ws !== this.socket) return;
      let frame;
      try {
        frame = JSON.parse(event.data);
      } catch (e) {
        return;
      }
      this.onFrame(frame);
    };
    ws.onclose = (event) => {
      if (ws !== this.socket) return;
      this.socket = null;
      this.onClose(event.code);
    };
  }

  onFrame(frame) {
    switch (frame.type) {
      case "state":
        return this.onState(frame);
      case "message":
        return this.onMessage(frame);
      case "ack":
        return this.answer(frame.req, (p) => p.resolve({ seq: frame.seq }));
      case "error":
        if (frame.req === null || frame.req === undefined || !this.pending.has(frame.req)) {
          this.lastError = new RoomstateError(frame.error, frame.message);
          if (frame.req === null) this.emit("problem", this.lastError);
          return;
        }
        return this.answer(frame.req, (p) => p.reject(new RoomstateError(frame.error, frame.message)));
      case "closed": {
        const view = { ...frame };
        delete view.type;
        this.deliverState(view);
        this.stop("closed");
        this.emit("closed", view);
        return;
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

  onState(frame) {
    const view = { ...frame };
    delete view.type;
    const first = this.status !== "live";
    this.deliverState(view);
    if (!first) return;
    this.attempt = 0;
    this.setStatus("live");
    if (this.resolveFirst) {
      this.resolveFirst(view);
      this.resolveFirst = this.rejectFirst = null;
    }
    // Requests unanswered when the last socket dropped: send them again (idempotent).
    for (const entry of this.pending.values()) this.transmit(entry);
    // Messages up to this state's seq that this client has not delivered come from the API;
    // later ones come over this socket.
    if (view.messages > 0) this.catchUp(this.socket);
  }

  deliverState(view) {
    if (view.seq < this.lastStateSeq) return;
    this.lastStateSeq = view.seq;
    this.emit("state", view);
  }

  onMessage(frame) {
    const message = { seq: frame.seq, user: frame.user, text: frame.text, sent_at: frame.sent_at };
    if (this.catchingUp) {
      // Delivered after the messages before it, which the catch-up is fetching.
      this.buffered.set(message.seq, message);
    } else {
      this.deliver(message);
    }
  }

  deliver(message) {
    if (message.seq <= this.delivered) return;
    this.delivered = message.seq;
    this.emit("message", message);
  }

  /**
   * Fetches the messages this client missed before `socket`'s first state, delivers them, then
   * the ones that came over the socket meanwhile. Complete and in order: the API has every
   * message up to that state's seq, and the socket every later one, none skipped.
   */
  async catchUp(socket) {
    this.catchingUp = true;
    try {
      const missed = await this.api.messagesAfter(this.room, this.delivered);
      if (socket === this.socket) for (const m of missed) this.deliver(m);
    } catch (e) {
      this.emit("problem", e instanceof RoomstateError ? e : new RoomstateError("network", String(e)));
    } finally {
      this.catchingUp = false;
      const held = [...this.buffered.values()].sort((a, b) => a.seq - b.seq);
      this.buffered.clear();
      for (const m of held) this.deliver(m);
    }
  }

  onClose(code) {
    if (this.stopped) return;
    const refused = this.lastError;
    if (this.status !== "live" && this.rejectFirst && refused && FINAL_CLOSES.has(code)) {
      // The room refused this user for good (e.g. closed, forbidden): no point retrying.
      this.rejectFirst(refused);
      this.resolveFirst = this.rejectFirst = null;
      return this.stop("failed");
    }
    if (code === 1000) return this.refreshAfterClose();
    this.retry(refused, code === TOKEN_EXPIRED);
  }

  /** True (and the client stopped) when the room is closed or gone. */
  async roomIsOver() {
    try {
      const view = await this.api.getRoom(this.room);
      if (view.status !== "closed") return false;
      this.deliverState(view);
      this.stop("closed");
      this.emit("closed", view);
      return true;
    } catch (e) {
      if (!(e instanceof RoomstateError) || e.code !== "not_found") return false;
      if (this.rejectFirst) this.rejectFirst(e);
      this.resolveFirst = this.rejectFirst = null;
      this.stop("failed");
      return true;
    }
  }

  /** A normal close without a `closed` frame: ask the API whether the room closed. */
  async refreshAfterClose() {
    if (!(await this.roomIsOver())) this.retry(null, false);
  }

  retry(error, immediately = false) {
    if (this.stopped) return;
    this.setStatus("reconnecting");
    const exp = Math.min(BACKOFF_MAX_MS, BACKOFF_FIRST_MS * 2 ** this.attempt);
    const delay = immediately ? 0 : exp / 2 + Math.random() * (exp / 2);
    this.attempt += 1;
    if (error) this.emit("problem", error);
    clearTimeout(this.timer);
    this.timer = setTimeout(() => this.open(), delay);
  }
}
