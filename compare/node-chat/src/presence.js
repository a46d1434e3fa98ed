// @ts-check
// Who is online in which room. (step05-chat/src/presence.rs)
//
// A user may have several sockets (three tabs, a phone), and each socket may
// be in several rooms. The list shows *users*, once each, so sockets are
// counted per user per room, and a change is reported only when a count goes
// from 0 to 1 or from 1 to 0. A socket entering a room gets the first page of
// the list (`page`: the first users by id, and how many are online in all);
// the room then hears only who came and who went (`takeChange`).

/**
 * @typedef {{ room: string, joined: object[], left: object[],
 *   online: number }} PresenceChange who came and went, and how many are
 *   online now
 */

export class Presence {
  rooms = new Map(); // room -> Map(user id -> { user, count })
  sockets = new Map(); // socket id -> { user, rooms: Set }
  changes = new Map(); // room -> Map(user id -> { user, online }), not yet taken

  /**
   * Counts `socketId` (of `user`) in `room`. Returns whether the room's set
   * of users changed. Step 5 must ask "still connected?" under a lock here,
   * because its disconnect handler may run at the same moment on another
   * thread; in Node it cannot, so the caller's check is enough.
   */
  join(socketId, user, room) {
    let held = this.sockets.get(socketId);
    if (held === undefined) {
      held = { user, rooms: new Set() };
      this.sockets.set(socketId, held);
    }
    if (held.rooms.has(room)) return false; // already counted here
    held.rooms.add(room);
    let users = this.rooms.get(room);
    if (users === undefined) {
      users = new Map();
      this.rooms.set(room, users);
    }
    const entry = users.get(user.id) ?? { user, count: 0 };
    entry.count += 1;
    users.set(user.id, entry);
    if (entry.count === 1) this.note(room, user, true);
    return entry.count === 1;
  }

  /** Stops counting `socketId` in `room`; whether the users changed. */
  leave(socketId, room) {
    const held = this.sockets.get(socketId);
    if (held === undefined || !held.rooms.delete(room)) return false;
    return this.uncount(room, held.user.id);
  }

  /** Forgets `socketId` everywhere; the rooms whose users changed. */
  disconnect(socketId) {
    const held = this.sockets.get(socketId);
    if (held === undefined) return [];
    this.sockets.delete(socketId);
    return [...held.rooms]
      .filter((room) => this.uncount(room, held.user.id))
      .sort();
  }

  /**
   * The users who came and went in `room` since the last call, each named
   * once with what happened to them last, or undefined if none did.
   */
  takeChange(room) {
    const changes = this.changes.get(room);
    if (changes === undefined) return undefined;
    this.changes.delete(room);
    const entries = [...changes.entries()].sort(([a], [b]) => a - b);
    const named = (online) =>
      entries.filter(([, c]) => c.online === online).map(([, c]) => c.user);
    const online = this.rooms.get(room)?.size ?? 0;
    return { room, joined: named(true), left: named(false), online };
  }

  /**
   * The users of `room` whose id comes after `after` (all of them if
   * undefined), at most `size`, by id, as `{room, users, online, more}`.
   */
  page(room, after, size) {
    const all = this.usersIn(room);
    const next =
      after === undefined ? all : all.filter((user) => user.id > after);
    const users = next.slice(0, size);
    return { room, users, online: all.length, more: next.length > size };
  }

  /** The users online in `room`, each once, ordered by id. */
  usersIn(room) {
    const users = [...(this.rooms.get(room)?.values() ?? [])];
    return users.map((entry) => entry.user).sort((a, b) => a.id - b.id);
  }

  /** One socket of `userId` fewer in `room`; true if it was the last. */
  uncount(room, userId) {
    const users = this.rooms.get(room);
    const entry = users?.get(userId);
    if (entry === undefined) return false;
    entry.count -= 1;
    if (entry.count > 0) return false;
    users.delete(userId);
    this.note(room, entry.user, false);
    if (users.size === 0) this.rooms.delete(room); // no empty rooms pile up
    return true;
  }

  /** Remembers that `user` came (`online`) or went, until the change is taken. */
  note(room, user, online) {
    let changes = this.changes.get(room);
    if (changes === undefined) {
      changes = new Map();
      this.changes.set(room, changes);
    }
    changes.set(user.id, { user, online });
  }
}
