// Who is asking (docs/studio.md, "Who may use it"). In production the studio sits behind
// Cloudflare Access, which signs every request it lets through with a JWT in
// `Cf-Access-Jwt-Assertion` (RS256, the team's keys at
// https://<team>/cdn-cgi/access/certs); the studio verifies it itself, so a request that
// reaches the Worker around Access is refused. With MM_DEV=1 a sign-in page asks a name
// and a signed cookie carries it.

const encoder = new TextEncoder();
const CERTS_TTL_MS = 10 * 60 * 1000;
/** Clock skew allowed on `exp`, `nbf` and `iat`, in seconds. */
const SKEW = 60;
export const SESSION_COOKIE = "mm_studio";
/** A development sign-in lasts this long, in seconds. */
const SESSION_SECS = 12 * 3600;
/** The longest name a person signs in with. */
export const MAX_NAME = 80;

function base64url(bytes) {
  let text = "";
  for (const b of bytes) text += String.fromCharCode(b);
  return btoa(text).replace(/\+/g, "-").replace(/\//g, "_").replace(/=+$/, "");
}

function unbase64url(text) {
  const plain = atob(text.replace(/-/g, "+").replace(/_/g, "/"));
  return Uint8Array.from(plain, (c) => c.charCodeAt(0));
}

function jsonPart(text) {
  return JSON.parse(new TextDecoder().decode(unbase64url(text)));
}

let certs = { team: "", at: 0, keys: [] };
/** How soon a key id the cached certificates lack makes them fetched again, in ms. */
const REFRESH_AFTER_MS = 30 * 1000;

/**
 * The team's signing keys (JWKS): ACCESS_JWKS when set (offline tests), else fetched and
 * cached; a key id not among them fetches them again (Access rotated its keys), at most
 * every 30 s.
 */
async function accessKeys(env, kid) {
  if (env.ACCESS_JWKS) return JSON.parse(env.ACCESS_JWKS).keys ?? [];
  const now = Date.now();
  const fresh = certs.team === env.ACCESS_TEAM_DOMAIN && now - certs.at < CERTS_TTL_MS;
  const known = certs.keys.some((k) => k.kid === kid);
  if (fresh && (known || now - certs.at < REFRESH_AFTER_MS)) return certs.keys;
  const r = await fetch(`https://${env.ACCESS_TEAM_DOMAIN}/cdn-cgi/access/certs`);
  if (!r.ok) throw new Error(`Access certificates: ${r.status}`);
  const keys = (await r.json()).keys ?? [];
  certs = { team: env.ACCESS_TEAM_DOMAIN, at: now, keys };
  return keys;
}

/**
 * The person an Access JWT names, or null: RS256 only, signed by a key of the team,
 * for this application's audience, issued by the team, within its validity.
 */
export async function accessPerson(token, env, now = Date.now() / 1000) {
  if (!token || !env.ACCESS_TEAM_DOMAIN || !env.ACCESS_AUD) return null;
  const parts = token.split(".");
  if (parts.length !== 3) return null;
  let header, claims;
  try {
    header = jsonPart(parts[0]);
    claims = jsonPart(parts[1]);
  } catch {
    return null;
  }
  if (header.alg !== "RS256" || typeof header.kid !== "string") return null;
  if (!header || !claims || typeof header !== "object" || typeof claims !== "object") return null;
  const jwk = (await accessKeys(env, header.kid)).find((k) => k.kid === header.kid && k.kty === "RSA");
  if (!jwk) return null;
  let key;
  try {
    key = await crypto.subtle.importKey(
      "jwk", { kty: "RSA", n: jwk.n, e: jwk.e, alg: "RS256", ext: true },
      { name: "RSASSA-PKCS1-v1_5", hash: "SHA-256" }, false, ["verify"],
    );
  } catch {
    return null;
  }
  let signature;
  try {
    signature = unbase64url(parts[2]);
  } catch {
    return null;
  }
  const ok = await crypto.subtle.verify("RSASSA-PKCS1-v1_5", key, signature, encoder.encode(`${parts[0]}.${parts[1]}`));
  if (!ok) return null;
  const audiences = Array.isArray(claims.aud) ? claims.aud : [claims.aud];
  if (!audiences.includes(env.ACCESS_AUD)) return null;
  if (claims.iss !== `https://${env.ACCESS_TEAM_DOMAIN}`) return null;
  if (typeof claims.exp !== "number" || claims.exp + SKEW < now) return null;
  if (typeof claims.nbf === "number" && claims.nbf - SKEW > now) return null;
  if (typeof claims.iat === "number" && claims.iat - SKEW > now) return null;
  const name = claims.email ?? claims.common_name ?? claims.sub;
  return typeof name === "string" && name ? { name, via: "access" } : null;
}

let isolateKey;

/** The key signing development sign-ins: MM_SESSION_KEY (at least 32 bytes), else one per isolate. */
async function sessionKey(env) {
  let raw;
  if (env.MM_SESSION_KEY) {
    raw = Uint8Array.from(atob(env.MM_SESSION_KEY), (c) => c.charCodeAt(0));
    if (raw.length < 32) throw new Error("MM_SESSION_KEY: at least 32 bytes, base64");
  } else {
    isolateKey ??= crypto.getRandomValues(new Uint8Array(32));
    raw = isolateKey;
  }
  return crypto.subtle.importKey("raw", raw, { name: "HMAC", hash: "SHA-256" }, false, ["sign", "verify"]);
}

/** The cookie value of a development sign-in: `base64url(json).base64url(hmac)`. */
export async function sessionCookie(name, env, now = Date.now() / 1000) {
  const body = base64url(encoder.encode(JSON.stringify({ name, exp: Math.floor(now) + SESSION_SECS })));
  const mac = await crypto.subtle.sign("HMAC", await sessionKey(env), encoder.encode(`mm-studio-v1.${body}`));
  return `${body}.${base64url(new Uint8Array(mac))}`;
}

function cookie(request, name) {
  const header = request.headers.get("Cookie") ?? "";
  for (const part of header.split(";")) {
    const [k, ...v] = part.trim().split("=");
    if (k === name) return v.join("=");
  }
  return null;
}

async function devPerson(request, env, now = Date.now() / 1000) {
  const value = cookie(request, SESSION_COOKIE);
  if (!value) return null;
  const [body, mac] = value.split(".");
  if (!body || !mac) return null;
  try {
    const ok = await crypto.subtle.verify("HMAC", await sessionKey(env), unbase64url(mac), encoder.encode(`mm-studio-v1.${body}`));
    if (!ok) return null;
    const { name, exp } = jsonPart(body);
    if (typeof name !== "string" || typeof exp !== "number" || exp < now) return null;
    return { name, via: "dev" };
  } catch {
    return null;
  }
}

const LOOPBACK = new Set(["127.0.0.1", "localhost", "[::1]"]);

/**
 * Whether the development sign-in is on: MM_DEV=1, and the studio is reached on this
 * machine (a loopback host name), so a production studio with MM_DEV set by mistake, or
 * a page that rebinds its own host name to 127.0.0.1, still gets no sign-in by name.
 */
export function devMode(request, env) {
  return env.MM_DEV === "1" && LOOPBACK.has(new URL(request.url).hostname);
}

/** The person making the request, or null. */
export async function person(request, env) {
  if (devMode(request, env)) return devPerson(request, env);
  return accessPerson(request.headers.get("Cf-Access-Jwt-Assertion"), env);
}
