/// <reference types="vitest/config" />
import { fileURLToPath, URL } from "node:url";
import react from "@vitejs/plugin-react";
import tailwindcss from "@tailwindcss/vite";
import { defineConfig } from "vite";

// The Worker serves dist/ from the same origin as the API, so asset URLs are absolute ("/assets/…")
// and work under the single-page-app fallback (/s/<id>) too. `npm run dev` proxies /api to a local
// `wrangler dev` (BOTARMY_DEV_API, default http://127.0.0.1:8787), WebSockets included.
const api = process.env.BOTARMY_DEV_API ?? "http://127.0.0.1:8787";

export default defineConfig({
  plugins: [react(), tailwindcss()],
  resolve: {
    alias: { "@": fileURLToPath(new URL("./src", import.meta.url)) },
  },
  server: {
    proxy: { "/api": { target: api, ws: true, changeOrigin: false } },
  },
  build: {
    outDir: "dist",
    sourcemap: false,
    target: "es2022",
  },
  test: {
    environment: "jsdom",
    include: ["src/**/*.test.{ts,tsx}"],
    setupFiles: ["src/test/setup.ts"],
    restoreMocks: true,
  },
});
