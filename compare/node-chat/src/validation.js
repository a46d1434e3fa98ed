// Turning what a client sent into values the server can trust.
// (step05-chat/src/validation.rs)
//
// A Socket.IO event carries whatever JSON the other end chose to send: any
// browser console can emit `socket.emit("chat message", {text: 12})`. So
// handlers pass the payload through these functions, which return checked
// values or throw an InputError whose message is fit to send back in the ack.
// The messages are step 5's, word for word: they are part of the contract.

/** The room a message goes to when the client does not say. */
export const DEFAULT_ROOM = "general";
/** The longest room name. */
export const MAX_ROOM_CHARS = 32;
/** The longest message, in characters (code points), not UTF-16 units. */
export const MAX_TEXT_CHARS = 1000;
/** The most combining marks (accents) allowed on one character. */
export const MAX_COMBINING_MARKS = 4;
/** The longest `clientOffset`. */
export const MAX_CLIENT_OFFSET_CHARS = 64;

/** A refused payload: its message is what the client is told. */
export class InputError extends Error {}

const NOT_A_MESSAGE = 'expected {"room", "text"} or a string';
const INVALID_ROOM = `room must be 1 to ${MAX_ROOM_CHARS} of a-z, 0-9, _ and -`;
const INVALID_CLIENT_OFFSET =
  `clientOffset must be 1 to ${MAX_CLIENT_OFFSET_CHARS} ` +
  "printable ASCII characters";
const TEXT_NOT_A_STRING = "text must be a string";
const TEXT_LENGTH = `text must be 1 to ${MAX_TEXT_CHARS} characters`;
const CONTROL_CHARACTERS = "text must not contain control characters";
const NOTHING_VISIBLE = "text must contain something visible";

const ROOM = new RegExp(`^[a-z0-9_-]{1,${MAX_ROOM_CHARS}}$`);
const CLIENT_OFFSET = new RegExp(
  `^[\\x21-\\x7e]{1,${MAX_CLIENT_OFFSET_CHARS}}$`, // printable ASCII
);
// The characters that reorder text: "txt.exe" can display as "exe.txt".
const BIDI_CONTROLS = /[\u202A-\u202E\u2066-\u2069]/g;
// Rust's `trim()`: Unicode White_Space at both ends. (JavaScript's own
// `trim()` also removes U+FEFF, which is not White_Space.)
const EDGE_SPACE = /^\p{White_Space}+|\p{White_Space}+$/gu;
const SPACE = /^\p{White_Space}$/u;
const CONTROL = /^\p{Cc}$/u;
// Zero-width spaces and joiners, word joiner, BOM, LRM/RLM, soft hyphen.
const INVISIBLE = /^[\u200B-\u200F\u2060-\u2064\uFEFF\u00AD]$/u;
// The blocks that hold nearly every combining mark.
const COMBINING = new RegExp(
  "^[\u0300-\u036F\u0483-\u0489\u1AB0-\u1AFF" +
    "\u1DC0-\u1DFF\u20D0-\u20FF\uFE20-\uFE2F]$",
  "u",
);

/** A room name: a string of 1 to 32 of `a-z 0-9 _ -`. */
export function parseRoom(value) {
  if (typeof value !== "string" || !ROOM.test(value)) {
    throw new InputError(INVALID_ROOM);
  }
  return value;
}

/** `after` of `presence page`: a user id, an integer. */
export function parseAfter(value) {
  if (!Number.isSafeInteger(value)) {
    throw new InputError("after must be a user id (an integer)");
  }
  return value;
}

// ANCHOR: parse_chat_message
/**
 * A chat message from a client: `{room, text, clientOffset?}` or just
 * `"text"` (which goes to `general`). Every other field is ignored, on
 * purpose: a `user` in the payload is never read.
 */
export function parseChatMessage(value) {
  let room = DEFAULT_ROOM;
  let clientOffset = null;
  let text;
  if (typeof value === "string") {
    text = value;
  } else if (isObject(value)) {
    if (Object.hasOwn(value, "room")) room = parseRoom(value.room);
    if (typeof value.text !== "string") {
      throw new InputError(TEXT_NOT_A_STRING);
    }
    text = value.text;
    if (value.clientOffset != null) {
      clientOffset = parseClientOffset(value.clientOffset);
    }
  } else {
    throw new InputError(NOT_A_MESSAGE);
  }
  return { room, text: parseText(text), clientOffset };
}
// ANCHOR_END: parse_chat_message

function isObject(value) {
  return value !== null && typeof value === "object" && !Array.isArray(value);
}

function parseClientOffset(value) {
  if (typeof value !== "string" || !CLIENT_OFFSET.test(value)) {
    throw new InputError(INVALID_CLIENT_OFFSET);
  }
  return value;
}

/**
 * Removes bidirectional overrides, trims, then checks what a reader will
 * see: 1 to 1000 characters, no control characters but new lines, something
 * visible, and no more than four accents piled on one character.
 */
export function parseText(raw) {
  // A lone surrogate is not text: Rust's JSON parser refuses the whole
  // payload, so the twin answers what step 5 answers then.
  if (!raw.isWellFormed()) throw new InputError(NOT_A_MESSAGE);
  const text = raw.replace(BIDI_CONTROLS, "").replace(EDGE_SPACE, "");
  const chars = [...text]; // code points, like Rust's `chars()`
  if (chars.length === 0 || chars.length > MAX_TEXT_CHARS) {
    throw new InputError(TEXT_LENGTH);
  }
  if (chars.some((c) => c !== "\n" && CONTROL.test(c))) {
    throw new InputError(CONTROL_CHARACTERS);
  }
  let visible = false;
  let marksInARow = 0;
  for (const c of chars) {
    if (COMBINING.test(c)) {
      marksInARow += 1;
      if (marksInARow > MAX_COMBINING_MARKS) {
        throw new InputError(NOTHING_VISIBLE);
      }
    } else {
      marksInARow = 0;
      visible ||= !SPACE.test(c) && !INVISIBLE.test(c);
    }
  }
  if (!visible) throw new InputError(NOTHING_VISIBLE);
  return text;
}
