// Runs the Python Worker in Pyodide and calls it the way workerd v1.20260426.1
// does (src/pyodide/python-entrypoint-helper.ts, the tag that wrangler 4.86.0
// brings): one `Default(ctx, env)` per event, `fetch` and other handlers
// through the introspection module's wrapper, here entrypoint.py.

import fs from "node:fs";
import path from "node:path";
import { fileURLToPath, pathToFileURL } from "node:url";
import { ExecutionContext } from "./bindings.mjs";

const HERE = path.dirname(fileURLToPath(import.meta.url));

// workerd's layout: the Worker's modules, with the vendored packages
// (python_modules/, where pywrangler puts the SDK) below them.
const BUNDLE_DIR = "/session/metadata";
const VENDOR_DIR = `${BUNDLE_DIR}/python_modules`;

export class PythonWorker {
  #defaultClass;
  #callHandler;
  #env;
  #flags;
  #log;

  /**
   * Copies the SDK and the Worker's modules into Pyodide, installs the
   * runtime-only modules the SDK imports, and imports the Worker's main
   * module, so import errors surface at start as they do in workerd.
   *
   * `sdk` comes from findWorkersSdk, `modules` from findWorkerModules (paths
   * relative to `bundleRoot`), `flags` is the compatibility flag object and
   * `env` the JS object of bindings and vars.
   */
  static async start({ pyodide, sdk, bundleRoot, modules, mainModule, flags, env, log }) {
    const worker = new PythonWorker();
    worker.#env = env;
    worker.#flags = flags;
    worker.#log = log;

    copyFiles(pyodide, sdk.sitePackages, sdk.files, VENDOR_DIR);
    copyFiles(pyodide, bundleRoot, modules, BUNDLE_DIR);
    pyodide.runPython(`import sys; sys.path[:0] = [${JSON.stringify(BUNDLE_DIR)}, ${JSON.stringify(VENDOR_DIR)}]`);

    // workerd registers both under these names (setupPatches in the helper).
    pyodide.registerJsModule("_cloudflare_compat_flags", flags);
    pyodide.registerJsModule("_pyodide_entrypoint_helper", entrypointHelper(env, sdk, log));

    const helper = pyodide.runPython("from types import ModuleType; ModuleType('offline_entrypoint')");
    pyodide.runPython(fs.readFileSync(path.join(HERE, "entrypoint.py"), "utf8"), {
      globals: helper.__dict__,
      filename: "entrypoint.py",
    });
    worker.#callHandler = helper.call_handler;
    worker.#defaultClass = helper.load_default_class(mainModule);
    return worker;
  }

  /** Runs the Worker's fetch for a JS Request (constructor name "Request") and returns its Response. */
  async fetch(request) {
    // workerd calls a class's handlers with (event, env, ctx) but passes
    // undefined for env and ctx, which Python receives as None. fetch is
    // called relaxed, so a handler that takes only the request still works.
    const response = await this.#invoke(true, "fetch", [request, undefined, undefined]);
    if (!(response instanceof Response)) {
      throw new TypeError(`the Worker's fetch returned ${describe(response)}, not a Response`);
    }
    return response;
  }

  /**
   * Runs the Worker's queue for a QueueController, with `env` as its
   * bindings when given (fault injection gives each batch its own).
   */
  async queue(batch, env = undefined) {
    // workerd does not call queue relaxed, so a queue(self, batch) without
    // env and ctx parameters raises TypeError here, as it does there.
    await this.#invoke(false, "queue", [batch, undefined, undefined], {
      // Without the flag queue_consumer_no_wait_for_wait_until, workerd
      // reports a batch's outcome only once its waitUntil promises settle.
      awaitWaitUntil: !this.#flags.queue_consumer_no_wait_for_wait_until,
      env,
    });
  }

  async #invoke(relaxed, name, args, { awaitWaitUntil = false, env = this.#env } = {}) {
    const ctx = new ExecutionContext((error) => this.#log.error(`waitUntil promise rejected: ${error?.message ?? error}`));
    const instance = this.#defaultClass(ctx, env);
    try {
      const result = await this.#callHandler(relaxed, instance, name, ...args);
      if (awaitWaitUntil) await ctx.settled();
      return result;
    } finally {
      instance.destroy();
    }
  }
}

