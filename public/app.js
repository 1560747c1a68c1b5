// The visualizer page: enqueue jobs, watch the newest ones, open one to see
// its timeline. It talks only to the Worker's JSON API on the same origin.
//
// Every string that comes from the API goes into the page through
// textContent or an attribute, never through innerHTML: targets are user input.

import { api, credentials } from "./api.js";
import { formatAge, formatDateTime, setText } from "./format.js";
import { renderStrip, renderTimeline, TERMINAL } from "./timeline.js";

const LIST_LIMIT = 100;
const LIST_INTERVAL_MS = 2000;
const DETAIL_INTERVAL_MS = 1000;
// While the tab is hidden, the list is read every 30 s and the open job not at all.
const HIDDEN_LIST_INTERVAL_MS = 30000;
const MAX_ERROR_DELAY_MS = 30000;
// KV lists can miss a job written in the last minute, so a job this page
// created is shown from the POST response until the list contains it.
const LOCAL_JOB_TTL_MS = 60000;
const BURST_CONCURRENCY = 4;

const STATUSES = ["queued", "processing", "done", "failed"];
const SAMPLE_TARGETS = { resize: "photos/sample-{n}.jpg", fetch: "https://example.com/items/{n}" };

const $ = (id) => document.getElementById(id);

const state = {
  listJobs: [],           // summaries from the last GET /jobs, newest first
  listCursor: null,
  listLoaded: false,
  listUpdatedAt: 0,       // Date.now() of the last successful list read
  listFailures: 0,
  localJobs: new Map(),   // id -> {summary, createdAt}: created here, not listed yet
  filter: "",
  selectedId: null,
  detail: null,           // the open job's full record
  detailError: null,
  bursting: false,
  revealDetail: false,    // scroll to the detail once it renders (narrow screens)
};

const rows = new Map(); // id -> <tr>

// ---------------------------------------------------------------- polling

// Runs `task` again and again with the delay `nextDelay()` returns after each
// run; never two runs at once. `poke()` runs it now.
function poller(task, nextDelay) {
  let timer = null;
  let running = false;
  let stopped = true;

  const run = async () => {
    timer = null;
    if (running) return;
    running = true;
    try {
      await task();
    } finally {
      running = false;
      schedule();
    }
  };
  const schedule = () => {
    if (stopped || running) return;
    clearTimeout(timer);
    const delay = nextDelay();
    if (delay !== null) timer = setTimeout(run, delay);
  };

  return {
    start() {
      stopped = false;
      schedule();
    },
    poke() {
      stopped = false;
      clearTimeout(timer);
      run();
    },
    stop() {
      stopped = true;
      clearTimeout(timer);
      timer = null;
    },
  };
}

const listPoller = poller(loadList, () => {
  if (state.listFailures > 0) {
    return Math.min(MAX_ERROR_DELAY_MS, LIST_INTERVAL_MS * 2 ** state.listFailures);
  }
  return document.hidden ? HIDDEN_LIST_INTERVAL_MS : LIST_INTERVAL_MS;
});

// A terminal job changes only through a retry, which the list reveals as a
// newer updatedAt, so its detail is not polled.
const detailPoller = poller(loadDetail, () => {
  if (!state.selectedId || document.hidden) return null;
  if (state.detail && state.detail.id === state.selectedId && TERMINAL.has(state.detail.status)) return null;
  return DETAIL_INTERVAL_MS;
});

async function loadList() {
  try {
    const page = await api("GET", `/jobs?limit=${LIST_LIMIT}`);
    state.listJobs = Array.isArray(page.jobs) ? page.jobs : [];
    state.listCursor = page.cursor ?? null;
    state.listLoaded = true;
    state.listUpdatedAt = Date.now();
    state.listFailures = 0;
    $("list-error").hidden = true;
    setLive("live", "Live");
  } catch (error) {
    state.listFailures += 1;
    const delay = Math.min(MAX_ERROR_DELAY_MS, LIST_INTERVAL_MS * 2 ** state.listFailures);
    $("list-error").textContent = `Jobs could not be loaded: ${error.describe()}. Trying again in ${Math.round(delay / 1000)} s.`;
    $("list-error").hidden = false;
    setLive("error", "Connection problem");
  }
  renderList();
  refreshDetailIfStale();
}

