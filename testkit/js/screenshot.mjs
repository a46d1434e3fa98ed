// Opens a page in headless Chromium, waits until some elements show the expected text,
// prints what they show as JSON, and saves a screenshot.
//
//   node screenshot.mjs URL OUT.png [SELECTOR=TEXT ...]
//
// The browser has no Internet here, so requests for the pinned Socket.IO client on its CDN
// are answered with the same file from the npm package (its SRI hash still has to match).
import { chromium } from "playwright-core";
import { fileURLToPath } from "node:url";

const [url, out, ...conditions] = process.argv.slice(2);
if (!url || !out) {
  console.error("usage: node screenshot.mjs URL OUT.png [SELECTOR=TEXT ...]");
  process.exit(2);
}
const bundle = fileURLToPath(
  new URL("./node_modules/socket.io-client/dist/socket.io.min.js", import.meta.url),
);

export async function launch() {
  return chromium.launch({
    executablePath: process.env.CHROMIUM ?? "/usr/bin/chromium",
    args: [
      "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
      "--disable-background-networking", "--disable-component-update", "--disable-sync",
    ],
  });
}

const browser = await launch();
try {
  const context = await browser.newContext({ viewport: { width: 1100, height: 800 } });
  await context.route("https://cdn.socket.io/**", (route) =>
    route.fulfill({ path: bundle, contentType: "application/javascript",
                    headers: { "access-control-allow-origin": "*" } }),
  );
  const page = await context.newPage();
  const errors = [];
  page.on("pageerror", (err) => errors.push(err.message));
  await page.goto(url);
  const seen = {};
  for (const condition of conditions) {
    const [selector, text] = condition.split("=");
    const locator = page.locator(selector);
    await locator.filter({ hasText: text }).first().waitFor({ timeout: 15000 });
    seen[selector] = await locator.first().textContent();
  }
  await page.screenshot({ path: out, fullPage: true });
  console.log(JSON.stringify({ ok: true, seen, errors }));
} catch (err) {
  console.log(JSON.stringify({ ok: false, error: err.message }));
  process.exitCode = 1;
} finally {
  await browser.close();
}
