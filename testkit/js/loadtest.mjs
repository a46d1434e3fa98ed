// The client half of step05's load test (step05-chat/examples/loadtest.rs starts the server
// and runs this). Opens many sockets with the official client, sends messages, and measures.
//
//   node loadtest.mjs '{"url": "...", "cookies": ["id=..."], "sockets": 200, "messages": 500}'
//
// With "urls": ["http://node-a/", "http://node-b/"] instead of "url", socket i connects to
// urls[i % urls.length] (the nodes of a cluster), and message n is sent by socket n, so the
// senders alternate between the nodes too.
//
// Prints JSON lines: {"phase":"connected", ...} once every socket is in, then a final report.
import { io } from "socket.io-client";

const { url, urls: nodeUrls, cookies, sockets: socketCount, messages: messageCount, transports, rate } =
  JSON.parse(process.argv[2]);
const urls = nodeUrls ?? [url];
// Messages per second; 0 sends them all at once (then latency includes queueing behind the burst).
const gapMs = rate > 0 ? 1000 / rate : 0;
const now = () => performance.now();
const percentile = (sorted, p) =>
  sorted.length ? sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))] : null;

const sent = new Map(); // message text -> time sent
const latencies = [];
let deliveries = 0;
let firstSend = 0;
let lastDelivery = 0;
const expected = socketCount * messageCount;
let allDelivered;
const done = new Promise((resolve) => (allDelivered = resolve));

const connectStart = now();
const sockets = await Promise.all(
  Array.from({ length: socketCount }, (_, i) => new Promise((resolve, reject) => {
    const socket = io(urls[i % urls.length], {
      forceNew: true,
      reconnection: false,
      transports: transports ?? ["websocket"],
      extraHeaders: { cookie: cookies[i % cookies.length] },
    });
    socket.on("chat message", (message) => {
      const at = sent.get(message.text);
      if (at === undefined) return;
      const t = now();
      latencies.push(t - at);
      deliveries += 1;
      lastDelivery = t;
      if (deliveries === expected) allDelivered();
    });
    socket.once("connect", () => resolve(socket));
    socket.once("connect_error", (err) => reject(new Error(`connect_error: ${err.message}`)));
  })),
);
const connectSecs = (now() - connectStart) / 1000;
console.log(JSON.stringify({ phase: "connected", sockets: sockets.length }));
await new Promise((resolve) => setTimeout(resolve, 1000)); // let the server settle for the RSS sample

firstSend = now();
const acks = [];
for (let n = 0; n < messageCount; n++) {
  if (gapMs > 0) await new Promise((resolve) => setTimeout(resolve, gapMs));
  const text = `load ${n} ${Math.random()}`;
  sent.set(text, now());
  acks.push(sockets[n % sockets.length].timeout(30000).emitWithAck("chat message", { room: "general", text }));
}
const ackResults = await Promise.allSettled(acks);
const refused = ackResults.filter((r) => r.status !== "fulfilled" || !r.value.ok).length;
const timeout = new Promise((resolve) => setTimeout(() => resolve("timeout"), 60000));
const outcome = await Promise.race([done.then(() => "ok"), timeout]);

latencies.sort((a, b) => a - b);
const deliverySecs = (lastDelivery - firstSend) / 1000;
console.log(JSON.stringify({
  phase: "done",
  outcome,
  nodes: urls.length,
  sockets: socketCount,
  messages: messageCount,
  refused,
  connect_secs: connectSecs,
  connects_per_sec: socketCount / connectSecs,
  deliveries,
  expected_deliveries: expected,
  deliveries_per_sec: deliveries / deliverySecs,
  latency_ms_p50: percentile(latencies, 50),
  latency_ms_p99: percentile(latencies, 99),
}));
sockets.forEach((socket) => socket.disconnect());
process.exit(0);