async function loadDetail() {
  const id = state.selectedId;
  if (!id) return;
  try {
    const job = await api("GET", `/jobs/${encodeURIComponent(id)}`);
    if (state.selectedId !== id) return;
    // A read that started before a retry can finish after it; keep the newer record.
    if (!state.detail || state.detail.id !== id || job.updatedAt >= state.detail.updatedAt) state.detail = job;
    state.detailError = null;
  } catch (error) {
    if (state.selectedId !== id) return;
    state.detailError = error;
    // An unknown job stays unknown; stop asking until the user picks again.
    if (error.status === 404) detailPoller.stop();
  }
  renderDetail();
  renderList();
}

// A finished job that the list shows with a newer updatedAt was retried,
// here or elsewhere, so its detail is read again.
function refreshDetailIfStale() {
  const job = state.detail;
  if (!job || job.id !== state.selectedId || !TERMINAL.has(job.status)) return;
  const summary = state.listJobs.find((job) => job.id === state.selectedId);
  if (summary && summary.updatedAt > job.updatedAt) detailPoller.poke();
}

function setLive(kind, text) {
  const live = $("live");
  if (live.dataset.state !== kind) live.dataset.state = kind;
  if ($("live-text").textContent !== text) $("live-text").textContent = text;
}

document.addEventListener("visibilitychange", () => {
  if (document.hidden) {
    setLive("hidden", "Updating slowly while hidden");
    detailPoller.stop();
    listPoller.start(); // reschedules with the hidden interval
  } else {
    listPoller.poke();
    if (state.selectedId) detailPoller.poke();
  }
});

// ---------------------------------------------------------------- job list

// The list as shown: jobs created here and not listed yet, then the page
// from KV. The open job's status comes from whichever record is newer.
function visibleJobs() {
  const listed = new Set(state.listJobs.map((job) => job.id));
  const now = Date.now();
  const local = [];
  for (const [id, entry] of state.localJobs) {
    if (listed.has(id) || now - entry.createdAt > LOCAL_JOB_TTL_MS) {
      state.localJobs.delete(id);
    } else {
      local.push(entry.summary);
    }
  }
  local.sort((a, b) => (a.enqueuedAt < b.enqueuedAt ? 1 : -1));

  return [...local, ...state.listJobs].map((job) => {
    const detail = state.detail;
    if (detail && detail.id === job.id && detail.updatedAt > job.updatedAt) return summarize(detail);
    return job;
  });
}

function summarize(record) {
  const { id, status, type, attempts, target, enqueuedAt, updatedAt } = record;
  return { id, status, type, attempts, target, enqueuedAt, updatedAt };
}

function renderList() {
  const jobs = visibleJobs();
  renderCounts(jobs);

  const filtered = state.filter ? jobs.filter((job) => job.status === state.filter) : jobs;
  const tbody = $("job-rows");
  const keep = new Set(filtered.map((job) => job.id));
  for (const [id, row] of rows) {
    if (!keep.has(id)) {
      row.remove();
      rows.delete(id);
    }
  }
  // Rows already in place are not moved, so a focused link keeps its focus.
  filtered.forEach((job, index) => {
    let row = rows.get(job.id);
    if (!row) {
      row = createRow(job.id);
      rows.set(job.id, row);
    }
    updateRow(row, job);
    const current = tbody.children[index];
    if (current !== row) tbody.insertBefore(row, current ?? null);
  });

  renderListScope(jobs.length);
  renderListEmpty(jobs.length, filtered.length);
}

function createRow(id) {
  const row = document.createElement("tr");
  row.dataset.id = id;

  const statusCell = row.insertCell();
  statusCell.className = "cell-status";
  const badge = document.createElement("span");
  badge.className = "badge";
  statusCell.append(badge);

  const typeCell = row.insertCell();
  typeCell.className = "cell-type";

  const targetCell = row.insertCell();
  targetCell.className = "cell-target";
  const link = document.createElement("a");
  link.className = "target-link";
  link.href = `#job=${encodeURIComponent(id)}`;
  targetCell.append(link);

  const attemptsCell = row.insertCell();
  attemptsCell.className = "cell-attempts numeric";

  const ageCell = row.insertCell();
  ageCell.className = "cell-age numeric";
  const time = document.createElement("time");
  ageCell.append(time);
  return row;
}

