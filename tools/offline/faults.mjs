// Fault injection for reliability tests: KV and queue producer failures with
// the platform's error messages, duplicate deliveries, and a queue consumer
// that stops between two KV writes. Every fault is off unless its --fault-*
// option gives it a rate above 0.
//
// Decisions come from SHA-256 over (seed, fault, call number), one sequence
// per fault, so a seed always gives the same decisions in the same order and
// turning one fault on does not change the decisions of another. Which call
// each decision lands on still depends on the order in which concurrent
// requests and batches reach the runtime.

import { createHash } from "node:crypto";

/** Every fault, with the text `--help` shows for its --fault-<name> RATE option. */
export const FAULTS = {
  "kv-write-429": "KV put and delete reject with 429 Too Many Requests; nothing is written",
  "kv-write-500": "KV put and delete reject with 500 Internal Server Error; nothing is written",
  "kv-read": "KV get and list reject with 500 Internal Server Error",
  "queue-send": "queue send and sendBatch reject with Internal Server Error; nothing is sent",
  "redeliver": "an acknowledged message is delivered once more, with the same attempts count",
  "consumer-crash": "queue() stops for good right after a KV put that records status \"processing\"",
};

// The messages that workerd v1.20260426.1 gives the Error it throws for an
// HTTP error from KV (src/workerd/api/kv.c++, checkForErrorStatus, which list
// calls with "GET" too) and from the queue broker (src/workerd/api/queue.c++).
// src/jobqueue/store.py recognises a 429 by this message.
const KV_ERRORS = {
  429: "429 Too Many Requests",
  500: "500 Internal Server Error",
};
const KV_ERROR_METHOD = { GET: "GET", LIST: "GET", PUT: "PUT", DELETE: "DELETE" };
const QUEUE_ERROR_STATUS = "Internal Server Error";

// The result of every call that a stopped invocation makes. It never
// settles, because the isolate that would receive the result is gone.
const NEVER = new Promise(() => {});

/**
 * Reads the --fault-* options. `values` maps an option name without the
 * leading dashes to its string value, as node:util parseArgs returns them.
 * Returns {rates: {fault: rate}, seed}; throws an Error naming the option
 * when a rate is not a number from 0 to 1 or the seed is not an integer.
 */
export function parseFaultOptions(values) {
  const rates = {};
  for (const fault of Object.keys(FAULTS)) {
    const raw = values[`fault-${fault}`];
    if (raw === undefined) continue;
    const rate = Number(raw);
    if (raw.trim() === "" || !Number.isFinite(rate) || rate < 0 || rate > 1) {
      throw new Error(`--fault-${fault} must be a number from 0 to 1, got ${raw}`);
    }
    rates[fault] = rate;
  }

  const rawSeed = values["fault-seed"] ?? "1";
  if (!/^-?[0-9]+$/.test(rawSeed.trim())) throw new Error(`--fault-seed must be an integer, got ${rawSeed}`);
  return { rates, seed: Number(rawSeed) };
}

export class FaultInjector {
  #rates;
  #seed;
  #log;
  #calls = new Map(); // fault -> decisions made so far

  /** `rates` maps fault names of FAULTS to a rate from 0 to 1; `log` is a Miniflare Log. */
  constructor({ rates = {}, seed = 1 } = {}, log) {
    for (const fault of Object.keys(rates)) {
      if (!Object.hasOwn(FAULTS, fault)) throw new Error(`unknown fault ${fault}; known faults: ${Object.keys(FAULTS).join(", ")}`);
    }
    this.#rates = rates;
    this.#seed = seed;
    this.#log = log;
  }

