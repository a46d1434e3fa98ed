// @ts-check
// The chat's settings, from the environment (and a `.env` file): the same
// variables, defaults and checks as step 5. (step05-chat/src/config.rs, with
// step 2's SESSION_SECRET rules, step 3's throttles and step 4's limits.)
//
// A setting that cannot be understood stops the server with a message: a
// typo must not quietly become a default.

import { randomBytes } from "node:crypto";
import { isIP } from "node:net";
import { availableParallelism } from "node:os";

import { DEFAULT_AUTH_LIMITS } from "./auth-limits.js";
import { DEFAULT_HASHING } from "./hashing.js";
import { DEFAULT_LIMITS, NO_LIMITS, UNLIMITED_RATE } from "./limits.js";
import { log } from "./log.js";
import { AllowedOrigins } from "./socket-auth.js";

export const DEFAULT_DATABASE_URL = "sqlite://data/chat.db";

/** A setting that could not be understood. */
export class ConfigError extends Error {}

/** @typedef {NodeJS.ProcessEnv} Env */

/**
 * The address to listen on, from HOST and PORT.
 * @param {Env} env
 * @returns {{ host: string, port: number }}
 */
export function listenAddressFromEnv(env) {
  const port = env.PORT === undefined ? 3000 : Number(env.PORT);
  if (!Number.isInteger(port) || port < 0 || port > 65535 || env.PORT === "") {
    throw new ConfigError(
      `PORT must be a number from 0 to 65535, got ${JSON.stringify(env.PORT)}`,
    );
  }
  const host = env.HOST ?? "127.0.0.1";
  if (isIP(host) === 0) {
    throw new ConfigError(
      "HOST must be an IP address such as 127.0.0.1 or 0.0.0.0, " +
        `got ${JSON.stringify(host)}`,
    );
  }
  return { host, port };
}

/**
 * How many processes serve the chat, from WORKERS: 1 (the default) is one
 * process; n > 1 is a primary and n workers (cluster.js); `auto`, one
 * worker per core (`os.availableParallelism()`).
 * @param {Env} env
 */
export function workersFromEnv(env) {
  const value = env.WORKERS ?? "";
  if (value === "") return 1;
  if (value === "auto") return availableParallelism();
  const workers = Number(value);
  if (!Number.isInteger(workers) || workers < 1 || workers > 1024) {
    throw new ConfigError(
      "WORKERS must be a number from 1 to 1024, or auto, " +
        `got ${JSON.stringify(value)}`,
    );
  }
  if (workers > 1 && sqlitePathIsMemory(env.DATABASE_URL)) {
    throw new ConfigError(
      "WORKERS above 1 needs a database file: each process would have a " +
        "sqlite::memory: database of its own",
    );
  }
  return workers;
}

/** @param {string | undefined} databaseUrl */
function sqlitePathIsMemory(databaseUrl) {
  return /^sqlite:(\/\/)?:memory:/.test(databaseUrl ?? "");
}

/**
 * Everything `build` needs. The allowed origins are filled in once the
 * server listens (`allowedOrigins.listeningOn`): they name its port.
 * @param {Env} env
 */
