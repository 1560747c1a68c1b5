// Loads Pyodide from a memory snapshot of a freshly started interpreter.
//
// Starting Pyodide from scratch took 3 to 5 s on a 2-core machine, from the
// snapshot about 1 s, and workerd also starts Python Workers from a snapshot.
// The snapshot contains Pyodide's start-up state and the standard library
// modules in SNAPSHOT_IMPORTS, never the SDK or the Worker. It lives in
// node_modules/.cache, so a new Pyodide version or a fresh install makes a
// new one. It relies on loadPyodide's _makeSnapshot and _loadSnapshot
// options, which Pyodide marks private, so pyodide stays pinned.

import fs from "node:fs";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { loadPyodide } from "pyodide";

const PYODIDE_DIR = path.dirname(fileURLToPath(import.meta.resolve("pyodide")));
const PYODIDE_VERSION = JSON.parse(fs.readFileSync(path.join(PYODIDE_DIR, "package.json"), "utf8")).version;
const SNAPSHOT_PATH = path.join(
  PYODIDE_DIR,
  "..",
  ".cache",
  "offline-runtime",
  `pyodide-${PYODIDE_VERSION}-node-${process.versions.node}.snapshot`,
);

// Standard library modules that the SDK imports and that take a second or
// more to import in Pyodide (email.parser through http.client above all).
const SNAPSHOT_IMPORTS = "import dataclasses, http.client, inspect, json, urllib.parse, uuid";

// Pyodide imports `random` while it starts, so the snapshot contains one seed
// that every start would share. This draws a new one from os.urandom.
// NOTE: str hashing keeps the snapshot's hash seed, the same on every start.
const AFTER_RESTORE = "import random; random.seed()";

/** Loads Pyodide and forwards Python's stdout and stderr to the process's. */
export async function loadInterpreter(log) {
  const indexURL = PYODIDE_DIR + path.sep;
  let snapshot = readSnapshot();
  if (snapshot === undefined) {
    snapshot = await makeSnapshot(indexURL);
    log.info(`saved a Pyodide memory snapshot for faster starts: ${SNAPSHOT_PATH}`);
  }

  let pyodide;
  try {
    pyodide = await loadPyodide({ indexURL, _loadSnapshot: snapshot });
    pyodide.runPython(AFTER_RESTORE);
  } catch (error) {
    log.warn(`loading the Pyodide snapshot ${SNAPSHOT_PATH} failed, so it is deleted: ${error?.message ?? error}`);
    fs.rmSync(SNAPSHOT_PATH, { force: true });
    pyodide = await loadPyodide({ indexURL });
  }
  pyodide.setStdout({ batched: (line) => console.log(line) });
  pyodide.setStderr({ batched: (line) => console.error(line) });
  return pyodide;
}

function readSnapshot() {
  try {
    return fs.readFileSync(SNAPSHOT_PATH);
  } catch (error) {
    if (error.code === "ENOENT") return undefined;
    throw error;
  }
}

async function makeSnapshot(indexURL) {
  const maker = await loadPyodide({ indexURL, _makeSnapshot: true });
  maker.runPython(SNAPSHOT_IMPORTS);
  const snapshot = maker.makeMemorySnapshot();
  // Written under a name of its own and renamed, so two runtimes starting
  // at once never read a half-written file.
  fs.mkdirSync(path.dirname(SNAPSHOT_PATH), { recursive: true });
  const temporary = `${SNAPSHOT_PATH}.${process.pid}.tmp`;
  fs.writeFileSync(temporary, snapshot);
  fs.renameSync(temporary, SNAPSHOT_PATH);
  return snapshot;
}
