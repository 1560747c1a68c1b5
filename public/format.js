// Ages, durations and times as the page shows them.

import { serverNow } from "./api.js";

// Writes only on change, so a poll that changed nothing leaves the DOM alone.
export function setText(element, text) {
  if (element.textContent !== text) element.textContent = text;
}

export function formatAge(iso) {
  const seconds = Math.max(0, Math.floor((serverNow() - Date.parse(iso)) / 1000));
  if (seconds < 60) return `${seconds} s`;
  if (seconds < 3600) return `${Math.floor(seconds / 60)} min`;
  return `${Math.floor(seconds / 3600)} h`;
}

export function formatDuration(ms) {
  if (ms < 1000) return `${Math.max(0, Math.round(ms))} ms`;
  if (ms < 60000) return `${(ms / 1000).toFixed(1)} s`;
  return `${Math.floor(ms / 60000)} min ${Math.round((ms % 60000) / 1000)} s`;
}

const clockFormat = new Intl.DateTimeFormat(undefined, {
  hour: "2-digit", minute: "2-digit", second: "2-digit", fractionalSecondDigits: 3, hour12: false,
});
const dateTimeFormat = new Intl.DateTimeFormat(undefined, { dateStyle: "medium", timeStyle: "medium" });

export function formatClock(iso) {
  return clockFormat.format(new Date(iso));
}

export function formatDateTime(iso) {
  return dateTimeFormat.format(new Date(iso));
}
