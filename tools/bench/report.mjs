// Turns the benchmark's figures into Markdown tables, so the output can go
// into docs/benchmarks.md as it is.

import { KV_KINDS } from "./bindings.mjs";
import { OUTCOMES } from "./kv-costs.mjs";
import { round } from "./stats.mjs";

// Cloudflare bills KV writes, lists and deletes at ten times a read.
const WRITE_PRICE_IN_READS = 10;
const FREE_PLAN_WRITES_PER_DAY = 1000;
// Attempts each outcome takes, with MAX_ATTEMPTS = 3.
const ATTEMPTS = { done_1: 1, done_2: 2, done_3: 3, failed: 3 };

/** Returns the lower bound: 1 write at enqueue, and per attempt 2 writes and at most 1 read. */
export function lowerBound(outcome) {
  return { reads: ATTEMPTS[outcome], writes: 1 + 2 * ATTEMPTS[outcome], lists: 0, deletes: 0 };
}

/** Returns the reference TypeScript demo's counts: 1 write at enqueue, and per attempt 3 reads and 2 writes. */
export function referenceDemo(outcome) {
  return { reads: 3 * ATTEMPTS[outcome], writes: 1 + 2 * ATTEMPTS[outcome], lists: 0, deletes: 0 };
}

function readUnits(counts) {
  return counts.reads + WRITE_PRICE_IN_READS * (counts.writes + counts.lists + counts.deletes);
}

/** Returns the report as Markdown: a header, then one section per part that ran. */
export function formatReport(figures) {
  const sections = [formatHeader(figures)];
  if (figures.kv_per_job) sections.push(formatKv(figures));
  if (figures.request_timing) sections.push(formatRequestTiming(figures.request_timing));
  if (figures.cold_import) sections.push(formatColdImport(figures.cold_import));
  if (figures.batch) sections.push(formatBatch(figures.batch));
  return sections.join("\n\n") + "\n";
}

function formatHeader({ date, machine, command }) {
  return [
    `Date: ${date}`,
    `Machine: ${machine.nproc} cores, ${machine.cpu}, Node ${machine.node}, Pyodide ${machine.pyodide}`,
    `Command: \`${command}\``,
  ].join("  \n");
}

function formatKv({ kv_per_job: perOutcome, kv_jobs: jobs, kv_mismatches: mismatches, kv_vars: vars, kv_per_request: perRequest }) {
  const lines = [
    "### KV operations per job, by outcome",
    "",
    `${jobs} jobs through POST /jobs and the real queue consumer (vars ${formatVars(vars)}), counted per key \`job:<id>\` ` +
      "at the KV binding the Worker calls. A list would be charged to every job running at the time. " +
      `Read units: reads + ${WRITE_PRICE_IN_READS} x (writes + lists + deletes), as Cloudflare prices them.`,
    "",
    "| outcome | jobs | reads | writes | lists | deletes | lower bound (reads at most / writes) | reference demo (reads / writes) | read units: this / reference |",
    "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
  ];
  for (const outcome of OUTCOMES) {
    const entry = perOutcome[outcome];
    const bound = lowerBound(outcome);
    const reference = referenceDemo(outcome);
    const measured = entry.jobs === 0 ? "-" : round(readUnits(entry));
    lines.push(
      `| ${outcome} | ${entry.jobs} | ${KV_KINDS.map((kind) => formatCount(entry, kind)).join(" | ")} | ` +
        `${bound.reads} / ${bound.writes} | ${reference.reads} / ${reference.writes} | ${measured} / ${readUnits(reference)} |`,
    );
  }

  const mix = weightedByMix(perOutcome);
  lines.push(
    `| this run's mix | ${mix.jobs} | ${mix.measured.reads} | ${mix.measured.writes} | ${mix.measured.lists} | ${mix.measured.deletes} | ` +
      `${mix.bound.reads} / ${mix.bound.writes} | ${mix.reference.reads} / ${mix.reference.writes} | ` +
      `${round(readUnits(mix.measured))} / ${round(readUnits(mix.reference))} |`,
  );
  lines.push(
    "",
    `At this mix the free plan's ${FREE_PLAN_WRITES_PER_DAY} KV writes a day last for ` +
      `${Math.floor(FREE_PLAN_WRITES_PER_DAY / mix.measured.writes)} jobs (reference demo: ` +
      `${Math.floor(FREE_PLAN_WRITES_PER_DAY / mix.reference.writes)}).`,
  );
  if (mismatches.length > 0) {
    lines.push("", `WARNING: ${mismatches.length} jobs ended differently from the failure rule's prediction: ${JSON.stringify(mismatches.slice(0, 5))}`);
  }

  lines.push(
    "",
    "### KV operations per read request",
    "",
    "| request | reads | writes | lists | deletes |",
    "| --- | ---: | ---: | ---: | ---: |",
  );
  const labels = { get_job: "GET /jobs/:id", list_page: "GET /jobs?limit=50 (one page)" };
  for (const [name, counts] of Object.entries(perRequest)) {
    lines.push(`| ${labels[name]} | ${KV_KINDS.map((kind) => counts[kind]).join(" | ")} |`);
  }
  return lines.join("\n");
}

