/**
 * Bench-only preload for the pod under `npm run bench:abuse` (`--expose-gc --import` this): a
 * full collection on SIGUSR2, so the bench reads the pod's live heap rather than its garbage.
 */
const gc = (globalThis as { gc?: () => void }).gc;
if (gc) process.on("SIGUSR2", () => gc());