function copyFiles(pyodide, sourceRoot, relativePaths, targetRoot) {
  for (const relativePath of relativePaths) {
    const target = path.posix.join(targetRoot, relativePath.split(path.sep).join("/"));
    pyodide.FS.mkdirTree(path.posix.dirname(target));
    pyodide.FS.writeFile(target, fs.readFileSync(path.join(sourceRoot, relativePath)));
  }
}

/**
 * Builds the stand-in for workerd's `_pyodide_entrypoint_helper` module with
 * the members the SDK (workers/entrypoints.py and workers/utils.py) uses.
 */
function entrypointHelper(env, sdk, log) {
  const background = new ExecutionContext((error) => log.error(`waitUntil promise rejected: ${error?.message ?? error}`));
  class WorkerEntrypoint {
    constructor(ctx, workerEnv) {
      this.ctx = ctx;
      this.env = workerEnv;
    }
  }
  const cloudflareWorkersModule = {
    env,
    waitUntil: (promise) => background.waitUntil(promise),
    WorkerEntrypoint,
  };
  const cloudflareSocketsModule = {
    connect() {
      throw new Error("cloudflare:sockets is not available in the offline runtime");
    },
  };

  return {
    cloudflareWorkersModule,
    cloudflareSocketsModule,
    workerEntrypoint: WorkerEntrypoint,

    // The SDK imports its own JS modules as python_modules/workers/*.js.
    async doAnImport(name) {
      if (name === "cloudflare:workers") return cloudflareWorkersModule;
      if (name === "cloudflare:sockets") return cloudflareSocketsModule;
      const sdkPrefix = "python_modules/";
      if (name.startsWith(sdkPrefix) && sdk.files.includes(name.slice(sdkPrefix.length))) {
        return import(pathToFileURL(path.join(sdk.sitePackages, name.slice(sdkPrefix.length))).href);
      }
      throw new Error(`Cannot import "${name}": the offline runtime provides cloudflare:workers, cloudflare:sockets and the SDK's own modules only`);
    },

    patchWaitUntil,

    // Keeps `patch` applied to the env of cloudflare:workers until the
    // generator finishes, which is how workers.patch_env scopes it.
    *patch_env_helper(patch) {
      const entries = patch instanceof Map ? [...patch] : Object.entries(patch);
      const saved = entries.map(([key]) => [key, Object.getOwnPropertyDescriptor(env, key)]);
      for (const [key, value] of entries) env[key] = value;
      try {
        yield;
      } finally {
        for (const [key, descriptor] of saved) {
          if (descriptor === undefined) delete env[key];
          else Object.defineProperty(env, key, descriptor);
        }
      }
    },
  };
}

const patchedContexts = new WeakSet();

// Same contract as workerd's patchWaitUntil: Pyodide destroys a proxy passed
// as an argument once the call returns, so a Python awaitable handed to
// ctx.waitUntil is copied and kept until it settles.
function patchWaitUntil(ctx) {
  if (Object.prototype.toString.call(ctx) !== "[object ExecutionContext]" || patchedContexts.has(ctx)) return;
  const originalWaitUntil = ctx.waitUntil.bind(ctx);
  ctx.waitUntil = (promise) => {
    const proxyCopy = typeof promise?.copy === "function" ? promise.copy() : promise;
    originalWaitUntil(
      (async () => {
        try {
          await proxyCopy;
        } finally {
          proxyCopy?.destroy?.();
        }
      })(),
    );
  };
  patchedContexts.add(ctx);
}

function describe(value) {
  if (value === null || value === undefined) return String(value);
  return value.constructor?.name ?? typeof value;
}
