// Every word the pages show, in Korean and English, and the choice between the two.
//
// The language is the visitor's choice when they made one with the switch (한국어 / English, kept
// in localStorage), else the first of the browser's languages (`navigator.languages`, what it
// sends as Accept-Language) that is Korean or English, else English. `<html lang>` follows it.
//
// A table entry is a string with `{name}` placeholders, or for counted things an object keyed
// by the plural category of `Intl.PluralRules` ("one", "other"; Korean has only "other").
// Static text in the HTML names its key: `data-i18n` (text), `data-i18n-placeholder`,
// `data-i18n-aria-label`; `applyStatic` fills them in.

/** The languages the pages come in, with their names in themselves (for the switch). */
export const LANGUAGES = { ko: "한국어", en: "English" };
const FALLBACK = "en";
const STORAGE_KEY = "roomstate:lang";

const en = {
  "doc.index": "Debate rooms · roomstate",
  "doc.room": "Room · roomstate",
  "doc.roomTitle": "{title} · roomstate",
  "doc.roomClosed": "Closed: {title} · roomstate",
  skip: "Skip to content",
  "nav.allRooms": "All rooms",
  "lang.label": "Language",

  "index.h1": "Debate rooms",
  "index.create.h": "Start a debate",
  "index.create.label": "Question",
  "index.create.placeholder": "Should we ship on Friday?",
  "index.create.button": "Create room",
  "index.create.empty": "Type a question for the room first.",
  "index.create.failed": "The room was not created: {message}",
  "index.create.needLink":
    "The room was not created: {message}. Starting a debate needs a valid personal link " +
    "from the application that sent you here; ask it for a fresh one.",
  "index.create.adminOnly": "New debates are opened by the administrator of this server.",
  "index.create.usersOnly":
    "Starting a debate needs a personal link from the application that sent you here " +
    "(its links end in “#token=…”).",
  "index.rooms.h": "Open rooms",
  "index.rooms.loading": "Loading…",
  "index.rooms.none": "No open rooms yet: start one above.",
  "index.rooms.count": { one: "{n} open room", other: "{n} open rooms" },
  "index.rooms.error": "Could not load the rooms: {message}",
  "index.rooms.participants": { one: "{n} participant", other: "{n} participants" },

  "tally.empty": "Pro 0 · Con 0 (no votes yet)",
  tally: "Pro {pro} ({proPct}%) · Con {con} ({conPct}%)",
  "vote.pro": "Pro",
  "vote.con": "Con",

  "room.loading": "Loading room…",
  "room.gone.title": "No such room",
  "room.gone.notice": "This room does not exist (any more). Pick one from the list of rooms.",
  "room.unavailable.title": "Room unavailable",
  "room.unavailable.notice": "Could not load the room: {message} Reload the page to try again.",
  "room.closed.h": "Room closed",
  "room.signin.h": "A personal link is needed",
  "room.signin.help":
    "This server checks who you are: you join a debate through a link that the application " +
    "you use (your school’s, your company’s, …) gives you once you are signed in there. Links " +
    "expire after a while; asking the application again gives you a fresh one.",
  "room.join.h": "Join the debate",
  "room.join.label": "Your name",
  "room.join.button": "Join",
  "room.join.help": "1–64 characters: letters, digits, “.”, “_” or “-”.",
  "room.name.empty": "Type a name first.",
  "room.name.bad":
    "“{name}” cannot be used: a name is 1–64 letters, digits, “.”, “_” or “-”, with no spaces.",
  "room.me.before": "You are ",
  "room.me.after": ".",
  "room.me.beforeClosed": "You are ",
  "room.me.afterClosed": ".",
  "room.count.now": { one: "{n} participant here now", other: "{n} participants here now" },
  "room.count.peak": { one: "Peak: {n} participant", other: "Peak: {n} participants" },
  "room.vote.h": "Where the room stands",
  "room.vote.group": "Your vote",
  "room.retract": "Retract my vote",
  "room.myVote.pro": "You voted pro.",
  "room.myVote.con": "You voted con.",
  "room.myVote.none": "You have not voted.",
  "room.chat.h": "Chat",
  "room.chat.list": "Messages",
  "room.chat.none": "No messages yet.",
  "room.chat.label": "Message",
  "room.chat.send": "Send",
  "room.notConnected": "Not connected right now; try again in a moment.",
  "room.refused": "Refused: {message}",
  "room.historyFailed": "Could not load earlier messages: {message}",
  "room.transcriptFailed": "Could not load the transcript: {message}",
  "room.checkLinkFailed": "Could not check your link: {message} Reload the page to try again.",

  "conn.connecting": "Connecting…",
  "conn.live": "Live",
  "conn.reconnecting": "Reconnecting…",
  "conn.retryIn": "Connection lost. Reconnecting in {s} s…",
  "conn.closed": "Room closed",
  "conn.offline": "Not connected",

  "closed.result": "Final result: {verdict}",
  "closed.at": "Closed at {time}.",
  "closed.tally": "Pro {pro}, con {con}.",
  "closed.summary": "{messages}, at most {peak} at once.",
  "closed.messages": { one: "{n} message", other: "{n} messages" },
  "closed.peak": { one: "{n} participant", other: "{n} participants" },
  "verdict.none": "No votes were cast.",
  "verdict.tie": "A tie, {pro}–{con}.",
  "verdict.pro": "Pro wins, {pro}–{con}.",
  "verdict.con": "Con wins, {con}–{pro}.",

  "token.none":
    "This room needs a personal link: open it from the application that sent you here " +
    "(its links end in “#token=…”).",
  "token.ask": "Ask the application that sent you here for a fresh link to this room.",
  "token.otherRoom": "This link is not for this room ({message}). {ask}",
  "token.expired": "Your link has expired. {ask}",
  "token.invalid": "Your link is not valid ({message}). {ask}",

  "error.network": "The server cannot be reached.",
  "error.disconnected": "The connection dropped before the answer came.",
  "error.rate_limited": "Too many requests; wait a moment and try again.",
  "error.too_large": "That is too long.",
  "error.unavailable": "The server cannot take this right now; try again in a moment.",
  "error.not_joined": "You are not in the room (yet).",
  "error.room_closed": "The room is closed.",
};

