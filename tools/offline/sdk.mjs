// Finds the files that go into Pyodide's filesystem: the Workers SDK as
// scripts/setup installed it into .venv, and the Worker's own modules.

import fs from "node:fs";
import path from "node:path";
import { parse as parseToml } from "smol-toml";

const SDK_DISTRIBUTION = "workers-runtime-sdk";

/**
 * Returns the installed workers-runtime-sdk: {version, sitePackages, files},
 * with `files` relative to site-packages, as its dist-info RECORD lists them.
 *
 * Throws when .venv contains no single copy of it, or one whose version differs
 * from the pin in pyproject.toml's dev group; scripts/setup fixes both.
 */
export function findWorkersSdk(projectRoot) {
  const venvLib = path.join(projectRoot, ".venv", "lib");
  const found = [];
  if (fs.existsSync(venvLib)) {
    for (const pythonDir of fs.readdirSync(venvLib)) {
      const sitePackages = path.join(venvLib, pythonDir, "site-packages");
      if (!pythonDir.startsWith("python") || !fs.existsSync(sitePackages)) continue;
      for (const name of fs.readdirSync(sitePackages)) {
        const match = /^workers_runtime_sdk-(.+)\.dist-info$/.exec(name);
        if (match) found.push({ version: match[1], sitePackages, distInfo: path.join(sitePackages, name) });
      }
    }
  }
  if (found.length !== 1) {
    throw new Error(
      `expected one installed ${SDK_DISTRIBUTION} under ${venvLib}, found ${found.length}; run scripts/setup`,
    );
  }

  const [sdk] = found;
  const pinned = pinnedVersion(projectRoot);
  if (pinned !== undefined && pinned !== sdk.version) {
    throw new Error(
      `.venv has ${SDK_DISTRIBUTION} ${sdk.version} but pyproject.toml pins ${pinned}; run scripts/setup`,
    );
  }

  const files = fs
    .readFileSync(path.join(sdk.distInfo, "RECORD"), "utf8")
    .split("\n")
    .filter((line) => line !== "")
    .map(recordPath)
    // Bytecode is CPython's, and paths outside site-packages are scripts.
    .filter((file) => !file.includes("__pycache__") && !file.startsWith(".."));
  return { version: sdk.version, sitePackages: sdk.sitePackages, files };
}

function pinnedVersion(projectRoot) {
  const pyproject = parseToml(fs.readFileSync(path.join(projectRoot, "pyproject.toml"), "utf8"));
  for (const requirement of pyproject["dependency-groups"]?.dev ?? []) {
    const match = new RegExp(`^${SDK_DISTRIBUTION}==(\\S+)$`).exec(String(requirement).trim());
    if (match) return match[1];
  }
  return undefined;
}

// The first CSV field of a RECORD line; it is quoted when the path has a comma.
function recordPath(line) {
  if (!line.startsWith('"')) return line.slice(0, line.indexOf(","));
  const match = /^"((?:[^"]|"")*)"/.exec(line);
  return match[1].replaceAll('""', '"');
}

/**
 * Lists the Worker's Python modules: every .py file under the entry file's
 * folder, relative to it. wrangler's default module rules upload .py files
 * only, so other files there are left out here too.
 */
export function findWorkerModules(rootDir) {
  const modules = [];
  const walk = (relativeDir) => {
    for (const entry of fs.readdirSync(path.join(rootDir, relativeDir), { withFileTypes: true })) {
      const relativePath = path.join(relativeDir, entry.name);
      if (entry.isDirectory() && entry.name !== "__pycache__") walk(relativePath);
      if (entry.isFile() && entry.name.endsWith(".py")) modules.push(relativePath);
    }
  };
  walk("");
  return modules;
}
