// A TCP proxy that can play a dead network: between Chromium and `wrangler dev`, it forwards
// bytes both ways until told to `pause()`, then stops reading from either side while keeping
// every TCP connection open, as a dropped Wi-Fi link or a sleeping laptop does (nothing is
// closed, nothing arrives). `resume()` lets the held bytes through, like TCP retransmission once
// the link is back. New connections made while paused are accepted but hang the same way.
//
//   const proxy = await startTcpProxy();              // listens on 127.0.0.1:<free port>
//   proxy.setTarget(worker.port);                     // where to forward (can be set later)
//   proxy.url                                         // "http://127.0.0.1:<port>"
//   proxy.pause(); … proxy.resume();
//   await proxy.close();

import net from 'node:net';
import { freePort } from './harness.mjs';

export async function startTcpProxy({ targetPort = null, targetHost = '127.0.0.1', port } = {}) {
  let target = targetPort;
  let paused = false;
  const pairs = new Set(); // {client, upstream}

  /** Forwards `from` → `to` with backpressure; reading stops while the proxy is paused. */
  function forward(from, to) {
    let blocked = false; // `to` asked us to wait (write returned false)
    from.on('data', (chunk) => {
      if (!to.write(chunk)) {
        blocked = true;
        from.pause();
        to.once('drain', () => {
          blocked = false;
          if (!paused) from.resume();
        });
      }
    });
    from.on('end', () => to.end());
    return { resume: () => !blocked && from.resume(), pause: () => from.pause() };
  }

  const server = net.createServer((client) => {
    client.setNoDelay(true);
    if (target === null) {
      client.destroy();
      return;
    }
    const upstream = net.connect(target, targetHost);
    upstream.setNoDelay(true);
    const pair = { client, upstream, a: forward(client, upstream), b: forward(upstream, client) };
    if (paused) {
      pair.a.pause();
      pair.b.pause();
    }
    pairs.add(pair);
    const done = () => {
      client.destroy();
      upstream.destroy();
      pairs.delete(pair);
    };
    client.on('error', done);
    upstream.on('error', done);
    client.on('close', done);
    upstream.on('close', done);
  });

  port = port || (await freePort());
  await new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, '127.0.0.1', resolve);
  });

  return {
    port,
    url: `http://127.0.0.1:${port}`,
    origin: `http://127.0.0.1:${port}`,
    setTarget(p) {
      target = p;
    },
    get paused() {
      return paused;
    },
    /** Connections currently held (for diagnostics). */
    get connections() {
      return pairs.size;
    },
    /** The network dies: nothing moves either way; every connection stays open. */
    pause() {
      paused = true;
      for (const p of pairs) {
        p.a.pause();
        p.b.pause();
      }
    },
    /** The network is back: held bytes flow again. */
    resume() {
      paused = false;
      for (const p of pairs) {
        p.a.resume();
        p.b.resume();
      }
    },
    async close() {
      for (const p of pairs) {
        p.client.destroy();
        p.upstream.destroy();
      }
      pairs.clear();
      await new Promise((resolve) => server.close(() => resolve()));
    },
  };
}
