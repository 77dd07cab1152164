/** The page's services (session, store) for components, and the hooks that read them. */
import type { StateChange } from "@realtime/client";
import { createContext, useContext, useEffect, useState, useSyncExternalStore } from "react";
import type { Session, SessionState } from "./session.ts";
import type { AppState, AppStore } from "./store.ts";

export interface Services {
  readonly session: Session;
  readonly store: AppStore;
  /** When each connection state change happened (`performance.now()`), for countdowns. */
  readonly changeTimes: WeakMap<StateChange, number>;
}

export const ServicesContext = createContext<Services | null>(null);

export function useServices(): Services {
  const services = useContext(ServicesContext);
  if (!services) throw new Error("useServices: no <ServicesContext.Provider> above");
  return services;
}

export function useSessionState(): SessionState {
  const { session } = useServices();
  return useSyncExternalStore(session.subscribe, session.getSnapshot, session.getSnapshot);
}

export function useAppState(): AppState {
  const { store } = useServices();
  return useSyncExternalStore(store.subscribe, store.getSnapshot, store.getSnapshot);
}

/** `performance.now()`, refreshed every `intervalMs` while it is not null. */
export function useNow(intervalMs: number | null): number {
  const [now, setNow] = useState(() => performance.now());
  useEffect(() => {
    if (intervalMs === null) return;
    setNow(performance.now());
    const timer = setInterval(() => setNow(performance.now()), intervalMs);
    return () => clearInterval(timer);
  }, [intervalMs]);
  return now;
}
