// Shared by the pages: the API calls of API.md and the pro/con bar. Nothing here keeps state.

/** User names of API.md. */
export const USER_RE = /^[A-Za-z0-9_.-]{1,64}$/;

/** An API error: `code` is the API's error code, or "network" when no answer came. */
export class ApiError extends Error {
  constructor(status, code, message) {
    super(message);
    this.status = status;
    this.code = code;
  }
}

/** Calls the API; resolves to the JSON body, rejects with an ApiError. `token`, if given, goes
 * along as `Authorization: Bearer` (user tokens, docs/auth.md). */
export async function api(method, path, body, token) {
  const init = { method, headers: { Accept: "application/json" }, cache: "no-store" };
  if (token) init.headers.Authorization = `Bearer ${token}`;
  if (body !== undefined) {
    init.headers["Content-Type"] = "application/json";
    init.body = JSON.stringify(body);
  }
  let response;
  try {
    response = await fetch(path, init);
  } catch (e) {
    throw new ApiError(0, "network", "The server cannot be reached.");
  }
  let json = null;
  try {
    json = await response.json();
  } catch (e) {
    json = null;
  }
  if (!response.ok) {
    const code = (json && json.error) || "internal";
    const message = (json && json.message) || `HTTP ${response.status}`;
    throw new ApiError(response.status, code, message);
  }
  return json;
}

export function plural(n, one, many) {
  return `${n} ${n === 1 ? one : many}`;
}

/** Fills a `.bar` element (two spans) and returns the tally in words. */
export function renderBar(bar, pro, con) {
  const total = pro + con;
  const proPct = total === 0 ? 0 : Math.round((pro / total) * 100);
  const [proSpan, conSpan] = bar.children;
  proSpan.style.width = total === 0 ? "0%" : `${proPct}%`;
  conSpan.style.width = total === 0 ? "0%" : `${100 - proPct}%`;
  bar.dataset.pro = String(pro);
  bar.dataset.con = String(con);
  bar.classList.toggle("empty", total === 0);
  if (total === 0) return "Pro 0 · Con 0 (no votes yet)";
  return `Pro ${pro} (${proPct}%) · Con ${con} (${100 - proPct}%)`;
}

/** The final verdict of a closed room. */
export function verdict(pro, con) {
  if (pro === con) return pro === 0 ? "No votes were cast." : `A tie, ${pro}–${con}.`;
  return pro > con ? `Pro wins, ${pro}–${con}.` : `Con wins, ${con}–${pro}.`;
}

/** A short local time for an RFC 3339 string. */
export function clock(rfc3339) {
  const d = new Date(rfc3339);
  if (Number.isNaN(d.getTime())) return "";
  return d.toLocaleTimeString([], { hour: "2-digit", minute: "2-digit" });
}

// ---- user tokens (docs/auth.md) ----

const TOKEN_KEY = "roomstate:token";

/**
 * The user token of this tab. A link from the application carries it in the fragment
 * (`#token=...`), which browsers never send to a server; the page keeps it in sessionStorage
 * (this tab only, gone when the tab closes) and takes it out of the address bar and the
 * history, so it is not bookmarked, shared or shown by accident.
 */
export function takeToken() {
  const fragment = new URLSearchParams(window.location.hash.replace(/^#/, ""));
  const given = fragment.get("token");
  if (given !== null) {
    fragment.delete("token");
    const rest = fragment.toString();
    const url = window.location.pathname + window.location.search + (rest ? `#${rest}` : "");
    window.history.replaceState(window.history.state, "", url);
    try {
      if (given === "") window.sessionStorage.removeItem(TOKEN_KEY);
      else window.sessionStorage.setItem(TOKEN_KEY, given);
    } catch (e) {
      // Not kept across reloads; this page still has it.
    }
    if (given !== "") return given;
  }
  try {
    return window.sessionStorage.getItem(TOKEN_KEY);
  } catch (e) {
    return null;
  }
}

/** Forgets the tab's token (it was refused). */
export function dropToken() {
  try {
    window.sessionStorage.removeItem(TOKEN_KEY);
  } catch (e) {
    // Nothing kept.
  }
}

/**
 * `GET /auth`: `{mode, create_rooms}`, and with a token what the engine makes of it
 * (`user`, `expires_at`, `rooms`; a refused token rejects with the 401/403 ApiError). An engine
 * without the route (404) is in open mode, the contract's default.
 */
export async function authInfo(token, room) {
  const query = room ? `?room=${encodeURIComponent(room)}` : "";
  try {
    return await api("GET", `/auth${query}`, undefined, token || undefined);
  } catch (e) {
    if (e.status === 404) return { mode: "open", create_rooms: "anyone" };
    throw e;
  }
}

/** What to tell a person whose token the engine refused (an ApiError of a 401 or 403). */
export function tokenTrouble(e) {
  const ask = "Ask the application that sent you here for a fresh link to this room.";
  if (e && e.status === 403) return `This link is not for this room (${e.message}). ${ask}`;
  if (e && /expired/.test(e.message)) return `Your link has expired. ${ask}`;
  return `Your link is not valid (${e ? e.message : "no token"}). ${ask}`;
}
