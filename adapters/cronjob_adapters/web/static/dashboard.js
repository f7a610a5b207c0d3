// The cronjob dashboard: reads and acts through the bearer-token API, like any client.
// Data is only ever written into the page as text (textContent), never as markup.
"use strict";

const TOKEN_KEY = "cronjob.token";
//: Where the choice of how times are shown is kept (a display setting, not the token's: kept in
//: this browser, also once signed out).
const TIMES_KEY = "cronjob.times";
const PAGE_SIZE = 50;
const REFRESH_MS = 5000;
//: Every status a schedule can be in (the API's order): the counts, the filter and the per-type table.
const STATUSES = ["scheduled", "running", "paused", "succeeded", "dead", "unknown", "missed", "cancelled"];
//: What each action button asks of the API, the statuses it is offered in (cancel: see
//: cancellable), what its outcome says it did and the status it leaves the schedule in (see actedParts).
const ACTIONS = {
  cancel: { method: "DELETE", suffix: "", done: "cancelled", leaves: "cancelled" },
  retry: { method: "POST", suffix: "/retry", done: "retry scheduled", leaves: "scheduled",
    statuses: ["dead", "unknown", "missed"] },
  run: { method: "POST", suffix: "/run", done: "set to run now", leaves: "scheduled", statuses: ["scheduled"] },
  pause: { method: "POST", suffix: "/pause", done: "paused", leaves: "paused", statuses: ["scheduled"] },
  resume: { method: "POST", suffix: "/resume", done: "resumed", leaves: "scheduled", statuses: ["paused"] },
};
//: The statuses of a schedule that waits for its next run: it can be moved and cancelled.
const WAITING = ["scheduled", "paused"];
//: The statuses of a schedule that may run again (the others ended): its next runs are shown.
const LIVE = [...WAITING, "running"];
//: How many of a schedule's next runs its detail shows.
const NEXT_RUNS = 5;
//: An instant as the API writes one (UTC, to the millisecond): an event's detail that is exactly
//: this is a time; one that only holds one (a reason naming a deadline) stays text.
const INSTANT = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}Z$/;
const WEEKDAYS = ["Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat"];
//: The service's own task types (not in /v1/task-types: never scheduled through the API).
const INTERNAL_TYPES = ["webhook.delivery", "whatsapp.status", "cronjob.retention"];
//: The Due filter's windows, as [due_after, due_before] in ms from now (null: open). Recomputed on
//: every refresh, so the window moves with the clock; the API lists them soonest first.
const DUE_WINDOWS = {
  overdue: [null, 0], hour: [0, 3600e3], day: [0, 24 * 3600e3], week: [0, 7 * 24 * 3600e3],
};
//: The Changed filter's windows: how far before now ``updated_after`` is (recomputed on every
//: refresh, as a Due window is). Any status; the list keeps its order.
const CHANGE_WINDOWS = { hour: 3600e3, day: 24 * 3600e3, week: 7 * 24 * 3600e3 };
//: The statuses a "Retry all" is offered for (POST /v1/schedules:retry).
const RETRYABLE = ACTIONS.retry.statuses;
//: The most one bulk request changes (its ``limit``): more matches are changed by repeating it.
const BULK_LIMIT = 1000;
//: The refusals a bulk change's outcome names (the others are counted).
const REFUSALS_SHOWN = 10;
//: What each bulk button asks of the API (the user, labels, type, Due and Changed windows the list
//: is filtered by), and the Status filters it is offered under: those whose list holds every
//: schedule it changes. The API takes no status: cancel changes every live one (under a status,
//: it would change the live ones of the others too), pause the scheduled ones, resume the paused.
const BULK = {
  cancel: { path: "v1/schedules:cancel", done: "cancelled", ask: "Cancel every live schedule", final: true,
    statuses: [""] },
  pause: { path: "v1/schedules:pause", done: "paused", ask: "Pause every waiting schedule",
    statuses: ["", "scheduled"] },
  resume: { path: "v1/schedules:resume", done: "resumed", ask: "Resume every paused schedule",
    statuses: ["", "paused"] },
};

/** Whether it runs once (its rule is a `once @ ...`), not on a recurring rule. */
function isOneOff(schedule) {
  return schedule.schedule.startsWith("once @");
}

/** Whether the API takes a cancel: a schedule that waits (or is paused), and a recurring one even mid-run. */
function cancellable(schedule) {
  // The retention of the service's own jobs is switched off by its setting, not cancelled (the API refuses it).
  if (schedule.type === "cronjob.retention") return false;
  return WAITING.includes(schedule.status) || (schedule.status === "running" && !isOneOff(schedule));
}

//: ``failed``: the message shown is a refresh's error, cleared by the next refresh that works.
//: ``labels``: the label filter as typed (``order=123, kind=reminder``), its spaces tidied.
//: ``cursors``: the cursor of each page visited, page 1's null (the page shown is the last); never
//: changed in place, so a list read for another page can tell. ``next``: the page's ``next_cursor``.
//: ``typed``: the type filter holds the service's task types (read once, at the first answer).
const FRESH = {
  status: "", type: "", due: "", changed: "", user: "", labels: "", cursors: [null], next: null, selected: null,
  again: false, failed: false, listed: false, typed: false,
};
//: ``times``: how instants are shown, "local" (this browser's zone) or "UTC" (see instantText).
const state = { token: null, timer: null, busy: false, times: "local", ...FRESH };
const $ = (selector) => document.querySelector(selector);

/** What went wrong, in words: a problem's title, status and detail (which names each wrong field;
 * one it does not name is added); an answer that is no problem (a proxy's 502 page) by its
 * status; ``status`` 0: no answer at all. */
class ApiError extends Error {
  constructor(status, problem, statusText = "") {
    const detail = problem.detail || "";
    const fields = (problem.errors || []).map((e) => `${e.field}: ${e.message}`).filter((f) => !detail.includes(f));
    const title = problem.title || statusText || "HTTP error";
    super(`${title}${status ? ` (${status})` : ""}${detail ? `: ${detail}` : ""}${fields.length ? ` [${fields.join("; ")}]` : ""}`);
    this.status = status;
  }
}

async function api(path, options = {}) {
  // Signed out (perhaps while an earlier request of the same refresh was under way): ask nothing,
  // rather than send "Bearer null". A 401 is what a caller already treats as signed out.
  if (!state.token) throw new ApiError(401, { title: "Signed out" });
  let response;
  try {
    response = await fetch(path, {
      ...options,
      headers: { Accept: "application/json", Authorization: `Bearer ${state.token}`, ...(options.headers || {}) },
    });
  } catch (error) {  // no answer: the service is down, restarting, or out of reach
    throw new ApiError(0, { title: "The service did not answer", detail: error.message });
  }
  if (response.status === 401) {
    signOut("The token was refused (401): enter a valid API token.");
    throw new ApiError(401, { title: "Unauthorized" });
  }
  const body = await response.json().catch(() => ({}));
  if (!response.ok) throw new ApiError(response.status, body, response.statusText);
  return body;
}

