// @ts-check
// The security headers of every response. (step01-http-vs-socket/src/
// security_headers.rs, which is "what helmet() adds in Express")
//
// helmet, set to step 1's choices: no framing, no type sniffing, the
// referrer kept to this site, and a Content-Security-Policy under which
// nothing loads unless a page says so. The page's policy allows the pinned
// Socket.IO client and the page's own inline code, named by its hash.

import { createHash } from "node:crypto";

import helmet from "helmet";

/** The one script the page may load from elsewhere. */
export const SOCKET_IO_CLIENT_URL =
  "https://cdn.socket.io/4.8.3/socket.io.min.js";

/** helmet's middleware for every response; the page adds its own policy. */
export function securityHeaders() {
  return helmet({
    contentSecurityPolicy: {
      useDefaults: false,
      directives: { defaultSrc: ["'none'"], frameAncestors: ["'none'"] },
    },
    frameguard: { action: "deny" },
    // Not `no-referrer`: with it, the page's own POSTs say `Origin: null`.
    referrerPolicy: { policy: "same-origin" },
    // HTTPS is the reverse proxy's business (chapter 5, "In production").
    strictTransportSecurity: false,
  });
}

/** The policy of `page`: its inline scripts and styles, by SHA-256. */
export function pagePolicy(page) {
  const scripts = hashes(page, "script");
  const styles = hashes(page, "style");
  return [
    "default-src 'self'",
    `script-src ${SOCKET_IO_CLIENT_URL}${scripts}`,
    `style-src 'self'${styles}`,
    "img-src 'self' data:",
    "connect-src 'self'",
    "object-src 'none'",
    "base-uri 'none'",
    "form-action 'self'",
    "frame-ancestors 'none'",
  ].join("; ");
}

/** ` 'sha256-…'` for each inline `<tag>` block (those without `src=`). */
function hashes(page, tag) {
  const blocks = new RegExp(`<${tag}(\\s[^>]*)?>([\\s\\S]*?)</${tag}>`, "g");
  let sources = "";
  for (const [, attributes = "", content] of page.matchAll(blocks)) {
    if (attributes.includes("src=")) continue;
    const digest = createHash("sha256").update(content).digest("base64");
    sources += ` 'sha256-${digest}'`;
  }
  return sources;
}
