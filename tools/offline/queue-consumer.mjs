// Runs the Python Worker's queue() for each batch that Miniflare's queue
// broker delivers, and decides which messages go back to the queue.
//
// The broker does the batching, the delays and the dead-lettering; this side
// keeps the queue journal in step with it. Attempts a message had before a
// restart travel in its envelope, so `attempts` and max_retries count every
// delivery of the message, as they do in production.

import { BatchResult, QueueController, QueueMessage } from "./queue-batch.mjs";
import { decodeQueueMessage, openEnvelope, sealEnvelope } from "./queue-messages.mjs";

export class QueueConsumer {
  #config;
  #journal;
  #log;
  #sendToQueue; // (queueName, envelope, delaySeconds) => Promise
  #faults; // a FaultInjector of faults.mjs, or undefined

  constructor({ config, journal, log, sendToQueue, faults }) {
    this.#config = config;
    this.#journal = journal;
    this.#log = log;
    this.#sendToQueue = sendToQueue;
    this.#faults = faults;
  }

  /**
   * Runs one delivered batch through `runHandler(batch, invocation)` and
   * returns the verdicts for the broker: {retries: {brokerMessageId:
   * delaySeconds}}; every other message of the batch is acknowledged.
   * `invocation` is undefined unless the consumer-crash fault is on (see
   * faults.mjs); then the handler must give the Worker that invocation's
   * bindings.
   */
  async deliver({ queue, messages, metadata }, runHandler) {
    const consumer = this.#consumer(queue);
    const maxAttempts = consumer.maxRetries + 1;
    const deliveries = messages.map((message) => this.#open(queue, message));

    const result = new BatchResult((warning) => this.#log.warn(warning));
    const batch = new QueueController(
      queue,
      deliveries.map((delivery) => new QueueMessage(delivery, result)),
      metadata,
      result,
    );
    const started = performance.now();
    const invocation = this.#faults?.startInvocation(queue, () => result.close());
    let handlerFailed = false;
    try {
      const handler = runHandler(batch, invocation);
      await (invocation === undefined ? handler : Promise.race([handler, invocation.whenStopped]));
      if (invocation?.stopped) {
        handlerFailed = true;
        this.#log.error(`queue() of the Worker stopped for a batch from ${queue} (injected fault consumer-crash)`);
      }
    } catch (error) {
      handlerFailed = true;
      this.#log.error(`queue() of the Worker threw for a batch from ${queue}: ${error?.message ?? error}`);
    }

    const retries = {};
    const counts = { acked: 0, retried: 0, deadLettered: 0, dropped: 0, duplicated: 0 };
    const duplicates = [];
    for (const delivery of deliveries) {
      const outcome = result.outcome(delivery.id, handlerFailed);
      if (!outcome.retry) {
        const entry = this.#journal.get(delivery.id);
        this.#journal.delete(delivery.id);
        counts.acked += 1;
        if (entry !== undefined && this.#faults?.redeliverAfterAck(queue, delivery.id)) {
          // One delivery fewer in the envelope, because the broker counts the
          // copy's delivery as its first.
          duplicates.push({ ...entry, attempts: delivery.attempts - 1 });
          counts.duplicated += 1;
        }
        continue;
      }

      const delaySeconds = outcome.delaySeconds ?? consumer.retryDelay;
      if (delivery.attempts < maxAttempts) {
        retries[delivery.brokerId] = delaySeconds;
        this.#journal.update(delivery.id, { availableAt: Date.now() + delaySeconds * 1000 });
        counts.retried += 1;
      } else if (delivery.brokerAttempts >= maxAttempts) {
        // The broker moves or drops this one itself; the journal follows it.
        retries[delivery.brokerId] = delaySeconds;
        this.#afterLastAttempt(delivery.id, consumer, counts);
      } else {
        // Attempts from before a restart used up the limit, which the broker
        // cannot know: acknowledge it there and move it here instead.
        const target = this.#afterLastAttempt(delivery.id, consumer, counts);
        if (target !== undefined) await this.#sendToQueue(target, sealEnvelope(this.#journal.get(delivery.id)), 0);
      }
    }
    for (const duplicate of duplicates) await this.#sendToQueue(queue, sealEnvelope(duplicate), 0);

    const elapsed = Math.round(performance.now() - started);
    const labels = {
      acked: "acked",
      retried: "retried",
      deadLettered: "dead-lettered",
      dropped: "dropped",
      duplicated: "to be delivered again (injected fault redeliver)",
    };
    const details = Object.entries(counts)
      .filter(([, count]) => count > 0)
      .map(([name, count]) => `${count} ${labels[name]}`)
      .join(", ");
    this.#log.info(`QUEUE ${queue} batch of ${deliveries.length}: ${details} (${elapsed}ms)`);
    return { retries };
  }

  /**
   * Offers every journal entry to the broker again, as at start after a
   * restart. An entry whose last delivery started before the restart counts
   * that delivery, as production does for a consumer that stopped mid-batch.
   */
  async replayJournal() {
    const entries = this.#journal.entries();
    for (const entry of entries) {
      const consumer = this.#consumer(entry.queue, false);
      if (consumer === undefined) {
        this.#log.warn(`Dropped message "${entry.id}" of queue "${entry.queue}": wrangler.toml has no consumer for that queue`);
        this.#journal.delete(entry.id);
        continue;
      }
      if (entry.attempts >= consumer.maxRetries + 1) {
        const target = this.#afterLastAttempt(entry.id, consumer, {});
        if (target === undefined) continue;
      }
      const current = this.#journal.get(entry.id);
      const delaySeconds = Math.max(0, Math.ceil((current.availableAt - Date.now()) / 1000));
      await this.#sendToQueue(current.queue, sealEnvelope(current), delaySeconds);
    }
    return entries.length;
  }

  #open(queue, { id, attempts, envelope }) {
    const sealed = openEnvelope(Buffer.from(envelope, "base64"));
    // The broker sends a dead-lettered message on with a fresh count, so
    // attempts from its earlier queue do not carry over.
    const priorAttempts = sealed.queue === queue ? sealed.priorAttempts : 0;
    const delivery = {
      id: sealed.id,
      timestamp: sealed.timestamp,
      body: decodeQueueMessage(sealed.payload),
      attempts: priorAttempts + attempts,
      brokerId: id,
      brokerAttempts: attempts,
    };
    // Counted at start, so a delivery cut short by a restart still counts.
    // The put also restores an entry the journal lost, for example to a
    // journal file deleted while the runtime ran.
    const entry = this.#journal.get(delivery.id);
    this.#journal.put({
      id: delivery.id,
      queue,
      timestamp: delivery.timestamp,
      attempts: delivery.attempts,
      availableAt: entry?.availableAt ?? Date.now(),
      payload: sealed.payload,
    });
    return delivery;
  }

  /**
   * Moves the journal entry of a message that used its last attempt to the
   * dead-letter queue, or deletes it when there is none. Returns the
   * dead-letter queue's name, or undefined.
   */
  #afterLastAttempt(id, consumer, counts) {
    const target = consumer.deadLetterQueue;
    if (target !== undefined && this.#consumer(target, false) !== undefined) {
      this.#journal.update(id, { queue: target, attempts: 0, availableAt: Date.now() });
      counts.deadLettered = (counts.deadLettered ?? 0) + 1;
      return target;
    }
    // Miniflare's broker also discards a message sent to a queue without a
    // consumer, so the runtime keeps no copy either.
    const reason = target === undefined ? "it has no dead-letter queue" : `its dead-letter queue ${target} has no consumer here`;
    this.#log.warn(`Dropped message "${id}" on queue "${consumer.queue}" after ${consumer.maxRetries + 1} failed attempts: ${reason}`);
    this.#journal.delete(id);
    counts.dropped = (counts.dropped ?? 0) + 1;
    return undefined;
  }

  #consumer(queue, required = true) {
    const consumer = this.#config.consumers.find((candidate) => candidate.queue === queue);
    if (consumer === undefined && required) throw new Error(`no [[queues.consumers]] entry for queue ${queue}`);
    return consumer;
  }
}
