/**
 * What the page shows, as one external store: the rooms joined and their messages, the jobs
 * and the notices. Events from the stream are applied synchronously, the moment the client
 * dispatches them, so a snapshot taken at any time matches the client's cursor (which is what
 * makes saving both across a reload exact).
 */
import type { HistoryEvent } from "@realtime/client";
import type { RealtimeEvent } from "@realtime/protocol";
import { validateChannelId } from "@realtime/protocol";
import { isNumber, type Job, type JobView, jobAfterEvent, TERMINAL } from "./jobs.ts";

export const DEFAULT_ROOMS = ["general", "random", "help"] as const;
/** One stream carries 16 channels by default: 15 rooms and the user's own channel. */
export const MAX_ROOMS = 15;
/** Messages kept per room. */
const MAX_ITEMS = 500;
/** Jobs kept on the page. */
const MAX_JOBS = 8;

export interface ChatMessage {
  readonly kind: "message";
  readonly key: string;
  /** The event's id on the room's channel: `before` for the messages older than it. */
  readonly id?: string;
  readonly userId: string;
  readonly userName: string;
  readonly content: string;
  readonly timestamp: string;
}

/** Where the stream could not replay what a room sent meanwhile. */
export interface Gap {
  readonly kind: "gap";
  readonly key: string;
  readonly reason: string;
  readonly timestamp: string;
}

export type LogItem = ChatMessage | Gap;

export interface Room {
  readonly id: string;
  readonly items: readonly LogItem[];
  readonly unread: number;
  /**
   * What was said before is in (read from history, or kept across a reload, where the stream's
   * saved cursor goes on): the room's feed follows it live from where it is.
   */
  readonly loaded: boolean;
  /** `before` for the messages older than the oldest shown; null when history has none. */
  readonly older: string | null;
}

/** The server could not replay a channel: shown until dismissed. */
export interface Notice {
  readonly key: string;
  /** `channel:<id>` or `user:<id>`. */
  readonly channel: string;
  readonly reason: string;
}

export interface AppState {
  /** Joined rooms, in the order shown. */
  readonly order: readonly string[];
  readonly active: string;
  readonly rooms: Readonly<Record<string, Room>>;
  /** Newest first. */
  readonly jobs: readonly Job[];
  readonly notices: readonly Notice[];
}

/** What is saved in sessionStorage across a reload. */
export interface SavedState {
  readonly order: readonly string[];
  readonly active: string;
  readonly rooms: Readonly<Record<string, Room>>;
  readonly jobs: readonly Job[];
}

/**
 * A room id from what a person typed: `general`, `#general` or `channel:general`.
 * Returns the id, or an error message in plain words.
 */
export function parseRoomInput(input: string): { id: string } | { error: string } {
  let id = input.trim();
  if (id.startsWith("#")) id = id.slice(1);
  if (id.startsWith("channel:")) id = id.slice("channel:".length);
  if (id.startsWith("user:"))
    return { error: "user: channels are private; rooms are channel:<id>" };
  if (id.length === 0) return { error: "Type a room name" };
  if (/\s/.test(id)) return { error: "No spaces: use - or _ instead" };
  const problem = validateChannelId(id);
  if (problem === null) return { id };
  if (problem.includes("longer")) return { error: "At most 128 characters" };
  if (/^[.~@-]/.test(id)) return { error: "Start with a letter, a digit or _" };
  return { error: "Only letters, digits and _ . - ~ @" };
}

/** Keys are unique across reloads too: saved items keep theirs. */
const PAGE = Math.random().toString(36).slice(2, 8);
let keys = 0;
const nextKey = () => `${PAGE}-${++keys}`;

function emptyRoom(id: string): Room {
  return { id, items: [], unread: 0, loaded: false, older: null };
}

/** A chat event as a message, or null when it is not one. */
function toMessage(event: RealtimeEvent, id: string | null): ChatMessage | null {
  const { type, userId, userName, content, timestamp } = event;
  if (type !== "chat" || typeof content !== "string") return null;
  return {
    kind: "message",
    key: nextKey(),
    ...(id && { id }),
    userId: typeof userId === "string" ? userId : "",
    userName: typeof userName === "string" ? userName : "someone",
    content,
    timestamp: typeof timestamp === "string" ? timestamp : new Date().toISOString(),
  };
}

/** The `before` of a log whose oldest items were dropped: the oldest message kept. */
function olderThan(items: readonly LogItem[], fallback: string | null): string | null {
  const first = items.find((item): item is ChatMessage => item.kind === "message");
  return first?.id ?? fallback;
}