//: A new ``tag`` holding ``content``: a node, or text (never markup); nothing for null.
function element(tag, content, className) {
  const node = document.createElement(tag);
  if (content instanceof Node) node.append(content);
  else if (content !== undefined && content !== null) node.textContent = String(content);
  if (className) node.className = className;
  return node;
}

/** An instant as the header's "Times in" says (``times``, by default as chosen): in this browser's
 * zone, or as its UTC instant to the millisecond as the API writes it
 * (``2030-06-21T17:00:00.000Z``), the exact instant in text that a keyboard and a screen reader
 * reach, as a tooltip is not. */
function instantText(iso, times = state.times) {
  const date = new Date(iso);
  return times === "UTC" ? date.toISOString() : date.toLocaleString();
}

/** An instant of the API's as a ``time`` (class ``instant``): shown as instantText says, and again
 * when the choice changes (showTimesIn); the other form on hover. */
function when(iso) {
  if (!iso) return element("span", "—");
  const node = element("time", null, "instant");
  node.dateTime = iso;
  showInstant(node);
  return node;
}

/** The time of day of an instant, with its zone said, as "Times in" says (``times``): the header's
 * clock (``14:05:09 GMT+9``, ``05:05:09 UTC``), short where a date would say nothing. */
function clockText(iso, times = state.times) {
  const date = new Date(iso);
  return times === "UTC" ? `${date.toISOString().slice(11, 19)} UTC`
    : date.toLocaleTimeString(undefined, { timeZoneName: "short" });
}

/** A ``time`` shown as "Times in" says: an instant (class ``instant``: instantText), or a time of
 * day (class ``clock``: clockText); the other form on hover. */
function showInstant(node) {
  const text = node.classList.contains("clock") ? clockText : instantText;
  setText(node, text(node.dateTime));
  node.title = text(node.dateTime, state.times === "UTC" ? "local" : "UTC");
}

/** Show every instant ``times`` ("UTC", else this browser's zone), on the page now and from now on,
 * and keep the choice. */
function showTimesIn(times) {
  state.times = times === "UTC" ? "UTC" : "local";
  localStorage.setItem(TIMES_KEY, state.times);
  $("#zone").value = state.times;
  for (const node of document.querySelectorAll("time.instant, time.clock")) showInstant(node);
}

/** Write ``text`` into ``node`` unless it holds it already: a refresh that changed nothing leaves a
 * text selection in it alone. */
function setText(node, text) {
  if (node.textContent !== text) node.textContent = text;
}

/** Show ``nodes`` in ``container`` in that order, keeping in place each one already there that is
 * the same (the same markup: built from the same data): a refresh that changed nothing moves
 * nothing, so the keyboard's focus and a text selection stay (every 5 s, they would otherwise go).
 * A row whose button held the focus and changed hands it to the one that replaces it (the same
 * ``data-id``, or ``data-type``); one that left (it ran, and no longer matches the filter) to the
 * row that took its place, else the last one, else ``fallback``: the keyboard goes on from where
 * it was, rather than from the top of the page. */
function showNodes(container, nodes, fallback = null) {
  const shown = new Map();  // markup: the nodes showing it, in order (two rows may look the same)
  for (const node of container.children) shown.set(node.outerHTML, [...(shown.get(node.outerHTML) || []), node]);
  const kept = nodes.map((node) => shown.get(node.outerHTML)?.shift() || node);
  const focused = document.activeElement;
  const key = (node) => node.dataset.id ?? node.dataset.type;
  const place = [...container.children].findIndex((node) => node.contains(focused));
  const hadFocus = place >= 0 ? key(container.children[place]) : undefined;
  const keep = new Set(kept);
  for (const node of [...container.children]) if (!keep.has(node)) node.remove();  // first: then none kept moves
  kept.forEach((node, index) => {
    if (container.children[index] !== node) container.insertBefore(node, container.children[index] || null);
  });
  if (hadFocus !== undefined && document.activeElement !== focused) {
    const successor = kept.find((node) => key(node) === hadFocus) || kept[place] || kept[kept.length - 1];
    if (successor) rowButton(successor).focus({ preventScroll: true });
    else fallback?.focus();
  }
}

/** Make ``row`` open what it stands for (``action``): its cell ``className`` holds ``text`` as a
 * button, the keyboard's Tab stop, which a screen reader announces as one to press (Enter or Space
 * presses it), named by ``text`` (a schedule's id, a task type); a click anywhere on the row does
 * the same. The row itself stays a row of its table, read cell by cell. */
function operable(row, text, className, action) {
  const button = element("button", text, "open");
  button.type = "button";
  cell(row, button, className);
  row.addEventListener("click", action);  // the button's click, by a key press too, comes here
}

/** The button that opens what ``row`` stands for (see operable). */
function rowButton(row) {
  return row.querySelector("button.open");
}

/** Mark ``row`` of the list as the one whose detail is shown (``open``), or not: for the eye its
 * background (class ``selected``), for a screen reader its button's ``aria-current="true"`` (read
 * as "current" with its name), the only one in the list. */
function markOpen(row, open) {
  row.className = open ? "selected" : "";
  if (open) rowButton(row).setAttribute("aria-current", "true");
  else rowButton(row).removeAttribute("aria-current");
}

function cell(row, content, className) {
  row.append(element("td", content, className));
}

function errorText(error) {
  return `${error.code}: ${error.message}`;
}

/** A schedule's labels as ``key=value`` texts, joined by commas (as the label filter takes them). */
function labelsText(labels) {
  return Object.entries(labels || {}).map(([key, value]) => `${key}=${value}`).join(", ");
}

/** A schedule's labels for a narrow box (the list's cell, its detail's field in a 320 px window):
 * labelsText's text, cut after each ``=``, ``-``, ``.``, ``/``, ``_`` and ``:`` into parts (class
 * ``part``), after each of which the style sheet lets a line end, as between labels:
 * ``customer=acme-corporation.international`` wraps at its parts rather than mid-word (the box
 * still breaks a part wider than itself). The text, read out or
 * copied, is labelsText's (a ``wbr`` would do it too, but Chromium reads "dash- 123456" then). */
