/**
 * Puts one {@link RealtimeClient} in context, so every hook below it shares its one stream.
 */
import type { EventMap, RealtimeClient } from "@realtime/client";
import { createContext, createElement, type ReactNode, useContext } from "react";

const RealtimeContext = createContext<RealtimeClient | null>(null);

export interface RealtimeProviderProps {
  /**
   * The client every hook below uses. Create it once, outside render (module scope or a
   * `useState` initialiser): a new client per render would mean a new stream per render.
   *
   * Any client, typed (`createRealtimeClient<{ chat: ChatMessage }>(…)`) or not: a client's event
   * map is invariant (its handlers take its events, `on` only its types), so no map but `any`
   * fits them all. The hooks state which events they read (`useRealtimeClient<Events>()`).
   */
  // biome-ignore lint/suspicious/noExplicitAny: the one type every client's event map fits (see above)
  readonly client: RealtimeClient<any>;
  readonly children?: ReactNode;
}

export function RealtimeProvider({ client, children }: RealtimeProviderProps): ReactNode {
  const value: RealtimeClient = client;
  return createElement(RealtimeContext.Provider, { value }, children);
}

/**
 * The client of the nearest {@link RealtimeProvider}.
 * @throws {Error} outside a provider.
 */
export function useRealtimeClient<Events extends EventMap = EventMap>(): RealtimeClient<Events> {
  const client = useContext(RealtimeContext);
  if (!client) throw new Error("useRealtimeClient: no <RealtimeProvider> above this component");
  // The provider holds the app's one client; the caller states which events it carries.
  return client as unknown as RealtimeClient<Events>;
}
