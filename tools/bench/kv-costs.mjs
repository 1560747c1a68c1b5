// KV operations per job, by outcome, and per read request, counted at the KV
// binding the Worker calls while the real queue consumer runs the jobs.

import { KV_KINDS, emptyCounts } from "./bindings.mjs";
import { outcomeOf, predictOutcome } from "./failure-rule.mjs";
import { startBenchRuntime } from "./runtime.mjs";
import { round } from "./stats.mjs";

export const OUTCOMES = ["done_1", "done_2", "done_3", "failed"];

// Short delays, so that a few hundred jobs finish in about a minute. The
// store keeps writes to one key a second apart, so an attempt takes about a
// second whatever the work duration.
const FAST_VARS = { WORK_DURATION_MS: "50", RETRY_BASE_DELAY_SECONDS: "1" };
const KEY_PREFIX = "job:";
const POLL_MS = 100;
// Time for the batches still running when the last job finished to settle,
// so a late duplicate delivery would still be counted.
const SETTLE_MS = 1500;

/**
 * Creates at least `jobs` jobs through POST /jobs, more while an outcome is
 * still missing (at most `maxJobs`), and waits until every job is done or
 * failed. Returns the KV operations per job by outcome, and those of
 * GET /jobs/:id and of one page of GET /jobs.
 */
export async function measureKvCosts(config, { jobs, maxJobs = Math.max(10 * jobs, 500), progress }) {
  const failurePercent = Number(config.vars.FAILURE_PERCENT);
  const maxAttempts = Number(config.vars.MAX_ATTEMPTS);
  const tracked = new Map(); // job id -> {predicted, outcome, lists}

  const onKvOperation = ({ kind, key, value }) => {
    if (kind === "lists") {
      // A list is not tied to one key, so it is charged to every job still
      // running: an upper bound, and zero when nothing lists.
      for (const job of tracked.values()) if (job.outcome === undefined) job.lists += 1;
      return;
    }
    if (kind !== "writes" || !key.startsWith(KEY_PREFIX)) return;
    const job = tracked.get(key.slice(KEY_PREFIX.length));
    if (job !== undefined) job.outcome = outcomeOf(JSON.parse(value));
  };

  const runtime = await startBenchRuntime(config, { vars: FAST_VARS, onKvOperation });
  try {
    const predicted = Object.fromEntries(OUTCOMES.map((outcome) => [outcome, 0]));
    while (tracked.size < maxJobs && (tracked.size < jobs || OUTCOMES.some((outcome) => predicted[outcome] === 0))) {
      const id = await createJob(runtime.url, tracked.size);
      // Registered once POST returns. Its enqueue write is still counted,
      // since counts come from the tally by key, and the consumer's first
      // write follows at least a second later (the store's write spacing).
      const job = { predicted: predictOutcome(id, failurePercent, maxAttempts), outcome: undefined, lists: 0 };
      tracked.set(id, job);
      predicted[job.predicted] += 1;
    }
    progress?.(`created ${tracked.size} jobs; waiting for the queue consumer to finish them`);

    await waitForAll(tracked, { timeoutMs: 60_000 + 500 * tracked.size });
    await new Promise((resolve) => setTimeout(resolve, SETTLE_MS));

    const perJob = [...tracked].map(([id, job]) => ({
      id,
      predicted: job.predicted,
      outcome: job.outcome,
      counts: { ...runtime.tally.forKey(KEY_PREFIX + id), lists: job.lists },
    }));
    const readRequests = await measureReadRequests(runtime, perJob.find((job) => job.outcome === "done_1")?.id ?? perJob[0].id);
    return {
      vars: FAST_VARS,
      jobs: perJob.length,
      mismatches: perJob.filter((job) => job.outcome !== job.predicted).map(({ id, predicted, outcome }) => ({ id, predicted, outcome })),
      perOutcome: summarize(perJob),
      readRequests,
    };
  } finally {
    await runtime.stop();
  }
}

async function createJob(baseUrl, index) {
  const response = await fetch(new URL("/jobs", baseUrl), {
    method: "POST",
    headers: { "content-type": "application/json" },
    body: JSON.stringify({ type: index % 2 === 0 ? "resize" : "fetch", target: `https://example.com/images/${index}.png` }),
  });
  const body = await response.json();
  if (response.status !== 201) throw new Error(`POST /jobs returned ${response.status}: ${JSON.stringify(body)}`);
  return body.id;
}

async function waitForAll(tracked, { timeoutMs }) {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const running = [...tracked.values()].filter((job) => job.outcome === undefined).length;
    if (running === 0) return;
    if (Date.now() > deadline) {
      throw new Error(`${running} of ${tracked.size} jobs were still queued or processing after ${timeoutMs / 1000} s`);
    }
    await new Promise((resolve) => setTimeout(resolve, POLL_MS));
  }
}

// Mean, minimum and maximum of each kind of operation, by observed outcome.
function summarize(perJob) {
  const summary = {};
  for (const outcome of OUTCOMES) {
    const jobs = perJob.filter((job) => job.outcome === outcome);
    const entry = { jobs: jobs.length, ...emptyCounts(), range: {} };
    for (const kind of KV_KINDS) {
      const values = jobs.map((job) => job.counts[kind]);
      entry[kind] = values.length === 0 ? null : round(values.reduce((sum, value) => sum + value, 0) / values.length);
      entry.range[kind] = values.length === 0 ? null : [Math.min(...values), Math.max(...values)];
    }
    summary[outcome] = entry;
  }
  return summary;
}

// KV operations of one GET /jobs/:id and of one page of GET /jobs, each the
// only request in flight, after every job has finished.
async function measureReadRequests(runtime, jobId) {
  const requests = { get_job: `/jobs/${jobId}`, list_page: "/jobs?limit=50" };
  const result = {};
  for (const [name, path] of Object.entries(requests)) {
    const before = runtime.tally.snapshot();
    const response = await fetch(new URL(path, runtime.url));
    await response.arrayBuffer();
    if (response.status !== 200) throw new Error(`GET ${path} returned ${response.status}`);
    result[name] = { path, ...runtime.tally.since(before) };
  }
  return result;
}
