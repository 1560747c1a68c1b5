// The import time of the Worker's entry module in a fresh Pyodide, the
// modules it brings in, and the same for a stub Worker that imports only the
// SDK, so that the Worker's own share can be separated from the SDK's.
//
// Each run loads a new Pyodide and then does what the offline runtime does
// at start (PythonWorker.start): copy the SDK and the Worker's .py files into
// Pyodide's filesystem, run tools/offline/entrypoint.py, which imports the
// SDK, and import the Worker's main module. The timed span is that whole
// call, so it includes the copy of about 40 small files.

import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { loadPyodide } from "pyodide";
import { loadInterpreter } from "../offline/interpreter.mjs";
import { PythonWorker } from "../offline/python.mjs";
import { findWorkerModules, findWorkersSdk } from "../offline/sdk.mjs";
import { median, round } from "./stats.mjs";

const PYODIDE_DIR = path.dirname(new URL(import.meta.resolve("pyodide")).pathname) + path.sep;

// Both ways of starting Pyodide. "plain" imports the standard library from
// Pyodide's zip during the timed span. "snapshot" is how the offline runtime
// starts: from a memory snapshot that already contains the standard library
// modules the SDK needs (tools/offline/interpreter.mjs).
const STARTS = {
  plain: () => loadPyodide({ indexURL: PYODIDE_DIR }),
  snapshot: () => loadInterpreter(quietLog()),
};

// The smallest Worker the offline runtime accepts: it imports the SDK and nothing else.
const STUB_WORKER = `from workers import WorkerEntrypoint


class Default(WorkerEntrypoint):
    pass
`;

const MODULE_NAMES = "import json, sys; json.dumps(sorted(sys.modules))";

/**
 * Imports the Worker's entry module and the stub `runs` times each, in a
 * fresh Pyodide per import, for each way of starting Pyodide. Returns
 * median times and the modules each import added to sys.modules.
 */
export async function measureColdImport(config, { runs }) {
  const sdk = findWorkersSdk(config.projectRoot);
  const workerRoot = path.dirname(config.entryPath);
  const stubRoot = fs.mkdtempSync(path.join(os.tmpdir(), "queue-job-bench-stub-"));
  fs.writeFileSync(path.join(stubRoot, "stub_worker.py"), STUB_WORKER);

  const targets = {
    worker: { bundleRoot: workerRoot, mainModule: path.basename(config.entryPath, ".py") },
    sdk_only: { bundleRoot: stubRoot, mainModule: "stub_worker" },
  };
  const sdkPackages = new Set(sdk.files.filter((file) => file.endsWith(".py")).map((file) => file.split("/")[0]));

  const result = {};
  try {
    for (const [start, loadFresh] of Object.entries(STARTS)) {
      const samples = { worker: [], sdk_only: [] };
      const imported = {};
      // Alternating the two targets spreads the machine's noise over both.
      for (let run = 0; run < runs; run += 1) {
        for (const [name, target] of Object.entries(targets)) {
          const sample = await importOnce(loadFresh, sdk, target, sdkPackages);
          samples[name].push(sample);
          imported[name] = sample.modules;
        }
      }
      result[start] = Object.fromEntries(
        Object.entries(samples).map(([name, list]) => [
          name,
          {
            runs,
            pyodide_start_ms: median(list.map((sample) => sample.bootMs)),
            import_wall_ms: median(list.map((sample) => sample.wallMs)),
            import_cpu_ms: median(list.map((sample) => sample.cpuMs)),
            import_wall_ms_runs: list.map((sample) => round(sample.wallMs)),
            modules: imported[name],
          },
        ]),
      );
    }
  } finally {
    fs.rmSync(stubRoot, { recursive: true, force: true });
  }
  return result;
}

async function importOnce(loadFresh, sdk, { bundleRoot, mainModule }, sdkPackages) {
  const modules = findWorkerModules(bundleRoot);
  const workerPackages = new Set(modules.map((file) => file.split(path.sep)[0].replace(/\.py$/, "")));
  const bootStarted = performance.now();
  const pyodide = await loadFresh();
  const bootMs = performance.now() - bootStarted;
  const before = new Set(JSON.parse(pyodide.runPython(MODULE_NAMES)));

  const cpuBefore = process.cpuUsage();
  const started = performance.now();
  await PythonWorker.start({
    pyodide,
    sdk,
    bundleRoot,
    modules,
    mainModule,
    // The SDK reads compatibility flags and env only when a handler runs
    // (workers-runtime-sdk 1.9.5), so the import needs neither.
    flags: {},
    env: {},
    log: quietLog(),
  });
  const wallMs = performance.now() - started;
  const cpu = process.cpuUsage(cpuBefore);

  const added = JSON.parse(pyodide.runPython(MODULE_NAMES)).filter((name) => !before.has(name));
  const stdlib = new Set(JSON.parse(pyodide.runPython("import json, sys; json.dumps(sorted(sys.stdlib_module_names))")));
  return { bootMs, wallMs, cpuMs: (cpu.user + cpu.system) / 1000, modules: classify(added, { workerPackages, sdkPackages, stdlib }) };
}

// Sorts module names into the Worker's own, the SDK's, the standard
// library's and the rest (Pyodide's own and the JS modules it registers).
function classify(names, { workerPackages, sdkPackages, stdlib }) {
  const modules = { worker: [], sdk: [], stdlib: [], other: [] };
  for (const name of names) {
    const top = name.split(".")[0];
    if (workerPackages.has(top)) modules.worker.push(name);
    else if (sdkPackages.has(top)) modules.sdk.push(name);
    else if (stdlib.has(top)) modules.stdlib.push(name);
    else modules.other.push(name);
  }
  return modules;
}

// Pyodide's and the runtime's messages go to console.log, which the
// benchmark sends to its log file.
function quietLog() {
  const write = (message) => console.log(`[bench] ${message}`);
  return { info: write, warn: write, error: write };
}
