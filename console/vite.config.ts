import { fileURLToPath, URL } from "node:url";

import vue from "@vitejs/plugin-vue";
import Components from "unplugin-vue-components/vite";
import { ElementPlusResolver } from "unplugin-vue-components/resolvers";
import { defineConfig } from "vite";

const here = (path: string) => fileURLToPath(new URL(path, import.meta.url));

// Served by fuli at /console; the API is on the same origin, so the client needs no base URL.
export default defineConfig({
  base: "/console/",
  plugins: [
    vue(),
    // Element Plus components and their styles imported where a template uses them, so a page
    // loads only what it draws.
    Components({ resolvers: [ElementPlusResolver()], dts: false }),
  ],
  resolve: {
    alias: {
      // The TypeScript client from its sources: the console is built with the types of the
      // OpenAPI documents in this checkout. Its one dependency resolves from here.
      "@fuli/client": here("../clients/typescript/src/index.ts"),
      "openapi-fetch": here("./node_modules/openapi-fetch"),
    },
  },
  build: {
    outDir: "dist",
    emptyOutDir: true,
    chunkSizeWarningLimit: 1200,
  },
  server: {
    proxy: {
      "^/(points|rewards|tiers|webhooks)/": "http://127.0.0.1:8000",
    },
  },
  test: {
    include: ["test/**/*.test.ts"],
  },
});
