// When a client acknowledges what it read (docs/protocol.md, "Flow control"), as the UI does:
// at once after 256 KiB, else 250 ms after the last event, and at once on request (caught_up).
// One pacer for the test client (client.mjs) and the benchmark's lean client (bench/lib.mjs),
// so a fix reaches both.

const EVERY_BYTES = 256 * 1024;
const AFTER_MS = 250;

export class AckPacer {
  /** `send()` sends one `ack` and returns whether it could (the socket was open). */
  constructor(send) {
    this.send = send;
    this.unacked = 0;
    this.timer = null;
    this.sent = 0;
  }

  /** `bytes` more were read. */
  read(bytes) {
    this.unacked += bytes;
  }

  /** An event was applied: ack when due (`now`: at once). */
  due(now = false) {
    if (now || this.unacked >= EVERY_BYTES) {
      this.cancel();
      this._ack();
    } else if (!this.timer) {
      this.timer = setTimeout(() => {
        this.timer = null;
        this._ack();
      }, AFTER_MS);
    }
  }

  cancel() {
    clearTimeout(this.timer);
    this.timer = null;
  }

  _ack() {
    if (!this.send()) return;
    this.unacked = 0;
    this.sent += 1;
  }
}