function updateRow(row, job) {
  const previous = row.dataset.status;
  const retrying = job.status === "queued" && job.attempts > 0;
  row.dataset.status = job.status;
  row.dataset.enqueuedAt = job.enqueuedAt;
  row.classList.toggle("selected", job.id === state.selectedId);
  if (job.id === state.selectedId) row.setAttribute("aria-current", "true");
  else row.removeAttribute("aria-current");

  const badge = row.cells[0].firstChild;
  setText(badge, retrying ? "retrying" : job.status);
  badge.className = `badge status-${job.status}${retrying ? " retrying" : ""}`;
  setText(row.cells[1], job.type);
  const link = row.cells[2].firstChild;
  setText(link, job.target);
  link.title = job.target;
  setText(row.cells[3], String(job.attempts));
  const time = row.cells[4].firstChild;
  time.dateTime = job.enqueuedAt;
  time.title = `Enqueued ${formatDateTime(job.enqueuedAt)}`;
  setText(time, formatAge(job.enqueuedAt));

  if (previous && previous !== job.status) flash(row);
}

function flash(element) {
  element.classList.remove("changed");
  // Reading layout restarts the animation when the class comes back.
  void element.offsetWidth;
  element.classList.add("changed");
}

function renderCounts(jobs) {
  const counts = { all: jobs.length, queued: 0, processing: 0, done: 0, failed: 0 };
  for (const job of jobs) {
    if (job.status in counts) counts[job.status] += 1;
  }
  for (const element of document.querySelectorAll("[data-count]")) {
    setText(element, state.listLoaded ? String(counts[element.dataset.count]) : "–");
  }
}

function renderListScope(total) {
  let text = "";
  if (state.listLoaded) {
    text = state.listCursor
      ? `The newest ${total} jobs; counts and filter cover these only.`
      : `All ${total} stored ${total === 1 ? "job" : "jobs"}.`;
  }
  setText($("list-scope"), text);
}

function renderListEmpty(total, filteredTotal) {
  const empty = $("list-empty");
  let text = "";
  if (!state.listLoaded && total === 0) {
    text = state.listFailures > 0 ? "No jobs to show until the API answers." : "Loading jobs…";
  } else if (total === 0) {
    text = "No jobs yet. Enqueue one above, or a burst of 10 to watch failures and retries play out.";
  } else if (filteredTotal === 0) {
    text = `No ${state.filter} jobs among these ${total}.`;
  }
  setText(empty, text);
  empty.hidden = text === "";
  $("job-table").hidden = filteredTotal === 0;
}

// ---------------------------------------------------------------- job detail

function selectJob(id) {
  if (id === state.selectedId) return;
  state.selectedId = id;
  state.detail = null;
  state.detailError = null;
  setText($("detail-message"), "");
  renderDetail();
  renderList();
  detailPoller.stop();
  if (id) detailPoller.poke();
}

