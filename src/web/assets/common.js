// Shared by the pages: the pro/con bar, user names and the tab's user token. Nothing here keeps
// state but the token in sessionStorage. Words come from i18n.js, API calls from the client
// (roomstate.js).
import { t } from "./i18n.js?v={{i18n.js}}";

/** User names (docs/api.md "Names"). */
export const USER_RE = /^[A-Za-z0-9_.-]{1,64}$/;

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
  if (total === 0) return t("tally.empty");
  return t("tally", { pro, con, proPct, conPct: 100 - proPct });
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

/** What to tell a person whose token the engine refused (a RoomstateError of a 401 or 403). */
export function tokenTrouble(e) {
  const ask = t("token.ask");
  if (e && e.status === 403) return t("token.otherRoom", { message: e.message, ask });
  if (e && /expired/.test(e.message)) return t("token.expired", { ask });
  return t("token.invalid", { message: e ? e.message : "no token", ask });
}
