#!/usr/bin/env node
// `npm run dev:offline -- --port 8787`: runs the Python Worker of
// wrangler.toml locally without the download that wrangler dev needs.

import "./v8-flags.mjs";
import path from "node:path";
import { parseArgs } from "node:util";
import { loadWorkerConfig, undeclaredVarWarnings } from "./config.mjs";
import { FAULTS, parseFaultOptions } from "./faults.mjs";
import { startRuntime } from "./runtime.mjs";

const HELP_COLUMN = 30;
const HELP_WIDTH = 79;

const USAGE = `Usage: npm run dev:offline -- [options]

Runs the Python Worker of wrangler.toml in Pyodide on Node, with Miniflare's
local KV and Queues, listening on 127.0.0.1 only.

Options:
  --port PORT         port to listen on; 0 picks a free one (default 8787)
  --config FILE       wrangler configuration (default wrangler.toml)
  --entry FILE        Python entry file instead of wrangler.toml's main
  --var NAME=VALUE    set a var, overriding wrangler.toml's [vars]; repeatable;
                      a NAME not in [vars] gets a warning and is set anyway
  --persist-to DIR    folder for KV and queue state (default .wrangler/state,
                      next to the configuration file)
  --debug             on a failed start, also print workerd's output and
                      the error's stack
  --help              show this text

Fault injection, for reliability tests; every fault is off by default.
RATE is the probability, from 0 to 1, that one call or message gets the fault.
${faultHelp()}`;

// One option a line, its description wrapped into a column as above.
function faultHelp() {
  const options = Object.entries(FAULTS).map(([fault, description]) => [`--fault-${fault} RATE`, description]);
  options.push(["--fault-seed N", "integer seed of the fault decisions (default 1); the same seed makes the same decisions in the same order"]);

  const lines = [];
  for (const [option, description] of options) {
    let line = `  ${option}`.padEnd(HELP_COLUMN);
    if (line.length > HELP_COLUMN) {
      lines.push(line);
      line = "".padEnd(HELP_COLUMN);
    }
    for (const word of description.split(" ")) {
      if (line.length + word.length > HELP_WIDTH && line.trim() !== "") {
        lines.push(line.trimEnd());
        line = "".padEnd(HELP_COLUMN);
      }
      line += `${word} `;
    }
    lines.push(line.trimEnd());
  }
  return lines.join("\n");
}

function parseOptions(argv) {
  const { values } = parseArgs({
    args: argv,
    options: {
      port: { type: "string", default: "8787" },
      config: { type: "string", default: "wrangler.toml" },
      entry: { type: "string" },
      var: { type: "string", multiple: true, default: [] },
      "persist-to": { type: "string" },
      debug: { type: "boolean", default: false },
      help: { type: "boolean", default: false },
      "fault-seed": { type: "string" },
      ...Object.fromEntries(Object.keys(FAULTS).map((fault) => [`fault-${fault}`, { type: "string" }])),
    },
  });
  if (values.help) {
    console.log(USAGE);
    process.exit(0);
  }

  const port = Number(values.port);
  if (!Number.isInteger(port) || port < 0 || port > 65535) {
    throw new Error(`--port must be an integer from 0 to 65535, got ${values.port}`);
  }
  const vars = {};
  for (const assignment of values.var) {
    const separator = assignment.indexOf("=");
    if (separator < 1) throw new Error(`--var must look like NAME=VALUE, got ${assignment}`);
    vars[assignment.slice(0, separator)] = assignment.slice(separator + 1);
  }
  return {
    port,
    configPath: path.resolve(values.config),
    entry: values.entry === undefined ? undefined : path.resolve(values.entry),
    vars,
    persistTo: values["persist-to"],
    debug: values.debug,
    faults: parseFaultOptions(values),
  };
}

// Miniflare's message for a port in use names the address and asks for
// another --port, so it is printed alone unless --debug is given.
function reportStartFailure(error, debug) {
  if (error?.code === "ERR_ADDRESS_IN_USE" && !debug) {
    console.error(`The offline runtime failed to start: ${error.message}`);
    return;
  }
  for (const line of error?.workerdOutput ?? []) console.error(line);
  console.error(`The offline runtime failed to start: ${error?.stack ?? error}`);
}

async function main() {
  const started = performance.now();
  let options;
  try {
    options = parseOptions(process.argv.slice(2));
  } catch (error) {
    console.error(`${error.message}\n\n${USAGE}`);
    process.exit(2);
  }

  // Nothing needs a graceful stop: the queue journal is written as it goes,
  // and Miniflare's exit hook stops its workerd when the process exits.
  // Registered before Miniflare starts, so these run before its own handlers.
  const stop = (signal) => {
    console.log(`[offline:info] ${signal} received, stopping`);
    process.exit(0);
  };
  process.once("SIGINT", stop);
  process.once("SIGTERM", stop);

  const config = loadWorkerConfig(options.configPath, { entry: options.entry, vars: options.vars });
  const persistDir = path.resolve(config.projectRoot, options.persistTo ?? path.join(".wrangler", "state"));
  let runtime;
  try {
    runtime = await startRuntime({ config, port: options.port, persistDir, faults: options.faults });
  } catch (error) {
    reportStartFailure(error, options.debug);
    process.exit(1);
  }

  for (const warning of undeclaredVarWarnings(Object.keys(options.vars), config.declaredVars, options.configPath)) {
    runtime.log.warn(warning);
  }
  const seconds = ((performance.now() - started) / 1000).toFixed(1);
  runtime.log.info(`${config.name}: ${path.relative(process.cwd(), config.entryPath)} started in ${seconds} s, state in ${persistDir}`);
  // The same line wrangler dev prints, without its log prefix, for scripts that wait for it.
  console.log(`Ready on ${runtime.url.href.replace(/\/$/, "")}`);
}

main().catch((error) => {
  console.error(`The offline runtime failed to start: ${error?.stack ?? error}`);
  process.exit(1);
});
