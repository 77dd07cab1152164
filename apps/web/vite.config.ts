/**
 * Vite config of the web app. `npm start` builds it (see build.ts) and the service serves
 * `dist/` at `/`. For hot reloading, run the service (`npm start`) and `npx vite apps/web`:
 * the dev server proxies `/api` (the SSE stream included) to it.
 */
import react from "@vitejs/plugin-react";
import { defineConfig } from "vite";

export default defineConfig({
  plugins: [react()],
  build: {
    outDir: "dist",
    emptyOutDir: true,
    target: "es2022",
    // Small app: one JS and one CSS file, hashed, cached for a year by the service.
    assetsInlineLimit: 0,
    reportCompressedSize: false,
  },
  server: {
    proxy: {
      "/api": { target: process.env.REALTIME_URL ?? "http://127.0.0.1:8080" },
    },
  },
});
