// The studio Worker (docs/studio.md): signs people in (Cloudflare Access, or a name in
// development), serves the app with a strict Content Security Policy, and answers its
// API: the workspace's revisions and publishes (the `Workspace` Durable Object), and
// what the edge serves (its /v1/bundle and pages, fetched here so the browser talks to
// this origin only).
import { person, sessionCookie, devMode, SESSION_COOKIE, MAX_NAME } from "./auth.js";
import { Workspace, MAX_DOC, MAX_MESSAGE } from "./workspace.js";

export { Workspace };

/** The largest API request body, in bytes: a document and a message, as JSON. */
const MAX_BODY = MAX_DOC + 64 * 1024;
/** How long the edge may take to answer the studio, in milliseconds. */
const EDGE_TIMEOUT_MS = 4000;
/** The largest page of the edge the preview reads, in bytes. */
const MAX_PAGE = 2 * 1024 * 1024;

// The app: its own scripts and the engine's WebAssembly only; content HTML is shown in
// sandboxed frames (`srcdoc`, no scripts), which inherit this policy.
const APP_CSP = [
  "default-src 'none'",
  "script-src 'self' 'wasm-unsafe-eval'",
  "style-src 'self' 'unsafe-inline'",
  "img-src 'self' data: https:",
  "media-src https:",
  "connect-src 'self'",
  "frame-src 'self'",
  "font-src 'self'",
  "base-uri 'none'",
  "form-action 'self'",
  "frame-ancestors 'none'",
].join("; ");

function secured(response, { cache = "no-store" } = {}) {
  const r = new Response(response.body, response);
  r.headers.set("Content-Security-Policy", APP_CSP);
  r.headers.set("X-Content-Type-Options", "nosniff");
  r.headers.set("Referrer-Policy", "no-referrer");
  r.headers.set("X-Frame-Options", "DENY");
  r.headers.set("Cross-Origin-Opener-Policy", "same-origin");
  r.headers.set("Cross-Origin-Resource-Policy", "same-origin");
  r.headers.set("Cache-Control", cache);
  return r;
}

function json(body, status = 200, headers = {}) {
  return secured(new Response(JSON.stringify(body), {
    status, headers: { "Content-Type": "application/json; charset=utf-8", ...headers },
  }));
}

const problem = (status, error, extra = {}) => json({ error, ...extra }, status);

/**
 * Whether a state-changing API request comes from the studio's own pages: browsers say
 * where a request comes from (`Sec-Fetch-Site`, `Origin`); a JSON body cannot be sent
 * cross-site without a preflight this Worker never grants.
 */
function sameSite(request) {
  const site = request.headers.get("Sec-Fetch-Site");
  if (site && site !== "same-origin" && site !== "none") return false;
  const origin = request.headers.get("Origin");
  if (origin && origin !== new URL(request.url).origin) return false;
  const type = (request.headers.get("Content-Type") ?? "").split(";")[0].trim().toLowerCase();
  return type === "application/json";
}

/** The request's JSON body, bounded; a `Response` when it is not one. */
async function body(request) {
  const declared = Number(request.headers.get("Content-Length") ?? "0");
  if (declared > MAX_BODY) return problem(413, `a request body is at most ${MAX_BODY} bytes`);
  const all = await readAll(request.body, MAX_BODY);
  if (!all) return problem(413, `a request body is at most ${MAX_BODY} bytes`);
  try {
    const value = JSON.parse(new TextDecoder("utf-8", { fatal: true }).decode(all));
    if (value === null || typeof value !== "object" || Array.isArray(value)) return problem(400, "the body must be a JSON object");
    return value;
  } catch (e) {
    return problem(400, `the body is not JSON: ${e.message}`);
  }
}

function workspace(env) {
  return env.WORKSPACES.get(env.WORKSPACES.idFromName(env.MM_WORKSPACE || "default"));
}

/** GETs a path of the edge, bounded in time and size. */
async function edge(env, path, accept) {
  const base = new URL(env.EDGE_URL);
  const url = new URL(path, base);
  if (url.origin !== base.origin) return problem(400, "a path of the edge only");
  let r;
  // A GET is safe to send twice: once more when the first got no answer in time (a
  // pooled connection the other end had just closed). `Sec-Purpose: prefetch`: the edge
  // decides the page but records nothing (no exposure), so previews never count.
  for (let attempt = 1; ; attempt++) {
    try {
      r = await fetch(url, {
        headers: { Accept: accept, "Sec-Purpose": "prefetch" }, redirect: "manual", signal: AbortSignal.timeout(EDGE_TIMEOUT_MS),
      });
      break;
    } catch (e) {
      if (attempt === 2) return problem(502, `the edge at ${base.origin} did not answer: ${e.message}`);
    }
  }
  const type = r.headers.get("Content-Type") ?? "";
  if (Number(r.headers.get("Content-Length") ?? "0") > MAX_PAGE) {
    await r.body?.cancel();
    return problem(502, `the edge's answer is over ${MAX_PAGE} bytes`);
  }
  const all = await readAll(r.body, MAX_PAGE);
  if (!all) return problem(502, `the edge's answer is over ${MAX_PAGE} bytes`);
  const text = new TextDecoder().decode(all);
  return { status: r.status, type, text };
}

/** A stream's bytes, or null once they pass `max` (the rest is not read). */
async function readAll(stream, max) {
  const reader = stream?.getReader();
  const chunks = [];
  let size = 0;
  while (reader) {
    const { done, value } = await reader.read();
    if (done) break;
    size += value.length;
    if (size > max) {
      await reader.cancel();
      return null;
    }
    chunks.push(value);
  }
  const all = new Uint8Array(size);
  let at = 0;
  for (const c of chunks) {
    all.set(c, at);
    at += c.length;
  }
  return all;
}

