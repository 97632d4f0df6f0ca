// An app's screens personalized by micromoment through OpenFeature: the official web SDK
// (browsers and React Native) with its OFREP provider, pointed at the micromoment Worker.
// Each slot of the bundle is a flag: its value is the chosen content's JSON rendition (or
// the content id), its variant the content id. The journey token is the person's journey:
// it goes to the Worker in `X-MM-Token` and comes back in each flag's metadata, and this
// module keeps it in the `store` you give (localStorage on the web, AsyncStorage in React
// Native).
import { OpenFeature, ProviderEvents } from "@openfeature/web-sdk";
import { OFREPWebProvider } from "@openfeature/ofrep-web-provider";

/** A token store over `localStorage` (browsers). */
export function localStorageStore(key = "mm.token") {
  return {
    get: () => globalThis.localStorage?.getItem(key) ?? null,
    set: (token) => globalThis.localStorage?.setItem(key, token),
  };
}

/** A token store in memory (tests, and apps that keep no journey across launches). */
export function memoryStore(token = null) {
  return { get: () => token, set: (next) => { token = next; } };
}

/**
 * Connects OpenFeature to micromoment: `baseUrl` the Worker, `store` where the token is
 * kept, `context` the screen's evaluation context (`page.path`, `geo.*`, `device.type`,
 * `app.version`, … as rules name them). Resolves to `{ client, track, show }` once the
 * first evaluation has arrived.
 */
export async function connect({ baseUrl, store, context = {}, pollInterval = 30_000, headers = [], domain = "micromoment" }) {
  // The newest token the Worker sent with an evaluation: a cached evaluation carries the
  // token of its answer, which `track` may have moved past since.
  let lastSeen = null;
  // While `track` runs, an answer to a poll sent before it carries the journey without
  // the events: not kept (the provider drops such an answer once `track` re-evaluates).
  let tracking = false;
  const keepToken = {
    after: async (_hook, details) => {
      const token = details.flagMetadata?.token;
      if (!tracking && typeof token === "string" && token !== lastSeen) {
        lastSeen = token;
        await store.set(token);
      }
    },
  };
  const provider = new OFREPWebProvider({
    baseUrl,
    pollInterval,
    // Each context is the Worker's to decide (the provider's persisted cache is keyed by
    // the person, not the screen); the cache answers when the network does not, so an
    // app still starts offline with what it last showed.
    cacheMode: "network-first",
    headers,
    headersFactory: async () => {
      const token = await store.get();
      return token ? [["X-MM-Token", token]] : [];
    },
  });
  await OpenFeature.setProviderAndWait(domain, provider, context);
  const client = OpenFeature.getClient(domain);
  client.addHooks(keepToken);

  return {
    client,
    /**
     * What a slot shows now: `{content, value, reason, stage}` (the code default when the
     * Worker cannot be reached). `value` is the content's JSON rendition, or its id for a
     * content without one.
     */
    show(slot, fallback = {}) {
      let details = client.getObjectDetails(slot, fallback);
      if (details.errorCode === "TYPE_MISMATCH") details = client.getStringDetails(slot, "");
      return { content: details.variant, value: details.value, reason: details.reason, stage: details.flagMetadata?.stage };
    },
    /**
     * Calls `render` whenever the flags change: a poll's new answer, the Worker's answer
     * after a cached start. `screen` and `track` resolve once the new flags are in.
     */
    onChange(render) {
      client.addHandler(ProviderEvents.ConfigurationChanged, () => render());
    },
    /** Moves to another screen or context: every slot is evaluated again. */
    async screen(next) {
      await OpenFeature.setContext(domain, next);
    },
    /**
     * Sends the app's events (`[{name, value?}]`) to the Worker, keeps the new token, and
     * evaluates the slots again for `next` (the current context when absent).
     */
    async track(events, next = OpenFeature.getContext(domain)) {
      tracking = true;
      try {
        return await sendEvents(events, next);
      } finally {
        tracking = false;
      }
    },
    async close() {
      await OpenFeature.clearProviders();
    },
  };

  async function sendEvents(events, next) {
    const token = await store.get();
    const response = await fetch(new URL("/v1/events", baseUrl), {
      method: "POST",
      headers: Object.fromEntries([...headers, ["Content-Type", "application/json"], ...(token ? [["X-MM-Token", token]] : [])]),
      body: JSON.stringify({ events }),
    });
    if (!response.ok) throw new Error(`events: ${response.status} ${await response.text()}`);
    const answer = await response.json();
    if (answer.token) await store.set(answer.token);
    await OpenFeature.setContext(domain, { ...next });
    return answer.stage;
  }
}
