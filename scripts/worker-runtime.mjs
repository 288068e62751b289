// The Worker's entry glue: what the runtime sees of the wasm module built by
// scripts/build-worker.mjs. It exposes the Rust `fetch` handler as the default entrypoint and
// each Durable Object class, and recovers from a crashed wasm instance.
//
// Recovery: a Rust panic or abort leaves the wasm instance unusable. worker-rs then sets
// `criticalError` on its shared init state (or wasm-bindgen schedules a re-instantiation
// itself, which bumps `instanceId` when the new instance starts). Before the next call we reset
// the wasm state (wasm-bindgen's `__wbg_reset_state`), and every object built on the old
// instance is built again from its constructor arguments: a Durable Object's storage is
// durable, so a rebuilt object loads what it needs as after an eviction.
//
// `WorkerEntrypoint` is a parameter so that tests can run this file under Node.

/** Names of handlers a Worker entrypoint can export, called as (arg, env, ctx). */
const ENTRY_HANDLERS = ['fetch', 'queue', 'scheduled', 'email', 'connect'];

export function makeRuntime(wasm, WorkerEntrypoint) {
  const init = wasm.__worker_init_state();

  function recoverIfCrashed() {
    if (init.criticalError) {
      console.log('Reinitializing the wasm instance after a crash');
      wasm.__wbg_reset_state();
      init.criticalError = false;
      init.instanceId++;
    }
  }

  function noteCrash(error) {
    if (error instanceof WebAssembly.RuntimeError) {
      console.error('Critical', error);
      init.criticalError = true;
    }
  }

  // A failure thrown synchronously or by the returned promise marks a crash, then propagates.
  // (Callers recover from an earlier crash first, before they pick `self`.)
  function guarded(fn, self, args) {
    let result;
    try {
      result = fn.apply(self, args);
    } catch (error) {
      noteCrash(error);
      throw error;
    }
    if (result && typeof result.then === 'function') {
      return result.then(undefined, (error) => {
        noteCrash(error);
        throw error;
      });
    }
    return result;
  }

  class Entrypoint extends WorkerEntrypoint {}
  for (const name of ENTRY_HANDLERS) {
    const handler = wasm[name];
    if (typeof handler !== 'function') continue;
    Entrypoint.prototype[name] = function (arg) {
      recoverIfCrashed();
      return guarded(handler, this, [arg, this.env, this.ctx]);
    };
  }

  const INNER = Symbol('inner');

  /** Wraps an exported Durable Object class so that its instance outlives a wasm reset. */
  function durableObject(Inner) {
    class Wrapped {
      constructor(...args) {
        recoverIfCrashed();
        this[INNER] = { args, object: null, instanceId: -1 };
        current(this);
      }
    }
    function current(self) {
      const inner = self[INNER];
      if (inner.instanceId !== init.instanceId) {
        try {
          inner.object = new Inner(...inner.args);
        } catch (error) {
          init.criticalError = true;
          throw error;
        }
        inner.instanceId = init.instanceId;
      }
      return inner.object;
    }
    for (const name of Object.getOwnPropertyNames(Inner.prototype)) {
      const method = Object.getOwnPropertyDescriptor(Inner.prototype, name).value;
      if (name === 'constructor' || name.startsWith('__') || typeof method !== 'function') continue;
      Wrapped.prototype[name] = function (...args) {
        recoverIfCrashed();
        return guarded(method, current(this), args);
      };
    }
    Object.defineProperty(Wrapped, 'name', { value: Inner.name });
    return Wrapped;
  }

  // An error nobody caught (a rejected task the runtime reports) may be a crash too.
  globalThis.addEventListener?.('error', (event) => noteCrash(event.error));
  return { Entrypoint, durableObject };
}
