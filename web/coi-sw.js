// Cross-origin isolation for static hosts that cannot set response headers.
// Registered by js/coi.mjs; it re-serves this site's own responses with
// Cross-Origin-Opener-Policy / -Embedder-Policy so the page becomes
// crossOriginIsolated (SharedArrayBuffer: the threaded wasm module).
// Requests to any other origin are left alone (never fetched or rewritten):
// the page makes none, and its CSP forbids them.
'use strict';

self.addEventListener('install', () => self.skipWaiting());
self.addEventListener('activate', (event) => event.waitUntil(self.clients.claim()));

self.addEventListener('fetch', (event) => {
  const request = event.request;
  if (new URL(request.url).origin !== self.location.origin) return;
  // Chrome quirk: this combination throws in fetch(); let the browser handle it.
  if (request.cache === 'only-if-cached' && request.mode !== 'same-origin') return;
  event.respondWith(
    fetch(request).then((response) => {
      if (response.status === 0) return response;  // opaque: headers are not ours to change
      const headers = new Headers(response.headers);
      headers.set('Cross-Origin-Opener-Policy', 'same-origin');
      headers.set('Cross-Origin-Embedder-Policy', 'require-corp');
      headers.set('Cross-Origin-Resource-Policy', 'same-origin');
      return new Response(response.body, { status: response.status, statusText: response.statusText, headers });
    }),
  );
});
