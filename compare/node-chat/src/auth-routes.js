// @ts-check
// The JSON routes of the HTTP contract: POST /register, /login, /logout,
// GET /me, and the routes that end sessions: POST /logout-everywhere,
// /password. (step03-passport-like-auth/src/routes.rs)
//
// Express 5 passes a rejected promise of an async handler to the error
// handler (`jsonErrors`), so a handler may simply throw an ApiError.

import express from "express";

import { ApiError, jsonOrForm } from "./api.js";
import { log } from "./log.js";
import { checkPassword, register } from "./passport.js";

/** The one message for every failed login, whatever was wrong. */
export const INVALID_CREDENTIALS = "Invalid username or password";

/**
 * The routes, over the app's parts. `onLogout(sessionId)` runs before a
 * session ends (a logout, or a login that replaces it): step 4's hook that
 * disconnects the sockets opened with it; `onLogout.everywhere(userId,
 * except)` disconnects a user's, and `onLogout.follow(from, to)` moves a
 * session's sockets to its new id. `cookieName` is the session's.
 * `throttle` is the login throttle of the whole server (shared-state.js):
 * in a cluster it answers from the primary process, hence the `await`s.
 */
export function authRoutes(parts) {
  const { users, hashes, passport, throttle, onLogout, cookieName } = parts;
  const router = express.Router();
  const body = jsonOrForm();

  router.post("/register", body, async (req, res) => {
    const { username, password } = credentials(req.body);
    await throttle.registrationAttempt(req.ip);
    const user = await register(users, hashes, username, password);
    await logIn(req, user, onLogout);
    log.info(`registered ${user.username} (${user.id})`);
    res.status(201).json(user);
  });

  // ANCHOR: login
  router.post("/login", body, async (req, res) => {
    const { username } = credentials(req.body);
    // Before the password is checked: a throttled guess costs no Argon2.
    await throttle.loginAttempt(req.ip, username);
    const user = await authenticate(passport, req, res);
    // Same status, same body for an unknown user and a wrong password.
    if (!user) throw new ApiError(401, INVALID_CREDENTIALS);
    await throttle.loginSucceeded(req.ip, username);
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
    await destroy(req);
    res.clearCookie(cookieName, { path: "/" });
    res.status(204).end();
  });

  router.get("/me", (req, res) => {
    if (!req.user) throw ApiError.unauthorized();
    res.json(req.user);
  });

  // ANCHOR: end_sessions
  // Every session of this user ends, this one too, and every socket closes.
  router.post("/logout-everywhere", async (req, res) => {
    if (!req.user) throw ApiError.unauthorized();
    users.endSessions(req.user.id);
    onLogout.everywhere(req.user.id);
    await destroy(req);
    res.clearCookie(cookieName, { path: "/" });
    log.info(`logged out everywhere ${req.user.username} (${req.user.id})`);
    res.status(204).end();
  });

  // The current password, checked (and throttled) like a login; then the
  // new one. This session stays, under a new id; the others end.
  router.post("/password", body, async (req, res) => {
    if (!req.user) throw ApiError.unauthorized();
    const { currentPassword, newPassword } = req.body ?? {};
    const strings = [currentPassword, newPassword];
    if (strings.some((value) => typeof value !== "string")) {
      const message = "currentPassword and newPassword must be strings";
      throw new ApiError(400, message);
    }
    const { id, username } = req.user;
    await throttle.loginAttempt(req.ip, username);
    const hash = users.findCredentials(username)?.passwordHash;
    const matches = hash && (await hashes.verify(hash, currentPassword));
    if (!matches) throw new ApiError(401, INVALID_CREDENTIALS);
    await throttle.loginSucceeded(req.ip, username);
    checkPassword(newPassword);
    const epoch = users.endSessions(id, await hashes.hash(newPassword));
    if (epoch === null) throw ApiError.unauthorized(); // deleted meanwhile
    const oldId = req.sessionID;
    onLogout.everywhere(id, oldId);
    await keepLoginUnderNewId(req, epoch);
    onLogout.follow(oldId, req.sessionID); // this session's sockets stay
    log.info(`changed password ${username} (${id})`);
    res.status(204).end();
  });
  // ANCHOR_END: end_sessions

  return router;
}

/** `req.session.destroy()` as a promise. */
function destroy(req) {
  return new Promise((resolve, reject) => {
    req.session.destroy((error) => (error ? reject(error) : resolve(undefined)));
  });
}

/**
 * A new session id for the same login (OWASP: a change of privilege, like a
 * login), with the user's new session epoch.
 */
function keepLoginUnderNewId(req, epoch) {
  const { passport, startedAt } = req.session;
  return new Promise((resolve, reject) => {
    req.session.regenerate((error) => {
      if (error) return reject(error);
      Object.assign(req.session, { passport, startedAt, epoch });
      resolve(undefined);
    });
  });
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
    req.login(user, (error) => (error ? reject(error) : resolve(undefined)));
  });
}
