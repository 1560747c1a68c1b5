// The MessageBatch a Python Worker's queue() receives.
//
// The classes carry workerd's JS names: QueueController for the batch and
// QueueMessage for each message (MessageBatch and Message are only their
// TypeScript names). BatchResult records ack and retry calls with the rules
// of workerd v1.20260426.1 (src/workerd/api/queue.c++, QueueEventResult).
// The first of ack() and retry() on a message wins, ackAll() and retryAll()
// exclude each other, and an ignored call logs the warning workerd logs.

export class BatchResult {
  ackAll = false;
  retryBatch = { retry: false, delaySeconds: undefined };
  retries = new Map(); // message id -> delaySeconds, or undefined for the default
  explicitAcks = new Set();
  #warn;
  #closed = false;

  constructor(warn) {
    this.#warn = warn;
  }

  /**
   * Ignores every later call, as for an invocation that the platform ended:
   * its verdicts are the ones recorded up to here.
   */
  close() {
    this.#closed = true;
  }

  ack(id) {
    if (this.#closed || this.ackAll) return;
    if (this.retryBatch.retry) {
      this.#warn(
        `Received a call to ack() on message ${id} after retryAll() was already called. ` +
          "Calling ack() on a message after calling retryAll() has no effect.",
      );
    } else if (this.retries.has(id)) {
      this.#warn(
        `Received a call to ack() on message ${id} after retry() was already called. ` +
          "Calling ack() on a message after calling retry() has no effect.",
      );
    } else {
      this.explicitAcks.add(id);
    }
  }

  retry(id, options) {
    if (this.#closed) return;
    if (this.ackAll) {
      this.#warn(
        `Received a call to retry() on message ${id} after ackAll() was already called. ` +
          "Calling retry() on a message after calling ackAll() has no effect.",
      );
    } else if (this.explicitAcks.has(id)) {
      this.#warn(
        `Received a call to retry() on message ${id} after ack() was already called. ` +
          "Calling retry() on a message after calling ack() has no effect.",
      );
    } else {
      this.retries.set(id, options?.delaySeconds);
    }
  }

  retryAllMessages(options) {
    if (this.#closed) return;
    if (this.ackAll) {
      this.#warn(
        "Received a call to retryAll() after ackAll() was already called. " +
          "Calling retryAll() after calling ackAll() has no effect.",
      );
      return;
    }
    this.retryBatch = { retry: true, delaySeconds: options?.delaySeconds };
  }

  ackAllMessages() {
    if (this.#closed) return;
    if (this.retryBatch.retry) {
      this.#warn(
        "Received a call to ackAll() after retryAll() was already called. " +
          "Calling ackAll() after calling retryAll() has no effect.",
      );
      return;
    }
    this.ackAll = true;
  }

  /**
   * Returns whether message `id` goes back to the queue, and with which
   * delay (undefined means the consumer's retry_delay).
   *
   * Like Miniflare's broker, a retry recorded for the message or the batch
   * wins over ackAll(). When queue() threw, production Queues redeliver every
   * message that was not acknowledged; Miniflare's broker (miniflare
   * 4.20260426.0) redelivers the whole batch, acknowledged messages included,
   * and this runtime follows production there.
   */
  outcome(id, handlerFailed) {
    if (this.retries.has(id)) {
      return { retry: true, delaySeconds: this.retries.get(id) ?? this.retryBatch.delaySeconds };
    }
    if (this.retryBatch.retry) return { retry: true, delaySeconds: this.retryBatch.delaySeconds };
    if (handlerFailed && !this.ackAll && !this.explicitAcks.has(id)) return { retry: true, delaySeconds: undefined };
    return { retry: false };
  }
}

/** One delivered message. `delivery` contains id, timestamp (ms), body and attempts. */
export class QueueMessage {
  #delivery;
  #result;

  constructor(delivery, result) {
    this.#delivery = delivery;
    this.#result = result;
  }

  get id() {
    return this.#delivery.id;
  }

  get timestamp() {
    return new Date(this.#delivery.timestamp);
  }

  get body() {
    return this.#delivery.body;
  }

  get attempts() {
    return this.#delivery.attempts;
  }

  ack() {
    this.#result.ack(this.id);
  }

  retry(options) {
    this.#result.retry(this.id, options);
  }
}

/** A batch of messages from one queue. */
export class QueueController {
  #queue;
  #messages;
  #metadata;
  #result;

  constructor(queue, messages, metadata, result) {
    this.#queue = queue;
    this.#messages = messages;
    this.#metadata = metadata;
    this.#result = result;
  }

  get queue() {
    return this.#queue;
  }

  get messages() {
    return this.#messages;
  }

  get metadata() {
    return this.#metadata;
  }

  ackAll() {
    this.#result.ackAllMessages();
  }

  retryAll(options) {
    this.#result.retryAllMessages(options);
  }
}
