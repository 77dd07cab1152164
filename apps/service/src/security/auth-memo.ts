/**
 * One token verification per request. The rate limiter keys on the identity (onRequest), the
 * connection limits and the channel budget need it (preHandler), and the route authenticates
 * again: all of them share the first verification's result instead of checking the signature
 * three times.
 */
import type { Auth, Identity, TokenSource } from "../auth.ts";

/** `auth`, with {@link Auth.authenticate} remembered per request object. */
export function memoizeAuthentication(auth: Auth): Auth {
  const results = new WeakMap<TokenSource, Promise<Identity>>();
  return {
    issueUserToken: (user) => auth.issueUserToken(user),
    issueServiceToken: (service) => auth.issueServiceToken(service),
    verify: (token) => auth.verify(token),
    authenticate(request) {
      let result = results.get(request);
      if (result === undefined) {
        result = auth.authenticate(request);
        // Whoever asks gets the rejection; a request nobody asked again must not leave an
        // unhandled one behind.
        result.catch(() => {});
        results.set(request, result);
      }
      return result;
    },
  };
}
