/**
 * Who is signed in, as an external store for `useSyncExternalStore`.
 *
 * Signing in is the service's development login (`POST /api/auth/dev-login { name }`), which
 * sets the HttpOnly session cookie that the EventSource and every request send by themselves.
 * When the session ends under the page (the cookie expired, or a development server restarted
 * with a new random JWT key), {@link Session.renew} signs in again with the same name: the
 * stream and the requests carry on without the person noticing.
 */
import { ApiError, type JsonInit, requestJson } from "./api.ts";
import { readJson, writeJson } from "./storage.ts";

export interface User {
  readonly id: string;
  readonly name: string;
}

export type SessionState =
  | { readonly status: "checking" }
  | { readonly status: "signed-out"; readonly error?: string }
  | { readonly status: "signed-in"; readonly user: User };

/** This browser signed in before: only then is `/api/auth/me` asked on load (no 401 noise). */
const SIGNED_IN_KEY = "realtime.signedIn";
/** The last display name, to pre-fill the form and to renew the session. */
const NAME_KEY = "realtime.name";

export class Session {
  #state: SessionState = { status: "checking" };
  readonly #listeners = new Set<() => void>();
  #renewing: Promise<User> | null = null;
  /** Every id this page signed in as (a renewed session gets a new one): all of them are "me". */
  readonly #ids = new Set<string>();

  getSnapshot = (): SessionState => this.#state;

  subscribe = (listener: () => void): (() => void) => {
    this.#listeners.add(listener);
    return () => this.#listeners.delete(listener);
  };

  get user(): User | null {
    return this.#state.status === "signed-in" ? this.#state.user : null;
  }

  /** The name last used in this browser ("" if none). */
  get rememberedName(): string {
    return readJson<string>("localStorage", NAME_KEY) ?? "";
  }

  /** Whether `userId` is this person (now or before a renewal). */
  isMe(userId: string): boolean {
    return this.#ids.has(userId);
  }

  /** Restores the session from the cookie, if this browser signed in before. */
  async init(): Promise<void> {
    if (!readJson<boolean>("localStorage", SIGNED_IN_KEY)) {
      this.#set({ status: "signed-out" });
      return;
    }
    try {
      const { user } = await requestJson<{ user: User }>("/api/auth/me");
      this.#signedIn(user);
    } catch (error) {
      if (error instanceof ApiError && error.status === 0) {
        this.#set({ status: "signed-out", error: error.message });
        return;
      }
      writeJson("localStorage", SIGNED_IN_KEY, null);
      this.#set({ status: "signed-out" });
    }
  }

  /** Signs in with the development login. Rejects with an {@link ApiError} for the form. */
  async signIn(name: string): Promise<void> {
    const user = await this.#login(name);
    this.#signedIn(user);
  }

  async signOut(): Promise<void> {
    writeJson("localStorage", SIGNED_IN_KEY, null);
    this.#ids.clear();
    this.#set({ status: "signed-out" });
    await requestJson("/api/auth/logout", { method: "POST" }).catch(() => undefined);
  }

  /**
   * Signs in again with the current name (one attempt at a time). Rejects, and signs out,
   * when that is not possible (e.g. the development login is disabled).
   */
  renew(): Promise<User> {
    this.#renewing ??= (async () => {
      const name = this.user?.name ?? this.rememberedName;
      try {
        if (!name) throw new Error("no name to sign in with");
        const user = await this.#login(name);
        this.#signedIn(user);
        return user;
      } catch (error) {
        writeJson("localStorage", SIGNED_IN_KEY, null);
        this.#set({ status: "signed-out", error: "Your session ended. Please sign in again." });
        throw error;
      } finally {
        this.#renewing = null;
      }
    })();
    return this.#renewing;
  }

  /** A JSON request as this user; a 401 renews the session once and retries. */
  async call<T>(path: string, init: JsonInit = {}): Promise<T> {
    try {
      return await requestJson<T>(path, init);
    } catch (error) {
      if (!(error instanceof ApiError) || error.status !== 401 || !this.user) throw error;
      await this.renew();
      return requestJson<T>(path, init);
    }
  }

  async #login(name: string): Promise<User> {
    const { user } = await requestJson<{ user: User }>("/api/auth/dev-login", {
      method: "POST",
      body: { name },
    });
    writeJson("localStorage", NAME_KEY, user.name);
    writeJson("localStorage", SIGNED_IN_KEY, true);
    return user;
  }

  #signedIn(user: User): void {
    this.#ids.add(user.id);
    this.#set({ status: "signed-in", user });
  }

  #set(state: SessionState): void {
    this.#state = state;
    for (const listener of [...this.#listeners]) listener();
  }
}
