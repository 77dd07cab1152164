/**
 * The page the browser test bundles for starting from history: one component follows
 * `channel:feed` with `useEventChannel(…, { history })` (page lines `h:`, live lines `l:`),
 * another shows `channel:log` with `useChannelHistory` (chat only, with "older"). In
 * StrictMode, so every effect mounts, unmounts and mounts again. Plain `createElement`.
 */
import { createRealtimeClient, type RealtimeClient } from "@realtime/client";
import { createElement, StrictMode, useState } from "react";
import { createRoot } from "react-dom/client";
import { RealtimeProvider } from "../realtime-provider.ts";
import { useChannelHistory } from "../use-channel-history.ts";
import { useConnectionState } from "../use-connection-state.ts";
import { useEventChannel } from "../use-event-channel.ts";

function Feed() {
  const [lines, setLines] = useState<string[]>([]);
  useEventChannel("channel:feed", {
    history: 5,
    onHistory: (page) => {
      const chats = page.events.filter(({ event }) => event.type === "chat");
      setLines((previous) => [...previous, ...chats.map(({ event }) => `h:${event.content}`)]);
    },
    onEvent: (event) => {
      if (event.type === "chat") setLines((previous) => [...previous, `l:${event.content}`]);
    },
  });
  return createElement(
    "ul",
    { id: "feed" },
    lines.map((line, i) => createElement("li", { key: i }, line)),
  );
}

function Log() {
  const log = useChannelHistory("channel:log", { limit: 3, types: ["chat"] });
  return createElement(
    "div",
    null,
    createElement("p", { id: "log-state" }, log.loading ? "loading" : `older:${log.hasOlder}`),
    createElement(
      "button",
      { type: "button", id: "older", onClick: () => void log.loadOlder() },
      "older",
    ),
    createElement(
      "ul",
      { id: "log" },
      log.events.map(({ id, event }) => createElement("li", { key: id }, String(event.content))),
    ),
  );
}

function Status() {
  const { state } = useConnectionState();
  return createElement("p", { id: "state" }, state);
}

function App({ client }: { client: RealtimeClient }) {
  return createElement(
    RealtimeProvider,
    { client },
    createElement(Status),
    createElement(Feed),
    createElement(Log),
  );
}

const client = createRealtimeClient({ url: "" });
const root = document.getElementById("root");
if (!root) throw new Error("the page has no #root");
createRoot(root).render(createElement(StrictMode, null, createElement(App, { client })));