export function chatConfigFromEnv(env) {
  if (env.REDIS_URL) {
    throw new ConfigError(
      "REDIS_URL is set, but the Node twin shares its state through its " +
        "own primary process (WORKERS), not Redis",
    );
  }
  const limits = limitsFromEnv(env);
  const test = testSettings(env);
  const secure = cookieSecure(env.COOKIE_SECURE);
  const proxies = trustedProxies(env.TRUSTED_PROXY);
  // The twin itself speaks plain HTTP, so a Secure cookie can only go out
  // when a proxy it trusts says the client used HTTPS (X-Forwarded-Proto).
  // Without one, express-session would silently send no login cookie.
  if (secure && proxies.length === 0) {
    throw new ConfigError(
      "COOKIE_SECURE=true needs TRUSTED_PROXY: the address of the proxy " +
        "that terminates HTTPS (its X-Forwarded-Proto says the client used " +
        "it); without it the twin never sends the login cookie",
    );
  }
  // node-argon2 hashes on libuv's thread pool (UV_THREADPOOL_SIZE threads,
  // 4 unless set): more hashes at once than threads would only queue there.
  const workers = number(env, "ARGON2_WORKERS", threadPoolSize(env));
  return {
    databaseUrl: env.DATABASE_URL ?? DEFAULT_DATABASE_URL,
    sessions: {
      secret: sessionSecret(env.SESSION_SECRET),
      secure,
      maxAgeMs: 30 * 24 * 60 * 60 * 1000, // 30 days, as in the walkthrough
      // However active: a login lasts this long at most (90 days).
      absoluteLifetimeMs:
        1000 * number(env, "SESSION_ABSOLUTE_LIFETIME_SECS", 90 * 24 * 3600),
      cookieName: "id", // not `connect.sid`: no need to name the framework
      // How often a live socket re-reads its session.
      recheckMs: test.sessionRecheckMs ?? 30_000,
    },
    allowedOrigins: new AllowedOrigins([]),
    extraOrigins: env.ALLOWED_ORIGINS ?? "",
    sockets: {
      maxMessageBytes: number(env, "SOCKET_MAX_MESSAGE_BYTES", 16 * 1024),
      connectTimeoutMs: 1000 * number(env, "SOCKET_CONNECT_TIMEOUT_SECS", 10),
    },
    server: {
      maxConnections: number(env, "MAX_CONNECTIONS", 16_384),
      maxConnectionsPerAddress: number(
        env,
        "MAX_CONNECTIONS_PER_ADDRESS",
        1024,
      ),
      headerReadTimeoutMs: 1000 * number(env, "HEADER_READ_TIMEOUT_SECS", 10),
      requestTimeoutMs: 1000 * number(env, "REQUEST_TIMEOUT_SECS", 60),
    },
    socketBuffer: number(env, "SOCKET_BUFFER", 2048),
    presencePage: number(env, "PRESENCE_PAGE", 50),
    limits,
    authLimits: {
      ...DEFAULT_AUTH_LIMITS,
      enabled: limits.enabled,
      loginPerAddressPerMinute: number(env, "LOGIN_ATTEMPTS_PER_ADDRESS", 60),
      loginFailuresPerUsername: number(env, "LOGIN_FAILURES_PER_USERNAME", 5),
      loginFailuresPerUsernameAnyAddress: number(
        env,
        "LOGIN_FAILURES_PER_USERNAME_ANY_ADDRESS",
        100,
      ),
      loginFailureDelaySecs: number(env, "LOGIN_FAILURE_DELAY_SECS", 60),
      registrationsPerAddressPerHour: number(
        env,
        "REGISTRATIONS_PER_ADDRESS",
        50,
      ),
      trustedProxies: proxies,
      hashWorkers: workers,
      hashQueue: number(env, "ARGON2_QUEUE", 2 * workers),
    },
    rateLimit: test.messageRate ?? [20, 5], // a burst of 20, then 5 a second
    hashing: test.hashing ?? DEFAULT_HASHING,
  };
}

/** libuv's thread pool: UV_THREADPOOL_SIZE, read by libuv itself, or 4. */
function threadPoolSize(env) {
  return Math.min(1024, number(env, "UV_THREADPOOL_SIZE", 4));
}

/** RATE_LIMITS, MAX_SOCKETS_PER_USER, MAX_ROOMS_PER_SOCKET and friends. */
function limitsFromEnv(env) {
  if (!switchIsOn(env.RATE_LIMITS)) {
    log.warn("RATE_LIMITS=off: every chat limit and login throttle is OFF");
    return NO_LIMITS;
  }
  const positive = (name, fallback) => {
    if (env[name] === undefined) return fallback;
    const value = Number(env[name]);
    if (env[name].trim() !== "" && value > 0 && value < UNLIMITED_RATE) {
      return value;
    }
    throw new ConfigError(
      `${name} must be a positive number, got ${JSON.stringify(env[name])}`,
    );
  };
  const test = testSettings(env);
  return {
    ...DEFAULT_LIMITS,
    socketsPerUser: Math.trunc(positive("MAX_SOCKETS_PER_USER", 20)),
    roomsPerSocket: Math.trunc(positive("MAX_ROOMS_PER_SOCKET", 20)),
    roomMessagesPerSecond: positive("ROOM_MESSAGES_PER_SECOND", 30),
    roomChangesPerSecond:
      test.roomChangesPerSecond ?? DEFAULT_LIMITS.roomChangesPerSecond,
    refusalsPer10s: test.refusalsPer10s ?? DEFAULT_LIMITS.refusalsPer10s,
    roomHistoryCap: Math.trunc(positive("ROOM_HISTORY_CAP", 10_000)),
  };
}

