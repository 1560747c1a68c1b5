// The Node side of each HTTP request. The edge worker (edge-worker.mjs)
// sends the request through its OFFLINE_FETCH service binding, and
// Miniflare's loopback hands it to handleFetch. This module rebuilds the
// request as the Worker would get it in workerd, runs the Worker, and
// returns its response.
//
// The loopback is an HTTP/1.1 connection from workerd to Node's HTTP server,
// reused for later requests, so it cannot carry everything workerd accepts:
// - Node's HTTP parser (llhttp) rejects a method that is not in http.METHODS,
//   such as BAN, with 400 before the request reaches Miniflare.
// - Miniflare builds an undici Request from every request, and undici
//   7.24.8 throws for CONNECT, TRACE and TRACK, which the Fetch standard
//   forbids. Miniflare 4.20260426.0 does that outside its error handling,
//   so the TypeError stops the whole process.
// - Node's HTTP server replies to `Expect: 100-continue` with an interim
//   100 Continue, which workerd takes as the final response (status 100).
// So the edge worker sends such a request as POST, or without Expect, and
// puts the original method and Expect into request.cf under
// EDGE_WORKER_SETTINGS.originalKey.

import { METHODS, STATUS_CODES } from "node:http";

// undici's forbiddenMethods (lib/web/fetch/constants.js, undici 7.24.8).
const FETCH_FORBIDDEN_METHODS = new Set(["CONNECT", "TRACE", "TRACK"]);

// A request whose body is left unread stops being drained after this long
// without a chunk, because the client has stopped sending (curl does on an
// early error response), and its connection is closed instead.
const DRAIN_IDLE_TIMEOUT_MS = 10_000;

/** Settings of the edge worker, passed as a JSON binding: the methods the loopback carries unchanged, and the cf key. */
export const EDGE_WORKER_SETTINGS = {
  methods: METHODS.filter((method) => !FETCH_FORBIDDEN_METHODS.has(method)),
  originalKey: "offlineRuntimeOriginal",
};

/**
 * Runs `worker`'s fetch (a promise of the PythonWorker) for `incoming`, the
 * request of Miniflare's loopback, logs it through `log`, and returns the
 * response for the loopback.
 */
export async function handleFetch(incoming, worker, log) {
  const started = performance.now();
  const url = new URL(incoming.url);
  const { method, expect, hasBody, contentLength, cf } = originalRequest(incoming);

  let response;
  let body;
  if (FETCH_FORBIDDEN_METHODS.has(method)) {
    response = forbiddenMethodResponse(method);
  } else {
    const headers = new Headers(incoming.headers);
    restoreHeader(headers, "expect", expect);
    restoreHeader(headers, "content-length", contentLength);
    // An empty body leaves nothing unread on the loopback.
    const emptyOnLoopback = incoming.headers.get("content-length") === "0";
    if (hasBody && !emptyOnLoopback) body = new RequestBody(incoming.body, `${method} ${url.pathname}`, log);
    // Miniflare hands over its own Request subclass, whose constructor name
    // ("_Request") the SDK would not recognise as a Request.
    const request = new Request(incoming.url, {
      method,
      headers,
      body: hasBody ? (body?.stream ?? incoming.body) : null,
      duplex: "half",
      redirect: incoming.redirect,
    });
    if (cf !== undefined) Object.defineProperty(request, "cf", { value: cf });

    try {
      response = await (await worker).fetch(request);
    } catch (error) {
      log.error(`${method} ${url.pathname}${url.search} threw: ${error?.message ?? error}`);
      // Cloudflare reports an uncaught exception as error 1101 ("Worker threw
      // exception") with status 500; the traceback goes to the log only.
      response = new Response("error code: 1101", { status: 500, headers: { "content-type": "text/plain" } });
    }
  }

  // The Worker returned its response before it read the whole body, as for
  // the 413 of an oversized body. The rest still arrives on the loopback
  // connection, which carries the next request, so it is read and discarded.
  // The response gets a Content-Length, so that the edge worker can end it
  // without waiting for the rest of the body (readUpToContentLength).
  if (body !== undefined && !body.finished) {
    body.drain();
    response = await withContentLength(response);
  }

  const elapsed = Math.round(performance.now() - started);
  const statusText = response.statusText || STATUS_CODES[response.status] || "";
  log.info(`${method} ${url.pathname}${url.search} ${response.status} ${statusText} (${elapsed}ms)`);
  return response;
}

