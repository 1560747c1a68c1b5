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
 * key for anything this runtime cannot run.
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
    assets,
  };
}
