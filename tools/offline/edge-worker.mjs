// Runs inside Miniflare's workerd under the Worker's name from wrangler.toml,
// so the HTTP port and the queue consumers are the platform's own. It does no
// work itself: it hands every request and every batch to the Node process,
// where the Python Worker runs in Pyodide, through two service bindings.

import { Buffer } from "node:buffer";

export default {
  async fetch(request, env) {
    const hasBody = request.body !== null;
    const response = await env.OFFLINE_FETCH.fetch(forLoopback(request, env.OFFLINE_EDGE_SETTINGS));
    return hasBody ? await readUpToContentLength(response) : response;
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

// Returns `request`, or a copy that Miniflare's loopback to Node can carry.
// A method that Node cannot parse or that undici forbids goes as POST, and
// the Expect header is left out. The originals go in request.cf under
// `originalKey`, and fetch-bridge.mjs explains why each is needed.
function forLoopback(request, { methods, originalKey }) {
  const expect = request.headers.get("expect");
  const carriedAsIs = methods.includes(request.method);
  // A client can set request.cf through Miniflare's MF-CF-Blob header, so
  // a key it sent is replaced too.
  if (carriedAsIs && expect === null && request.cf?.[originalKey] === undefined) return request;

  const original = {
    method: request.method,
    expect,
    hasBody: request.body !== null,
    contentLength: request.headers.get("content-length"),
  };
  const headers = new Headers(request.headers);
  headers.delete("expect");
  return new Request(request, {
    method: carriedAsIs ? request.method : "POST",
    headers,
    cf: { ...request.cf, [originalKey]: original },
  });
}

// workerd ends a response from the loopback only once the whole request body
// has gone to Node. So a client that stops sending when an early response
// arrives (curl does, on a 413) would wait for the response's end forever.
// fetch-bridge.mjs gives such a response a Content-Length, and its body is
// read here up to that length and returned as a complete response.
async function readUpToContentLength(response) {
  const length = response.headers.get("content-length");
  // workerd decodes a gzip or br body as it reads, so the length would not match.
  if (length === null || response.headers.has("content-encoding") || response.body === null) return response;

  const reader = response.body.getReader();
  const chunks = [];
  let received = 0;
  while (received < Number(length)) {
    const { done, value } = await reader.read();
    if (done) break;
    chunks.push(value);
    received += value.byteLength;
  }
  reader.releaseLock();
  return new Response(new Blob(chunks), response);
}