function labelsNode(labels) {
  const node = element("span");
  node.append(...labelsText(labels).split(/(?<=[=\-./_:])/).map((part) => element("span", part, "part")));
  return node;
}

/** The ``key=value`` selectors of a label filter as typed: split at commas, spaces around each
 * left out (a value holding a comma cannot be filtered by here; the API can). */
function labelSelectors(text) {
  return text.split(",").map((part) => part.trim()).filter(Boolean);
}

/** Say ``content`` (text, or a phrase holding times; "", nothing) in the message box: an action's
 * outcome (``kind`` "info") in its polite live region (``role="status"``), read once the reader
 * has finished what it was saying (the focus's move, say); what went wrong in its assertive one
 * (``role="alert"``), read at once. Each is written once, the other emptied; both stay in the
 * page, empty, between messages. */
function say(content, kind = "error") {
  const [region, other] = kind === "info" ? [$("#notice"), $("#alert")] : [$("#alert"), $("#notice")];
  const text = typeof content === "string" ? content : content.textContent;
  // Each write is read out again. A refresh that fails as the one before (every 5 s while the
  // service is down) leaves it alone; an action's outcome is written (and heard) each time, also
  // when it says the same again.
  if (kind === "refresh" && state.failed && region.textContent === text) return;
  if (other.textContent) other.textContent = "";
  if (typeof content === "string") region.textContent = content;
  else region.replaceChildren(content);
  state.failed = kind === "refresh" && Boolean(text);
}

/** A message made of ``parts``, texts and times (``when``): its times shown as every other time
 * is, and again in the other form when "Times in" changes (showTimesIn), also once said. */
function phrase(...parts) {
  const node = element("span");
  node.append(...parts);  // a string is appended as text, never as markup
  return node;
}

//: Show what went wrong (a refused token has already signed out, with its own message).
function report(error, kind = "error") {
  if (error.status !== 401) say(error.message, kind);
}

// -- sign-in -------------------------------------------------------------------------------

function signOut(reason) {
  // Forget the token and everything read with it: nothing is left in the page for the next person.
  state.token = null;
  sessionStorage.removeItem(TOKEN_KEY);
  stopRefresh();
  Object.assign(state, FRESH);
  for (const selector of ["#schedules tbody", "#by-type tbody", "#attempts tbody", "#events tbody", "#detail-fields",
    "#next-runs tbody"]) {
    $(selector).replaceChildren();
  }
  for (const node of document.querySelectorAll("#detail-payload, #detail-error, #detail-id, .paging .range, "
    + "#last-updated, #list-status")) {
    node.textContent = "";
  }
  for (const n of document.querySelectorAll(".count .n")) n.textContent = "0";
  $("#schedules caption").textContent = "Schedules";
  $("#status-filter").value = "";
  $("#type-filter").value = "";
  $("#due-filter").value = "";
  $("#changed-filter").value = "";
  $("#user-filter").value = "";
  $("#label-filter").value = "";
  showBulk(false);
  showOrder();
  $("#open-id").value = "";
  $("#move-to").value = "";
  $("#detail").hidden = true;
  $("#app").hidden = true;
  $("#sign-out").hidden = true;
  $("#times").hidden = true;  // no times to show: the token field is the first control
  $("#sign-in").hidden = false;
  say(reason || "");
  $("#token").focus();  // what had the focus is hidden now: the keyboard goes on where it is needed
}

/** Sign in with ``token``: one typed in is kept only once the service took it; one this tab
 * signed in with before (``stored``) stays also when the service does not answer now (or
 * answers with an error): the page says so and recovers at its next refresh, as it does when
 * the service goes away later. A refused one signs out, either way. */
async function signIn(token, stored = false) {
  state.token = token;
  try {
    await loadTypes();  // the token's first use, needed anyway: a refused one signs out again
  } catch (error) {
    if (!stored || !state.token) {
      state.token = null;
      report(error);
      loadReadiness();
      return;
    }
    // Stored: the refresh below asks again, and says what went wrong until the service answers.
  }
  sessionStorage.setItem(TOKEN_KEY, token);
  const focusWasLost = !document.activeElement || document.activeElement === document.body
    || $("#sign-in").contains(document.activeElement);
  $("#sign-in").hidden = true;
  $("#app").hidden = false;
  $("#sign-out").hidden = false;
  $("#times").hidden = false;
  say("");
  if (focusWasLost) $("#list-heading").focus();  // not left on the hidden form
  await refresh();
  if (state.token) startRefresh();
}

// -- the overview --------------------------------------------------------------------------

async function loadTypes() {
  const select = $("#type-filter");
  const types = await api("v1/task-types");
  if (!state.token) return;  // signed out meanwhile
  const names = new Set(types.map((t) => t.type));
  for (const name of INTERNAL_TYPES) names.add(name);
  select.replaceChildren(select.options[0], ...[...names].sort().map((name) => {
    const option = element("option", name);
    option.value = name;
    return option;
  }));
  select.value = state.type;
  state.typed = true;
}

async function loadReadiness() {
  const badge = $("#ready");
  try {
    const response = await fetch("readyz", { headers: { Accept: "application/json" } });
    const body = await response.json();
    const failing = Object.entries(body.checks || {}).filter(([, v]) => v !== "ok");
    badge.textContent = body.ok ? "ready" : `not ready: ${failing.map(([k, v]) => `${k} ${v}`).join(", ")}`;
    badge.className = `badge ${body.ok ? "ok" : "bad"}`;
  } catch (error) {
    badge.textContent = "unreachable";
    badge.className = "badge bad";
  }
}

async function loadCounts() {
  const stats = await api("v1/stats");
  if (!state.token) return;
  // The counts follow the type filter: with a type chosen, they are that type's.
  const counts = state.type ? stats.by_type[state.type] || {} : stats.by_status;
  const total = state.type ? Object.values(counts).reduce((a, b) => a + b, 0) : stats.total;
  for (const button of document.querySelectorAll(".count[data-status]")) {
    const status = button.dataset.status;
    const count = status ? counts[status] ?? 0 : total;
    button.querySelector(".n").textContent = count;
    button.classList.toggle("alert", ["dead", "unknown"].includes(status) && count > 0);
    button.classList.toggle("active", status === state.status);
    button.setAttribute("aria-pressed", String(status === state.status));
  }
  showNodes($("#by-type tbody"), Object.entries(stats.by_type).map(([type, counts]) => {
    const row = element("tr");
    row.dataset.type = type;
    operable(row, type, "type", () => filterBy({ type }));
    for (const status of STATUSES) cell(row, counts[status] ?? "", `n status-${status}`);
    return row;
  }), $("#by-type-section summary"));
}

