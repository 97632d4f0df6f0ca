// What the peer Workers of the workerd comparison (bench/workerd-load.sh) share: the
// journey a JS personalizer keeps in a signed cookie, the request's signals, the
// impressions and caps, and the page fill with workerd's own HTMLRewriter. Each peer
// decides the slots its own way (hand-written rules, or GrowthBook's SDK); the model is
// fixtures/automotive.json's hero and sidebar slots, as micromoment runs them.
import CONTENTS from "./contents.json";

const STAGES = ["awareness", "consideration", "decision", "purchase", "loyalty"];
const DAY = 86400;
const VISIT_IDLE = 30 * 60;
const HALF_LIFE = { suv: 14 * DAY, ev: 7 * DAY };
const INTENT_CAP = { suv: 100, ev: 60 };
export const WINTER = ["FR", "BE", "DE", "AT", "CH", "NL", "SE", "NO"];

const b64 = (bytes) => btoa(String.fromCharCode(...new Uint8Array(bytes))).replace(/\+/g, "-").replace(/\//g, "_").replace(/=+$/, "");
const unb64 = (text) => Uint8Array.from(atob(text.replace(/-/g, "+").replace(/_/g, "/")), (c) => c.charCodeAt(0));
const encoder = new TextEncoder();
let keyPromise = null;
const key = (env) => (keyPromise ??= crypto.subtle.importKey("raw", unb64(env.COOKIE_KEY), { name: "HMAC", hash: "SHA-256" }, false, ["sign", "verify"]));

/** The journey from the `mmjs` cookie, verified, or a new visitor's. */
export async function readState(request, env, now) {
  const cookie = request.headers.get("Cookie") ?? "";
  const raw = cookie.split(/;\s*/).find((c) => c.startsWith("mmjs="))?.slice(5);
  if (raw) {
    const [payload, tag] = raw.split(".");
    try {
      if (await crypto.subtle.verify("HMAC", await key(env), unb64(tag), encoder.encode(payload))) {
        return JSON.parse(new TextDecoder().decode(unb64(payload)));
      }
    } catch {
      // A bad cookie is a new visitor.
    }
  }
  return { id: crypto.randomUUID(), stage: 0, visits: 0, last: 0, since: now, intents: {}, shown: {}, assigned: {} };
}

/** The signed cookie of a state. */
export async function writeState(state, env) {
  const payload = b64(encoder.encode(JSON.stringify(state)));
  const tag = b64(await crypto.subtle.sign("HMAC", await key(env), encoder.encode(payload)));
  return `mmjs=${payload}.${tag}; Path=/; Max-Age=2592000; HttpOnly; Secure; SameSite=Lax`;
}

const glob = (path, prefix) => path === prefix || path.startsWith(prefix + "/");

/** This request's signals: the visit, intents (decayed, raised, capped), transitions. */
export function applySignals(state, ctx, now) {
  if (now - state.last >= VISIT_IDLE) state.visits += 1;
  state.last = now;
  for (const topic of Object.keys(state.intents)) {
    const [score, at] = state.intents[topic];
    state.intents[topic] = [score * 0.5 ** ((now - at) / HALF_LIFE[topic]), now];
  }
  const raise = (topic, add) => {
    const [score] = state.intents[topic] ?? [0, now];
    state.intents[topic] = [Math.min(INTENT_CAP[topic], score + add), now];
  };
  const path = ctx.path;
  if (glob(path, "/models/suv")) raise("suv", 10);
  if (glob(path, "/configurator/suv")) raise("suv", 20);
  if (ctx.utm?.startsWith("suv-")) raise("suv", 15);
  if (glob(path, "/models/ev")) raise("ev", 10);
  if (glob(path, "/charging")) raise("ev", 5);
  const to = (stage) => {
    if (stage > state.stage) {
      state.stage = stage;
      state.since = now;
    }
  };
  if (glob(path, "/models") || glob(path, "/configurator")) to(1);
  const suv = state.intents.suv?.[0] ?? 0;
  const ev = state.intents.ev?.[0] ?? 0;
  if (state.stage === 1 && (suv >= 50 || ev >= 50)) to(2);
}

export const stageName = (state) => STAGES[state.stage];
export const intent = (state, topic) => state.intents[topic]?.[0] ?? 0;

/** Shown in the cap's window: the count since the window opened. */
export function shownIn(state, id, period, now) {
  const [count, start] = state.shown[id] ?? [0, 0];
  return now - start >= period ? 0 : count;
}

/** Records an impression (the window opens at the first). */
export function record(state, id, period, now) {
  const [count, start, total] = state.shown[id] ?? [0, now, 0];
  state.shown[id] = now - start >= period ? [1, now, total + 1] : [count + 1, start, total + 1];
}

/** The request context a peer reads: path, UTM campaign, country and city. */
export function contextOf(request) {
  const url = new URL(request.url);
  return {
    path: url.pathname,
    utm: url.searchParams.get("utm_campaign") ?? undefined,
    country: request.cf?.country,
    city: request.cf?.city,
    postal: request.cf?.postalCode,
  };
}

const escape = (text) => String(text ?? "").replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);