async function api(request, env, who, path) {
  const method = request.method;
  if (method !== "GET" && !sameSite(request)) return problem(403, "cross-site request refused");
  const ws = workspace(env);
  if (method === "GET" && path === "/api/me") return json({ name: who.name, via: who.via, dev: who.via === "dev" });
  if (method === "GET" && path === "/api/workspace") {
    const [overview, live] = await Promise.all([ws.overview(), ws.liveDoc()]);
    return json({ ...overview, liveDoc: live });
  }
  const revision = path.match(/^\/api\/revisions\/(\d{1,12})$/);
  if (method === "GET" && revision) {
    const found = await ws.open(Number(revision[1]));
    return found ? json(found) : problem(404, `no revision ${revision[1]}`);
  }
  if (method === "GET" && path === "/api/edge/bundle") {
    const r = await edge(env, "/v1/bundle", "application/json");
    return r instanceof Response ? r : json(JSON.parse(r.text), r.status === 200 ? 200 : 502);
  }
  if (method === "GET" && path === "/api/edge/page") {
    const at = new URL(request.url).searchParams.get("path") ?? "/";
    if (!at.startsWith("/") || at.startsWith("//")) return problem(400, "path: a path of the site, such as /models/");
    const r = await edge(env, at, "text/html");
    if (r instanceof Response) return r;
    if (!r.type.startsWith("text/html")) return problem(502, `the edge answered ${r.status} ${r.type}, not a page`);
    return json({ status: r.status, html: r.text });
  }
  if (method !== "POST") return problem(404, "no such API");
  const input = await body(request);
  if (input instanceof Response) return input;
  const message = typeof input.message === "string" ? input.message : "";
  if (message.length > MAX_MESSAGE) return problem(400, `message: at most ${MAX_MESSAGE} characters`);
  if (path === "/api/revisions") {
    if (typeof input.doc !== "string") return problem(400, "doc: the document as JSON text");
    const parent = input.parent ?? null;
    if (parent !== null && !Number.isInteger(parent)) return problem(400, "parent: a revision number or null");
    const saved = await ws.save({ doc: input.doc, message, author: who.name, parent });
    if (saved.conflict !== undefined) return problem(409, "another revision was saved since you opened this one", { head: saved.conflict });
    if (saved.error) return problem(400, saved.error);
    return json(saved, 201);
  }
  if (path === "/api/publish") {
    if (!Number.isInteger(input.revision)) return problem(400, "revision: the revision to publish");
    const published = await ws.publish({ revision: input.revision, message, author: who.name, dev: who.via === "dev" });
    if (published.error) return problem(422, published.error, { diagnostics: published.diagnostics ?? [] });
    return json(published);
  }
  if (path === "/api/rollback") {
    if (!Number.isInteger(input.version)) return problem(400, "version: the published version to serve again");
    const done = await ws.rollback({ version: input.version, author: who.name, message: message || undefined });
    if (done.error) return problem(422, done.error);
    return json(done);
  }
  return problem(404, "no such API");
}

async function signIn(request, env) {
  if (!devMode(request, env)) return problem(404, "sign in through your company's single sign-on");
  if (!sameSite(request)) return problem(403, "cross-site request refused");
  const input = await body(request);
  if (input instanceof Response) return input;
  const name = typeof input.name === "string" ? input.name.trim() : "";
  // No control characters, and no bidirectional overrides that would spoof a name.
  if (!name || name.length > MAX_NAME || /[\u0000-\u001f\u007f\u202a-\u202e\u2066-\u2069]/.test(name)) {
    return problem(400, `name: 1 to ${MAX_NAME} characters, no control characters`);
  }
  const value = await sessionCookie(name, env);
  return json({ name }, 200, {
    "Set-Cookie": `${SESSION_COOKIE}=${value}; Path=/; HttpOnly; SameSite=Strict; Max-Age=43200`,
  });
}

export default {
  async fetch(request, env) {
    const url = new URL(request.url);
    const path = url.pathname;
    if (path === "/api/login" && request.method === "POST") return signIn(request, env);
    if (path === "/api/logout" && request.method === "POST") {
      if (!sameSite(request)) return problem(403, "cross-site request refused");
      return json({}, 200, { "Set-Cookie": `${SESSION_COOKIE}=; Path=/; HttpOnly; SameSite=Strict; Max-Age=0` });
    }
    let who;
    try {
      who = await person(request, env);
    } catch (e) {
      console.error("studio sign-in", e?.stack ?? e);
      return problem(503, "sign-in is unavailable (the single sign-on's keys could not be read)");
    }
    const open = path === "/login" || path === "/login.html" || path === "/app.css" || path.startsWith("/assets/");
    if (!who && path.startsWith("/api/")) return problem(401, "sign in first");
    if (!who && !open) {
      if (devMode(request, env)) return secured(Response.redirect(new URL("/login", url), 302));
      return problem(401, "sign in through Cloudflare Access");
    }
    if (path.startsWith("/api/")) {
      try {
        return await api(request, env, who, path);
      } catch (e) {
        console.error("studio api", path, e?.stack ?? e);
        return problem(500, "the studio failed: reload to see what was recorded");
      }
    }
    if (request.method !== "GET" && request.method !== "HEAD") return problem(405, "GET only");
    const cache = path.startsWith("/assets/") ? "no-cache" : "no-store";
    return secured(await env.ASSETS.fetch(request), { cache });
  },
};
