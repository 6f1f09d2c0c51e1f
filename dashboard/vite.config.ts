/// <reference types="vitest/config" />
import { defineConfig } from 'vite';
import react from '@vitejs/plugin-react';

// `npm run dev` proxies the API (POLARIS_API_URL, default the ./dev/up one); the build goes to dist/, which the
// API server serves at /.
const api = process.env.POLARIS_API_URL ?? 'http://127.0.0.1:8080';

export default defineConfig({
  plugins: [react()],
  build: { outDir: 'dist', emptyOutDir: true },
  server: { proxy: { '/v1': api } },
  test: { environment: 'jsdom', include: ['src/**/*.test.{ts,tsx}'] },
});
