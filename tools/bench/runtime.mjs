// Starts the offline runtime in this process for one part of the benchmark,
// with its KV bindings counted and its queue sends recorded.

import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { startRuntime } from "../offline/runtime.mjs";
import { CountingKvNamespace, KvTally, RecordingQueue } from "./bindings.mjs";

/**
 * Starts the Worker of `config` on a free 127.0.0.1 port with a fresh state
 * folder and the vars in `vars` on top of wrangler.toml's.
 *
 * With `consumers: false` the runtime runs no queue consumer, so no batch
 * runs in between the requests being timed. A send still reaches Miniflare's
 * broker, which then returns at once without storing the message (miniflare
 * 4.20260426.0).
 *
 * `onKvOperation` is called with every KV operation of the Worker. Resolves to {url,
 * worker, tally, kv, queues, sentBodies, stop}: `kv` and `queues` map each
 * binding name to the wrapped binding the Worker uses, and `sentBodies`
 * lists the body of every queue message sent, oldest first.
 */
export async function startBenchRuntime(config, { vars = {}, consumers = true, onKvOperation } = {}) {
  const persistDir = fs.mkdtempSync(path.join(os.tmpdir(), "queue-job-bench-"));
  const tally = new KvTally();
  const kv = {};
  const queues = {};
  const sentBodies = [];
  const kvBindings = new Set(config.kvNamespaces.map((namespace) => namespace.binding));

  const wrapBinding = (name, binding) => {
    if (kvBindings.has(name)) {
      kv[name] = new CountingKvNamespace(binding, (operation) => {
        tally.record(operation);
        onKvOperation?.(operation);
      });
      return kv[name];
    }
    queues[name] = new RecordingQueue(binding, (body) => sentBodies.push(body));
    return queues[name];
  };

  const benchConfig = {
    ...config,
    vars: { ...config.vars, ...vars },
    consumers: consumers ? config.consumers : [],
  };
  let runtime;
  try {
    runtime = await startRuntime({ config: benchConfig, port: 0, persistDir, wrapBinding });
  } catch (error) {
    fs.rmSync(persistDir, { recursive: true, force: true });
    throw error;
  }

  return {
    url: runtime.url,
    worker: runtime.worker,
    tally,
    kv,
    queues,
    sentBodies,
    async stop() {
      await runtime.stop();
      fs.rmSync(persistDir, { recursive: true, force: true });
    },
  };
}
