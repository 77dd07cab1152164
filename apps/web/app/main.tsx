/**
 * Entry point: one realtime client for the page (one EventSource for every room and the
 * user's own channel), the session, and the store of what the page shows.
 *
 * Across a reload the page keeps its place: on `pagehide` it saves what it shows together
 * with the client's cursor (both are updated in the same task as each event, so they match),
 * and the next load resumes the stream from that cursor: the server replays exactly what was
 * missed in between.
 */
import { createRealtimeClient, type RealtimeClient, type StateChange } from "@realtime/client";
import { RealtimeProvider } from "@realtime/react";
import { StrictMode } from "react";
import { createRoot } from "react-dom/client";
import { App } from "./components/App.tsx";
import { ServicesContext } from "./context.ts";
import { Session } from "./session.ts";
import { readJson, writeJson } from "./storage.ts";
import { AppStore, parseRoomInput, type SavedState } from "./store.ts";
import "./styles.css";

/** Rooms joined and the open one, per browser. */
const PREFS_KEY = "realtime.rooms";
/** What the page showed and the stream's cursor, per tab, for the next load. */
const RESUME_KEY = "realtime.resume";

interface Prefs {
  readonly order: readonly string[];
  readonly active: string;
}

interface Resume {
  readonly userId: string;
  readonly cursor: string | null;
  readonly state: SavedState;
}

/** `/r/<room>` opens (and joins) that room. */
function roomFromPath(pathname: string): string | null {
  const match = /^\/r\/([^/]+)\/?$/.exec(pathname);
  if (!match?.[1]) return null;
  let decoded: string;
  try {
    decoded = decodeURIComponent(match[1]);
  } catch {
    return null;
  }
  const parsed = parseRoomInput(decoded);
  return "id" in parsed ? parsed.id : null;
}

/** Resolves once the client's channel set includes `channel` (or after a second). */
function untilCarried(client: RealtimeClient, channel: string): Promise<void> {
  const deadline = performance.now() + 1000;
  return new Promise((resolve) => {
    const check = () => {
      if (client.channels.includes(channel as never) || performance.now() > deadline) resolve();
      else setTimeout(check, 10);
    };
    check();
  });
}

const session = new Session();
const store = new AppStore(readJson<Prefs>("localStorage", PREFS_KEY) ?? undefined);
await session.init();

// A reload of this tab by the same user: show what was there and resume from its cursor.
const saved = readJson<Resume>("sessionStorage", RESUME_KEY);
writeJson("sessionStorage", RESUME_KEY, null);
const resume = saved && saved.userId === session.user?.id ? saved : null;
if (resume) store.restore(resume.state);
const linked = roomFromPath(location.pathname);
if (linked) store.open(linked);

const client = createRealtimeClient({
  url: "",
  ...(resume?.cursor && { lastEventId: resume.cursor }),
  // The stream was refused for expired credentials: sign in again with the same name, and let
  // the client reconnect once the stream asks for the new user's own channel.
  onTokenExpired: async () => {
    const user = await session.renew();
    await untilCarried(client, `user:${user.id}`);
  },
});

const changeTimes = new WeakMap<StateChange, number>();
client.onStateChange((change) => changeTimes.set(change, performance.now()));

addEventListener("pagehide", () => {
  const user = session.user;
  if (!user) return;
  const resumeNext: Resume = { userId: user.id, cursor: client.lastEventId, state: store.saved() };
  writeJson("sessionStorage", RESUME_KEY, resumeNext);
});

/** Remembers the rooms, and shows the open one in the title and the address (`/r/<room>`). */
let shown = "";
function syncLocation(): void {
  const { order, active } = store.getSnapshot();
  writeJson("localStorage", PREFS_KEY, { order, active } satisfies Prefs);
  const signedIn = session.user !== null;
  const key = signedIn ? active : "";
  if (key === shown) return;
  shown = key;
  document.title = signedIn ? `#${active} · realtime` : "realtime";
  const path = signedIn ? `/r/${encodeURIComponent(active)}` : "/";
  if (location.pathname !== path) history.replaceState(null, "", path);
}
store.subscribe(syncLocation);
session.subscribe(() => {
  const { status } = session.getSnapshot();
  if (status === "signed-out") store.clear();
  // After a refusal the client stays closed until told: a fresh sign-in is that moment.
  if (status === "signed-in" && client.state === "closed") client.connect();
  syncLocation();
});
syncLocation();

const element = document.getElementById("root");
if (!element) throw new Error("no #root element");
createRoot(element).render(
  <StrictMode>
    <ServicesContext.Provider value={{ session, store, changeTimes }}>
      <RealtimeProvider client={client}>
        <App />
      </RealtimeProvider>
    </ServicesContext.Provider>
  </StrictMode>,
);
