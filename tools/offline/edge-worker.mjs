// Runs inside Miniflare's workerd under the Worker's name from wrangler.toml,
// so the HTTP port and the queue consumers are the platform's own. It does no
// work itself: it hands every request and every batch to the Node process,
// where the Python Worker runs in Pyodide, through two service bindings.

import { Buffer } from "node:buffer";

export default {
  async fetch(request, env) {
    return env.OFFLINE_FETCH.fetch(request);
  },

  async queue(batch, env) {
    const delivery = {
      queue: batch.queue,
      metadata: batch.metadata,
      messages: batch.messages.map((message) => ({
        id: message.id,
        attempts: message.attempts,
        // The runtime's producer sends every message as "bytes": an envelope
        // around the Worker's body.
        envelope: Buffer.from(message.body).toString("base64"),
      })),
    };
    // The host name is never resolved: a service binding calls its target directly.
    const response = await env.OFFLINE_QUEUE.fetch("http://offline-runtime/queue", {
      method: "POST",
      body: JSON.stringify(delivery),
    });
    if (!response.ok) {
      // The broker then redelivers the whole batch.
      throw new Error(`the offline runtime failed to run a batch from ${batch.queue}: ${await response.text()}`);
    }

    const { retries } = await response.json();
    for (const message of batch.messages) {
      if (Object.hasOwn(retries, message.id)) {
        message.retry({ delaySeconds: retries[message.id] });
      } else {
        message.ack();
      }
    }
  },
};
