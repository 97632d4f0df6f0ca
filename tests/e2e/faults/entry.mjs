// A fault-injecting wrapper around the real, built micromoment Worker, for
// tests/e2e/faults.test.mjs under `wrangler dev`: the Worker's code and runtime are the
// real ones; only its KV binding is wrapped, so the test can make KV throw, hang or
// return garbage, switched per request through `/__faults?kv=…`, and count its reads
// (`/__faults/reads`). The profiles' Durable Object namespace is wrapped the same way
// (`/__faults?profiles=throw|hang|slow|ok`): its stubs' requests fail, never answer, or
// answer 300 ms late. `only=<prefix>` limits KV's faults to keys with that prefix (a
// feed's shards). Never deployed.
import { WorkerEntrypoint } from "cloudflare:workers";
import Micromoment from "../../../build/worker/shim.mjs";
// The Worker's Durable Object classes (the profiles), as wrangler.toml binds them.
export * from "../../../build/worker/shim.mjs";

let kvMode = "ok";
/** Only keys starting with this fail (`/__faults?kv=hang&only=feed:stock:`); all when empty. */
let kvOnly = "";
/** How often each key was read, for `/__faults/reads`. */
const reads = new Map();

function garbage(length) {
  const bytes = new Uint8Array(length);
  crypto.getRandomValues(bytes);
  return bytes;
}

/** The KV namespace as the Worker sees it, failing as `kvMode` says. */
function faulty(kv) {
  const get = async (key, options) => {
    reads.set(key, (reads.get(key) ?? 0) + 1);
    switch (key.startsWith(kvOnly) ? kvMode : "ok") {
      case "throw":
        throw new Error("injected KV failure");
      case "hang":
        return new Promise(() => {});
      case "garbage": {
        const type = typeof options === "string" ? options : options?.type;
        if (type === "arrayBuffer") return garbage(4096).buffer;
        return key === "current" ? "0f".repeat(32) : "garbage";
      }
      default:
        return kv.get(key, options);
    }
  };
  return {
    get,
    getWithMetadata: async (key, options) => ({ value: await get(key, options), metadata: null }),
    put: (...args) => kv.put(...args),
    list: (...args) => kv.list(...args),
    delete: (...args) => kv.delete(...args),
  };
}

let profilesMode = "ok";

/** A stub whose requests fail as `profilesMode` says. */
function faultyStub(stub) {
  return {
    fetch: async (...args) => {
      switch (profilesMode) {
        case "throw":
          throw new Error("injected Durable Object failure");
        case "hang":
          return new Promise(() => {});
        case "slow":
          await new Promise((r) => setTimeout(r, 300));
          return stub.fetch(...args);
        default:
          return stub.fetch(...args);
      }
    },
  };
}

// The class name is what the Worker checks a binding's type by.
class DurableObjectNamespace {
  constructor(inner) { this.inner = inner; }
  idFromName(name) { return this.inner.idFromName(name); }
  idFromString(text) { return this.inner.idFromString(text); }
  newUniqueId(options) { return this.inner.newUniqueId(options); }
  get(id, options) { return faultyStub(this.inner.get(id, options)); }
}

export default class extends WorkerEntrypoint {
  async fetch(request) {
    const url = new URL(request.url);
    if (url.pathname === "/__faults/reads") {
      return Response.json(Object.fromEntries(reads));
    }
    if (url.pathname === "/__faults") {
      kvMode = url.searchParams.get("kv") ?? kvMode;
      kvOnly = url.searchParams.get("only") ?? (url.searchParams.has("kv") ? "" : kvOnly);
      profilesMode = url.searchParams.get("profiles") ?? profilesMode;
      return new Response(`kv: ${kvMode}, profiles: ${profilesMode}\n`);
    }
    const env = { ...this.env, BUNDLES: faulty(this.env.BUNDLES) };
    if (this.env.PROFILES) env.PROFILES = new DurableObjectNamespace(this.env.PROFILES);
    return new Micromoment(this.ctx, env).fetch(request);
  }

  /** Trigger deliveries, with the Worker's own bindings (feeds.test.mjs's triggers). */
  async queue(batch) {
    return new Micromoment(this.ctx, this.env).queue(batch);
  }
}