// The method, Expect header and body presence that the client sent, and
// request.cf without the edge worker's key.
function originalRequest(incoming) {
  const { [EDGE_WORKER_SETTINGS.originalKey]: original, ...cf } = incoming.cf ?? {};
  if (original === undefined) {
    return {
      method: incoming.method,
      expect: incoming.headers.get("expect"),
      hasBody: incoming.method !== "GET" && incoming.method !== "HEAD",
      contentLength: incoming.headers.get("content-length"),
      cf: incoming.cf,
    };
  }
  return { ...original, cf: incoming.cf === undefined ? undefined : cf };
}

function restoreHeader(headers, name, value) {
  if (value === null) headers.delete(name);
  else headers.set(name, value);
}

// 501 rather than 405, because no URL of the runtime supports the method,
// and a 405 would need an Allow header that only the Worker can fill in.
function forbiddenMethodResponse(method) {
  const message =
    `${method} is not supported by the offline runtime: Node's fetch (undici) rejects CONNECT, TRACE and TRACK, ` +
    "so the request cannot reach the Worker. Cloudflare restricts CONNECT and TRACE at its edge too.\n";
  return new Response(message, { status: 501, headers: { "content-type": "text/plain; charset=utf-8" } });
}

/**
 * The body of one request as the Worker reads it: the loopback's stream,
 * except that the Worker's cancel() reads and discards the rest instead of
 * closing the loopback connection, which Miniflare's stream would do.
 */
class RequestBody {
  #reader;
  #requestLine;
  #log;
  #draining;
  finished = false;

  constructor(source, requestLine, log) {
    this.#reader = source.getReader();
    this.#requestLine = requestLine;
    this.#log = log;
    this.stream = new ReadableStream(
      {
        pull: async (controller) => {
          const { done, value } = await this.#reader.read();
          if (done) {
            this.finished = true;
            controller.close();
          } else {
            controller.enqueue(value);
          }
        },
        cancel: () => this.drain(),
      },
      // Reads from the loopback only as the Worker reads, as workerd does.
      { highWaterMark: 0 },
    );
  }

  /** Starts reading and discarding the rest of the body in the background, unless that has started already. */
  drain() {
    this.#draining ??= this.#discardRest().catch((error) => {
      this.#log.warn(`${this.#requestLine}: discarding the rest of the request body failed: ${error?.message ?? error}`);
    });
  }

  async #discardRest() {
    while (!this.finished) {
      let timer;
      const idle = new Promise((resolve) => {
        timer = setTimeout(resolve, DRAIN_IDLE_TIMEOUT_MS, "idle");
      });
      const chunk = await Promise.race([this.#reader.read(), idle]);
      clearTimeout(timer);
      if (chunk === "idle") {
        // Closes the loopback connection, so workerd opens a new one for the next request.
        await this.#reader.cancel();
        return;
      }
      if (chunk.done) this.finished = true;
    }
  }
}

async function withContentLength(response) {
  if (response.body === null || response.headers.has("content-length")) return response;
  // NOTE: this buffers the whole response, so a Worker that streams a
  // response without reading the request body first gets it all at once.
  const content = await response.arrayBuffer();
  const headers = new Headers(response.headers);
  headers.set("content-length", String(content.byteLength));
  return new Response(content, { status: response.status, statusText: response.statusText, headers });
}