function renderDetail() {
  const job = state.detail && state.detail.id === state.selectedId ? state.detail : null;
  const error = state.detailError;

  $("detail").classList.toggle("open", Boolean(state.selectedId));
  $("detail-close").hidden = !state.selectedId;
  $("detail-empty").hidden = Boolean(state.selectedId);
  $("detail-error").hidden = !error;
  if (error) {
    $("detail-error").textContent = job
      ? `The job could not be refreshed: ${error.describe()}.`
      : `The job could not be loaded: ${error.describe()}.`;
  }
  $("detail-body").hidden = !job;
  if (!job) {
    if (error) revealDetail();
    return;
  }

  const badge = $("detail-status");
  setText(badge, job.status);
  badge.className = `badge status-${job.status}`;
  setText($("detail-type"), job.type);
  const cycle = job.cycleStart ? `, retried by hand after attempt ${job.cycleStart}` : "";
  setText($("detail-attempts"), `${job.attempts} ${job.attempts === 1 ? "attempt" : "attempts"}${cycle}`);
  setText($("detail-target"), job.target);
  setText($("detail-id"), job.id);
  setText($("detail-enqueued"), formatDateTime(job.enqueuedAt));

  const outcome = $("detail-outcome");
  if (job.status === "done") {
    setText($("detail-outcome-label"), "Result");
    setText(outcome, job.result ?? "");
  } else if (job.error) {
    setText($("detail-outcome-label"), job.status === "failed" ? "Error" : "Last error");
    setText(outcome, job.error);
  } else {
    setText($("detail-outcome-label"), "Outcome");
    setText(outcome, "not finished yet");
  }
  if (job.status === "done") {
    outcome.className = "outcome-ok";
  } else {
    outcome.className = job.error ? "outcome-error" : "muted";
  }

  // Only a failed job can be retried, because the API returns 409 for any other.
  const retry = $("retry-button");
  retry.hidden = job.status !== "failed";
  retry.disabled = retry.dataset.busy === "true";

  renderTimeline(job, $("timeline"), $("strip"));
  revealDetail();
}

function revealDetail() {
  if (!state.revealDetail) return;
  state.revealDetail = false;
  $("detail").scrollIntoView({ block: "start" });
  $("detail-heading").focus({ preventScroll: true });
}

async function retrySelected() {
  const id = state.selectedId;
  const button = $("retry-button");
  if (!id || button.disabled) return;
  button.dataset.busy = "true";
  button.disabled = true;
  setMessage($("detail-message"), "Retrying…", "");
  let job;
  try {
    job = await api("POST", `/jobs/${encodeURIComponent(id)}/retry`);
  } catch (error) {
    handleAuthError(error);
    setMessage($("detail-message"), `Retry failed: ${error.describe()}`, "error");
  }
  delete button.dataset.busy;
  if (job) {
    if (state.selectedId === id) state.detail = job;
    setMessage($("detail-message"), `Queued again: attempts go on from ${job.attempts + 1}.`, "ok");
    detailPoller.poke();
    listPoller.poke();
  }
  renderDetail();
  renderList();
}

// ---------------------------------------------------------------- enqueue

async function enqueueOne(type, target) {
  const job = await api("POST", "/jobs", { type, target });
  state.localJobs.set(job.id, { summary: summarize(job), createdAt: Date.now() });
  return job;
}

async function submitForm(event) {
  event.preventDefault();
  const type = $("job-type").value;
  const target = $("job-target").value;
  const button = $("enqueue-button");
  button.disabled = true;
  let job;
  try {
    job = await enqueueOne(type, target);
  } catch (error) {
    handleAuthError(error);
    setMessage($("form-message"), `Not enqueued: ${error.describe()}`, "error");
    return;
  } finally {
    button.disabled = false;
  }

  // A job id starts with its creation time, which jobs enqueued together share,
  // so the random tail is the part that tells them apart.
  setMessage($("form-message"), `Enqueued ${job.type} job …${job.id.slice(-12)}.`, "ok");
  $("job-target").value = "";
  renderList();
  if (rows.has(job.id)) flash(rows.get(job.id));
  openJob(job.id);
}

async function enqueueBurst(count) {
  if (state.bursting) return;
  const type = $("job-type").value;
  const base = $("job-target").value.trim();
  const targetFor = (n) => (base ? `${base} #${n}` : SAMPLE_TARGETS[type].replace("{n}", String(n).padStart(2, "0")));

  state.bursting = true;
  const burstButtons = document.querySelectorAll("[data-burst]");
  burstButtons.forEach((button) => (button.disabled = true));
  const message = $("form-message");
  let next = 1;
  let created = 0;
  let failure = null;

  // A few requests at a time; the first error stops the rest.
  const sendNext = async () => {
    while (next <= count && !failure) {
      const n = next++;
      try {
        await enqueueOne(type, targetFor(n));
      } catch (error) {
        failure = failure ?? error;
        return;
      }
      created += 1;
      setMessage(message, `Enqueued ${created} of ${count}…`, "");
      renderList();
    }
  };
  await Promise.all(Array.from({ length: BURST_CONCURRENCY }, sendNext));

  if (failure) {
    handleAuthError(failure);
    setMessage(message, `Burst stopped after ${created} of ${count}: ${failure.describe()}`, "error");
  } else {
    setMessage(message, `Enqueued a burst of ${count} ${type} jobs.`, "ok");
  }
  burstButtons.forEach((button) => (button.disabled = false));
  state.bursting = false;
  listPoller.poke();
}