/** The list's query for the filters chosen, the windows computed from the clock now. */
function listQuery(cursor) {
  const query = new URLSearchParams({ limit: String(PAGE_SIZE), ...(cursor ? { cursor } : {}) });
  if (state.status) query.set("status", state.status);
  if (state.type) query.set("type", state.type);
  if (state.user) query.set("userId", state.user);
  for (const selector of labelSelectors(state.labels)) query.append("label", selector);
  for (const [name, bound] of Object.entries(windowBounds())) query.set(name, bound);
  return query;
}

/** The Due and Changed windows' bounds from the clock now, as the API names them (``due_after``,
 * ``due_before``, ``updated_after``; one left open is left out). */
function windowBounds() {
  const now = Date.now();
  const bounds = {};
  const due = DUE_WINDOWS[state.due];
  if (due) {
    const [after, before] = due;
    if (after !== null) bounds.due_after = new Date(now + after).toISOString();
    if (before !== null) bounds.due_before = new Date(now + before).toISOString();
  }
  const changed = CHANGE_WINDOWS[state.changed];
  if (changed) bounds.updated_after = new Date(now - changed).toISOString();
  return bounds;
}

/** A bulk action's selection in words (a phrase: its text for the confirmation, itself in the
 * outcome), empty for none: ``whose`` (the user and labels; "" for none), the type and each window
 * bound (``bounds``, as sent), each bound a time. */
function narrowedPhrase(whose, bounds) {
  const { due_after: after, due_before: before, updated_after: since } = bounds;
  const due = after && before ? ["due between ", when(after), " and ", when(before)]
    : (after && ["due from ", when(after)]) || (before && ["due before ", when(before)]);
  const parts = [whose && [`of ${whose}`], state.type && [`of type ${state.type}`], due,
    since && ["changed since ", when(since)]].filter(Boolean);
  return phrase(...parts.flatMap((part, index) => (index ? [" ", ...part] : part)));
}

/** ``start`` followed by the phrase ``narrowed`` (see narrowedPhrase), if it says anything. */
function followedBy(start, narrowed) {
  return narrowed.textContent ? phrase(start, " ", narrowed) : phrase(start);
}

/** The body fields of a bulk request for the type, user and labels the list is filtered by. */
function selectionBody(selector) {
  return { ...(state.type ? { type: [state.type] } : {}), ...(state.user ? { userId: state.user } : {}),
    ...(selector.labels ? { labels: selector.labels } : {}) };
}

async function loadSchedules() {
  const { cursors } = state;
  let page;
  try {
    page = await api(`v1/schedules?${listQuery(cursors[cursors.length - 1])}`);
  } catch (error) {
    // Refused (a malformed filter) or unreachable: show no rows rather than another filter's,
    // and offer no bulk action for them.
    state.listed = false;
    showNodes($("#schedules tbody"), [], $("#list-heading"));
    $("#empty").hidden = true;  // not known to be empty: the message says why
    showRange("");
    setText($("#list-status"), "");  // the alert says why
    setText($("#schedules caption"), "Schedules (not loaded)");
    showBulk(false);
    throw error;
  }
  // Signed out, or another page or filter asked for meanwhile (its refresh follows): not shown.
  if (!state.token || state.cursors !== cursors) return;
  state.listed = true;
  showBulk(true);
  if (page.items.length === 0 && cursors.length > 1) {
    // Nothing after this page's cursor any more (deleted, or no longer matching): back to the one before.
    state.cursors = cursors.slice(0, -1);
    state.again = true;
    return;
  }
  state.next = page.next_cursor;
  const body = $("#schedules tbody");
  const rows = page.items.map((schedule) => {
    const row = element("tr");
    row.dataset.id = schedule.id;
    cell(row, when(schedule.created_at), "created");
    operable(row, schedule.id, "id", () => openDetail(schedule.id));
    cell(row, schedule.type, "type");
    cell(row, schedule.status, `status status-${schedule.status}`);
    cell(row, schedule.schedule, "rule");
    cell(row, when(schedule.next_run_at), "next-run");
    cell(row, schedule.attempts.length, "attempts");
    cell(row, labelsNode(schedule.labels), "labels");
    cell(row, schedule.last_error ? errorText(schedule.last_error) : "", "error");
    markOpen(row, schedule.id === state.selected);  // as openDetail leaves it: the same markup
    return row;
  });
  showNodes(body, rows, $("#list-heading"));
  $("#empty").hidden = rows.length > 0;
  showPaging();
  // Every page before this one had a next_cursor, so it was full. An empty list (only ever page 1:
  // an empty later page goes back) has no range: "No schedules match." says it all.
  const before = (cursors.length - 1) * PAGE_SIZE;
  showRange(rows.length ? `${before + 1}–${before + rows.length}` : "");
  setText($("#list-status"), listedText(rows.length, before));
  setText($("#schedules caption"), captionText(rows.length, before));
}

/** The filters the list is narrowed by, in words (``filtered by status dead, user ana``), or "". */
function filtersText() {
  const chosen = (select) => $(select).selectedOptions[0].textContent.trim();
  const due = state.due && (state.due === "overdue" ? "overdue" : `due ${chosen("#due-filter")}`);
  const filters = [state.status && `status ${state.status}`, state.type && `type ${state.type}`, due,
    state.changed && `changed ${chosen("#changed-filter")}`, state.user && `user ${state.user}`,
    state.labels && `labels ${state.labels}`].filter(Boolean);
  return filters.length ? `filtered by ${filters.join(", ")}` : "";
}

/** The range of ``count`` rows after ``before`` (``Schedules 51–100 (more follow)``). */
function rangeText(count, before) {
  return `Schedules ${before + 1}–${before + count}${state.next ? " (more follow)" : ""}`;
}

/** What the list shows, for its live region (``#list-status``): the range (``count`` rows after
 * ``before``), or that none match, and the filters. Written only when it changes: a refresh that
 * lists the same says nothing again; another filter or page always changes it. */
function listedText(count, before) {
  return [count ? rangeText(count, before) : "No schedules match", filtersText()].filter(Boolean).join(", ");
}

/** The table's caption (its name, read when a screen reader enters it): what it lists, in which
 * order, filtered by what; none matching, its header row alone is no list. */
function captionText(count, before) {
  return [count ? rangeText(count, before) : "Schedules (none match)", orderText(), filtersText()]
    .filter(Boolean).join(", ");
}

/** The range of the rows shown (``1–50``; "" for none) by each pair of paging buttons. */
function showRange(text) {
  for (const range of document.querySelectorAll(".paging .range")) setText(range, text);
}

