// The on-disk record of every queue message not yet acknowledged.
//
// Miniflare's queue broker keeps messages in memory only (miniflare
// 4.20260426.0, "in-memory only at the moment"), so a restart of wrangler dev
// loses every queued message. Production Queues keep them. So this runtime
// writes each message here when it is sent, and removes it once the consumer
// acknowledges it or it is dropped. At start it sends what is left to the
// broker again.
//
// The file is append-only JSON lines, one operation per line, written with a
// synchronous append: an operation survives the process being killed right
// after it, though not a crash of the machine (there is no fsync).

import fs from "node:fs";
import path from "node:path";

// Rewrite the file once it contains this many operations more than live entries.
const COMPACT_AFTER_OPERATIONS = 5000;

export class QueueJournal {
  #file;
  #entries = new Map();
  #operations = 0;

  /** Opens the journal at `file`, creating it if needed, and compacts it. */
  constructor(file, log) {
    this.#file = file;
    fs.mkdirSync(path.dirname(file), { recursive: true });
    if (fs.existsSync(file)) this.#load(log);
    this.#compact();
  }

  /** Returns the entries in the order they were first written, oldest first. */
  entries() {
    return [...this.#entries.values()];
  }

  get(id) {
    return this.#entries.get(id);
  }

  /**
   * Stores a message entry: {id, queue, timestamp, attempts, availableAt,
   * payload}. `attempts` counts deliveries started on `queue`, and
   * `availableAt` is when the broker may deliver it next (ms since epoch).
   */
  put(entry) {
    this.#entries.set(entry.id, entry);
    this.#append({ put: { ...entry, payload: Buffer.from(entry.payload).toString("base64") } });
  }

  update(id, changes) {
    const entry = this.#entries.get(id);
    if (entry !== undefined) this.put({ ...entry, ...changes });
  }

  delete(id) {
    if (this.#entries.delete(id)) this.#append({ delete: id });
  }

  #append(operation) {
    fs.appendFileSync(this.#file, JSON.stringify(operation) + "\n");
    this.#operations += 1;
    if (this.#operations > this.#entries.size + COMPACT_AFTER_OPERATIONS) this.#compact();
  }

  #load(log) {
    const lines = fs.readFileSync(this.#file, "utf8").split("\n");
    for (const [index, line] of lines.entries()) {
      if (line === "") continue;
      let operation;
      try {
        operation = JSON.parse(line);
      } catch (error) {
        // A process killed in the middle of an append leaves a partial last line.
        log.warn(`queue journal ${this.#file}: skipped unreadable line ${index + 1}: ${error.message}`);
        continue;
      }
      if (operation.put !== undefined) {
        this.#entries.set(operation.put.id, { ...operation.put, payload: Buffer.from(operation.put.payload, "base64") });
      } else if (operation.delete !== undefined) {
        this.#entries.delete(operation.delete);
      }
    }
  }

  #compact() {
    const lines = this.entries().map(
      (entry) => JSON.stringify({ put: { ...entry, payload: Buffer.from(entry.payload).toString("base64") } }) + "\n",
    );
    const temporary = `${this.#file}.tmp`;
    fs.writeFileSync(temporary, lines.join(""));
    fs.renameSync(temporary, this.#file);
    this.#operations = lines.length;
  }
}
