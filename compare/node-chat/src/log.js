// @ts-check
// A logger with levels: `error`, `warn`, `info` (the default) or `debug`,
// from LOG_LEVEL, or else from RUST_LOG so that one `.env` configures both
// servers (only its level: per-module filters mean nothing to Node). An
// Error argument prints with its stack.

const LEVELS = ["error", "warn", "info", "debug"];

/** @param {string} [value] */
function levelFromEnv(value = "") {
  const words = value.toLowerCase().split(/[,=\s]+/);
  const named = words.filter((word) => LEVELS.includes(word));
  const level = named.at(-1) ?? "info";
  return LEVELS.indexOf(level);
}

const threshold = levelFromEnv(
  process.env.LOG_LEVEL || process.env.RUST_LOG,
);

/**
 * @param {string} level
 * @param {(...args: unknown[]) => void} write
 * @returns {(...args: unknown[]) => void}
 */
function at(level, write) {
  return LEVELS.indexOf(level) <= threshold
    ? (...args) => write(new Date().toISOString(), level.toUpperCase(), ...args)
    : () => {};
}

export const log = {
  error: at("error", console.error),
  warn: at("warn", console.error),
  info: at("info", console.error),
  debug: at("debug", console.error),
};