/** Offer a page each way only when there is one (a list not read yet has no older page), in
 * both pairs of paging buttons (above the rows and below them). */
function showPaging() {
  const focused = document.activeElement;
  for (const button of document.querySelectorAll(".paging .prev")) button.disabled = state.cursors.length === 1;
  for (const button of document.querySelectorAll(".paging .next")) button.disabled = !state.next;
  // The first or the last page reached by the keyboard: the focus goes to the way back in the
  // same pair, not lost.
  const pair = focused?.closest(".paging");
  if (focused?.disabled && pair) {
    const other = pair.querySelector(focused.classList.contains("prev") ? ".next" : ".prev");
    (other.disabled ? $("#list-heading") : other).focus();
  }
}

/** Page by cursor: each page is read again from its own cursor, so rows created or changed
 * meanwhile never move a row to another page. */
function olderPage() {
  if (!state.next) return;
  state.cursors = [...state.cursors, state.next];
  // Asked once: a second click before the page comes asks nothing more. The button stays
  // enabled meanwhile, so that it keeps the keyboard's focus.
  state.next = null;
  refresh();
}

function newerPage() {
  if (state.cursors.length === 1) return;
  state.cursors = state.cursors.slice(0, -1);
  refresh();
}

async function refresh() {
  if (!state.token) return;
  if (state.busy) {  // a filter changed while a refresh was under way: refresh again after it
    state.again = true;
    return;
  }
  state.busy = true;
  try {
    do {
      state.again = false;
      try {
        await Promise.all([loadReadiness(), loadCounts(), loadSchedules(), state.typed || loadTypes()]);
        if (state.selected) await loadDetail(state.selected);
        if (state.failed) say("");  // the service is back
        showUpdated(new Date());
      } catch (error) {
        report(error, "refresh");
      }
    } while (state.again && state.token);
  } finally {
    state.busy = false;
  }
}

/** The header's "updated" clock: when the page last read everything, ``at``, as a time of day in
 * the zone "Times in" says (and again when it changes). */
function showUpdated(at) {
  const clock = element("time", null, "clock");
  clock.dateTime = at.toISOString();
  showInstant(clock);
  $("#last-updated").replaceChildren("updated ", clock);
}

function startRefresh() {
  stopRefresh();
  if ($("#auto-refresh").checked) {
    state.timer = setInterval(() => { if (!document.hidden) refresh(); }, REFRESH_MS);
  }
}

function stopRefresh() {
  if (state.timer) clearInterval(state.timer);
  state.timer = null;
}

function filterBy(changes) {
  Object.assign(state, changes, { cursors: [null], next: null });
  showPaging();
  $("#status-filter").value = state.status;
  $("#type-filter").value = state.type;
  $("#due-filter").value = state.due;
  $("#changed-filter").value = state.changed;
  $("#user-filter").value = state.user;
  $("#label-filter").value = state.labels;
  showOrder();
  showBulk(true);
  refresh();
}

/** Say how the list is ordered: newest first, or soonest due first under a Due window. */
function showOrder() {
  const timed = Boolean(DUE_WINDOWS[state.due]);
  $("#order-note").textContent = timed ? `${orderText()} (the window moves with every refresh)` : orderText();
  // The word only: each button's arrow stays, hidden from a screen reader (see dashboard.html).
  for (const word of document.querySelectorAll(".paging .prev .word")) word.textContent = timed ? "sooner" : "newer";
  for (const word of document.querySelectorAll(".paging .next .word")) word.textContent = timed ? "later" : "older";
}

/** The list's order in words: newest first, or soonest due first under a Due window. */
function orderText() {
  return DUE_WINDOWS[state.due] ? "soonest due first" : "newest first";
}

/** Offer the bulk buttons that fit the list's filters (``listed``: false hides them all, for a
 * list that could not be loaded), so that none acts on more than the list shows. Cancel, pause
 * and resume act on the user or the labels shown (never on everyone's), of the type and in the
 * Due and Changed windows shown, each under the Status filters it fits (see BULK); pause and
 * resume not on the service's own jobs, which are never paused by hand. "Retry all" on the
 * dead letters of the status shown, in the Changed window (ended ones have no due time: none
 * under a Due window). */
function showBulk(listed) {
  const selected = listed && Boolean(state.user || state.labels);
  // "Of this user's" only where the user alone narrows the list.
  const narrowed = state.labels || state.type || DUE_WINDOWS[state.due] || CHANGE_WINDOWS[state.changed];
  const whose = narrowed ? "matching" : "of this user's";
  for (const [kind, { statuses }] of Object.entries(BULK)) {
    const button = $(kind === "cancel" ? "#cancel-user" : `#${kind}-matching`);
    button.hidden = !selected || !statuses.includes(state.status)
      || (kind !== "cancel" && INTERNAL_TYPES.includes(state.type));
    button.textContent = `${kind.charAt(0).toUpperCase()}${kind.slice(1)} all ${whose}`;
  }
  const retry = $("#retry-matching");
  retry.hidden = !listed || !RETRYABLE.includes(state.status) || Boolean(DUE_WINDOWS[state.due]);
  retry.textContent = `Retry all ${state.status}`;
}

/** The label filter as the API's ``labels`` object, or null (and a message) when a selector is
 * not ``key=value`` or the list could not be loaded for this filter (then nothing is asked). */
function bulkSelector() {
  const selectors = labelSelectors(state.labels);
  const malformed = selectors.find((s) => !s.includes("="));
  if (malformed) {
    say(`A label filter is key=value, not ${malformed}.`);
    return null;
  }
  if (!state.listed) {  // not this filter's list (refused: a key given twice...): act on nothing for it
    say("The list could not be loaded for this filter; nothing was changed.");
    return null;
  }
  const labels = Object.fromEntries(selectors.map((s) => [s.slice(0, s.indexOf("=")), s.slice(s.indexOf("=") + 1)]));
  const whose = [state.user ? `user ${state.user}` : "", selectors.length ? `labels ${selectors.join(", ")}` : ""]
    .filter(Boolean).join(" with ");
  return { labels: selectors.length ? labels : null, whose };
}

/** Tell what a bulk change did to those ``who`` names (a phrase): how many were changed, and which
 * could not be and why (the first REFUSALS_SHOWN by name, the others counted). */
function sayBulk(who, count, done, refused) {
  const named = refused.slice(0, REFUSALS_SHOWN).map((r) => `${r.id} (${r.reason})`);
  if (refused.length > named.length) named.push(`and ${refused.length - named.length} more`);
  const why = refused.length ? `; ${refused.length} could not be: ${named.join("; ")}` : "";
  say(phrase(who.cloneNode(true), `: ${count} schedule(s) ${done}${why}.`), refused.length ? "error" : "info");
}

