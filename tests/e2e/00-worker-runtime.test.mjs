// The Worker's entry glue (scripts/worker-runtime.mjs) under Node, with a stand-in for the
// wasm bindings: handlers reach the module, and a crashed instance is replaced before the next
// call, rebuilding each Durable Object from its constructor arguments.
import test from 'node:test';
import assert from 'node:assert/strict';
import { makeRuntime } from '../../scripts/worker-runtime.mjs';

class WorkerEntrypoint {
  constructor(ctx, env) {
    this.ctx = ctx;
    this.env = env;
  }
}

function fakeWasm() {
  const log = [];
  const wasm = {
    state: { criticalError: false, instanceId: 1 },
    resets: 0,
    log,
    __worker_init_state() {
      return wasm.state;
    },
    __wbg_reset_state() {
      wasm.resets++;
    },
    fetch(request, env, ctx) {
      log.push(['fetch', request, env, ctx]);
      return Promise.resolve(`answer to ${request}`);
    },
    SessionDo: class SessionDo {
      constructor(state, env) {
        this.built = wasm.state.instanceId;
        log.push(['new', state, env]);
      }
      fetch(request) {
        if (request === 'crash') throw new WebAssembly.RuntimeError('unreachable');
        return Promise.resolve(`${request} on instance ${this.built}`);
      }
      async alarm() {
        throw new WebAssembly.RuntimeError('unreachable in a promise');
      }
      webSocketMessage() {
        throw new Error('an ordinary error');
      }
      __destroy_into_raw() {}
    },
  };
  return wasm;
}

test('the entrypoint passes (arg, env, ctx) to the wasm handler', async () => {
  const wasm = fakeWasm();
  const { Entrypoint } = makeRuntime(wasm, WorkerEntrypoint);
  const entry = new Entrypoint('ctx', 'env');
  assert.equal(await entry.fetch('req'), 'answer to req');
  assert.deepEqual(wasm.log, [['fetch', 'req', 'env', 'ctx']]);
  assert.equal(typeof Entrypoint.prototype.scheduled, 'undefined', 'only handlers the module has');
});

test('a crash resets the wasm state once and rebuilds the object before its next call', async () => {
  const wasm = fakeWasm();
  const { durableObject } = makeRuntime(wasm, WorkerEntrypoint);
  const SessionDo = durableObject(wasm.SessionDo);
  assert.equal(SessionDo.name, 'SessionDo');
  assert.equal(typeof SessionDo.prototype.__destroy_into_raw, 'undefined', 'glue internals stay hidden');
  const object = new SessionDo('storage', 'env');
  assert.equal(await object.fetch('a'), 'a on instance 1');

  assert.throws(() => object.fetch('crash'), WebAssembly.RuntimeError);
  assert.equal(wasm.state.criticalError, true);
  assert.equal(await object.fetch('b'), 'b on instance 2', 'rebuilt on a fresh instance');
  assert.equal(wasm.resets, 1);
  assert.deepEqual(
    wasm.log.filter(([kind]) => kind === 'new'),
    [['new', 'storage', 'env'], ['new', 'storage', 'env']],
    'rebuilt from the same constructor arguments',
  );

  await assert.rejects(object.alarm(), WebAssembly.RuntimeError, 'a rejected promise counts too');
  assert.equal(await object.fetch('c'), 'c on instance 3');
  assert.equal(wasm.resets, 2);

  assert.throws(() => object.webSocketMessage(), /an ordinary error/);
  assert.equal(wasm.state.criticalError, false, 'an ordinary error is not a crash');
  assert.equal(await object.fetch('d'), 'd on instance 3');
});

test('an instance the bindings replaced on their own is noticed by its id', async () => {
  const wasm = fakeWasm();
  const { durableObject } = makeRuntime(wasm, WorkerEntrypoint);
  const object = new (durableObject(wasm.SessionDo))('storage', 'env');
  wasm.state.instanceId = 7; // wasm-bindgen's abort handler re-instantiated the module
  assert.equal(await object.fetch('x'), 'x on instance 7');
  assert.equal(wasm.resets, 0);
});
