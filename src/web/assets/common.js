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

/** Calls the API; resolves to the JSON body, rejects with an ApiError. */
export async function api(method, path, body) {
  const init = { method, headers: { Accept: "application/json" }, cache: "no-store" };
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
