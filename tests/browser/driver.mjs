// Drives a headless Chromium page for the pytest browser tests
// (BrowserPage in tests/browser/conftest.py), one JSON command a line on
// stdin, one JSON reply a line on stdout:
//
//   {"method": "goto", "args": ["http://127.0.0.1:8787/"]}        page.goto(...)
//   {"selector": "#job-rows tr", "method": "count", "args": []}   page.locator(selector).count()
//   {"method": "newPage"}   a fresh page in a new browser context
//   {"method": "events"}    dialogs, page errors, console errors, CSP violations
//                           and requests ("GET /jobs?limit=100") of this page so far
//
// A reply is {"ok": true, "value": ...} or {"ok": false, "error": "..."}.
// The browser is Debian's /usr/bin/chromium: this machine cannot download
// Playwright's own build.

import readline from "node:readline";
import { chromium } from "playwright-core";

const CHROMIUM = process.env.CHROMIUM_PATH ?? "/usr/bin/chromium";
// No network here: these keep Chromium from trying to reach Google's services.
const CHROMIUM_ARGS = [
  "--headless",
  "--no-sandbox",
  "--disable-gpu",
  "--disable-quic",
  "--no-first-run",
  "--disable-background-networking",
  "--disable-component-update",
  "--disable-sync",
];

const browser = await chromium.launch({ executablePath: CHROMIUM, headless: true, args: CHROMIUM_ARGS });
let context;
let page;
let events;

// Replaces the page with a fresh one in a new context: no cookies, storage,
// history or recorded events carry over from the previous test.
async function openPage() {
  await context?.close();
  context = await browser.newContext({ viewport: { width: 1280, height: 900 }, colorScheme: "light" });
  // Any inline script or style the page tried to run shows up here, blocked by its CSP.
  await context.addInitScript(() => {
    window.__cspViolations = [];
    document.addEventListener("securitypolicyviolation", (event) => {
      window.__cspViolations.push({ directive: event.violatedDirective, blocked: event.blockedURI, sample: event.sample });
    });
  });
  page = await context.newPage();
  // Shorter than the 30 s that tests/browser/conftest.py waits for a reply.
  page.setDefaultTimeout(10000);

  events = { dialogs: [], pageErrors: [], consoleErrors: [], requests: [] };
  page.on("request", (request) => {
    const url = new URL(request.url());
    events.requests.push(`${request.method()} ${url.pathname}${url.search}`);
  });
  page.on("dialog", async (dialog) => {
    events.dialogs.push({ type: dialog.type(), message: dialog.message() });
    await dialog.dismiss();
  });
  page.on("pageerror", (error) => events.pageErrors.push(String(error?.stack ?? error)));
  page.on("console", (message) => {
    if (message.type() === "error") events.consoleErrors.push(message.text());
  });
}

async function run({ selector, method, args = [] }) {
  if (method === "newPage") {
    await openPage();
    return null;
  }
  if (method === "events") {
    const cspViolations = await page.evaluate(() => window.__cspViolations ?? []);
    return { ...events, cspViolations };
  }
  const receiver = selector === undefined ? page : page.locator(selector);
  if (typeof receiver[method] !== "function") throw new Error(`unknown method ${method} for ${selector ?? "page"}; use a Playwright Page or Locator method`);
  return toJson(await receiver[method](...args));
}

// Results cross to Python as JSON: a navigation response becomes its status
// and headers, a screenshot its size.
async function toJson(value) {
  if (value && typeof value.allHeaders === "function") {
    return { status: value.status(), headers: await value.allHeaders() };
  }
  if (Buffer.isBuffer(value)) return { bytes: value.length };
  return value ?? null;
}

const reply = (message) => process.stdout.write(`${JSON.stringify(message)}\n`);

const lines = readline.createInterface({ input: process.stdin });
for await (const line of lines) {
  if (!line.trim()) continue;
  try {
    reply({ ok: true, value: await run(JSON.parse(line)) });
  } catch (error) {
    reply({ ok: false, error: String(error?.message ?? error) });
  }
}
await browser.close();
