// One batch of queue messages run by the Worker's real consumer, which runs
// a batch's messages concurrently, against the same messages run one at a
// time, as a consumer that awaits each message in turn would.
//
// Both modes call the Python queue handler in this process with batches
// built as the offline runtime builds them: one call with all messages, then
// one call per message. Both start from the same KV records: before each
// mode, every job's record is put back as POST /jobs wrote it, so each
// message runs attempt 1 of a queued job, with the same outcome, in both.

import { BatchResult, QueueController, QueueMessage } from "../offline/queue-batch.mjs";
import { decodeQueueMessage, encodeQueueMessage } from "../offline/queue-messages.mjs";
import { median, round } from "./stats.mjs";

const KEY_PREFIX = "job:";
// The store writes a key at most once a second and learns the last write
// from the record's updatedAt. Waiting this long after the enqueue writes
// keeps that spacing from delaying the first write of either mode.
const AFTER_ENQUEUE_MS = 1100;

/**
 * Runs `size` jobs concurrently and one at a time, `rounds` times, and
 * returns wall and CPU time of each mode (medians over the rounds) and their
 * ratio. The runtime must run no queue consumer of its own.
 */
export async function measureBatchConcurrency(runtime, { queue, size, rounds, workDurationMs }) {
  const jobs = [];
  for (let index = 0; index < size; index += 1) {
    jobs.push(await createJob(runtime, index));
  }
  await new Promise((resolve) => setTimeout(resolve, AFTER_ENQUEUE_MS));

  const modes = { concurrent: [], one_at_a_time: [] };
  const retried = { concurrent: undefined, one_at_a_time: undefined };
  for (let pass = 0; pass < rounds; pass += 1) {
    for (const mode of Object.keys(modes)) {
      await restoreRecords(runtime, jobs);
      const batches = mode === "concurrent" ? [jobs] : jobs.map((job) => [job]);

      const cpuBefore = process.cpuUsage();
      const started = performance.now();
      const results = [];
      for (const batch of batches) results.push(await runBatch(runtime.worker, queue, batch));
      const wallMs = performance.now() - started;
      const cpu = process.cpuUsage(cpuBefore);

      modes[mode].push({ wallMs, cpuMs: (cpu.user + cpu.system) / 1000 });
      retried[mode] = results.flatMap((result) => [...result.retries.keys()]).sort().join(",");
    }
  }

  const summary = Object.fromEntries(
    Object.entries(modes).map(([mode, samples]) => [
      mode,
      {
        wall_ms: median(samples.map((sample) => sample.wallMs)),
        cpu_ms: median(samples.map((sample) => sample.cpuMs)),
        wall_ms_rounds: samples.map((sample) => round(sample.wallMs)),
      },
    ]),
  );
  return {
    messages: size,
    rounds,
    work_duration_ms: workDurationMs,
    ...summary,
    // Each message has one outcome whichever way it runs, so both modes must
    // have retried the same messages; false would make the ratio unfair.
    same_outcomes: retried.concurrent === retried.one_at_a_time,
    retried_messages: retried.concurrent === "" ? 0 : retried.concurrent.split(",").length,
    wall_ratio: round(summary.one_at_a_time.wall_ms / summary.concurrent.wall_ms),
  };
}

// Creates a job through the Worker's fetch handler and keeps its queue
// message body and the record POST /jobs stored.
async function createJob(runtime, index) {
  const sentBefore = runtime.sentBodies.length;
  const response = await runtime.worker.fetch(
    new Request(new URL("/jobs", runtime.url), {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({ type: "resize", target: `https://example.com/batch/${index}.png` }),
    }),
  );
  if (response.status !== 201) throw new Error(`POST /jobs returned ${response.status}: ${await response.text()}`);
  const { id } = await response.json();
  if (runtime.sentBodies.length !== sentBefore + 1) throw new Error(`POST /jobs for job ${id} sent no queue message`);

  const kv = runtime.kv.JOBS;
  const stored = await kv.getWithMetadata(KEY_PREFIX + id);
  return { id, messageId: `bench-message-${index}`, body: runtime.sentBodies.at(-1), stored };
}

async function restoreRecords(runtime, jobs) {
  for (const { id, stored } of jobs) {
    await runtime.kv.JOBS.put(KEY_PREFIX + id, stored.value, { metadata: stored.metadata, expirationTtl: 24 * 60 * 60 });
  }
}

// Builds the MessageBatch as the offline runtime's queue consumer does, each
// message on its first delivery, and runs the Worker's queue handler on it.
async function runBatch(worker, queue, jobs) {
  const result = new BatchResult((warning) => console.log(`[bench] ${warning}`));
  const messages = jobs.map(
    (job) =>
      new QueueMessage(
        {
          id: job.messageId,
          timestamp: Date.now(),
          // The compatibility date turns on queues_json_messages, so a body
          // travels as JSON.
          body: decodeQueueMessage(encodeQueueMessage(job.body, "json")),
          attempts: 1,
        },
        result,
      ),
  );
  await worker.queue(new QueueController(queue, messages, {}, result));
  return result;
}
