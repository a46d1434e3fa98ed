// @ts-check
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
/** The most marks (accents, vowel signs) one grapheme may carry. */
export const MAX_MARKS_PER_GRAPHEME = 8;
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
const CONTROL = /^\p{Cc}$/u;
// ANCHOR: shows
// What puts no ink on the screen, by Unicode properties: white space, the
// "default ignorable" (fillers, joiners, tags, direction marks), marks that
// need a letter to sit on, format characters; and U+2800, the blank Braille
// pattern, a symbol by its category that no property tells apart.
const INVISIBLE = new RegExp(
  "^[\\p{White_Space}\\p{Default_Ignorable_Code_Point}" +
    "\\p{Mn}\\p{Me}\\p{Cf}\\u2800]$",
  "u",
);
const MARK = /\p{M}/gu; // Mn, Mc, Me
// Graphemes: what a reader sees as one character (step 4's
// `unicode-segmentation`).
const GRAPHEMES = new Intl.Segmenter("en", { granularity: "grapheme" });
// ANCHOR_END: shows

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
 * see: 1 to 1000 characters, no control characters but new lines, and at
 * least one grapheme that shows something, none under more than eight marks.
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
  // ANCHOR: graphemes
  let visible = false;
  for (const { segment } of GRAPHEMES.segment(text)) {
    const marks = segment.match(MARK)?.length ?? 0;
    if (marks > MAX_MARKS_PER_GRAPHEME) throw new InputError(NOTHING_VISIBLE);
    visible ||= [...segment].some((c) => !INVISIBLE.test(c));
  }
  // ANCHOR_END: graphemes
  if (!visible) throw new InputError(NOTHING_VISIBLE);
  return text;
}