/** A content's HTML with its placeholders filled (escaped). */
export function render(content, ctx) {
  return CONTENTS[content].replace(/\{\{\s*geo\.(city|postal)\s*\}\}/g, (_, v) => escape(ctx[v]));
}

/** The page from the origin with each decided slot filled, and the cookie. */
export async function fill(request, env, decisions, cookie, ctx) {
  const url = new URL(request.url);
  const origin = await fetch(new URL(url.pathname + url.search, env.ORIGIN), { headers: request.headers, redirect: "manual" });
  const type = origin.headers.get("Content-Type") ?? "";
  if (request.method !== "GET" || origin.status !== 200 || !type.startsWith("text/html")) return origin;
  const rewriter = new HTMLRewriter().on("[data-mm-slot]", {
    element(el) {
      const content = decisions[el.getAttribute("data-mm-slot")];
      if (!content) return;
      el.setInnerContent(render(content, ctx), { html: true });
      el.setAttribute("data-mm-content", content);
    },
  });
  const response = new Response(rewriter.transform(origin).body, origin);
  response.headers.delete("Content-Length");
  response.headers.set("Cache-Control", "private, no-store");
  response.headers.append("Vary", "Cookie");
  response.headers.append("Set-Cookie", cookie);
  return response;
}

/** The JSON answer of `/v1/decide`, as micromoment's carries it. */
export function answer(state, decisions, cookie, ctx) {
  const body = {
    stage: stageName(state),
    decisions: Object.entries(decisions).map(([slot, content]) => ({ slot, content, html: render(content, ctx) })),
  };
  return new Response(JSON.stringify(body), {
    headers: { "Content-Type": "application/json", "Cache-Control": "private, no-store", "Set-Cookie": cookie },
  });
}

/** GrowthBook's v2 hash (FNV-1a 32 twice), the bucket of `id` in experiment `seed`. */
export function bucket(seed, id) {
  const fnv = (text) => {
    let h = 0x811c9dc5;
    for (let i = 0; i < text.length; i++) {
      h ^= text.charCodeAt(i);
      h = Math.imul(h, 0x01000193) >>> 0;
    }
    return h;
  };
  return (fnv(String(fnv(seed + id))) % 10000) / 10000;
}

/** Serves a request with `decide(state, ctx, now)` → {slot: content}. */
export async function serve(request, env, decide) {
  const url = new URL(request.url);
  if (url.pathname === "/healthz") return new Response("ok");
  const now = Math.floor(Date.now() / 1000);
  const ctx = contextOf(request);
  if (url.pathname === "/v1/decide") ctx.path = url.searchParams.get("path") ?? "/";
  const state = await readState(request, env, now);
  applySignals(state, ctx, now);
  const decisions = decide(state, ctx, now);
  const cookie = await writeState(state, env);
  if (url.pathname === "/v1/decide") return answer(state, decisions, cookie, ctx);
  return fill(request, env, decisions, cookie, ctx);
}