const ko = {
  "doc.index": "토론방 · roomstate",
  "doc.room": "토론방 · roomstate",
  "doc.roomTitle": "{title} · roomstate",
  "doc.roomClosed": "종료됨: {title} · roomstate",
  skip: "본문으로 건너뛰기",
  "nav.allRooms": "전체 토론방",
  "lang.label": "언어",

  "index.h1": "토론방",
  "index.create.h": "새 토론 시작",
  "index.create.label": "토론 주제",
  "index.create.placeholder": "금요일에 배포해도 될까요?",
  "index.create.button": "토론방 만들기",
  "index.create.empty": "먼저 토론 주제를 입력하세요.",
  "index.create.failed": "토론방을 만들지 못했습니다: {message}",
  "index.create.needLink":
    "토론방을 만들지 못했습니다: {message}. 토론을 시작하려면 이곳으로 안내한 " +
    "애플리케이션의 유효한 개인 링크가 필요합니다. 새 링크를 요청하세요.",
  "index.create.adminOnly": "새 토론은 이 서버의 관리자가 엽니다.",
  "index.create.usersOnly":
    "토론을 시작하려면 이곳으로 안내한 애플리케이션의 개인 링크가 필요합니다" +
    "(링크가 “#token=…”으로 끝납니다).",
  "index.rooms.h": "진행 중인 토론방",
  "index.rooms.loading": "불러오는 중…",
  "index.rooms.none": "진행 중인 토론방이 없습니다. 위에서 새 토론을 시작해 보세요.",
  "index.rooms.count": { other: "진행 중인 토론방 {n}개" },
  "index.rooms.error": "토론방 목록을 불러오지 못했습니다: {message}",
  "index.rooms.participants": { other: "참여자 {n}명" },

  "tally.empty": "찬성 0 · 반대 0 (아직 투표 없음)",
  tally: "찬성 {pro} ({proPct}%) · 반대 {con} ({conPct}%)",
  "vote.pro": "찬성",
  "vote.con": "반대",

  "room.loading": "토론방을 불러오는 중…",
  "room.gone.title": "없는 토론방입니다",
  "room.gone.notice": "이 토론방은 없거나 더 이상 존재하지 않습니다. 토론방 목록에서 골라 주세요.",
  "room.unavailable.title": "토론방을 열 수 없습니다",
  "room.unavailable.notice":
    "토론방을 불러오지 못했습니다: {message} 페이지를 새로 고쳐 다시 시도하세요.",
  "room.closed.h": "토론 종료",
  "room.signin.h": "개인 링크가 필요합니다",
  "room.signin.help":
    "이 서버는 참여자가 누구인지 확인합니다. 토론에는 여러분이 로그인한 애플리케이션" +
    "(학교, 회사 등)이 주는 링크로 참여합니다. 링크는 시간이 지나면 만료되며, " +
    "애플리케이션에 다시 요청하면 새 링크를 받을 수 있습니다.",
  "room.join.h": "토론 참여하기",
  "room.join.label": "이름",
  "room.join.button": "참여",
  "room.join.help": "1–64자: 영문자, 숫자, “.”, “_”, “-”만 쓸 수 있습니다.",
  "room.name.empty": "먼저 이름을 입력하세요.",
  "room.name.bad":
    "“{name}”은(는) 쓸 수 없습니다. 이름은 공백 없이 1–64자의 영문자, 숫자, “.”, “_”, “-”로 " +
    "정하세요.",
  "room.me.before": "",
  "room.me.after": " 님으로 참여 중입니다.",
  "room.me.beforeClosed": "",
  "room.me.afterClosed": " 님으로 참여했습니다.",
  "room.count.now": { other: "지금 {n}명 참여 중" },
  "room.count.peak": { other: "최대 참여자: {n}명" },
  "room.vote.h": "현재 투표 현황",
  "room.vote.group": "내 투표",
  "room.retract": "투표 취소",
  "room.myVote.pro": "찬성에 투표했습니다.",
  "room.myVote.con": "반대에 투표했습니다.",
  "room.myVote.none": "아직 투표하지 않았습니다.",
  "room.chat.h": "채팅",
  "room.chat.list": "메시지 목록",
  "room.chat.none": "아직 메시지가 없습니다.",
  "room.chat.label": "메시지",
  "room.chat.send": "보내기",
  "room.notConnected": "지금은 연결되어 있지 않습니다. 잠시 후 다시 시도하세요.",
  "room.refused": "거부됨: {message}",
  "room.historyFailed": "이전 메시지를 불러오지 못했습니다: {message}",
  "room.transcriptFailed": "대화 기록을 불러오지 못했습니다: {message}",
  "room.checkLinkFailed": "링크를 확인하지 못했습니다: {message} 페이지를 새로 고쳐 다시 시도하세요.",

  "conn.connecting": "연결 중…",
  "conn.live": "실시간",
  "conn.reconnecting": "다시 연결하는 중…",
  "conn.retryIn": "연결이 끊겼습니다. {s}초 후 다시 연결합니다…",
  "conn.closed": "토론 종료",
  "conn.offline": "연결되지 않음",

  "closed.result": "최종 결과: {verdict}",
  "closed.at": "{time}에 종료되었습니다.",
  "closed.tally": "찬성 {pro}, 반대 {con}.",
  "closed.summary": "{messages}, 동시 참여 최대 {peak}.",
  "closed.messages": { other: "메시지 {n}개" },
  "closed.peak": { other: "{n}명" },
  "verdict.none": "투표가 없었습니다.",
  "verdict.tie": "{pro}대 {con} 동점입니다.",
  "verdict.pro": "찬성 승리, {pro}대 {con}.",
  "verdict.con": "반대 승리, {con}대 {pro}.",

  "token.none":
    "이 토론방에는 개인 링크가 필요합니다. 이곳으로 안내한 애플리케이션에서 링크를 열어 " +
    "주세요(링크가 “#token=…”으로 끝납니다).",
  "token.ask": "이곳으로 안내한 애플리케이션에 이 토론방의 새 링크를 요청하세요.",
  "token.otherRoom": "이 링크는 이 토론방용이 아닙니다({message}). {ask}",
  "token.expired": "링크가 만료되었습니다. {ask}",
  "token.invalid": "링크가 유효하지 않습니다({message}). {ask}",

  "error.network": "서버에 연결할 수 없습니다.",
  "error.disconnected": "응답을 받기 전에 연결이 끊겼습니다.",
  "error.rate_limited": "요청이 너무 많습니다. 잠시 후 다시 시도하세요.",
  "error.too_large": "너무 깁니다.",
  "error.unavailable": "서버가 지금은 요청을 받을 수 없습니다. 잠시 후 다시 시도하세요.",
  "error.not_joined": "아직 토론방에 참여하지 않았습니다.",
  "error.room_closed": "토론이 종료되었습니다.",
};

