// A job's timeline: one list entry per transition of its history, and the
// strip above it with one segment per interval between transitions.

import { serverNow } from "./api.js";
import { formatClock, formatDateTime, formatDuration } from "./format.js";

export const TERMINAL = new Set(["done", "failed"]);

// One entry per history transition, with the time since the previous one.
// A queued entry with an error followed by processing is a retry, and the
// gap between the two is the backoff, shown as its own row.
export function renderTimeline(job, list, strip) {
  const history = Array.isArray(job.history) ? job.history : [];
  const items = [];

  history.forEach((entry, index) => {
    const previous = history[index - 1];
    const gap = previous ? Date.parse(entry.at) - Date.parse(previous.at) : 0;

    if (previous && previous.status === "queued" && previous.error && entry.status === "processing") {
      items.push(timelineNote("backoff", `Backoff ${formatDuration(gap)} before attempt ${entry.attempt}`));
    }
    if (entry.note === "manual retry") {
      items.push(timelineNote("cycle", "Retried by hand: a new cycle of attempts"));
    }
    items.push(timelineEntry(entry, previous ? gap : null));
  });

  if (!TERMINAL.has(job.status) && history.length > 0) {
    const last = history[history.length - 1];
    let waiting = "Waiting in the queue…";
    if (last.status === "processing") waiting = "Working…";
    else if (last.error) waiting = "Waiting out the backoff…";
    items.push(timelineNote("pending", waiting));
  }

  list.replaceChildren(...items);
  renderStrip(history, job.status, strip);
}

function timelineEntry(entry, gap) {
  const item = document.createElement("li");
  item.className = `tl-entry status-${entry.status}`;

  const line = document.createElement("div");
  line.className = "tl-line";
  const status = document.createElement("span");
  status.className = "tl-status";
  status.textContent = entry.status;
  line.append(status);
  if (entry.attempt > 0) {
    const attempt = document.createElement("span");
    attempt.className = "tl-attempt";
    attempt.textContent = `attempt ${entry.attempt}`;
    line.append(attempt);
  }
  const time = document.createElement("time");
  time.className = "tl-time";
  time.dateTime = entry.at;
  time.title = formatDateTime(entry.at);
  time.textContent = formatClock(entry.at);
  line.append(time);
  if (gap !== null) {
    const delta = document.createElement("span");
    delta.className = "tl-delta";
    delta.textContent = `+${formatDuration(gap)}`;
    line.append(delta);
  }
  item.append(line);

  for (const [field, className] of [["error", "tl-error"], ["result", "tl-result"], ["note", "tl-note"]]) {
    if (typeof entry[field] === "string") {
      const detail = document.createElement("p");
      detail.className = className;
      detail.textContent = entry[field];
      item.append(detail);
    }
  }
  return item;
}

function timelineNote(kind, text) {
  const item = document.createElement("li");
  item.className = `tl-note-row tl-${kind}`;
  item.textContent = text;
  return item;
}

// The bar above the timeline: one segment per interval between transitions,
// as wide as it lasted. An unfinished job's last segment grows until now.
export function renderStrip(history, status, strip) {
  const segments = [];
  for (let index = 0; index < history.length; index += 1) {
    const entry = history[index];
    const next = history[index + 1];
    if (!next && TERMINAL.has(status)) break;
    const start = Date.parse(entry.at);
    const end = next ? Date.parse(next.at) : serverNow();
    const segment = document.createElement("span");
    segment.className = `segment segment-${segmentKind(entry)}`;
    // CSSOM properties are not inline style attributes, so the CSP allows them.
    segment.style.flexGrow = String(Math.max(end - start, 1));
    segment.title = `${segmentLabel(entry)}: ${formatDuration(end - start)}`;
    if (!next) segment.classList.add("live-segment");
    segments.push(segment);
  }
  if (TERMINAL.has(status)) {
    const end = document.createElement("span");
    end.className = `segment-end status-${status}`;
    segments.push(end);
  }
  strip.replaceChildren(...segments);
  strip.hidden = segments.length === 0;
}

function segmentKind(entry) {
  if (entry.status === "processing") return "work";
  if (entry.status === "failed") return "idle";
  if (entry.status === "queued" && entry.error) return "backoff";
  return "wait";
}

function segmentLabel(entry) {
  return { work: `attempt ${entry.attempt}`, idle: "failed", backoff: "backoff", wait: "in the queue" }[segmentKind(entry)];
}
