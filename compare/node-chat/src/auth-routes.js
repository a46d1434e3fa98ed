// The four JSON routes of the HTTP contract: POST /register, /login,
// /logout and GET /me. (step03-passport-like-auth/src/routes.rs)
//
// Express 5 passes a rejected promise of an async handler to the error
// handler (`jsonErrors`), so a handler may simply throw an ApiError.

import express from "express";

import { ApiError, jsonOrForm } from "./api.js";
import { log } from "./log.js";
import { register } from "./passport.js";

/** The one message for every failed login, whatever was wrong. */
export const INVALID_CREDENTIALS = "Invalid username or password";

/**
 * The routes, over the app's parts. `onLogout(sessionId)` runs before a
 * session ends (a logout, or a login that replaces it): step 4's hook that
 * disconnects the sockets opened with it. `cookieName` is the session's.
 */
export function authRoutes(parts) {
  const { users, hashes, passport, throttle, onLogout, cookieName } = parts;
  const router = express.Router();
  const body = jsonOrForm();

  router.post("/register", body, async (req, res) => {
    const { username, password } = credentials(req.body);
    throttle.registrationAttempt(req.ip);
    const user = await register(users, hashes, username, password);
    await logIn(req, user, onLogout);
    log.info(`registered ${user.username} (${user.id})`);
    res.status(201).json(user);
  });

  // ANCHOR: login
  router.post("/login", body, async (req, res) => {
    const { username } = credentials(req.body);
    // Before the password is checked: a throttled guess costs no Argon2.
    throttle.loginAttempt(req.ip, username);
    const user = await authenticate(passport, req, res);
    // Same status, same body for an unknown user and a wrong password.
    if (!user) throw new ApiError(401, INVALID_CREDENTIALS);
    throttle.loginSucceeded(username);
    await logIn(req, user, onLogout);
    log.info(`logged in ${user.username} (${user.id})`);
    res.json(user);
  });
  // ANCHOR_END: login

  // Always 204, even for nobody: afterwards nobody is logged in, as asked.
  router.post("/logout", async (req, res) => {
    onLogout(req.sessionID);
    // Passport's req.logout() empties the session and starts a new one;
    // step 3 destroys it whole, and so does the twin.
    await new Promise((resolve, reject) => {
      req.session.destroy((error) => (error ? reject(error) : resolve()));
    });
    res.clearCookie(cookieName, { path: "/" });
    res.status(204).end();
  });

  router.get("/me", (req, res) => {
    if (!req.user) throw ApiError.unauthorized();
    res.json(req.user);
  });

  return router;
}

/** `{username, password}`, both strings, or a 400. */
function credentials(body) {
  const { username, password } = body ?? {};
  if (typeof username !== "string" || typeof password !== "string") {
    throw new ApiError(400, "username and password must be strings");
  }
  return { username, password };
}

/** `passport.authenticate("local")` as a promise: the user, or false. */
function authenticate(passport, req, res) {
  return new Promise((resolve, reject) => {
    const done = (error, user) => (error ? reject(error) : resolve(user));
    passport.authenticate("local", done)(req, res, reject);
  });
}

/**
 * `req.login(user)`, after closing the sockets of the session it replaces.
 * Passport regenerates the session id here: a session id planted in the
 * victim's browser before the login is worth nothing after it.
 */
function logIn(req, user, onLogout) {
  onLogout(req.sessionID);
  return new Promise((resolve, reject) => {
    req.login(user, (error) => (error ? reject(error) : resolve()));
  });
}
