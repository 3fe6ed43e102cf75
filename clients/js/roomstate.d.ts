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

/** A token, or a function that gives a fresh one (called before each connect). */
export type TokenSource = string | (() => string | Promise<string>);

export interface ApiOptions {
  /** The engine, e.g. "https://rooms.example"; default: the page's origin. */
  baseUrl?: string;
  token?: TokenSource;
  fetch?: typeof fetch;
}

export class RoomstateApi {
  constructor(options?: ApiOptions);
  readonly baseUrl: string;
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
}

export type Status = "idle" | "connecting" | "live" | "reconnecting" | "closed" | "failed";

export interface RoomClientOptions extends ApiOptions {
  room: string;
  /** The user (open mode); with a token the engine takes it from the token's `sub`. */
  user?: string;
  /** Seq of the last message the application already has; 0 fetches the whole transcript. */
  after?: number;
  WebSocket?: typeof WebSocket;
}

export interface RoomClientEventMap {
  state: CustomEvent<RoomView>;
  message: CustomEvent<ChatMessage>;
  closed: CustomEvent<RoomView>;
  status: CustomEvent<Status>;
  problem: CustomEvent<RoomstateError>;
}

export class RoomClient extends EventTarget {
  constructor(options: RoomClientOptions);
  readonly room: string;
  readonly api: RoomstateApi;
  /** Every message up to this seq has been delivered. */
  readonly delivered: number;
  readonly status: Status;
  /** Connects; resolves with the first room state. */
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