// A whole number when every job of the outcome made the same count, else the
// mean with the range.
function formatCount(entry, kind) {
  if (entry.jobs === 0) return "-";
  const [low, high] = entry.range[kind];
  return low === high ? String(low) : `${entry[kind]} (${low}-${high})`;
}

// Mean operations per job over the jobs of this run, measured and as the
// lower bound and the reference demo would make them for the same outcomes.
function weightedByMix(perOutcome) {
  const jobs = OUTCOMES.reduce((sum, outcome) => sum + perOutcome[outcome].jobs, 0);
  const mean = (countsOf) => {
    const result = {};
    for (const kind of KV_KINDS) {
      const total = OUTCOMES.reduce((sum, outcome) => sum + perOutcome[outcome].jobs * (countsOf(outcome)[kind] ?? 0), 0);
      result[kind] = round(total / jobs);
    }
    return result;
  };
  return {
    jobs,
    measured: mean((outcome) => perOutcome[outcome]),
    bound: mean(lowerBound),
    reference: mean(referenceDemo),
  };
}

function formatRequestTiming(timing) {
  const lines = [
    "### CPU and wall time per request",
    "",
    "Each request is a direct call of the Python Worker's fetch handler in the benchmark's Node process, " +
      `after ${timing.warmup} untimed calls. CPU is process.cpuUsage() (user + system, all threads of that ` +
      "process) around the awaited call: Python in Pyodide, the SDK's conversions, and the Node side of " +
      "Miniflare's KV and queue calls, including the offline runtime's queue journal append for a send. " +
      "The workerd process that stores KV and runs the queue broker is not included. Wall is " +
      "performance.now() around the same call, including the round trips to workerd. No queue consumer " +
      "runs during this part, so Miniflare's broker returns from a send without storing the message. " +
      "GET reads records of queued jobs, which have one history entry. The last two rows make the " +
      "binding calls of each request from JavaScript alone, and the difference is the Python Worker's share.",
    "",
    "| call | n | CPU p50 (ms) | CPU p99 (ms) | wall p50 (ms) | wall p99 (ms) |",
    "| --- | ---: | ---: | ---: | ---: | ---: |",
  ];
  const labels = {
    post_jobs: "POST /jobs",
    get_job: "GET /jobs/:id",
    kv_put_and_queue_send: "KV put + queue send, from JS only",
    kv_get: "KV get, from JS only",
  };
  for (const [name, entry] of Object.entries(timing.requests)) {
    lines.push(`| ${labels[name]} | ${entry.n} | ${entry.cpu_ms.p50} | ${entry.cpu_ms.p99} | ${entry.wall_ms.p50} | ${entry.wall_ms.p99} |`);
  }
  return lines.join("\n");
}