function initialState(order: readonly string[] = DEFAULT_ROOMS, active = "general"): AppState {
  const rooms: Record<string, Room> = {};
  for (const id of order) rooms[id] = emptyRoom(id);
  return {
    order,
    active: order.includes(active) ? active : (order[0] ?? "general"),
    rooms,
    jobs: [],
    notices: [],
  };
}

export class AppStore {
  #state: AppState;
  readonly #listeners = new Set<() => void>();

  constructor(prefs?: { order?: readonly string[]; active?: string }) {
    const order = (prefs?.order ?? []).filter((id) => validateChannelId(id) === null);
    this.#state = initialState(
      order.length > 0 ? order.slice(0, MAX_ROOMS) : DEFAULT_ROOMS,
      prefs?.active,
    );
  }

  getSnapshot = (): AppState => this.#state;

  subscribe = (listener: () => void): (() => void) => {
    this.#listeners.add(listener);
    return () => this.#listeners.delete(listener);
  };

  // --- rooms ---------------------------------------------------------------------------

  /** Joins (if needed) and opens a room. Returns an error message when it cannot. */
  open(id: string): string | null {
    const state = this.#state;
    if (state.order.includes(id)) {
      if (state.active !== id)
        this.#update({ active: id, rooms: this.#withRoom(id, { unread: 0 }) });
      return null;
    }
    if (state.order.length >= MAX_ROOMS) {
      return `You can be in ${MAX_ROOMS} rooms at once: leave one first`;
    }
    this.#update({
      order: [...state.order, id],
      active: id,
      rooms: { ...state.rooms, [id]: emptyRoom(id) },
    });
    return null;
  }

  leave(id: string): void {
    const state = this.#state;
    if (!state.order.includes(id) || state.order.length === 1) return;
    const order = state.order.filter((room) => room !== id);
    const rooms = { ...state.rooms };
    delete rooms[id];
    const active = state.active === id ? (order[0] ?? "general") : state.active;
    this.#update({
      order,
      active,
      rooms,
      notices: state.notices.filter((notice) => notice.channel !== `channel:${id}`),
    });
  }

  chat(room: string, event: RealtimeEvent, id: string | null = null): void {
    const current = this.#state.rooms[room];
    const message = toMessage(event, id);
    if (!current || !message) return;
    const unread = room === this.#state.active ? 0 : current.unread + 1;
    const all = [...current.items, message];
    const items = all.slice(-MAX_ITEMS);
    // Messages pushed out can be read again from history: they are older than the first kept.
    const older = items.length < all.length ? olderThan(items, current.older) : current.older;
    this.#update({ rooms: this.#withRoom(room, { items, unread, older }) });
  }

  /**
   * Messages from the room's history (its last page, or an older one), in front of what is
   * shown; `older` is where the next older page starts (null: none). Other event types of the
   * page (presence) are left out. Not unread: they were said before the room was opened.
   */
  history(room: string, events: readonly HistoryEvent[], older: string | null): void {
    const current = this.#state.rooms[room];
    if (!current) return;
    const messages = events.flatMap(({ event, id }) => toMessage(event, id) ?? []);
    this.#update({
      rooms: this.#withRoom(room, { items: [...messages, ...current.items], loaded: true, older }),
    });
  }

  /** The room's history could not be read: it is followed live from now on. */
  historyFailed(room: string): void {
    if (!this.#state.rooms[room]) return;
    this.#update({ rooms: this.#withRoom(room, { loaded: true, older: null }) });
  }

  /** The stream could not replay the room: mark the spot and tell the person. */
  roomReset(room: string, reason: string): void {
    const current = this.#state.rooms[room];
    if (!current) return;
    const gap: Gap = { kind: "gap", key: nextKey(), reason, timestamp: new Date().toISOString() };
    this.#update({
      rooms: this.#withRoom(room, { items: [...current.items, gap].slice(-MAX_ITEMS) }),
      notices: this.#withNotice(`channel:${room}`, reason),
    });
  }

  // --- jobs ----------------------------------------------------------------------------

  /** A job the page just started (its events may have arrived first). */
  submitted(jobId: string, prompt: string, aspectRatio: string): void {
    const known = this.#job(jobId);
    this.#putJob({
      ...(known ?? { jobId, status: "queued", progress: 0, message: "Queued" }),
      prompt,
      aspectRatio,
    });
  }

  /**
   * Applies a `generation_*` event. Returns false when the job was not known (the caller
   * then fetches its status, e.g. after a reload).
   */
  jobEvent(event: RealtimeEvent): boolean {
    const jobId = event.jobId;
    if (typeof jobId !== "string") return true;
    const known = this.#job(jobId);
    // Events after the terminal one are stale (e.g. a progress racing a cancel): ignored.
    if (known && TERMINAL.has(known.status)) return true;
    const base: Job = known ?? {
      jobId,
      prompt: "",
      aspectRatio: "",
      status: "queued",
      progress: 0,
      message: "",
    };
    const next = jobAfterEvent(base, event);
    if (next === null) return true;
    this.#putJob(next);
    return known !== undefined;
  }

  /** Applies a job's status from the server (GET or DELETE). */
  jobView(view: JobView): void {
    const known = this.#job(view.jobId);
    if (known && TERMINAL.has(known.status) && !TERMINAL.has(view.status)) return;
    const message =
      view.status === "queued"
        ? "Queued"
        : view.status === "cancelled"
          ? "Cancelled"
          : view.status === "completed"
            ? "Done"
            : (view.error?.message ?? known?.message ?? "");
    this.#putJob({
      jobId: view.jobId,
      prompt: view.prompt,
      aspectRatio: view.aspectRatio,
      status: view.status,
      progress: Math.max(known?.progress ?? 0, isNumber(view.progress) ? view.progress : 0),
      message,
      ...(view.result && { result: view.result }),
      ...(view.error && { error: view.error }),
    });
  }

  /** The server no longer knows a job (e.g. it restarted): it cannot finish any more. */
  jobLost(jobId: string): void {
    const known = this.#job(jobId);
    if (!known || TERMINAL.has(known.status)) return;
    const message = "The server no longer knows this job";
    this.#putJob({ ...known, status: "failed", message, error: { code: "lost", message } });
  }

  userReset(userId: string, reason: string): void {
    this.#update({ notices: this.#withNotice(`user:${userId}`, reason) });
  }

  /** Jobs whose outcome the page still waits for. */
  activeJobs(): Job[] {
    return this.#state.jobs.filter((job) => !TERMINAL.has(job.status));
  }

  dismiss(key: string): void {
    this.#update({ notices: this.#state.notices.filter((notice) => notice.key !== key) });
  }

  // --- saving --------------------------------------------------------------------------

  saved(): SavedState {
    const { order, active, rooms, jobs } = this.#state;
    return { order, active, rooms, jobs };
  }

  restore(saved: SavedState): void {
    const base = initialState(saved.order, saved.active);
    const rooms: Record<string, Room> = { ...base.rooms };
    for (const id of base.order) {
      const room = saved.rooms[id];
      // The stream resumes a kept room from the saved cursor, unless its history was still
      // being read (then its feed reads it again).
      if (room && Array.isArray(room.items))
        rooms[id] = {
          id,
          items: room.items,
          unread: room.unread,
          loaded: room.loaded ?? true,
          older: room.older ?? null,
        };
    }
    this.#update({ ...base, rooms, jobs: Array.isArray(saved.jobs) ? saved.jobs : [] });
  }

  /** Back to the defaults, keeping the rooms joined (signing out). */
  clear(): void {
    this.#update(initialState(this.#state.order, this.#state.active));
  }

  // -------------------------------------------------------------------------------------

  #job(jobId: string): Job | undefined {
    return this.#state.jobs.find((job) => job.jobId === jobId);
  }

  #putJob(job: Job): void {
    const jobs = this.#state.jobs;
    const index = jobs.findIndex((candidate) => candidate.jobId === job.jobId);
    const next =
      index >= 0
        ? jobs.map((candidate, i) => (i === index ? job : candidate))
        : [job, ...jobs].slice(0, MAX_JOBS);
    this.#update({ jobs: next });
  }

  #withRoom(id: string, patch: Partial<Room>): Record<string, Room> {
    const room = this.#state.rooms[id] ?? emptyRoom(id);
    return { ...this.#state.rooms, [id]: { ...room, ...patch } };
  }

  #withNotice(channel: string, reason: string): Notice[] {
    // One notice per channel: the latest reason replaces an earlier one.
    const others = this.#state.notices.filter((notice) => notice.channel !== channel);
    return [...others, { key: nextKey(), channel, reason }];
  }

  #update(patch: Partial<AppState>): void {
    this.#state = { ...this.#state, ...patch };
    for (const listener of [...this.#listeners]) listener();
  }
}