const TABLES = { ko, en };

/**
 * The language for a saved choice (or null) and the browser's preferred languages: the saved
 * one if the pages have it, else the first preferred language they have ("ko-KR" is "ko"), else
 * English.
 */
export function pickLanguage(saved, preferred) {
  if (Object.hasOwn(TABLES, saved)) return saved;
  for (const tag of preferred || []) {
    const base = String(tag).toLowerCase().split(/[-_]/)[0];
    if (Object.hasOwn(TABLES, base)) return base;
  }
  return FALLBACK;
}

function saved() {
  try {
    return window.localStorage.getItem(STORAGE_KEY);
  } catch (e) {
    return null;
  }
}

function browserLanguages() {
  const list = navigator.languages && navigator.languages.length ? navigator.languages : [navigator.language];
  return list.filter(Boolean);
}

let current = pickLanguage(saved(), browserLanguages());
let pluralRules = new Intl.PluralRules(current);
const listeners = [];
document.documentElement.lang = current;

/** The current language: "ko" or "en". */
export function language() {
  return current;
}

/** The text of `key` in the current language, `{name}`s filled from `params` (`n` counts). */
export function t(key, params = {}) {
  let entry = TABLES[current][key] ?? en[key];
  if (entry === undefined) return key;
  if (typeof entry === "object") {
    entry = entry[pluralRules.select(params.n ?? 0)] ?? entry.other;
  }
  return entry.replace(/\{(\w+)\}/g, (whole, name) =>
    Object.hasOwn(params, name) ? String(params[name]) : whole,
  );
}

