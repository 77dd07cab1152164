/**
 * Online/offline awareness: while the device has no network, retrying only burns battery and
 * grows the backoff; when it comes back, waiting out a long backoff only delays the user.
 */

/** Tells the client whether the network is up, and when that changes. */
export interface Connectivity {
  /** Whether the network is up now. */
  isOnline(): boolean;
  /** Calls `listener` on every change; returns a function that stops the calls. */
  subscribe(listener: (online: boolean) => void): () => void;
}

/** For runtimes that cannot tell (Node): always online, never changes. */
export const alwaysOnline: Connectivity = {
  isOnline: () => true,
  subscribe: () => () => {},
};

/**
 * The browser's `navigator.onLine` and `online`/`offline` window events, or always online where
 * they do not exist. The globals are looked up when asked (`isOnline`, `subscribe`), not when
 * this is called, so a client created during server-side rendering touches none of them.
 */
export function defaultConnectivity(): Connectivity {
  return {
    isOnline: () => browserNetwork()?.navigator.onLine !== false,
    subscribe(listener) {
      const network = browserNetwork();
      if (!network) return alwaysOnline.subscribe(listener);
      const { addEventListener, removeEventListener } = network;
      const online = () => listener(true);
      const offline = () => listener(false);
      addEventListener.call(globalThis, "online", online);
      addEventListener.call(globalThis, "offline", offline);
      return () => {
        removeEventListener.call(globalThis, "online", online);
        removeEventListener.call(globalThis, "offline", offline);
      };
    },
  };
}

/** The browser's network globals, or null where there are none (Node, Deno, a worker without them). */
function browserNetwork(): {
  navigator: { onLine: boolean };
  addEventListener: Window["addEventListener"];
  removeEventListener: Window["removeEventListener"];
} | null {
  const target = globalThis as Partial<Pick<Window, "addEventListener" | "removeEventListener">>;
  const navigator = globalThis.navigator as { onLine?: unknown } | undefined;
  const { addEventListener, removeEventListener } = target;
  if (
    typeof addEventListener !== "function" ||
    typeof removeEventListener !== "function" ||
    typeof navigator?.onLine !== "boolean"
  ) {
    return null;
  }
  return { navigator: navigator as { onLine: boolean }, addEventListener, removeEventListener };
}
