// @ts-check
// The JSON side of the HTTP contract: every error is `{"error": "..."}`,
// and a body may come as JSON or as an HTML form.
// (step03-passport-like-auth/src/api.rs)

import express from "express";

import { ServerBusy } from "./hashing.js";
import { log } from "./log.js";

/** An error answer: a status code and `{"error": message}`. */
export class ApiError extends Error {
  /**
   * @param {number} status
   * @param {string} message
   */
  constructor(status, message) {
    super(message);
    this.status = status;
    /** @type {number | null} */
    this.retryAfterSeconds = null;
  }

  /**
   * The same error, telling the client to wait before trying again.
   * @param {number} seconds
   */
  retryAfter(seconds) {
    this.retryAfterSeconds = seconds;
    return this;
  }

  static unauthorized() {
    return new ApiError(401, "Unauthorized");
  }

  static busy() {
    const message = "The server is busy: please try again in a moment";
    return new ApiError(503, message).retryAfter(1);
  }

  static internal() {
    return new ApiError(500, "internal error");
  }
}

/**
 * Sends `error` as JSON, with `Retry-After` when it has one.
 * @param {import("express").Response} res
 * @param {ApiError} error
 */
export function sendError(res, error) {
  if (error.retryAfterSeconds !== null) {
    res.set("Retry-After", String(error.retryAfterSeconds));
  }
  res.status(error.status).json({ error: error.message });
}

const JSON_TYPES = ["application/json", "application/*+json"];
const FORM_TYPE = "application/x-www-form-urlencoded";
// axum's default body limit.
const BODY_LIMIT = "2mb";

/**
 * `express.json()` plus `express.urlencoded()`, and a 415 for any other
 * body: what step 3's `JsonOrForm` extractor accepts and refuses.
 */
export function jsonOrForm() {
  const json = express.json({ type: JSON_TYPES, limit: BODY_LIMIT });
  const form = express.urlencoded({ extended: false, limit: BODY_LIMIT });
  return [
    (req, res, next) => {
      if (req.is(FORM_TYPE) || req.is(JSON_TYPES)) return next();
      const message =
        "Send the body as application/json or " +
        "application/x-www-form-urlencoded";
      sendError(res, new ApiError(415, message));
    },
    json,
    form,
  ];
}

/**
 * body-parser's refusals (its `error.type`), each a 4xx that says what to
 * change: the client sent something wrong, the server did not fail.
 */
/** @type {Record<string, [number, string]>} */
const BODY_ERRORS = {
  "entity.too.large": [413, "The body is too large"],
  "parameters.too.many": [413, "The form has too many fields"],
  "charset.unsupported": [415, "The body must be UTF-8"],
  "encoding.unsupported": [415, "Unsupported Content-Encoding"],
  "request.aborted": [400, "The request was aborted"],
  "request.size.invalid": [400, "The body's length is not its Content-Length"],
};

/**
 * The last error handler: known errors keep their status; a body that does
 * not parse is a 400, one the parser refuses its 4xx; anything else is
 * logged here, with its stack, and answered with a bland 500.
 */
export function jsonErrors(error, req, res, next) {
  if (res.headersSent) return next(error);
  if (error instanceof ApiError) return sendError(res, error);
  // Not a failure: the server protects itself (see hashing.js).
  if (error instanceof ServerBusy) return sendError(res, ApiError.busy());
  if (error.type === "entity.parse.failed") {
    const message = `Failed to parse the request body: ${error.message}`;
    return sendError(res, new ApiError(400, message));
  }
  const known = BODY_ERRORS[error.type];
  if (known) return sendError(res, new ApiError(...known));
  // Any other client error from a middleware (http-errors marks those it
  // may show): its own status and message.
  if (error.expose && error.status >= 400 && error.status < 500) {
    return sendError(res, new ApiError(error.status, error.message));
  }
  log.error("request failed:", error);
  sendError(res, ApiError.internal());
}
