// Child process of cold-import.mjs: loads a fresh Pyodide, imports one
// Worker the way the offline runtime does, and writes the figures as one
// JSON line to stdout. A process of its own per import keeps the memory of
// earlier Pyodides, and the garbage collection it causes, out of the timing.
//
// Usage: node import-once.mjs --start plain|snapshot [--warm-engine]
//          --bundle-root DIR --main-module NAME --project-root DIR

import path from "node:path";
import { format, parseArgs } from "node:util";
import { loadPyodide } from "pyodide";
import { loadInterpreter } from "../offline/interpreter.mjs";
import { PythonWorker } from "../offline/python.mjs";
import { findWorkerModules, findWorkersSdk } from "../offline/sdk.mjs";

const PYODIDE_DIR = path.dirname(new URL(import.meta.resolve("pyodide")).pathname) + path.sep;
const MODULE_NAMES = "import json, sys; json.dumps(sorted(sys.modules))";

// Both ways of starting Pyodide. "plain" imports the standard library from
// Pyodide's zip during the timed span. "snapshot" is how the offline runtime
// starts: from a memory snapshot that already contains the standard library
// modules the SDK needs (tools/offline/interpreter.mjs).
const STARTS = {
  plain: () => loadPyodide({ indexURL: PYODIDE_DIR }),
  snapshot: () => loadInterpreter(stderrLog()),
};

// stdout carries only the result line, so every other message goes to stderr.
function stderrLog() {
  const write = (message) => process.stderr.write(`${message}\n`);
  return { info: write, warn: write, error: write };
}
for (const method of ["log", "info", "warn", "error", "debug"]) {
  console[method] = (...args) => process.stderr.write(`${format(...args)}\n`);
}

function parseOptions() {
  const { values } = parseArgs({
    options: {
      start: { type: "string" },
      "warm-engine": { type: "boolean", default: false },
      "bundle-root": { type: "string" },
      "main-module": { type: "string" },
      "project-root": { type: "string" },
    },
  });
  if (!(values.start in STARTS) || !values["bundle-root"] || !values["main-module"] || !values["project-root"]) {
    throw new Error(
      "usage: node import-once.mjs --start plain|snapshot [--warm-engine] " +
        "--bundle-root DIR --main-module NAME --project-root DIR",
    );
  }
  return values;
}

async function main() {
  const options = parseOptions();
  const sdk = findWorkersSdk(options["project-root"]);
  const bundleRoot = options["bundle-root"];
  const modules = findWorkerModules(bundleRoot);
  const startWorker = (pyodide) =>
    PythonWorker.start({
      pyodide,
      sdk,
      bundleRoot,
      modules,
      mainModule: options["main-module"],
      // The SDK reads compatibility flags and env only when a handler runs
      // (workers-runtime-sdk 1.9.5), so the import needs neither.
      flags: {},
      env: {},
      log: stderrLog(),
    });

  // V8 in Node 20 compiles WebAssembly functions lazily, when they first
  // run, and a second Pyodide in the same process reuses that code: its
  // imports ran 2 to 3 times faster in this benchmark's runs. A first Pyodide that runs the same
  // import leaves the measured one with compiled code but new Python state,
  // so no modules and no bytecode cache.
  if (options["warm-engine"]) await startWorker(await STARTS[options.start]());

  const bootStarted = performance.now();
  const pyodide = await STARTS[options.start]();
  const bootMs = performance.now() - bootStarted;
  const before = new Set(JSON.parse(pyodide.runPython(MODULE_NAMES)));

  const cpuBefore = process.cpuUsage();
  const started = performance.now();
  await startWorker(pyodide);
  const wallMs = performance.now() - started;
  const cpu = process.cpuUsage(cpuBefore);

  const added = JSON.parse(pyodide.runPython(MODULE_NAMES)).filter((name) => !before.has(name));
  const stdlib = JSON.parse(pyodide.runPython("import json, sys; json.dumps(sorted(sys.stdlib_module_names))"));
  const result = { bootMs, wallMs, cpuMs: (cpu.user + cpu.system) / 1000, added, stdlib, workerFiles: modules, sdkFiles: sdk.files };
  process.stdout.write(`${JSON.stringify(result)}\n`);
}

main().catch((error) => {
  process.stderr.write(`import-once failed: ${error?.stack ?? error}\n`);
  process.exit(1);
});
