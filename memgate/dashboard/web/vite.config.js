import { defineConfig } from 'vite';

// The bundle is served by memgate's admin listener under /dashboard/ and
// embedded in the binary (../embed.cmake): one script, one style sheet, no
// outside requests.
export default defineConfig({
  base: '/dashboard/',
  build: {
    assetsInlineLimit: 0,
    modulePreload: { polyfill: false },
    reportCompressedSize: false,
    chunkSizeWarningLimit: 300,
  },
  test: {
    include: ['src/**/*.test.js'],
  },
});
