// A bridge between a Rust test and the official Socket.IO JavaScript client.
//
// The Rust side (testkit/src/lib.rs) starts `node bridge.mjs` and talks to it with one JSON
// object per line: commands on stdin, replies and socket events on stdout. This way the tests
// are written in Rust, but the client on the wire is the very `socket.io-client` package that
// browsers and Node.js apps use.
//
// Commands (each has a numeric `id`, echoed in its reply):
//   {op:"connect", id, name, url, opts}   open a socket called `name`; opts go to io(url, opts)
//   {op:"emit", id, name, event, args, ack, timeoutMs}
//                                         emit; with ack:true the reply carries the ack's args
//   {op:"close", id, name}                disconnect the socket
//   {op:"connect_and_emit_many", id, url, opts, count, event, args, timeoutMs}
//                                         open `count` sockets, each emitting `event` the
//                                         instant it connects; reply with how many acked
//   {op:"connect_and_close_many", id, url, opts, count, event?, args?}
//                                         open `count` sockets, each closed the instant it
//                                         connects (right after emitting `event` with `args`, if
//                                         given); reply once every one has connected or failed
//   {op:"emit_many", id, name, event, argsList, timeoutMs}
//                                         emit `event` once per entry of argsList, all at once
//                                         (pipelined); reply with the acks, in order
//   {op:"freeze", id, ms}                 block this whole Node process for `ms` (it reads
//                                         nothing meanwhile: a client that stopped reading)
// A `connect` whose opts hold `resync: true` behaves like the chat page: its handshake `auth`
// carries `serverOffset`, the id of the newest `chat message` it received, and when the server
// sends `resync` and then disconnects it, it connects again (to catch up).
// Events: {event:"connect"|"connect_error"|"disconnect"|"upgrade"|<server event>, name, ...}
import { createInterface } from "node:readline";
import { io } from "socket.io-client";

const sockets = new Map();

function send(message) {
  process.stdout.write(JSON.stringify(message) + "\n");
}

function reply(id, body) {
  send({ reply: id, ...body });
}

function watch(name, socket) {
  // The engine (the connection under the socket) opens first, and may upgrade from polling to
  // websocket before the socket's own `connect` arrives: listen at the engine level.
  let openedWith = null;
  socket.io.on("open", () => {
    const engine = socket.io.engine;
    openedWith = engine.transport.name;
    engine.on("upgrade", (transport) => {
      send({ name, event: "upgrade", transport: transport.name });
    });
  });
  socket.on("connect", () => {
    const current = socket.io.engine.transport.name;
    send({ name, event: "connect", sid: socket.id, transport: openedWith ?? current, current });
  });
  socket.on("connect_error", (err) => {
    send({ name, event: "connect_error", message: err.message });
  });
  socket.on("disconnect", (reason) => {
    send({ name, event: "disconnect", reason });
  });
  socket.onAny((event, ...args) => {
    send({ name, event, args });
  });
}

function connectOptions(opts) {
  // Tests decide when to reconnect; a client that silently retries hides what happened.
  return { reconnection: false, forceNew: true, ...opts };
}

// The chat page's delivery logic (step05-chat/static/index.html), for `resync: true` sockets.
function followResync(name, socket) {
  let lastId = null;
  let resyncing = false;
  socket.auth = (send) => send(lastId === null ? {} : { serverOffset: lastId });
  socket.on("chat message", (message) => {
    if (typeof message?.id === "number" && (lastId === null || message.id > lastId)) {
      lastId = message.id;
    }
  });
  socket.on("resync", () => (resyncing = true));
  socket.on("disconnect", (reason) => {
    if (resyncing && reason === "io server disconnect") {
      resyncing = false;
      send({ name, event: "resyncing", serverOffset: lastId });
      socket.connect();
    }
  });
}

