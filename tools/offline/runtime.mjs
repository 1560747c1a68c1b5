// Wires the pieces together: Miniflare for HTTP, KV and the queue broker,
// Pyodide for the Worker, and the queue journal for messages across restarts.

import path from "node:path";
import { Log, LogLevel } from "miniflare";
import { KvNamespace, WorkerQueue } from "./bindings.mjs";
import { handleFetch } from "./fetch-bridge.mjs";
import { FaultInjector } from "./faults.mjs";
import { startPlatform } from "./platform.mjs";
import { loadInterpreter } from "./interpreter.mjs";
import { PythonWorker } from "./python.mjs";
import { QueueConsumer } from "./queue-consumer.mjs";
import { QueueJournal } from "./queue-journal.mjs";
import { findWorkerModules, findWorkersSdk } from "./sdk.mjs";

/**
 * Starts the Worker of `config` (from loadWorkerConfig) on 127.0.0.1:`port`
 * with state under `persistDir`. Resolves once it accepts requests, to
 * {url, log, worker, stop}, where `worker` is the PythonWorker, whose
 * handlers a benchmark can call in-process.
 *
 * `wrapBinding(name, binding)`, when given, returns the object the Worker
 * gets for each KV and queue producer binding, for example one that counts
 * calls. The SDK wraps a binding only when its JS constructor name is
 * workerd's ("KvNamespace", "WorkerQueue"), so the returned object needs it.
 *
 * `faults` ({rates, seed}, from parseFaultOptions of faults.mjs) turns on
 * fault injection.
 */
export async function startRuntime({ config, port, persistDir, wrapBinding = (name, binding) => binding, faults: faultOptions }) {
  const log = new Log(LogLevel.INFO, { prefix: "offline" });
  const faults = new FaultInjector(faultOptions, log);
  const sdk = findWorkersSdk(config.projectRoot);
  const bundleRoot = path.dirname(config.entryPath);
  const modules = findWorkerModules(bundleRoot);
  const mainModule = path.basename(config.entryPath, ".py");
  const journal = new QueueJournal(path.join(persistDir, "v3", "offline-queues", "journal.jsonl"), log);

  // Requests and batches that arrive before the Worker is imported wait for it.
  let workerReady;
  const worker = new Promise((resolve, reject) => (workerReady = { resolve, reject }));
  worker.catch(() => {}); // a failed start is reported by the await below
  let consumer;

  const interpreter = loadInterpreter(log);
  interpreter.catch(() => {});
  const platform = await startPlatform({
    config,
    host: "127.0.0.1",
    port,
    persistDir,
    // Miniflare's own warnings, such as a message moved to a dead-letter
    // queue. The runtime logs requests and batches itself.
    log: new Log(LogLevel.WARN, { prefix: "offline" }),
    onFetch: (request) => handleFetch(request, worker, log),
    onQueue: async (request) => {
      try {
        const verdicts = await consumer.deliver(await request.json(), async (batch, invocation) =>
          (await worker).queue(batch, invocation && makeEnv(invocation)),
        );
        return Response.json(verdicts);
      } catch (error) {
        // The edge worker then throws, and the broker redelivers the batch.
        log.error(`running a queue batch failed: ${error?.stack ?? error}`);
        return new Response(String(error?.message ?? error), { status: 500 });
      }
    },
  });

  // The bindings and vars of one invocation. Only a queue invocation that
  // the consumer-crash fault may stop gets bindings of its own.
  const makeEnv = (invocation) => {
    const hooks = faults.enabled ? faults.hooksFor(invocation) : undefined;
    const env = { ...config.vars };
    for (const [binding, namespace] of Object.entries(platform.kvNamespaces)) {
      env[binding] = wrapBinding(binding, new KvNamespace(namespace, hooks));
    }
    for (const producer of config.producers) {
      const defaults = {
        contentType: platform.flags.queues_json_messages ? "json" : "v8",
        deliveryDelay: producer.deliveryDelay,
      };
      const queue = new WorkerQueue(producer.queue, platform.producers[producer.binding], journal, defaults, hooks);
      env[producer.binding] = wrapBinding(producer.binding, queue);
    }
    return env;
  };

  try {
    const env = makeEnv(undefined);
    if (faults.enabled) log.warn(`fault injection on: ${faults.describe()}`);
    consumer = new QueueConsumer({
      config,
      journal,
      log,
      sendToQueue: (queueName, envelope, delaySeconds) =>
        platform.queueSenders[queueName].send(envelope, { contentType: "bytes", delaySeconds }),
      faults: faults.enabled ? faults : undefined,
    });

    const pythonWorker = await PythonWorker.start({
      pyodide: await interpreter,
      sdk,
      bundleRoot,
      modules,
      mainModule,
      flags: platform.flags,
      env,
      log,
    });
    workerReady.resolve(pythonWorker);

    const replayed = await consumer.replayJournal();
    if (replayed > 0) log.info(`queued ${replayed} unacknowledged messages again from ${persistDir}`);
  } catch (error) {
    workerReady.reject(error);
    await platform.mf.dispose();
    throw error;
  }

  return {
    url: platform.url,
    log,
    worker: await worker,
    stop: () => platform.mf.dispose(),
  };
}
