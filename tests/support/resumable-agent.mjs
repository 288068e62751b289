// An @ag-ui/client HttpAgent that can pick up a BotArmy run after a dropped connection
// (README, "AG-UI over HTTP"): it notes the SSE ids as they pass, and `connectAgent()` asks
// `GET …/agui?after=<seq>` for the run in progress.
//
// @ag-ui/client 1.0 verifies that a stream opens with RUN_STARTED, so connect() replays the
// run in progress from its RUN_STARTED (`after` = that id - 1) and first forgets the messages
// that run had begun (they are streamed again, whole). A client that reads SSE itself can resume
// exactly from its last id instead.
import { HttpAgent, runHttpRequest, transformHttpEventStream } from '@ag-ui/client';
import { sseReader } from './sse.mjs';

export class ResumableAgent extends HttpAgent {
  lastId = 0; // last SSE id seen
  runFrom = 0; // the id before the current run's RUN_STARTED
  runMessages = new Set(); // messages the current run started

  constructor(config) {
    super(config);
    const base = config.fetch ?? ((u, i) => fetch(u, i));
    this.fetch = async (url, init) => this.track(await base(url, init));
  }

  track(res) {
    if (!res.ok || !res.body) return res;
    const dec = new TextDecoder();
    const sse = sseReader({
      onEvent: ({ id, data: e }) => {
        if (typeof id !== 'number') return;
        if (e.type === 'RUN_STARTED') { this.runFrom = id - 1; this.runMessages.clear(); }
        if (e.type === 'TEXT_MESSAGE_START') this.runMessages.add(e.messageId);
        this.lastId = id;
      },
    });
    const body = res.body.pipeThrough(new TransformStream({
      transform: (chunk, ctl) => {
        sse.feed(dec.decode(chunk, { stream: true }));
        ctl.enqueue(chunk);
      },
    }));
    return new Response(body, { status: res.status, headers: res.headers });
  }

  connectAgent(params, subscriber) {
    this.setMessages(this.messages.filter((m) => !this.runMessages.has(m.id)));
    return super.connectAgent(params, subscriber);
  }

  connect() {
    const url = `${this.url}?after=${this.runFrom}`;
    return transformHttpEventStream(runHttpRequest(() => this.fetch(url, { headers: { ...this.headers, Accept: 'text/event-stream' } })));
  }
}
