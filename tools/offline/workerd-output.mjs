// workerd's stdout and stderr, which Miniflare would print line by line as
// they come. Lines written while workerd starts are held back until it is
// ready. A start that fails on a port in use prints a kj::Exception with a
// stack of addresses, and Miniflare's own error already names the address
// and the --port option.

import { once } from "node:events";
import readline from "node:readline";
import { setTimeout as sleep } from "node:timers/promises";

export class WorkerdOutput {
  #held = [];
  #starting = true;
  #closed = Promise.resolve();

  /** Reads workerd's stdout and stderr line by line, as Miniflare's handleRuntimeStdio option. */
  handle = (stdout, stderr) => {
    this.#closed = Promise.all([this.#follow(stdout, console.log), this.#follow(stderr, console.error)]);
  };

  /** Prints the held lines, and from now on every line as it comes. */
  started() {
    this.#starting = false;
    for (const { print, line } of this.#held.splice(0)) print(line);
  }

  /**
   * Returns the held lines of a start that failed, once workerd has closed
   * its streams or after `timeoutMs`. Later lines are still held.
   */
  async heldLines(timeoutMs) {
    await Promise.race([this.#closed, sleep(timeoutMs, undefined, { ref: false })]);
    return this.#held.map(({ line }) => line);
  }

  #follow(stream, print) {
    const lines = readline.createInterface({ input: stream, crlfDelay: Infinity });
    lines.on("line", (line) => {
      if (this.#starting) this.#held.push({ print, line });
      else print(line);
    });
    return once(lines, "close");
  }
}