function formatColdImport(coldImport) {
  const lines = [
    "### Cold import of src/entry.py",
    "",
    "Each import runs in a new Node process with a new Pyodide, and is the offline runtime's start of the " +
      "Worker (PythonWorker.start): copy the SDK and the Worker's .py files into Pyodide's filesystem, import " +
      "the SDK, import the Worker's main module. The stub Worker only subclasses WorkerEntrypoint, so its rows " +
      "are the SDK's share. plain: Pyodide loaded without a snapshot, so the standard library modules are " +
      "imported in the timed span. snapshot: loaded as the offline runtime loads it, from a memory snapshot " +
      "that already contains dataclasses, http.client, inspect, json, urllib.parse and uuid. warm engine: " +
      "another Pyodide in the same process ran the same import first, so V8 has compiled the WebAssembly " +
      "code and the time is Python's own work. In the snapshot rows without it, V8 compiles the " +
      "WebAssembly functions that the import is the first to run, which takes most of the time and varies " +
      "most between runs. Times are medians over the runs, with the range of the runs' wall times.",
    "",
    "| Pyodide start | imported | runs | start of Pyodide (ms) | import wall (ms) | range (ms) | import CPU (ms) | new modules: Worker / SDK / stdlib / other |",
    "| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: |",
  ];
  const scenarioLabels = { plain: "plain", snapshot: "snapshot", snapshot_warm_engine: "snapshot, warm engine" };
  const targetLabels = { worker: "src/entry.py", sdk_only: "stub Worker (SDK only)" };
  for (const [scenario, targets] of Object.entries(coldImport)) {
    for (const [name, entry] of Object.entries(targets)) {
      const { worker, sdk, stdlib, other } = entry.modules;
      const range = `${Math.round(Math.min(...entry.import_wall_ms_runs))}-${Math.round(Math.max(...entry.import_wall_ms_runs))}`;
      lines.push(
        `| ${scenarioLabels[scenario]} | ${targetLabels[name]} | ${entry.runs} | ${entry.pyodide_start_ms} | ` +
          `${entry.import_wall_ms} | ${range} | ${entry.import_cpu_ms} | ` +
          `${worker.length} / ${sdk.length} / ${stdlib.length} / ${other.length} |`,
      );
    }
  }

  lines.push("", "The Worker's own share (median wall of src/entry.py minus that of the stub; a share smaller than the ranges is noise):", "");
  for (const [scenario, { worker, sdk_only: sdkOnly }] of Object.entries(coldImport)) {
    const share = round(worker.import_wall_ms - sdkOnly.import_wall_ms);
    lines.push(`- ${scenarioLabels[scenario]}: ${share} ms of ${worker.import_wall_ms} ms`);
  }

  // The plain start shows every standard library module the import needs,
  // since none is in a snapshot there.
  const listed = coldImport.plain ?? Object.values(coldImport)[0];
  const beyondSdk = listed.worker.modules.stdlib.filter((name) => !listed.sdk_only.modules.stdlib.includes(name));
  lines.push("", "Modules new in sys.modules after importing src/entry.py into a plain Pyodide:", "");
  for (const [group, label] of [["worker", "Worker"], ["sdk", "SDK"], ["stdlib", "standard library"], ["other", "other (Pyodide, JS modules)"]]) {
    lines.push(`- ${label} (${listed.worker.modules[group].length}): ${listed.worker.modules[group].join(", ") || "none"}`);
  }
  lines.push(`- of those, standard library modules that the stub Worker does not import (${beyondSdk.length}): ${beyondSdk.join(", ") || "none"}`);
  return lines.join("\n");
}

function formatBatch(batch) {
  const perMessage = (entry) => round(entry.wall_ms / batch.messages);
  return [
    `### A batch of ${batch.messages} messages: concurrent against one at a time`,
    "",
    `WORK_DURATION_MS = ${batch.work_duration_ms}. The Python queue handler called in-process: once with all ` +
      `${batch.messages} messages (the real consumer runs them concurrently), then once per message, each mode ` +
      `starting from the same queued records. Rounds: ${batch.rounds}; times are medians. Messages whose ` +
      `attempt 1 fails and is retried: ${batch.retried_messages} of ${batch.messages}, ` +
      `${batch.same_outcomes ? "the same in both modes" : "WARNING: different in the two modes"}. ` +
      "An attempt takes about a second whatever WORK_DURATION_MS below 1000, because the store writes a " +
      "key at most once a second (KV's limit) and an attempt writes twice.",
    "",
    "| mode | wall (ms) | CPU (ms) | wall per message (ms) |",
    "| --- | ---: | ---: | ---: |",
    `| concurrent (1 call) | ${batch.concurrent.wall_ms} | ${batch.concurrent.cpu_ms} | ${perMessage(batch.concurrent)} |`,
    `| one at a time (${batch.messages} calls) | ${batch.one_at_a_time.wall_ms} | ${batch.one_at_a_time.cpu_ms} | ${perMessage(batch.one_at_a_time)} |`,
    "",
    `One at a time takes ${batch.wall_ratio} x the wall time of the concurrent batch.`,
  ].join("\n");
}

function formatVars(vars) {
  return Object.entries(vars)
    .map(([name, value]) => `${name}=${value}`)
    .join(", ");
}
