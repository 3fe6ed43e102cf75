// Types of the roomstate client (roomstate.js). The shapes follow docs/api.md.

/** A room as the API shows it. */
export interface RoomView {
  id: string;
  title: string;
  status: "open" | "closed";
  participants: number;
  participants_peak: number;
  pro: number;
  con: number;
  messages: number;
  seq: number;
  created_at: string;
  closed_at: string | null;
}

/** A chat message. */
export interface ChatMessage {
  seq: number;
  user: string;
  text: string;
  sent_at: string;
}

/** An API error code, or what the client adds for a lost connection. */
export type ErrorCode =
  | "bad_request"
  | "unauthorized"
  | "forbidden"
  | "not_found"
  | "not_joined"
  | "room_closed"
  | "too_large"
  | "rate_limited"
  | "unavailable"
  | "internal"
  | "disconnected"
  | "network";

export class RoomstateError extends Error {
  constructor(code: ErrorCode | string, message: string, status?: number);
  readonly code: ErrorCode | string;
  /** The HTTP status, when the error came over HTTP. */
  readonly status?: number;
}

/**
 * A token, or a function that gives a fresh one (called before each connect). A function that
 * throws (or rejects with) a `RoomstateError` whose `status` is 401 or 403 stops the client
 * (`failed`); any other throw is retried with backoff.
 */
export type TokenSource = string | (() => string | Promise<string>);

export interface ApiOptions {
  /** The engine, e.g. "https://rooms.example"; default: the page's origin. */
  baseUrl?: string;
  token?: TokenSource;
  fetch?: typeof fetch;
}

/** What `GET /auth` says (docs/auth.md); the last three only when a token was checked. */
export interface AuthInfo {
  mode: "open" | "token";
  create_rooms: "anyone" | "users" | "admin";
  algorithm?: "HS256" | "RS256" | "ES256";
  /** The token's user (its `sub`). */
  user?: string;
  expires_at?: string;
  rooms?: string[] | null;
}

export class RoomstateApi {
  constructor(options?: ApiOptions);
  readonly baseUrl: string;
  /** The token as of now (asks the token function, if one was given). */
  currentToken(): Promise<string | undefined>;
  /**
   * One JSON request. The token goes along as `Authorization: Bearer` unless `headers` has an
   * `Authorization` (an empty one sends none).
   */
  request<T = unknown>(
    method: string,
    path: string,
    body?: unknown,
    headers?: Record<string, string>,
  ): Promise<T>;
  listRooms(): Promise<RoomView[]>;
  createRoom(title: string): Promise<RoomView>;
  getRoom(room: string): Promise<RoomView>;
  messages(room: string, after?: number, limit?: number): Promise<ChatMessage[]>;
  messagesAfter(room: string, after?: number): Promise<ChatMessage[]>;
  /**
   * `GET /auth`: the engine's mode and, with a token (default: this API's; `null`: none), whose
   * it is; `room` also checks the token's `rooms`. A refused token rejects with its 401 / 403.
   * An engine without the route answers as open mode.
   */
  auth(options?: { token?: string | null; room?: string }): Promise<AuthInfo>;
}

export type Status = "idle" | "connecting" | "live" | "reconnecting" | "closed" | "failed";

/** A reconnect that is `delay` ms away (the `attempt`-th since the last live socket). */
export interface Retry {
  attempt: number;
  delay: number;
  error: RoomstateError | null;
}

export interface RoomClientOptions extends ApiOptions {
  room: string;
  /** The user (open mode); with a token the engine takes it from the token's `sub`. */
  user?: string;
  /** Seq of the last message the application already has; 0 fetches the whole transcript. */
  after?: number;
  WebSocket?: typeof WebSocket;
}

export interface RoomClientEventMap {
  /** A room view; never an older seq after a newer one. */
  state: CustomEvent<RoomView>;
  /** A chat message: each once, in seq order, none skipped. */
  message: CustomEvent<ChatMessage>;
  /** The room closed: its final view, after every message. The client has stopped. */
  closed: CustomEvent<RoomView>;
  status: CustomEvent<Status>;
  /** The socket dropped (or could not be opened); the next try is `delay` ms away. */
  retry: CustomEvent<Retry>;
  /** Missed messages are being fetched (`active: true`), or are in (`false`). */
  catchup: CustomEvent<{ active: boolean }>;
  /**
   * The client stopped for good without the room closing: the room is gone (`not_found`), the
   * token was refused (`status` 401 / 403), or the first socket was refused for good.
   */
  failed: CustomEvent<RoomstateError>;
  /** An error that belonged to no request (an `error` frame with `req: null`, a failed fetch). */
  problem: CustomEvent<RoomstateError>;
}

export class RoomClient extends EventTarget {
  constructor(options: RoomClientOptions);
  readonly room: string;
  readonly api: RoomstateApi;
  /** Every message up to this seq has been delivered. */
  readonly delivered: number;
  readonly status: Status;
  /** The current socket, null while there is none (between a drop and the reconnect). */
  readonly socket: WebSocket | null;
  /**
   * Connects; resolves with the first room state, or rejects with a `RoomstateError` when the
   * room cannot be joined (gone, already closed: `room_closed`, token or user refused).
   */
  connect(): Promise<RoomView>;
  vote(side: "pro" | "con"): Promise<{ seq: number }>;
  retract(): Promise<{ seq: number }>;
  /** Safe to retry: carries an idempotency key (given, or made up). */
  say(text: string, options?: { key?: string }): Promise<{ seq: number }>;
  /** Leaves the room and stops reconnecting. */
  close(): void;
  addEventListener<K extends keyof RoomClientEventMap>(
    type: K,
    listener: (event: RoomClientEventMap[K]) => void,
    options?: boolean | AddEventListenerOptions,
  ): void;
  removeEventListener<K extends keyof RoomClientEventMap>(
    type: K,
    listener: (event: RoomClientEventMap[K]) => void,
    options?: boolean | EventListenerOptions,
  ): void;
}
