// Drives headless Chromium through a scenario, for the tests that check pages as a person
// would use them.
//
//   node browser.mjs '<scenario JSON>'
//
// A scenario is a list of steps. Each step acts on a named page ("main" unless `page` says
// otherwise); every name gets its own browser context, so two names are two people with
// their own cookies. Steps:
//   {goto: URL}                     {fill: SELECTOR, value: TEXT}     {click: SELECTOR}
//   {press: SELECTOR, key: KEY}     {waitText: SELECTOR, text: TEXT}  {read: SELECTOR, as: LABEL}
//   {waitGone: SELECTOR}            {screenshot: PATH}                {viewport: {width, height}}
//   {offline: true|false}           the page's browser context loses (or gets back) its network
//   {sleep: MS}                     {evaluate: JS}: runs JS in the page (e.g. to drop a connection)
// It prints one JSON line: {ok, read: {LABEL: text}, errors: [page errors], blocked: [URLs]}
// or {ok:false, error}.
//
// The browser has no Internet here, so requests for the pinned Socket.IO client on its CDN
// are answered with the same file from the npm package (the page's SRI hash still applies).
// With BROWSER_NO_INTERNET=1 in the environment, nothing is answered for the pages instead:
// every request to a host other than localhost / 127.0.0.1 fails, as in a classroom whose
// network does not reach the Internet, and its URL is listed in `blocked`.
import { chromium } from "playwright-core";
import { fileURLToPath } from "node:url";

const bundle = fileURLToPath(
  new URL("./node_modules/socket.io-client/dist/socket.io.min.js", import.meta.url),
);
const TIMEOUT = 15000;

const steps = JSON.parse(process.argv[2] ?? "[]");
const browser = await chromium.launch({
  executablePath: process.env.CHROMIUM ?? "/usr/bin/chromium",
  args: [
    "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
  ],
});
const pages = new Map();
const errors = [];
const read = {};
const blocked = [];
const noInternet = process.env.BROWSER_NO_INTERNET === "1";
const isLocal = (url) => ["localhost", "127.0.0.1", "[::1]"].includes(new URL(url).hostname);

async function page(name = "main") {
  if (!pages.has(name)) {
    const context = await browser.newContext({ viewport: { width: 1100, height: 800 } });
    if (noInternet) {
      await context.route("**/*", (route) => {
        const url = route.request().url();
        if (isLocal(url)) return route.continue();
        blocked.push(url);
        return route.abort("internetdisconnected");
      });
    } else {
      await context.route("https://cdn.socket.io/**", (route) =>
        route.fulfill({ path: bundle, contentType: "application/javascript",
                        headers: { "access-control-allow-origin": "*" } }),
      );
    }
    const p = await context.newPage();
    p.setDefaultTimeout(TIMEOUT);
    p.on("pageerror", (err) => errors.push(`${name}: ${err.message}`));
    pages.set(name, p);
  }
  return pages.get(name);
}

let current = null;
try {
  for (const step of steps) {
    current = step;
    const p = await page(step.page);
    if (step.goto) await p.goto(step.goto);
    else if (step.fill) await p.fill(step.fill, step.value);
    else if (step.click) await p.click(step.click);
    else if (step.press) await p.press(step.press, step.key);
    else if (step.waitText) {
      await p.locator(step.waitText).filter({ hasText: step.text }).first().waitFor();
    } else if (step.waitGone) await p.locator(step.waitGone).first().waitFor({ state: "detached" });
    else if (step.read) read[step.as ?? step.read] = await p.locator(step.read).first().innerText();
    else if (step.screenshot) await p.screenshot({ path: step.screenshot, fullPage: true });
    else if (step.viewport) await p.setViewportSize(step.viewport);
    else if (step.offline !== undefined) await p.context().setOffline(step.offline);
    else if (step.sleep) await p.waitForTimeout(step.sleep);
    else if (step.evaluate) await p.evaluate(step.evaluate);
    else throw new Error(`unknown step ${JSON.stringify(step)}`);
  }
  console.log(JSON.stringify({ ok: true, read, errors, blocked }));
} catch (err) {
  const failed = [];
  for (const [name, p] of pages) {
    const shot = `/tmp/browser-failure-${process.pid}-${name}.png`;
    await p.screenshot({ path: shot, fullPage: true }).catch(() => {});
    failed.push(shot);
  }
  console.log(JSON.stringify({ ok: false, error: err.message, step: current, screenshots: failed,
                               blocked }));
  process.exitCode = 1;
} finally {
  await browser.close();
}
