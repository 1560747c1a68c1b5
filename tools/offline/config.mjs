// Reads wrangler.toml, the project's one source of truth for bindings, vars
// and queue consumer settings, into the shape the offline runtime uses.

import fs from "node:fs";
import path from "node:path";
import { parse as parseToml } from "smol-toml";

/**
 * Loads the Worker's configuration from `configPath`.
 *
 * `overrides.vars` replaces vars by name, as `wrangler dev --var` does, and
 * `overrides.entry` replaces `main`. Throws an Error naming the file and the
 * key for anything this runtime cannot run. `declaredVars` lists the names in
 * the file's [vars], without the overrides.
 */
export function loadWorkerConfig(configPath, overrides = {}) {
  const toml = parseToml(fs.readFileSync(configPath, "utf8"));
  const projectRoot = path.dirname(path.resolve(configPath));
  const fail = (message) => {
    throw new Error(`${configPath}: ${message}`);
  };

  const main = overrides.entry ?? toml.main;
  if (typeof main !== "string" || !main.endsWith(".py")) {
    fail(`main must name the Worker's Python entry file, got ${JSON.stringify(main)}`);
  }
  const entryPath = path.resolve(projectRoot, main);
  if (!fs.existsSync(entryPath)) fail(`the entry file ${entryPath} does not exist`);

  const compatibilityFlags = toml.compatibility_flags ?? [];
  if (!compatibilityFlags.includes("python_workers")) {
    fail('compatibility_flags must contain "python_workers" for a Python Worker');
  }
  if (typeof toml.compatibility_date !== "string") fail("compatibility_date is missing");

  const kvNamespaces = (toml.kv_namespaces ?? []).map((namespace) => {
    if (!namespace.binding) fail("every [[kv_namespaces]] entry needs a binding");
    // Without an id (wrangler provisions it on deploy) the local namespace is
    // named after the binding.
    return { binding: namespace.binding, id: namespace.id ?? namespace.binding };
  });

  const producers = (toml.queues?.producers ?? []).map((producer) => {
    if (!producer.binding || !producer.queue) fail("every [[queues.producers]] entry needs binding and queue");
    return { binding: producer.binding, queue: producer.queue, deliveryDelay: producer.delivery_delay };
  });

  // Unset settings take the defaults of Miniflare's queue broker (miniflare
  // 4.20260426.0: batch of 5, 1 s timeout, 2 retries, no retry delay), as in
  // wrangler dev. NOTE: production retries 3 times when max_retries is unset.
  const consumers = (toml.queues?.consumers ?? []).map((consumer) => {
    if (!consumer.queue) fail("every [[queues.consumers]] entry needs queue");
    return {
      queue: consumer.queue,
      maxBatchSize: consumer.max_batch_size ?? 5,
      maxBatchTimeout: consumer.max_batch_timeout ?? 1,
      maxRetries: consumer.max_retries ?? 2,
      deadLetterQueue: consumer.dead_letter_queue,
      retryDelay: consumer.retry_delay ?? 0,
    };
  });

  const declaredVars = Object.keys(toml.vars ?? {});
  const vars = { ...(toml.vars ?? {}), ...(overrides.vars ?? {}) };

  let assets;
  if (toml.assets !== undefined) {
    const { directory, binding, html_handling, not_found_handling, run_worker_first } = toml.assets;
    if (typeof directory !== "string" || directory === "") {
      fail("[assets] directory is missing; set it to the folder of files to serve");
    }
    const assetsDirectory = path.resolve(projectRoot, directory);
    if (!fs.statSync(assetsDirectory, { throwIfNoEntry: false })?.isDirectory()) {
      fail(`the assets directory ${assetsDirectory} does not exist`);
    }
    // The Python Worker's env is built in Node, where Miniflare's ASSETS
    // binding does not reach.
    if (binding !== undefined) {
      fail("[assets] binding is not supported by the offline runtime; remove it, or run pywrangler dev (scripts/dev)");
    }
    if (run_worker_first !== undefined && typeof run_worker_first !== "boolean") {
      fail("[assets] run_worker_first must be true or false, because the offline runtime does not support route lists");
    }
    assets = {
      directory: assetsDirectory,
      htmlHandling: html_handling,
      notFoundHandling: not_found_handling,
      runWorkerFirst: run_worker_first,
    };
  }

  return {
    name: toml.name ?? "worker",
    projectRoot,
    entryPath,
    compatibilityDate: toml.compatibility_date,
    compatibilityFlags,
    kvNamespaces,
    producers,
    consumers,
    vars,
    declaredVars,
    assets,
  };
}

/**
 * Returns one warning for each name in `varNames` that `declaredVars` (the
 * names in [vars] of `configPath`) lacks. Such a var is still set, because
 * a secret, which wrangler.toml never lists, is given the same way.
 */
export function undeclaredVarWarnings(varNames, declaredVars, configPath) {
  const file = path.basename(configPath);
  const known = declaredVars.length > 0 ? `The vars there are ${declaredVars.join(", ")}.` : `${file} has no [vars].`;
  return varNames
    .filter((name) => !declaredVars.includes(name))
    .map((name) => {
      const closest = closestName(name, declaredVars);
      const suggestion = closest === undefined ? "" : ` (did you mean ${closest}?)`;
      return `--var ${name}: no var of that name in [vars] of ${file}${suggestion}. ${known} It is set anyway, as a secret would be.`;
    });
}

// The declared name nearest to `name` in edit distance, ignoring case, if it
// is near enough to be a misspelling: at most a third of the name's letters, or 2.
function closestName(name, candidates) {
  let best;
  let bestDistance = Math.max(2, Math.floor(name.length / 3)) + 1;
  for (const candidate of candidates) {
    const distance = editDistance(name.toUpperCase(), candidate.toUpperCase());
    if (distance < bestDistance) {
      best = candidate;
      bestDistance = distance;
    }
  }
  return best;
}

// Levenshtein distance: insertions, deletions and substitutions of one character.
function editDistance(a, b) {
  let previous = Array.from({ length: b.length + 1 }, (_, index) => index);
  for (let i = 1; i <= a.length; i++) {
    const current = [i];
    for (let j = 1; j <= b.length; j++) {
      const substitution = previous[j - 1] + (a[i - 1] === b[j - 1] ? 0 : 1);
      current.push(Math.min(previous[j] + 1, current[j - 1] + 1, substitution));
    }
    previous = current;
  }
  return previous[b.length];
}