async function handle(command) {
  const { op, id } = command;
  switch (op) {
    case "connect": {
      const { resync, ...opts } = command.opts ?? {};
      const socket = io(command.url, connectOptions(opts));
      sockets.set(command.name, socket);
      watch(command.name, socket);
      if (resync) followResync(command.name, socket);
      reply(id, { ok: true });
      break;
    }
    case "emit": {
      const socket = sockets.get(command.name);
      if (!socket) return reply(id, { error: `no socket named ${command.name}` });
      const args = command.args ?? [];
      if (!command.ack) {
        socket.emit(command.event, ...args);
        return reply(id, { ok: true });
      }
      try {
        const ack = await socket
          .timeout(command.timeoutMs ?? 5000)
          .emitWithAck(command.event, ...args);
        reply(id, { ok: true, ack });
      } catch (err) {
        reply(id, { error: `no acknowledgement: ${err.message}` });
      }
      break;
    }
    case "close": {
      const socket = sockets.get(command.name);
      if (socket) socket.disconnect();
      sockets.delete(command.name);
      reply(id, { ok: true });
      break;
    }
    case "connect_and_emit_many": {
      const { count, url, event } = command;
      const args = command.args ?? [];
      const timeoutMs = command.timeoutMs ?? 10000;
      const opened = [];
      const acks = await Promise.all(
        Array.from({ length: count }, () => {
          const socket = io(url, connectOptions(command.opts));
          opened.push(socket);
          return new Promise((resolve) => {
            const timer = setTimeout(() => resolve("timeout"), timeoutMs);
            socket.on("connect_error", (err) => {
              clearTimeout(timer);
              resolve(`connect_error: ${err.message}`);
            });
            // Emit in the very callback that reports the connection: nothing is awaited first.
            socket.on("connect", () => {
              socket.emit(event, ...args, (...ackArgs) => {
                clearTimeout(timer);
                resolve(ackArgs);
              });
            });
          });
        }),
      );
      opened.forEach((socket) => socket.disconnect());
      const acked = acks.filter((a) => Array.isArray(a)).length;
      const failures = acks.filter((a) => !Array.isArray(a)).slice(0, 5);
      reply(id, { ok: true, acked, failures });
      break;
    }
    case "connect_and_close_many": {
      const outcomes = await Promise.all(
        Array.from({ length: command.count }, () => {
          const socket = io(command.url, connectOptions(command.opts));
          return new Promise((resolve) => {
            socket.on("connect", () => {
              if (command.event) socket.emit(command.event, ...(command.args ?? []));
              socket.disconnect();
              resolve("closed");
            });
            socket.on("connect_error", (err) => resolve(`connect_error: ${err.message}`));
          });
        }),
      );
      const closed = outcomes.filter((o) => o === "closed").length;
      reply(id, { ok: true, closed, failures: outcomes.filter((o) => o !== "closed").slice(0, 5) });
      break;
    }
    case "emit_many": {
      const socket = sockets.get(command.name);
      if (!socket) return reply(id, { error: `no socket named ${command.name}` });
      const timeoutMs = command.timeoutMs ?? 10000;
      const acks = await Promise.all(
        command.argsList.map((args) =>
          socket
            .timeout(timeoutMs)
            .emitWithAck(command.event, ...args)
            .catch((err) => ({ error: `no acknowledgement: ${err.message}` })),
        ),
      );
      reply(id, { ok: true, acks });
      break;
    }
    case "freeze": {
      const until = Date.now() + command.ms;
      while (Date.now() < until) {
        // Busy on purpose: nothing else in this process runs, not even the socket's reads.
      }
      reply(id, { ok: true });
      break;
    }
    default:
      reply(id, { error: `unknown op ${op}` });
  }
}

const lines = createInterface({ input: process.stdin });
lines.on("line", (line) => {
  let command;
  try {
    command = JSON.parse(line);
  } catch (err) {
    return send({ error: `bad command line: ${err.message}` });
  }
  handle(command).catch((err) => reply(command.id, { error: String(err) }));
});
// When the test drops its end of the pipe, close everything and leave.
lines.on("close", () => {
  for (const socket of sockets.values()) socket.disconnect();
  process.exit(0);
});