/** A bulk change of every match, as requests of at most BULK_LIMIT each, repeated while the answer
 * says ``more`` (each within a proxy's timeout, however many match), the count so far shown
 * between them. ``done``: the answer's list of those changed; ``who``: the selection's phrase. A repeat goes on after the
 * previous answer's ``next_cursor`` where it gives one (a retry's: what it retried may fail again
 * at once, and would come first again). Says what was done, also when a request fails midway. */
async function changeInPages(path, body, done, who) {
  let count = 0;
  const refused = new Map();  // a repeat lists again what was refused: named once
  let answer = { more: true, next_cursor: null };
  try {
    while (answer.more) {
      const after = answer.next_cursor ? { cursor: answer.next_cursor } : {};
      answer = await api(path, {
        method: "POST", headers: { "Content-Type": "application/json" },
        body: JSON.stringify({ ...body, limit: BULK_LIMIT, ...after }),
      });
      count += answer[done].length;
      for (const r of answer.refused) refused.set(r.id, r);
      if (answer.more) say(phrase(who.cloneNode(true), `: ${count} schedule(s) ${done} so far…`), "info");
    }
  } catch (error) {
    if (count && error.status !== 401) {
      say(phrase(who.cloneNode(true), `: ${count} schedule(s) ${done}, then stopped: ${error.message}`));
    }
    else report(error);
    return;
  }
  sayBulk(who, count, done, [...refused.values()]);
}

//: An opt-out, an order called off, a campaign held: every schedule of the user and/or the labels
//: the list is filtered by, of its type and in its Due and Changed windows (POST
//: /v1/schedules:cancel, :pause, :resume), offered only under a Status filter the action fits
//: (see showBulk). The windows' bounds are computed once, when asked: named in the confirmation
//: and sent as named.
async function bulkAct(kind) {
  if (!state.user && !state.labels) return;
  const { path, done, ask, final, statuses } = BULK[kind];
  if (!statuses.includes(state.status)) return;
  const selector = bulkSelector();
  if (!selector) return;
  const bounds = windowBounds();
  const asked = narrowedPhrase(selector.whose, bounds).textContent;
  if (!window.confirm(`${ask} ${asked}?${final ? " This cannot be undone." : ""}`)) return;
  const who = followedBy(selector.whose.charAt(0).toUpperCase() + selector.whose.slice(1), narrowedPhrase("", bounds));
  await changeInPages(path, { ...selectionBody(selector), ...bounds }, done, who);
  await refresh();
}

//: The redrive: every schedule in the status the list shows (dead, unknown, missed), of its type,
//: user and labels, and in its Changed window, when filtered by them (POST /v1/schedules:retry).
//: The window starts where it does when asked, as the list's does at every refresh.
async function retryMatching() {
  const { status } = state;
  if (!RETRYABLE.includes(status) || DUE_WINDOWS[state.due]) return;
  const selector = bulkSelector();
  if (!selector) return;
  const since = windowBounds().updated_after;
  const changed = since ? { updated_after: since } : {};
  const of = narrowedPhrase(selector.whose, changed);
  const twice = status === "unknown" ? " They may have been sent already: a retry may send them twice." : "";
  if (!window.confirm(`${followedBy(`Retry every ${status} schedule`, of).textContent} now?${twice}`)) return;
  await changeInPages("v1/schedules:retry", { status, ...selectionBody(selector), ...changed }, "retried",
    followedBy(`Every ${status} schedule`, of));
  await refresh();
}

// -- one schedule --------------------------------------------------------------------------

//: What had the focus when a schedule was opened (its row's button, the Open button): it gets it back on Close.
let opener = null;

async function openDetail(id) {
  if ($("#detail").hidden || !$("#detail").contains(document.activeElement)) opener = document.activeElement;
  state.selected = id;
  for (const row of document.querySelectorAll("#schedules tbody tr")) markOpen(row, row.dataset.id === id);
  try {
    await loadDetail(id);
  } catch (error) {
    report(error);
    return;
  }
  if (state.selected === id && !$("#detail").hidden) {
    // Below the list, often out of sight: bring it into view (and the keyboard focus with it).
    $("#detail").scrollIntoView({ block: "start" });
    $("#detail-heading").focus({ preventScroll: true });
  }
}

/** Close the schedule shown. The keyboard's focus, if it was in it, goes back to where the schedule
 * was opened from: its row's button (the same row, or the one that replaced it at a refresh), else what
 * opened it (the Open button), else the list's heading. */
function closeDetail() {
  const id = state.selected;
  const hadFocus = $("#detail").contains(document.activeElement);
  state.selected = null;
  $("#detail").hidden = true;
  for (const row of document.querySelectorAll("#schedules tbody tr.selected")) markOpen(row, false);
  if (!hadFocus) return;
  const listed = [...document.querySelectorAll("#schedules tbody tr")].find((row) => row.dataset.id === id);
  const back = (listed && rowButton(listed))
    || (opener?.isConnected && !opener.closest("[hidden]") ? opener : $("#list-heading"));
  back.focus();
}

