// Starts Miniflare (the local platform inside wrangler dev) with the Worker's
// bindings and queue consumers from wrangler.toml. Miniflare serves HTTP,
// stores KV and runs the queue broker, while the Python Worker runs in Node.

import path from "node:path";
import { fileURLToPath } from "node:url";
import { Miniflare } from "miniflare";
import { EDGE_WORKER_SETTINGS } from "./fetch-bridge.mjs";
import { WorkerdOutput } from "./workerd-output.mjs";

const EDGE_WORKER = path.join(path.dirname(fileURLToPath(import.meta.url)), "edge-worker.mjs");
const PROBE_WORKER = "offline-compat-probe";
// How long a failed start waits for workerd's last output lines.
const WORKERD_EXIT_WAIT_MS = 1000;

/**
 * Starts Miniflare listening on `host`:`port` (0 picks a free port), with KV
 * stored under `persistDir`. `onFetch(request)` and `onQueue(request)` handle
 * the requests of the edge worker's service bindings. Returns the Miniflare instance, its
 * URL, the compatibility flags, and the bindings the Python Worker gets.
 *
 * When the port is in use, rejects with Miniflare's ERR_ADDRESS_IN_USE
 * error, whose `workerdOutput` contains the lines workerd printed, which
 * are then not printed.
 */
export async function startPlatform({ config, host, port, persistDir, log, onFetch, onQueue }) {
  // The python_workers flag makes workerd fetch its Pyodide bundle, which
  // this runtime replaces, so the JS workers run without it.
  const workerFlags = config.compatibilityFlags.filter((flag) => flag !== "python_workers");

  // One internal producer per consumed queue, so the runtime can send journal
  // entries back to any queue, dead-letter queues included.
  const internalProducers = Object.fromEntries(
    config.consumers.map((consumer, index) => [`OFFLINE_SEND_${index}`, { queueName: consumer.queue }]),
  );
  const declaredProducers = Object.fromEntries(
    config.producers.map((producer) => [
      producer.binding,
      { queueName: producer.queue, deliveryDelay: producer.deliveryDelay },
    ]),
  );

  const workerdOutput = new WorkerdOutput();
  const mf = new Miniflare({
    host,
    port,
    handleRuntimeStdio: workerdOutput.handle,
    // cf: false keeps Miniflare from downloading request.cf data; requests
    // get its built-in placeholder values instead.
    cf: false,
    log,
    kvPersist: path.join(persistDir, "v3", "kv"),
    workers: [
      {
        name: config.name,
        modules: true,
        scriptPath: EDGE_WORKER,
        compatibilityDate: config.compatibilityDate,
        compatibilityFlags: [...new Set([...workerFlags, "nodejs_compat"])],
        kvNamespaces: Object.fromEntries(config.kvNamespaces.map((namespace) => [namespace.binding, namespace.id])),
        queueProducers: { ...declaredProducers, ...internalProducers },
        queueConsumers: Object.fromEntries(
          config.consumers.map((consumer) => [
            consumer.queue,
            {
              maxBatchSize: consumer.maxBatchSize,
              maxBatchTimeout: consumer.maxBatchTimeout,
              maxRetries: consumer.maxRetries,
              deadLetterQueue: consumer.deadLetterQueue,
              retryDelay: consumer.retryDelay,
            },
          ]),
        ),
        serviceBindings: { OFFLINE_FETCH: onFetch, OFFLINE_QUEUE: onQueue },
        bindings: { OFFLINE_EDGE_SETTINGS: EDGE_WORKER_SETTINGS },
        // Miniflare's asset worker, as in wrangler dev: a request for a file
        // in the directory is served from it, with the directory's _headers
        // and _redirects applied (Miniflare 4.20260426.0 parses both), and
        // any other request reaches the edge worker.
        assets: config.assets && {
          directory: config.assets.directory,
          routerConfig: { has_user_worker: true, invoke_user_worker_ahead_of_assets: config.assets.runWorkerFirst },
          assetConfig: {
            html_handling: config.assets.htmlHandling,
            not_found_handling: config.assets.notFoundHandling,
          },
        },
      },
      {
        // Reports workerd's compatibility flag object for the Worker's date
        // and flags, the object that workerd gives Python as _cloudflare_compat_flags.
        name: PROBE_WORKER,
        modules: true,
        script: "export default { fetch: () => Response.json(globalThis.Cloudflare.compatibilityFlags) };",
        compatibilityDate: config.compatibilityDate,
        compatibilityFlags: workerFlags,
      },
    ],
  });

  let url;
  try {
    url = await mf.ready;
  } catch (error) {
    const lines = await workerdOutput.heldLines(WORKERD_EXIT_WAIT_MS);
    if (error?.code === "ERR_ADDRESS_IN_USE") error.workerdOutput = lines;
    else workerdOutput.started();
    throw error;
  }
  workerdOutput.started();
  const probe = await mf.getWorker(PROBE_WORKER);
  const flags = await (await probe.fetch("http://offline-runtime/")).json();
  Object.assign(flags, pythonFlags(config));

  const kvNamespaces = {};
  for (const namespace of config.kvNamespaces) {
    kvNamespaces[namespace.binding] = await mf.getKVNamespace(namespace.binding, config.name);
  }
  const producers = {};
  for (const producer of config.producers) {
    producers[producer.binding] = await mf.getQueueProducer(producer.binding, config.name);
  }
  const queueSenders = {};
  for (const [binding, { queueName }] of Object.entries(internalProducers)) {
    queueSenders[queueName] = await mf.getQueueProducer(binding, config.name);
  }

  return { mf, url, flags, kvNamespaces, producers, queueSenders };
}

// Flags that workerd turns on only for Python Workers, which the probe
// (a JS worker) cannot report. From workerd v1.20260426.1's
// src/workerd/io/compatibility-date.capnp.
function pythonFlags(config) {
  const flags = new Set(config.compatibilityFlags);
  return {
    python_workers: true,
    // Implied by python_workers on or after 2026-02-25.
    python_workflows_implicit_dependencies:
      flags.has("python_workflows_implicit_dependencies") ||
      (config.compatibilityDate >= "2026-02-25" && !flags.has("no_python_workflows_implicit_dependencies")),
  };
}
