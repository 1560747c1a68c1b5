// Bindings that the benchmark hands to the Worker in place of the offline
// runtime's own (through startRuntime's wrapBinding), so that every KV
// operation and every queue send the Worker makes is seen where it happens.
//
// The Workers SDK wraps a binding, and converts Python dicts passed to it,
// only when the binding's JS constructor name is workerd's, so each class
// here takes that name.

/** KV operations by the kinds that Cloudflare prices separately. */
export const KV_KINDS = ["reads", "writes", "lists", "deletes"];

export function emptyCounts() {
  return { reads: 0, writes: 0, lists: 0, deletes: 0 };
}

/**
 * A KV namespace that reports each operation to `onOperation({kind, key,
 * value})` and then delegates to `inner`. `key` is undefined for a list,
 * `value` is set for a write.
 */
export class CountingKvNamespace {
  #inner;
  #onOperation;

  constructor(inner, onOperation) {
    this.#inner = inner;
    this.#onOperation = onOperation;
  }

  get(key, options) {
    this.#onOperation({ kind: "reads", key });
    return this.#inner.get(key, options);
  }

  getWithMetadata(key, options) {
    this.#onOperation({ kind: "reads", key });
    return this.#inner.getWithMetadata(key, options);
  }

  put(key, value, options) {
    this.#onOperation({ kind: "writes", key, value, options });
    return this.#inner.put(key, value, options);
  }

  list(options) {
    this.#onOperation({ kind: "lists", key: undefined });
    return this.#inner.list(options);
  }

  delete(key) {
    this.#onOperation({ kind: "deletes", key });
    return this.#inner.delete(key);
  }
}
Object.defineProperty(CountingKvNamespace, "name", { value: "KvNamespace" });

/** A queue producer that reports each message body to `onSend(body)`, then sends it through `inner`. */
export class RecordingQueue {
  #inner;
  #onSend;

  constructor(inner, onSend) {
    this.#inner = inner;
    this.#onSend = onSend;
  }

  send(body, options) {
    this.#onSend(body);
    return this.#inner.send(body, options);
  }

  sendBatch(messages, options) {
    const list = Array.from(messages);
    for (const message of list) this.#onSend(message.body);
    return this.#inner.sendBatch(list, options);
  }
}
Object.defineProperty(RecordingQueue, "name", { value: "WorkerQueue" });

/** Running totals of KV operations, with snapshots to take the difference around a call. */
export class KvTally {
  totals = emptyCounts();
  #byKey = new Map();

  record({ kind, key }) {
    this.totals[kind] += 1;
    if (key === undefined) return;
    let counts = this.#byKey.get(key);
    if (counts === undefined) this.#byKey.set(key, (counts = emptyCounts()));
    counts[kind] += 1;
  }

  /** Returns the counts of operations on `key`, all zero when there were none. */
  forKey(key) {
    return { ...(this.#byKey.get(key) ?? emptyCounts()) };
  }

  snapshot() {
    return { ...this.totals };
  }

  /** Returns the operations made since `snapshot` was taken. */
  since(snapshot) {
    return Object.fromEntries(KV_KINDS.map((kind) => [kind, this.totals[kind] - snapshot[kind]]));
  }
}
