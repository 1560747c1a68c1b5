#!/usr/bin/env node
// `npm run bench`: what a job costs in KV operations and how fast the Worker
// is, measured on the offline runtime (the real src/ in Pyodide, Miniflare's
// KV and Queues) on 127.0.0.1 only. Cold imports run in child processes, and
// everything else runs in this one.

import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { format, parseArgs } from "node:util";
import { loadWorkerConfig } from "../offline/config.mjs";
import { measureBatchConcurrency } from "./batch-concurrency.mjs";
import { measureColdImport } from "./cold-import.mjs";
import { OUTCOMES, measureKvCosts } from "./kv-costs.mjs";
import { formatReport, lowerBound, referenceDemo } from "./report.mjs";
import { WARMUP_REQUESTS, measureRequests } from "./request-timing.mjs";
import { startBenchRuntime } from "./runtime.mjs";

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "..", "..");
const PARTS = ["import", "kv", "requests", "batch"];
// The consumer's batch size in wrangler.toml, and a work duration well above
// the simulated work's timer resolution.
const BATCH_SIZE = 10;
const BATCH_WORK_DURATION_MS = "200";

const USAGE = `Usage: npm run bench -- [options]

Measures the Worker on the offline runtime and prints Markdown tables.

Options:
  --parts LIST         comma-separated parts to run: ${PARTS.join(", ")} (default: all)
  --jobs N             jobs for the KV part, at least; more are created until
                       every outcome appears (default 300)
  --requests N         timed calls each of POST /jobs and GET /jobs/:id (default 500)
  --import-runs N      imports per Worker and way of starting Pyodide (plain,
                       snapshot, snapshot with a warm engine), each in a new
                       process (default 5)
  --batch-rounds N     rounds of the concurrent and one-at-a-time batch (default 3)
  --json PATH          also write the figures as JSON to PATH
  --log PATH           file for the runtime's and the Worker's log lines
                       (default: a new file in the system's temporary folder)
  --help               show this text`;

function parseOptions(argv) {
  const { values } = parseArgs({
    args: argv,
    options: {
      parts: { type: "string", default: PARTS.join(",") },
      jobs: { type: "string", default: "300" },
      requests: { type: "string", default: "500" },
      "import-runs": { type: "string", default: "5" },
      "batch-rounds": { type: "string", default: "3" },
      json: { type: "string" },
      log: { type: "string" },
      help: { type: "boolean", default: false },
    },
  });
  if (values.help) {
    process.stdout.write(`${USAGE}\n`);
    process.exit(0);
  }

  const parts = values.parts.split(",").map((part) => part.trim());
  const unknown = parts.filter((part) => !PARTS.includes(part));
  if (unknown.length > 0) throw new Error(`--parts must name parts among ${PARTS.join(", ")}, got ${unknown.join(", ")}`);
  const positive = (name) => {
    const value = Number(values[name]);
    if (!Number.isInteger(value) || value < 1) throw new Error(`--${name} must be a positive integer, got ${values[name]}`);
    return value;
  };
  return {
    parts: new Set(parts),
    jobs: positive("jobs"),
    requests: positive("requests"),
    importRuns: positive("import-runs"),
    batchRounds: positive("batch-rounds"),
    json: values.json === undefined ? undefined : path.resolve(values.json),
    log: path.resolve(values.log ?? path.join(os.tmpdir(), `queue-job-bench-${process.pid}.log`)),
  };
}

// The runtime, Miniflare, workerd and the Worker's logging all write through
// console, a line per request, batch and job transition. Those lines go to a
// file so that the tables stay readable, and the report itself is written to
// process.stdout directly.
function sendConsoleTo(logPath) {
  const stream = fs.createWriteStream(logPath, { flags: "a" });
  const write = (...args) => stream.write(`${format(...args)}\n`);
  for (const method of ["log", "info", "warn", "error", "debug"]) console[method] = write;
  return () => new Promise((resolve) => stream.end(resolve));
}

function progress(message) {
  process.stderr.write(`bench: ${message}\n`);
}

