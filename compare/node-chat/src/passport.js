// @ts-check
// Passport, configured: the local strategy, serializeUser, deserializeUser.
// (step03-passport-like-auth/src/passport.rs, which writes each of these
// out by hand under the same names)

import { Passport } from "passport";
import { Strategy as LocalStrategy } from "passport-local";

import { ApiError } from "./api.js";
import { UsernameTaken } from "./users.js";

/** The fewest characters a password may have. */
export const MIN_PASSWORD_CHARS = 8;

export const INVALID_USERNAME =
  "Username must be 3 to 32 characters long and use only letters, " +
  "digits, _ and -";
export const WEAK_PASSWORD =
  `Password must be at least ${MIN_PASSWORD_CHARS} characters long`;
export const TAKEN = "Username is already taken";

/** The one form of a username: NFKC, then ASCII lower case. */
export function canonicalUsername(username) {
  return username
    .normalize("NFKC")
    .replace(/[A-Z]+/g, (letters) => letters.toLowerCase());
}

const BODY_ONLY = { passReqToCallback: true };

// ANCHOR: passport
/**
 * A Passport instance for `users`, hashing with `hashes`; a login lasts
 * `sessions.absoluteLifetimeMs` at most, however active.
 */
export function createPassport(users, hashes, sessions) {
  const passport = new Passport();
  // A hash of a password nobody knows: a login for an unknown name is
  // checked against it, so that it takes as long as a wrong password.
  const dummyHash = hashes.hash("not the password of anyone");
  dummyHash.catch(() => {}); // awaited (and its failure seen) on first use

  passport.use(
    // passport-local falls back to `req.query` when the body's username is
    // empty: a password in a URL (and in every log of it), and a name the
    // throttle never counted. Only the body's credentials are checked, the
    // very name auth-routes.js throttles.
    new LocalStrategy(BODY_ONLY, async (req, _name, _password, done) => {
      const { username, password } = req.body;
      try {
        const found = users.findCredentials(canonicalUsername(username));
        const hash = found?.passwordHash ?? (await dummyHash);
        const matches = await hashes.verify(hash, password);
        done(null, found !== null && matches ? found.user : false);
      } catch (error) {
        done(error);
      }
    }),
  );
  // Only the id goes into the session; the user is loaded on each request,
  // so a rename or a deletion is seen at once. Beside it (with `req`, the
  // three-argument form): the user's session epoch and when the login was.
  passport.serializeUser((req, user, done) => {
    req.session.epoch = users.findWithEpoch(user.id)?.epoch ?? 0;
    req.session.startedAt = Date.now();
    done(null, user.id);
  });
  // A session whose user no longer exists is "not logged in", not an error;
  // so is one the user ended elsewhere, or older than its absolute lifetime.
  passport.deserializeUser((req, id, done) => {
    const found = users.findWithEpoch(id);
    if (found === null) return done(null, false);
    const age = Date.now() - (req.session.startedAt ?? Date.now());
    const valid =
      (req.session.epoch ?? 0) === found.epoch &&
      age < sessions.absoluteLifetimeMs;
    if (valid) return done(null, found.user);
    delete req.session.epoch;
    delete req.session.startedAt;
    done(null, false); // and Passport forgets the user id
  });
  return passport;
}
// ANCHOR_END: passport

/** The register's password rule: a 400 if `password` breaks it. */
export function checkPassword(password) {
  // Characters, not UTF-16 units: "pässwörd" is 8 characters.
  if ([...password].length < MIN_PASSWORD_CHARS) {
    throw new ApiError(400, WEAK_PASSWORD);
  }
}

/**
 * Creates an account (it does not log it in: the route does). A refusal is
 * an ApiError: 400 for a bad name or password, 409 for a taken name.
 */
export async function register(users, hashes, username, password) {
  const name = canonicalUsername(username);
  if (!/^[a-z0-9_-]{3,32}$/.test(name)) {
    throw new ApiError(400, INVALID_USERNAME);
  }
  checkPassword(password);
  const hash = await hashes.hash(password);
  try {
    return users.create(name, hash);
  } catch (error) {
    if (error instanceof UsernameTaken) throw new ApiError(409, TAKEN);
    throw error;
  }
}