/** Text for a `RoomstateError`: ours for the codes we word ourselves, else the engine's message. */
export function errorText(e) {
  const key = `error.${e && e.code}`;
  return Object.hasOwn(en, key) ? t(key) : String((e && e.message) || e);
}

/** The final verdict of a closed room. */
export function verdict(pro, con) {
  if (pro === con) return t(pro === 0 ? "verdict.none" : "verdict.tie", { pro, con });
  return t(pro > con ? "verdict.pro" : "verdict.con", { pro, con });
}

/** A short local time for an RFC 3339 string, in the current language. */
export function clock(rfc3339) {
  const d = new Date(rfc3339);
  if (Number.isNaN(d.getTime())) return "";
  return d.toLocaleTimeString(current, { hour: "2-digit", minute: "2-digit" });
}

/** Fills every `data-i18n*` element under `root`. */
export function applyStatic(root = document) {
  for (const e of root.querySelectorAll("[data-i18n]")) e.textContent = t(e.dataset.i18n);
  for (const e of root.querySelectorAll("[data-i18n-placeholder]")) {
    e.setAttribute("placeholder", t(e.dataset.i18nPlaceholder));
  }
  for (const e of root.querySelectorAll("[data-i18n-aria-label]")) {
    e.setAttribute("aria-label", t(e.dataset.i18nAriaLabel));
  }
}

/** Calls `render` now and after every change of language. */
export function localized(render) {
  listeners.push(render);
  render();
}

function use(lang) {
  if (lang === current || !Object.hasOwn(TABLES, lang)) return;
  current = lang;
  pluralRules = new Intl.PluralRules(current);
  document.documentElement.lang = current;
  applyStatic();
  for (const render of listeners) render();
}

/** Switches to `lang` and remembers the choice for the next visit. */
export function setLanguage(lang) {
  try {
    window.localStorage.setItem(STORAGE_KEY, lang);
  } catch (e) {
    // Not remembered; this page still switches.
  }
  use(lang);
}

/**
 * The language switch, built into `container`: one button per language, named in that
 * language, the current one pressed.
 */
export function mountSwitch(container) {
  if (!container) return;
  const buttons = Object.entries(LANGUAGES).map(([lang, name]) => {
    const button = document.createElement("button");
    button.type = "button";
    button.className = "lang";
    button.lang = lang;
    button.dataset.lang = lang;
    button.textContent = name;
    button.addEventListener("click", () => setLanguage(lang));
    return button;
  });
  container.setAttribute("role", "group");
  container.replaceChildren(...buttons);
  localized(() => {
    container.setAttribute("aria-label", t("lang.label"));
    for (const b of buttons) b.setAttribute("aria-pressed", String(b.dataset.lang === current));
  });
}

// A choice made in another tab applies here too.
window.addEventListener("storage", (event) => {
  if (event.key === STORAGE_KEY) use(pickLanguage(event.newValue, browserLanguages()));
});

applyStatic();
mountSwitch(document.getElementById("lang-switch"));