function describeMachine() {
  const cpuinfo = fs.existsSync("/proc/cpuinfo") ? fs.readFileSync("/proc/cpuinfo", "utf8") : "";
  const model = /^model name\s*:\s*(.+)$/m.exec(cpuinfo)?.[1] ?? os.cpus()[0]?.model ?? "unknown CPU";
  const pyodidePackage = path.join(ROOT, "node_modules", "pyodide", "package.json");
  return {
    nproc: os.availableParallelism(),
    cpu: model.trim(),
    node: process.versions.node,
    pyodide: JSON.parse(fs.readFileSync(pyodidePackage, "utf8")).version,
  };
}

function describeCommand(argv) {
  const args = argv.map((arg) => (/^[\w./=,:-]+$/.test(arg) ? arg : JSON.stringify(arg))).join(" ");
  if (process.env.npm_lifecycle_event === "bench") return `npm run bench${args ? ` -- ${args}` : ""}`;
  return `node tools/bench/bench.mjs${args ? ` ${args}` : ""}`;
}

async function main() {
  const argv = process.argv.slice(2);
  let options;
  try {
    options = parseOptions(argv);
  } catch (error) {
    process.stderr.write(`${error.message}\n\n${USAGE}\n`);
    process.exit(2);
  }

  const config = loadWorkerConfig(path.join(ROOT, "wrangler.toml"));
  const figures = { date: new Date().toISOString(), machine: describeMachine(), command: describeCommand(argv) };
  const closeLog = sendConsoleTo(options.log);
  progress(`runtime and Worker log lines go to ${options.log}`);

  if (options.parts.has("import")) {
    progress(`cold import: ${options.importRuns} imports per Worker and way of starting Pyodide, each in a new process`);
    figures.cold_import = await measureColdImport(config, { runs: options.importRuns });
  }

  if (options.parts.has("kv")) {
    progress(`KV operations: at least ${options.jobs} jobs through the real queue consumer`);
    const kv = await measureKvCosts(config, { jobs: options.jobs, progress });
    figures.kv_per_job = kv.perOutcome;
    figures.kv_lower_bound = Object.fromEntries(OUTCOMES.map((outcome) => [outcome, lowerBound(outcome)]));
    figures.kv_reference = Object.fromEntries(OUTCOMES.map((outcome) => [outcome, referenceDemo(outcome)]));
    figures.kv_per_request = kv.readRequests;
    figures.kv_jobs = kv.jobs;
    figures.kv_vars = kv.vars;
    figures.kv_mismatches = kv.mismatches;
  }

  if (options.parts.has("requests") || options.parts.has("batch")) {
    const vars = { WORK_DURATION_MS: BATCH_WORK_DURATION_MS, RETRY_BASE_DELAY_SECONDS: "1" };
    const runtime = await startBenchRuntime(config, { vars, consumers: false });
    try {
      if (options.parts.has("requests")) {
        progress(`request timing: ${options.requests} calls each of POST /jobs and GET /jobs/:id`);
        const requests = await measureRequests(runtime, { count: options.requests });
        figures.request_timing = { warmup: WARMUP_REQUESTS, requests };
      }
      if (options.parts.has("batch")) {
        progress(`batch: ${BATCH_SIZE} messages concurrently and one at a time, ${options.batchRounds} rounds`);
        figures.batch = await measureBatchConcurrency(runtime, {
          queue: config.producers[0].queue,
          size: BATCH_SIZE,
          rounds: options.batchRounds,
          workDurationMs: Number(BATCH_WORK_DURATION_MS),
        });
      }
    } finally {
      await runtime.stop();
    }
  }

  await closeLog();
  process.stdout.write(formatReport(figures));
  if (options.json !== undefined) {
    fs.mkdirSync(path.dirname(options.json), { recursive: true });
    fs.writeFileSync(options.json, `${JSON.stringify(figures, null, 2)}\n`);
    progress(`figures written to ${options.json}`);
  }
}

main().catch((error) => {
  process.stderr.write(`bench failed: ${error?.stack ?? error}\n`);
  process.exit(1);
});
