// The objects the Python Worker receives as `env` bindings and as `ctx`.
//
// The Workers SDK's _EnvWrapper (workers/rpc.py) wraps a binding only when
// its JS constructor name is in its list ("KvNamespace", "WorkerQueue", ...),
// and that wrapper converts Python dicts passed as options into JS objects.
// So each binding here is a class named as workerd names it, which delegates
// to Miniflare's real implementation.

import { randomBytes } from "node:crypto";
import { encodeQueueMessage, sealEnvelope } from "./queue-messages.mjs";

/**
 * A Workers KV namespace, backed by Miniflare's local KV. Every call goes
 * through `faults`, the fault injection hooks of faults.mjs, when given.
 */
export class KvNamespace {
  #namespace;
  #faults;

  constructor(namespace, faults = undefined) {
    this.#namespace = namespace;
    this.#faults = faults;
  }

  get(key, options) {
    return this.#call("GET", key, () => this.#namespace.get(key, options));
  }

  getWithMetadata(key, options) {
    return this.#call("GET", key, () => this.#namespace.getWithMetadata(key, options));
  }

  put(key, value, options) {
    return this.#call("PUT", key, () => this.#namespace.put(key, value, options), options);
  }

  list(options) {
    return this.#call("LIST", options?.prefix ?? "", () => this.#namespace.list(options));
  }

  delete(key) {
    return this.#call("DELETE", key, () => this.#namespace.delete(key));
  }

  #call(method, key, operation, options) {
    if (this.#faults === undefined) return operation();
    return this.#faults.kvCall(method, key, operation, options);
  }
}

/**
 * A Queue producer binding.
 *
 * Each message is written to the runtime's queue journal first, so that it
 * survives a restart although the broker keeps messages in memory only. Then
 * it goes to Miniflare's queue broker through the real producer, in an
 * envelope that also carries the message's id and timestamp.
 */
export class WorkerQueue {
  #queueName;
  #producer;
  #journal;
  #defaults;
  #faults;

  /**
   * `defaults.contentType` is the serialisation a send without contentType
   * uses ("json" when the compatibility flag queues_json_messages is on, as
   * it is from 2024-03-18). `defaults.deliveryDelay` is the producer's
   * delivery_delay in seconds. `faults` is as for KvNamespace.
   */
  constructor(queueName, producer, journal, defaults, faults = undefined) {
    this.#queueName = queueName;
    this.#producer = producer;
    this.#journal = journal;
    this.#defaults = defaults;
    this.#faults = faults;
  }

  async send(body, options = {}) {
    if (this.#faults !== undefined) return this.#faults.queueSend("send", () => this.#send(body, options));
    return this.#send(body, options);
  }

  async sendBatch(messages, options = {}) {
    if (this.#faults !== undefined) return this.#faults.queueSend("sendBatch", () => this.#sendBatch(messages, options));
    return this.#sendBatch(messages, options);
  }

  async #send(body, options) {
    const message = this.#prepare(body, options.contentType, options.delaySeconds);
    return this.#forgetOnFailure([message], () =>
      this.#producer.send(message.envelope, { contentType: "bytes", delaySeconds: message.delaySeconds }),
    );
  }

  async #sendBatch(messages, options) {
    const prepared = Array.from(messages, (message) =>
      this.#prepare(message.body, message.contentType, message.delaySeconds ?? options.delaySeconds),
    );
    return this.#forgetOnFailure(prepared, () =>
      this.#producer.sendBatch(
        prepared.map(({ envelope, delaySeconds }) => ({ body: envelope, contentType: "bytes", delaySeconds })),
      ),
    );
  }

  // A send the broker rejected (too large, invalid delay) must not come back
  // from the journal after a restart.
  async #forgetOnFailure(prepared, send) {
    try {
      return await send();
    } catch (error) {
      for (const { id } of prepared) this.#journal.delete(id);
      throw error;
    }
  }

  #prepare(body, contentType, delaySeconds) {
    const delay = delaySeconds ?? this.#defaults.deliveryDelay ?? 0;
    const entry = {
      id: randomBytes(16).toString("hex"), // the broker's own id format
      queue: this.#queueName,
      timestamp: Date.now(),
      attempts: 0,
      availableAt: Date.now() + delay * 1000,
      payload: encodeQueueMessage(body, contentType ?? this.#defaults.contentType),
    };
    this.#journal.put(entry);
    return { id: entry.id, envelope: sealEnvelope(entry), delaySeconds: delaySeconds ?? this.#defaults.deliveryDelay };
  }
}

/**
 * The `ctx` of one event. workerd's patchWaitUntil only patches objects whose
 * toString tag is ExecutionContext, so this class has that tag.
 */
export class ExecutionContext {
  #pending = new Set();
  #onError;

  constructor(onError) {
    this.#onError = onError;
  }

  get [Symbol.toStringTag]() {
    return "ExecutionContext";
  }

  get props() {
    return {};
  }

  waitUntil(promise) {
    const tracked = Promise.resolve(promise)
      .catch(this.#onError)
      .finally(() => this.#pending.delete(tracked));
    this.#pending.add(tracked);
  }

  passThroughOnException() {
    // There is no origin behind the offline runtime to pass a request on to.
  }

  /** Resolves once every promise given to waitUntil so far has settled. */
  async settled() {
    while (this.#pending.size > 0) await Promise.all(this.#pending);
  }
}