/** Anything but `off`, `false` or `0` leaves a switch on. */
function switchIsOn(value = "") {
  return !["off", "false", "0"].includes(value.trim().toLowerCase());
}

/**
 * A whole number above zero, or the default when unset.
 * @param {Env} env
 * @param {string} name
 * @param {number} fallback
 */
function number(env, name, fallback) {
  const text = env[name]?.trim();
  if (text === undefined || text === "") return fallback;
  const value = Number(text);
  if (Number.isSafeInteger(value) && value > 0 && /^\d+$/.test(text)) {
    return value;
  }
  throw new ConfigError(
    `${name} must be a whole number above 0, got ${JSON.stringify(env[name])}`,
  );
}

/**
 * SESSION_SECRET: at least 64 hex digits, or 43 characters of other text,
 * using at least 8 different characters (it was generated, not typed).
 * Unset: a random secret for this run, and everyone is logged out on restart.
 */
function sessionSecret(value) {
  const secret = value?.trim() ?? "";
  if (secret === "") {
    log.warn(
      "SESSION_SECRET is not set: using a random key for this run only. " +
        "Set SESSION_SECRET (e.g. `openssl rand -hex 64`) in .env.",
    );
    return randomBytes(64).toString("hex");
  }
  const length = [...secret].length;
  const isHex = /^([0-9a-fA-F]{2})+$/.test(secret);
  if ((isHex && length < 64) || (!isHex && length < 43)) {
    throw new ConfigError(
      `SESSION_SECRET is ${length} characters long but must be at least ` +
        "64 hex digits or 43 characters of other text; generate one with " +
        "`openssl rand -hex 64` and put it in .env",
    );
  }
  const distinct = new Set(secret).size;
  if (distinct < 8) {
    throw new ConfigError(
      `SESSION_SECRET is made of too few different characters (${distinct}, ` +
        "at least 8 needed): it was typed, not generated, and can be guessed",
    );
  }
  return secret;
}

function cookieSecure(value) {
  const text = value?.trim() ?? "";
  if (text === "") return false;
  if (/^(true|1)$/i.test(text)) return true;
  if (/^(false|0)$/i.test(text)) return false;
  throw new ConfigError(
    `COOKIE_SECURE must be \`true\` or \`false\`, got ${JSON.stringify(text)}`,
  );
}

/** TRUSTED_PROXY: the proxies whose X-Forwarded-For is believed. */
function trustedProxies(value = "") {
  const proxies = value
    .split(",")
    .map((part) => part.trim())
    .filter((part) => part !== "");
  const bad = proxies.find((part) => isIP(part) === 0);
  if (bad !== undefined) {
    throw new ConfigError(
      "TRUSTED_PROXY must be IP addresses separated by commas, " +
        `got ${JSON.stringify(value)}`,
    );
  }
  return proxies;
}

/**
 * NODE_CHAT_TEST_SETTINGS: what step 5's tests set in-process through
 * `ChatConfig` and that has no environment variable there (the message
 * rate, the pace of joins and leaves, a cheap password hash). The tests
 * start the twin as a process, so they pass these as JSON. It can make the
 * password hash cheap, so it is refused unless NODE_ENV=test.
 */
function testSettings(env) {
  const json = env.NODE_CHAT_TEST_SETTINGS;
  if (json === undefined || json === "") return {};
  if (env.NODE_ENV !== "test") {
    throw new ConfigError(
      "NODE_CHAT_TEST_SETTINGS is for the tests only (NODE_ENV=test): " +
        "it can lower the password hash's cost",
    );
  }
  try {
    return JSON.parse(json);
  } catch (error) {
    throw new ConfigError(`NODE_CHAT_TEST_SETTINGS: ${error.message}`);
  }
}