async function loadDetail(id) {
  let schedule, events, upcoming = null;
  try {
    [schedule, events] = await Promise.all([
      api(`v1/schedules/${encodeURIComponent(id)}`),
      api(`v1/schedules/${encodeURIComponent(id)}/events`),
    ]);
    if (LIVE.includes(schedule.status)) {  // one that ended runs no more: not asked
      upcoming = await api(`v1/schedules/${encodeURIComponent(id)}/upcoming?count=${NEXT_RUNS}`);
    }
  } catch (error) {
    if (state.selected !== id) return;  // closed, or another one opened, meanwhile
    if (error.status !== 404) throw error;
    closeDetail();  // mistyped, or deleted meanwhile (the retention clean-up): said once, not on every refresh
    say(`There is no schedule ${id} (any more).`, "info");
    return;
  }
  if (state.selected !== id || !state.token) return;  // another one opened, or signed out, meanwhile
  $("#detail").hidden = false;
  setText($("#detail-id"), schedule.id);
  const status = $("#detail-status");
  setText(status, schedule.status);
  status.className = `status status-${schedule.status}`;
  const focused = $("#detail").contains(document.activeElement) ? document.activeElement : null;
  $("#cancel").hidden = !cancellable(schedule);
  for (const action of ["retry", "run", "pause", "resume"]) {
    // The service's own jobs are not run or paused by hand (the API refuses it).
    $(`#${action}`).hidden = !ACTIONS[action].statuses.includes(schedule.status)
      || (["run", "pause"].includes(action) && INTERNAL_TYPES.includes(schedule.type));
  }
  showMove(schedule);
  if (focused?.closest("[hidden]")) {
    // What the keyboard was on is gone with the schedule's status (Pause pressed: it is paused):
    // the focus goes to the control that took its place, else to the heading, which says the status.
    const successor = $({ pause: "#resume", resume: "#pause" }[focused.id] || "#detail-heading");
    (successor.hidden ? $("#detail-heading") : successor).focus();
  }

  const fields = [
    ["type", schedule.type], ["schedule", schedule.schedule], ["time zone", schedule.timezone],
    ["next run", when(schedule.next_run_at)], ["occurrence", when(schedule.send_at)],
    ["send_by", when(schedule.send_by)], ["to", schedule.to], ["rendered body", schedule.rendered_body],
    ["template", schedule.templateName], ["user", schedule.userId],
    ["labels", Object.keys(schedule.labels).length ? labelsNode(schedule.labels) : null],
    ["idempotency key", schedule.idempotency_key],
    ["callback", schedule.callback_url], ["result", Object.keys(schedule.result).length ? JSON.stringify(schedule.result) : null],
    ["delivery", schedule.delivery.status ? JSON.stringify(schedule.delivery) : null],
    ["failed in a row", schedule.failed_in_a_row ? `${schedule.failed_in_a_row} occurrence(s) ended dead`
      + (schedule.pause_after_failures ? ` (paused at ${schedule.pause_after_failures})` : "") : null],
    ["run time limit", schedule.run_timeout_seconds ? `${schedule.run_timeout_seconds} s` : null],
    ["running on", schedule.running ? schedule.running.owner
      + (schedule.running.taken_over_from ? ` (taken over from ${schedule.running.taken_over_from})` : "") : null],
    ["created", when(schedule.created_at)], ["updated", when(schedule.updated_at)],
  ];
  showNodes($("#detail-fields"), fields.filter(([, v]) => v !== null && v !== undefined && v !== "")
    .flatMap(([label, value]) => [element("dt", label), element("dd", value)]));
  showNextRuns(upcoming);
  const error = schedule.last_error;
  setText($("#detail-error"), error ? `${errorText(error)}${error.retryable ? " (retryable)" : ""}` : "—");

  showNodes($("#attempts tbody"), schedule.attempts.map((a) => {
    const row = element("tr");
    cell(row, a.number); cell(row, a.outcome, `status status-${a.outcome}`);
    cell(row, when(a.scheduled_for)); cell(row, when(a.started_at)); cell(row, when(a.finished_at));
    cell(row, a.owner); cell(row, a.error ? errorText(a.error) : "");
    return row;
  }));
  showNodes($("#events tbody"), events.items.map((e) => {
    const row = element("tr");
    cell(row, when(e.at)); cell(row, e.type, "type");
    cell(row, eventDetails(e.data), "details");
    cell(row, e.deliveries.map((d) => `${d.url}: ${d.status} (${d.attempts})`
      + (d.last_error_code ? ` ${d.last_error_code}` : "")).join("; "));
    return row;
  }));
  setText($("#detail-payload"), JSON.stringify(schedule.payload, null, 2));
}

/** An event's details as ``key=value``, comma-separated: a value that is an instant (exactly the
 * API's form, see INSTANT) as other times are shown (``when``), any other as text; who made the
 * change (``by``, ``request_id``) last, in words (see actorText). */
function eventDetails(data) {
  const { by, request_id: request, ...rest } = data;
  const pairs = by === undefined ? data : rest;
  const parts = Object.entries(pairs)
    .map(([key, value]) => [`${key}=`, INSTANT.test(value) ? when(value) : String(value)]);
  if (by !== undefined) parts.push([actorText(by, request)]);
  const details = element("span");
  details.append(...parts.flatMap((part, index) => (index ? [", ", ...part] : part)));
  return details;
}

/** Who made a change, from an event's ``data.by`` and ``data.request_id``: ``by token 3f2a9c1b7e4d
 * (request 5b0c...)``, read out as said ("by equals token colon 3f2a..." as ``key=value``), the
 * fingerprint and the request's id as they are, to compare and to look up in the logs. */
function actorText(by, request) {
  const who = String(by).replace(/^token:/, "token ");
  return `by ${who}${request === undefined ? "" : ` (request ${request})`}`;
}

/** A schedule's next runs (``GET .../upcoming``; null: it ended), each as the wall time in its zone
 * (with the weekday and the offset) and as UTC. */
function showNextRuns(upcoming) {
  $("#next-runs-section").hidden = !upcoming;
  if (!upcoming) {
    $("#next-runs tbody").replaceChildren();
    return;
  }
  setText($("#next-runs-zone"), `in ${upcoming.timezone}`);
  setText($("#next-runs-note"), { paused: "(if resumed now)", running: "(after the run in progress)" }[upcoming.status] || "");
  showNodes($("#next-runs tbody"), upcoming.runs.map((run) => {
    const row = element("tr");
    const wall = element("time", wallTime(run.local));
    wall.dateTime = run.at;
    wall.title = run.local;
    cell(row, wall, "local");
    cell(row, run.at.replace("T", " ").replace(".000Z", "Z"), "utc");
    cell(row, run.retry ? "retry of a failed attempt" : "", "note");
    return row;
  }));
  $("#next-runs-none").hidden = upcoming.runs.length > 0;
}

/** ``2026-03-29T03:00:00+02:00`` as ``Sun 2026-03-29 03:00:00 +02:00``: the date's weekday is the
 * wall clock's, whatever this browser's zone. */
function wallTime(local) {
  const date = local.slice(0, 10);
  const weekday = WEEKDAYS[new Date(`${date}T00:00:00Z`).getUTCDay()];
  return `${weekday} ${date} ${local.slice(11, -6)} ${local.slice(-6)}`;
}

/** Let the keyboard scroll ``box`` (a ``.scroll`` of the detail: a wide table in a narrow window,
 * with nothing in it to Tab to) while it scrolls sideways: a Tab stop then, a region named by its
 * table's heading ("Events, region"), which the arrow keys scroll; no Tab stop while it fits. */
function keyboardScrollable(box) {
  const scrolls = box.scrollWidth > box.clientWidth;
  if (scrolls === box.hasAttribute("tabindex")) return;
  if (scrolls) {
    box.tabIndex = 0;
    box.setAttribute("role", "region");
    box.setAttribute("aria-labelledby", box.querySelector("table").getAttribute("aria-labelledby"));
  } else {
    for (const name of ["tabindex", "role", "aria-labelledby"]) box.removeAttribute(name);
  }
}

