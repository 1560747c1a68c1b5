// CPU and wall time of POST /jobs and GET /jobs/:id, each request a direct
// call of the Python Worker's fetch handler in this process, next to the
// same binding calls made from JavaScript alone.
//
// Pyodide runs Python on Node's main thread, so process.cpuUsage() taken
// around one awaited call covers the Python code, the SDK's conversions, and
// the Node side of Miniflare's KV and queue calls. Other threads of this
// process (V8's garbage collector, libuv) count too. The workerd process
// that stores KV and runs the queue broker does not. The runtime for this
// part runs no queue consumer, so no batch runs between the timed calls.

import { percentile } from "./stats.mjs";

// Calls made before the timed ones, so that first-call costs (lazy imports,
// JIT warm-up) stay out of the figures.
export const WARMUP_REQUESTS = 20;
const RECORD_TTL_SECONDS = 24 * 60 * 60;

/**
 * Times `count` POST /jobs, then `count` GET /jobs/:id of the jobs just
 * created, then the binding calls each of them makes (a KV put and a queue
 * send, a KV get) from JavaScript without the Worker.
 */
export async function measureRequests(runtime, { count }) {
  const created = [];
  const post = await timeCalls(count, async (index) => {
    const body = JSON.stringify({ type: index % 2 === 0 ? "resize" : "fetch", target: `https://example.com/images/${index}.png` });
    const request = new Request(new URL("/jobs", runtime.url), {
      method: "POST",
      headers: { "content-type": "application/json", "content-length": String(Buffer.byteLength(body)) },
      body,
    });
    return () => runtime.worker.fetch(request);
  }, async (response) => {
    if (response.status !== 201) throw new Error(`POST /jobs returned ${response.status}: ${await response.text()}`);
    created.push((await response.json()).id);
  });

  const get = await timeCalls(count, async (index) => {
    const request = new Request(new URL(`/jobs/${created[index % created.length]}`, runtime.url));
    return () => runtime.worker.fetch(request);
  }, async (response) => {
    if (response.status !== 200) throw new Error(`GET /jobs/:id returned ${response.status}: ${await response.text()}`);
    await response.arrayBuffer();
  });

  // A record and a message body as POST /jobs made them, sent again under
  // keys of their own, so that the records of the jobs stay as they are.
  const kv = runtime.kv.JOBS;
  const queue = runtime.queues.JOBS_QUEUE;
  const sample = await kv.getWithMetadata(`job:${created[0]}`);
  const messageBody = runtime.sentBodies[0];
  const putAndSend = await timeCalls(count, async (index) => async () => {
    await kv.put(`bench:${index}`, sample.value, { expirationTtl: RECORD_TTL_SECONDS, metadata: sample.metadata });
    await queue.send(messageBody);
  });
  const kvGet = await timeCalls(count, async (index) => () => kv.get(`job:${created[index % created.length]}`));

  return { post_jobs: post, get_job: get, kv_put_and_queue_send: putAndSend, kv_get: kvGet };
}

// Runs WARMUP_REQUESTS + count calls one after another and times each.
// `prepare(index)` returns the call to time; it and `check(result)` run
// outside the timed span.
async function timeCalls(count, prepare, check = async () => {}) {
  const cpuMs = [];
  const wallMs = [];
  for (let index = 0; index < WARMUP_REQUESTS + count; index += 1) {
    const call = await prepare(index);
    const cpuBefore = process.cpuUsage();
    const started = performance.now();
    const result = await call();
    const wall = performance.now() - started;
    const cpu = process.cpuUsage(cpuBefore);
    await check(result);
    if (index < WARMUP_REQUESTS) continue;
    wallMs.push(wall);
    cpuMs.push((cpu.user + cpu.system) / 1000);
  }
  return {
    n: count,
    cpu_ms: { p50: percentile(cpuMs, 50), p99: percentile(cpuMs, 99) },
    wall_ms: { p50: percentile(wallMs, 50), p99: percentile(wallMs, 99) },
  };
}
