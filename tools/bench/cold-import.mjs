// The import time of the Worker's entry module in a fresh Pyodide, and the
// modules it brings in. A stub Worker that imports only the SDK is measured
// the same way, so that the Worker's own share can be separated from the SDK's.
//
// Each import runs in a new Node process (import-once.mjs), which loads a
// new Pyodide and then does what the offline runtime does at start
// (PythonWorker.start): copy the SDK and the Worker's .py files into
// Pyodide's filesystem, run tools/offline/entrypoint.py, which imports the
// SDK, and import the Worker's main module. The timed span is that whole
// call, so it includes the copy of about 40 small files.

import { execFile } from "node:child_process";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { promisify } from "node:util";
import { median, round } from "./stats.mjs";

const IMPORT_ONCE = path.join(path.dirname(fileURLToPath(import.meta.url)), "import-once.mjs");
// A plain start took 3 to 6 s and an import under 2 s on a machine with 2 cores.
const RUN_TIMEOUT_MS = 120_000;

/**
 * Ways of starting the Pyodide that imports the Worker. "plain" loads
 * Pyodide without a snapshot, so the standard library modules are imported
 * in the timed span too. "snapshot" loads it as the offline runtime does.
 * "warm engine" first runs the same import in another Pyodide of the same
 * process, so that WebAssembly compilation is left out and what remains is
 * Python's own work.
 */
export const SCENARIOS = {
  plain: { start: "plain", warmEngine: false },
  snapshot: { start: "snapshot", warmEngine: false },
  snapshot_warm_engine: { start: "snapshot", warmEngine: true },
};

// The smallest Worker the offline runtime accepts: it imports the SDK and nothing else.
const STUB_WORKER = `from workers import WorkerEntrypoint


class Default(WorkerEntrypoint):
    pass
`;

/**
 * Imports the Worker's entry module and the stub `runs` times each per
 * scenario, each in a new process. Returns median times and the modules each
 * import added to sys.modules.
 */
export async function measureColdImport(config, { runs }) {
  const stubRoot = fs.mkdtempSync(path.join(os.tmpdir(), "queue-job-bench-stub-"));
  fs.writeFileSync(path.join(stubRoot, "stub_worker.py"), STUB_WORKER);
  const targets = {
    worker: { bundleRoot: path.dirname(config.entryPath), mainModule: path.basename(config.entryPath, ".py") },
    sdk_only: { bundleRoot: stubRoot, mainModule: "stub_worker" },
  };

  const result = {};
  try {
    for (const [scenarioName, scenario] of Object.entries(SCENARIOS)) {
      const samples = { worker: [], sdk_only: [] };
      // Alternating the two targets spreads the machine's noise over both.
      for (let run = 0; run < runs; run += 1) {
        for (const [name, target] of Object.entries(targets)) {
          samples[name].push(await importOnce(scenario, target, config.projectRoot));
        }
      }
      result[scenarioName] = Object.fromEntries(Object.entries(samples).map(([name, list]) => [name, summarize(list)]));
    }
  } finally {
    fs.rmSync(stubRoot, { recursive: true, force: true });
  }
  return result;
}

async function importOnce({ start, warmEngine }, { bundleRoot, mainModule }, projectRoot) {
  const args = [IMPORT_ONCE, "--start", start, "--bundle-root", bundleRoot, "--main-module", mainModule, "--project-root", projectRoot];
  if (warmEngine) args.push("--warm-engine");
  const { stdout } = await promisify(execFile)(process.execPath, args, {
    cwd: projectRoot,
    timeout: RUN_TIMEOUT_MS,
    maxBuffer: 16 * 1024 * 1024,
  });
  const sample = JSON.parse(stdout.trim().split("\n").at(-1));
  return { ...sample, modules: classify(sample) };
}

function summarize(samples) {
  return {
    runs: samples.length,
    pyodide_start_ms: median(samples.map((sample) => sample.bootMs)),
    import_wall_ms: median(samples.map((sample) => sample.wallMs)),
    import_cpu_ms: median(samples.map((sample) => sample.cpuMs)),
    import_wall_ms_runs: samples.map((sample) => round(sample.wallMs)),
    modules: samples.at(-1).modules,
  };
}

// Sorts the added module names into the Worker's own, the SDK's, the
// standard library's and the rest (Pyodide's own and the JS modules it
// registers).
function classify({ added, stdlib, workerFiles, sdkFiles }) {
  const workerPackages = new Set(workerFiles.map((file) => file.split(path.sep)[0].replace(/\.py$/, "")));
  const sdkPackages = new Set(sdkFiles.filter((file) => file.endsWith(".py")).map((file) => file.split("/")[0]));
  const stdlibNames = new Set(stdlib);
  const modules = { worker: [], sdk: [], stdlib: [], other: [] };
  for (const name of added) {
    const top = name.split(".")[0];
    if (workerPackages.has(top)) modules.worker.push(name);
    else if (sdkPackages.has(top)) modules.sdk.push(name);
    else if (stdlibNames.has(top)) modules.stdlib.push(name);
    else modules.other.push(name);
  }
  return modules;
}