/** The move form, for a schedule that waits (a paused one stays paused): a new time for a one-off,
 * a new rule for a recurring one. */
function showMove(schedule) {
  const oneOff = isOneOff(schedule);
  $("#move-form").hidden = !WAITING.includes(schedule.status);
  $("#move-form").dataset.oneOff = String(oneOff);
  if ($("#move-form").dataset.id !== schedule.id) {  // another schedule: what was typed for the last one goes
    $("#move-form").dataset.id = schedule.id;
    $("#move-to").value = "";
  }
  $("#move-to").placeholder = oneOff ? "2030-06-21T15:30:00-03:00" : "every day at 10:00";
  $("#move-hint").textContent = oneOff
    ? `a time with an offset, or a wall time in ${schedule.timezone}`
    : `a rule, in ${schedule.timezone}`;
}

async function move() {
  const id = state.selected;
  const value = $("#move-to").value.trim();
  if (!id || !value) return;
  const oneOff = $("#move-form").dataset.oneOff === "true";
  const body = oneOff && !value.toLowerCase().startsWith("once") ? { send_at: value } : { schedule: value };
  try {
    const schedule = await api(`v1/schedules/${encodeURIComponent(id)}`, {
      method: "PATCH", headers: { "Content-Type": "application/json" }, body: JSON.stringify(body),
    });
    $("#move-to").value = "";
    const held = schedule.status === "paused" ? " (still paused: resume it to run then)" : "";
    say(phrase(`Schedule ${id}: moved; next run `, when(schedule.next_run_at), `${held}.`), "info");
  } catch (error) {
    report(error);
  }
  await refresh();
}

/** What ``action`` did, from the API's answer (``schedule``), as parts of a phrase (its due time a
 * time). The answer is the schedule when the
 * request was done, not now: one due now may have run, and failed again, by the time this is read
 * (the detail below shows it as it is, refreshed). So no "now <status>": a schedule left waiting
 * says when it is due; a status other than the one the action leaves is said as answered (a resume
 * of one whose rule ended while it was paused: missed). */
function actedParts(action, schedule) {
  const { done, leaves } = ACTIONS[action];
  if (schedule.status !== leaves) return [`${done} (answered: ${schedule.status})`];
  return leaves === "scheduled" && schedule.next_run_at ? [`${done}, due at `, when(schedule.next_run_at)] : [done];
}

async function act(action) {
  const id = state.selected;
  if (!id) return;
  if (action === "cancel" && !window.confirm(`Cancel schedule ${id}? This cannot be undone.`)) return;
  const { method, suffix } = ACTIONS[action];
  try {
    const schedule = await api(`v1/schedules/${encodeURIComponent(id)}${suffix}`, { method });
    say(phrase(`Schedule ${id}: `, ...actedParts(action, schedule), "."), "info");
  } catch (error) {
    report(error);
  }
  await refresh();
}

// -- wiring --------------------------------------------------------------------------------

//: The parts of the page made of the statuses: a count button each, a filter option each, a column
//: each in the per-type table.
function buildStatusControls() {
  $("#counts").append(...STATUSES.map((status) => {
    const button = element("button", null, "count");
    button.type = "button";
    button.dataset.status = status;
    button.append(element("span", status, "label"), " ", element("span", "0", "n"));
    return button;
  }));
  $("#status-filter").append(...STATUSES.map((status) => element("option", status)));
  $("#by-type thead tr").append(...STATUSES.map((status) => element("th", status)));
}

document.addEventListener("DOMContentLoaded", () => {
  buildStatusControls();
  // Times are shown in this browser's zone (a schedule's own zone is one of its fields), which the
  // header names, or in UTC.
  $("#zone").options[0].textContent = `${Intl.DateTimeFormat().resolvedOptions().timeZone} (this browser's zone)`;
  showTimesIn(localStorage.getItem(TIMES_KEY));
  $("#zone").addEventListener("change", (e) => showTimesIn(e.target.value));
  $("#token-form").addEventListener("submit", (event) => {
    event.preventDefault();
    const token = $("#token").value.trim();
    $("#token").value = "";  // not left in the page
    signIn(token);
  });
  $("#sign-out").addEventListener("click", () => signOut(""));
  for (const button of document.querySelectorAll(".count[data-status]")) {
    button.addEventListener("click", () => filterBy({ status: button.dataset.status }));
  }
  $("#status-filter").addEventListener("change", (e) => filterBy({ status: e.target.value }));
  $("#type-filter").addEventListener("change", (e) => filterBy({ type: e.target.value }));
  $("#due-filter").addEventListener("change", (e) => filterBy({ due: e.target.value }));
  $("#changed-filter").addEventListener("change", (e) => filterBy({ changed: e.target.value }));
  $("#user-form").addEventListener("submit", (event) => {
    event.preventDefault();
    filterBy({ user: $("#user-filter").value.trim(), labels: labelSelectors($("#label-filter").value).join(", ") });
  });
  $("#cancel-user").addEventListener("click", () => bulkAct("cancel"));
  for (const kind of ["pause", "resume"]) $(`#${kind}-matching`).addEventListener("click", () => bulkAct(kind));
  $("#retry-matching").addEventListener("click", retryMatching);
  $("#auto-refresh").addEventListener("change", startRefresh);
  $("#refresh").addEventListener("click", () => refresh());
  for (const button of document.querySelectorAll(".paging .prev")) button.addEventListener("click", newerPage);
  for (const button of document.querySelectorAll(".paging .next")) button.addEventListener("click", olderPage);
  for (const action of Object.keys(ACTIONS)) {
    $(`#${action}`).addEventListener("click", () => act(action));
  }
  // A detail's table starts or stops scrolling sideways as its rows or the window change.
  const scrolling = new ResizeObserver((entries) => {
    for (const entry of entries) keyboardScrollable(entry.target.closest(".scroll"));
  });
  for (const box of document.querySelectorAll("#detail .scroll")) {
    scrolling.observe(box);
    scrolling.observe(box.querySelector("table"));
  }
  $("#close-detail").addEventListener("click", closeDetail);
  $("#detail").addEventListener("keydown", (event) => {
    if (event.key === "Escape" && !event.defaultPrevented) closeDetail();
  });
  $("#move-form").addEventListener("submit", (event) => {
    event.preventDefault();
    move();
  });
  $("#open-form").addEventListener("submit", (event) => {
    event.preventDefault();
    const id = $("#open-id").value.trim();
    if (id) openDetail(id);
  });
  const token = sessionStorage.getItem(TOKEN_KEY);
  if (token) signIn(token, true);
  else loadReadiness();
});
