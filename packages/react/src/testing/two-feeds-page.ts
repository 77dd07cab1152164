/**
 * The page the browser test bundles: two components listening to different channels, a status
 * line, presence for one channel, and a button that unmounts the listeners. Plain
 * `createElement` (no JSX) so it type-checks and bundles without a JSX set-up.
 */
import { createRealtimeClient, type RealtimeClient } from "@realtime/client";
import { createElement, Fragment, StrictMode, useState } from "react";
import { createRoot } from "react-dom/client";
import { RealtimeProvider } from "../realtime-provider.ts";
import { useConnectionState } from "../use-connection-state.ts";
import { useEventChannel } from "../use-event-channel.ts";
import { usePresence } from "../use-presence.ts";

function Feed({ channel }: { channel: string }) {
  const [lines, setLines] = useState<string[]>([]);
  // A new onEvent on every render (each event re-renders): must never reconnect.
  useEventChannel(channel, {
    onEvent: (event) => {
      // Chat only: the server also sends presence events on the room.
      if (event.type === "chat") setLines((previous) => [...previous, String(event.content)]);
    },
  });
  return createElement(
    "ul",
    { "data-channel": channel },
    lines.map((line, i) => createElement("li", { key: i }, line)),
  );
}

function Status() {
  const { state } = useConnectionState();
  return createElement("p", { id: "state" }, state);
}

function Presence({ channel }: { channel: string }) {
  const presence = usePresence(channel);
  const names = presence?.users.map((user) => user.userName).join(",") ?? "";
  return createElement("p", { id: "presence" }, `${presence?.status}:${names}`);
}

function App({ client }: { client: RealtimeClient }) {
  const [mounted, setMounted] = useState(true);
  return createElement(
    RealtimeProvider,
    { client },
    createElement(
      "button",
      { type: "button", id: "toggle", onClick: () => setMounted((m) => !m) },
      "toggle",
    ),
    createElement(Status),
    mounted &&
      createElement(
        Fragment,
        null,
        createElement(Feed, { channel: "channel:a" }),
        createElement(Feed, { channel: "channel:b" }),
        createElement(Presence, { channel: "channel:a" }),
      ),
  );
}

const client = createRealtimeClient({ url: "" });
// Every channel a subscribe() was called for, read by the test: it tells StrictMode did mount
// and unmount the effects (a second subscribe per Feed) while the stream stayed one.
const subscribed: string[] = [];
const subscribe = client.subscribe.bind(client);
client.subscribe = (channel, ...rest) => {
  subscribed.push(channel);
  return subscribe(channel, ...rest);
};
Object.assign(globalThis, { subscribed });
const root = document.getElementById("root");
if (!root) throw new Error("the page has no #root");
// StrictMode mounts, unmounts and re-mounts every effect: the client must still open one stream.
createRoot(root).render(createElement(StrictMode, null, createElement(App, { client })));