// A deployment with API_TOKEN rejects POSTs without it; ask for the token.
function handleAuthError(error) {
  if (error.status !== 401) return;
  $("token-field").hidden = false;
  $("token-hint").hidden = false;
}

function setMessage(element, text, kind) {
  element.textContent = text;
  element.dataset.kind = kind;
}

// ---------------------------------------------------------------- location

// The URL's hash contains the open job and the filter (#status=failed&job=<id>),
// so the back button closes a job and a link reopens it.
function readHash() {
  const params = new URLSearchParams(location.hash.slice(1));
  const status = params.get("status") ?? "";
  state.filter = STATUSES.includes(status) ? status : "";
  for (const input of document.querySelectorAll('input[name="status"]')) {
    input.checked = input.value === state.filter;
  }
  selectJob(params.get("job") || null);
  renderList();
}

function hashFor(filter, jobId) {
  const params = new URLSearchParams();
  if (filter) params.set("status", filter);
  if (jobId) params.set("job", jobId);
  const text = params.toString();
  return text ? `#${text}` : location.pathname + location.search;
}

function openJob(id) {
  history.pushState(null, "", hashFor(state.filter, id));
  selectJob(id);
}

function closeJob() {
  history.pushState(null, "", hashFor(state.filter, null));
  selectJob(null);
  $("jobs-heading").focus();
}

// Ages, the "updated" note and a growing strip move every second without a request.
function tick() {
  for (const row of rows.values()) {
    setText(row.cells[4].firstChild, formatAge(row.dataset.enqueuedAt));
  }
  if (state.listUpdatedAt && $("live").dataset.state === "live") {
    const seconds = Math.round((Date.now() - state.listUpdatedAt) / 1000);
    setText($("live-age"), seconds < 2 ? "just updated" : `updated ${seconds} s ago`);
  } else {
    setText($("live-age"), "");
  }
  const job = state.detail;
  if (job && job.id === state.selectedId && !TERMINAL.has(job.status)) renderStrip(job.history ?? [], job.status, $("strip"));
}

// ---------------------------------------------------------------- start

function start() {
  $("enqueue-form").addEventListener("submit", submitForm);
  for (const button of document.querySelectorAll("[data-burst]")) {
    button.addEventListener("click", () => enqueueBurst(Number(button.dataset.burst)));
  }
  credentials.token = sessionStorage.getItem("apiToken") || "";
  $("api-token").value = credentials.token;
  $("api-token").addEventListener("input", (event) => {
    credentials.token = event.target.value.trim();
    sessionStorage.setItem("apiToken", credentials.token);
  });
  if (credentials.token) {
    $("token-field").hidden = false;
    $("token-hint").hidden = false;
  }

  $("status-filter").addEventListener("change", (event) => {
    state.filter = event.target.value;
    history.replaceState(null, "", hashFor(state.filter, state.selectedId));
    renderList();
  });

  // A click anywhere on a row opens its job; the target link in each row
  // makes the same action reachable by keyboard.
  $("job-rows").addEventListener("click", (event) => {
    const row = event.target.closest("tr");
    if (!row) return;
    event.preventDefault();
    // On a narrow screen the detail sits above the list, out of view, so it
    // is scrolled to once the job has loaded.
    state.revealDetail = window.matchMedia("(max-width: 860px)").matches;
    if (row.dataset.id !== state.selectedId) openJob(row.dataset.id);
    else revealDetail();
  });
  $("detail-close").addEventListener("click", closeJob);
  $("retry-button").addEventListener("click", retrySelected);
  window.addEventListener("popstate", readHash);
  document.addEventListener("keydown", (event) => {
    if (event.key === "Escape" && state.selectedId && !event.target.closest("input, select")) closeJob();
  });

  readHash();
  listPoller.poke();
  setInterval(tick, 1000);
}

start();