  get enabled() {
    return Object.values(this.#rates).some((rate) => rate > 0);
  }

  /** Returns a line for the start-up log, such as "kv-read at 0.1, redeliver at 0.2 (seed 1)". */
  describe() {
    const active = Object.entries(this.#rates).filter(([, rate]) => rate > 0);
    return `${active.map(([fault, rate]) => `${fault} at ${rate}`).join(", ")} (seed ${this.#seed})`;
  }

  /**
   * Starts one queue() invocation that the consumer-crash fault may stop.
   * Returns undefined when that fault is off, so that batches run on the
   * shared bindings. `onStop` runs synchronously at the moment of the stop.
   */
  startInvocation(queue, onStop) {
    if (!(this.#rates["consumer-crash"] > 0)) return undefined;
    return new Invocation(queue, onStop);
  }

  /**
   * Returns the hooks that the bindings of `invocation` call (undefined for
   * fetch, which nothing stops): kvCall(method, key, operation, options) and
   * queueSend(method, operation).
   */
  hooksFor(invocation) {
    return {
      kvCall: (method, key, operation, options) => this.#kvCall(invocation, method, key, operation, options),
      queueSend: (method, operation) => this.#queueSend(invocation, method, operation),
    };
  }

  /** Decides whether message `messageId`, just acknowledged, is delivered once more. */
  redeliverAfterAck(queue, messageId) {
    if (!this.#decide("redeliver")) return false;
    this.#report("redeliver", `message ${messageId} on ${queue} will be delivered again after its ack`);
    return true;
  }

  async #kvCall(invocation, method, key, operation, options) {
    if (invocation?.stopped) return NEVER;

    const write = method === "PUT" || method === "DELETE";
    const faults = write ? ["kv-write-429", "kv-write-500"] : ["kv-read"];
    for (const fault of faults) {
      if (!this.#decide(fault)) continue;
      const status = fault === "kv-write-429" ? KV_ERRORS[429] : KV_ERRORS[500];
      const message = `KV ${KV_ERROR_METHOD[method]} failed: ${status}`;
      this.#report(fault, `${method} ${key} rejected with "${message}"`);
      throw new Error(message);
    }

    const result = await operation();
    // The isolate stopped while this call was under way, so its result is lost.
    if (invocation?.stopped) return NEVER;

    if (invocation !== undefined && method === "PUT" && options?.metadata?.status === "processing") {
      if (this.#decide("consumer-crash")) {
        this.#report("consumer-crash", `queue() for ${invocation.queue} stopped right after PUT ${key} (status processing)`);
        invocation.stop();
        return NEVER;
      }
    }
    return result;
  }

  async #queueSend(invocation, method, operation) {
    if (invocation?.stopped) return NEVER;
    if (this.#decide("queue-send")) {
      const message = `Queue ${method} failed: ${QUEUE_ERROR_STATUS}`;
      this.#report("queue-send", `${method} rejected with "${message}"`);
      throw new Error(message);
    }
    const result = await operation();
    return invocation?.stopped ? NEVER : result;
  }

  #decide(fault) {
    const rate = this.#rates[fault] ?? 0;
    if (rate <= 0) return false;
    const call = this.#calls.get(fault) ?? 0;
    this.#calls.set(fault, call + 1);
    const digest = createHash("sha256").update(`${this.#seed}:${fault}:${call}`).digest();
    return digest.readUInt32BE(0) / 2 ** 32 < rate;
  }

  // tools/reliability counts these lines by fault name, so their start stays fixed.
  #report(fault, details) {
    this.#log.warn(`injected fault ${fault}: ${details}`);
  }
}

/**
 * One queue() invocation, which the consumer-crash fault can stop.
 *
 * A stop stands for the platform ending the invocation abruptly (exceeded
 * CPU or memory limit, a machine going away). workerd v1.20260426.1 then
 * reports the event as failed but keeps the ack() and retry() calls made so
 * far (src/workerd/api/queue.c++, QueueCustomEventImpl), so the broker
 * redelivers every other message of the batch. The runtime cannot interrupt
 * Python mid-statement, so it gets the same effect from the outside. It
 * closes the batch's verdicts at the stop. Every later binding call of the
 * invocation returns a promise that never settles, so the Python code makes
 * no further write. The suspended coroutines stay in memory until the
 * runtime exits.
 */
class Invocation {
  stopped = false;
  /** Resolves when the invocation stops. */
  whenStopped;
  queue;
  #resolveStopped;
  #onStop;

  constructor(queue, onStop) {
    this.queue = queue;
    this.#onStop = onStop;
    this.whenStopped = new Promise((resolve) => (this.#resolveStopped = resolve));
  }

  stop() {
    if (this.stopped) return;
    this.stopped = true;
    this.#onStop?.();
    this.#resolveStopped();
  }
}
