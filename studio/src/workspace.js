// One workspace's drafts, revisions and published versions (docs/studio.md): a
// SQLite-backed Durable Object, so saves and publishes are serialized: a revision is
// saved on the one it was edited from or not at all, and versions are numbered without
// gaps or repeats. Publishing compiles, signs and writes KV here too: `bundle:<hash>`,
// `version:<id>:<version>`, then `current`.
import { DurableObject } from "cloudflare:workers";
import { build, validate, describe, signingPublicKey, rollbackRecord } from "./engine.js";

/** The largest document a revision holds, in bytes of UTF-8. */
export const MAX_DOC = 4 * 1024 * 1024;
/** Documents are stored in pieces below SQLite's 2 MB value limit. */
const PIECE = 512 * 1024;
/** The longest revision or publish message. */
export const MAX_MESSAGE = 500;
/** Revisions kept: past this, the oldest that no publish refers to are deleted. */
const KEEP_REVISIONS = 1000;

/** The deepest nesting a document may have (the engine reads up to 128). */
export const MAX_DEPTH = 64;

const bytes = (text) => new TextEncoder().encode(text).length;

/** Why a document's text cannot be a bundle's, or null: JSON, an object, not too deep. */
export function shape(text) {
  // Depth first, without parsing: brackets outside strings.
  let depth = 0;
  let inString = false;
  for (let i = 0; i < text.length; i++) {
    const c = text[i];
    if (inString) {
      if (c === "\\") i += 1;
      else if (c === '"') inString = false;
    } else if (c === '"') inString = true;
    else if (c === "{" || c === "[") {
      depth += 1;
      if (depth > MAX_DEPTH) return `a document nests at most ${MAX_DEPTH} levels`;
    } else if (c === "}" || c === "]") depth -= 1;
  }
  let value;
  try {
    value = JSON.parse(text);
  } catch (e) {
    return `not JSON: ${e.message}`;
  }
  if (value === null || typeof value !== "object" || Array.isArray(value)) return "a bundle is a JSON object";
  return null;
}

export class Workspace extends DurableObject {
  constructor(ctx, env) {
    super(ctx, env);
    this.sql = ctx.storage.sql;
    this.sql.exec(`
      CREATE TABLE IF NOT EXISTS revisions (
        id INTEGER PRIMARY KEY AUTOINCREMENT, author TEXT NOT NULL, at INTEGER NOT NULL,
        message TEXT NOT NULL, size INTEGER NOT NULL);
      CREATE TABLE IF NOT EXISTS pieces (
        doc TEXT NOT NULL, n INTEGER NOT NULL, text TEXT NOT NULL, PRIMARY KEY (doc, n));
      CREATE TABLE IF NOT EXISTS published (
        seq INTEGER PRIMARY KEY AUTOINCREMENT, kind TEXT NOT NULL, version INTEGER NOT NULL,
        bundle TEXT NOT NULL, hash TEXT NOT NULL, revision INTEGER, author TEXT NOT NULL,
        at INTEGER NOT NULL, message TEXT NOT NULL);
    `);
  }

  #write(doc, text) {
    this.sql.exec("DELETE FROM pieces WHERE doc = ?", doc);
    let n = 0;
    let at = 0;
    do {
      let end = Math.min(at + PIECE, text.length);
      // Never between the two halves of a character outside the BMP (an emoji).
      const last = text.charCodeAt(end - 1);
      if (end < text.length && last >= 0xd800 && last <= 0xdbff) end -= 1;
      this.sql.exec("INSERT INTO pieces (doc, n, text) VALUES (?, ?, ?)", doc, n, text.slice(at, end));
      n += 1;
      at = end;
    } while (at < text.length);
  }

  #read(doc) {
    const rows = this.sql.exec("SELECT text FROM pieces WHERE doc = ? ORDER BY n", doc).toArray();
    return rows.length ? rows.map((r) => r.text).join("") : null;
  }

  #head() {
    return this.sql.exec("SELECT id, author, at, message, size FROM revisions ORDER BY id DESC LIMIT 1").toArray()[0] ?? null;
  }

  #live() {
    return this.sql.exec("SELECT * FROM published WHERE kind != 'baseline' ORDER BY seq DESC LIMIT 1").toArray()[0] ?? null;
  }

  /** The workspace at a glance: the head revision, the latest revisions, every publish. */
  overview() {
    const revisions = this.sql.exec("SELECT id, author, at, message, size FROM revisions ORDER BY id DESC LIMIT 200").toArray();
    const published = this.sql.exec("SELECT seq, kind, version, bundle, hash, revision, author, at, message FROM published ORDER BY seq DESC").toArray();
    return { head: revisions[0] ?? null, revisions, published, live: this.#live() };
  }

  /** One revision with its document, or null. */
  open(id) {
    const meta = this.sql.exec("SELECT id, author, at, message, size FROM revisions WHERE id = ?", id).toArray()[0];
    if (!meta) return null;
    return { ...meta, doc: this.#read(`r${id}`) };
  }

  /** The document of what the edge serves (per the studio's last publish or rollback), or null. */
  liveDoc() {
    const live = this.#live();
    if (!live) return null;
    const origin = this.#publishOf(live.version);
    return { version: live.version, hash: live.hash, revision: live.revision, doc: origin ? this.#read(`p${origin.seq}`) : null };
  }

  #publishOf(version) {
    return this.sql.exec("SELECT * FROM published WHERE version = ? AND kind != 'rollback' ORDER BY seq LIMIT 1", version).toArray()[0] ?? null;
  }

  /**
   * Saves a revision edited from `parent` (null for the first): refused with the head
   * when another was saved since, so nobody overwrites a colleague's change unseen.
   */
  save({ doc, message, author, parent }) {
    if (typeof doc !== "string" || bytes(doc) > MAX_DOC) return { error: `a document is at most ${MAX_DOC} bytes` };
    const wrong = shape(doc);
    if (wrong) return { error: wrong };
    const head = this.#head();
    if ((head?.id ?? null) !== (parent ?? null)) return { conflict: head };
    const at = Date.now();
    this.sql.exec("INSERT INTO revisions (author, at, message, size) VALUES (?, ?, ?, ?)", author, at, String(message ?? "").slice(0, MAX_MESSAGE), bytes(doc));
    const id = this.#head().id;
    this.#write(`r${id}`, doc);
    this.#trim();
    return { revision: this.#head() };
  }

  #trim() {
    const old = this.sql.exec(
      `SELECT id FROM revisions WHERE id NOT IN (SELECT revision FROM published WHERE revision IS NOT NULL)
       AND id != (SELECT MIN(id) FROM revisions) ORDER BY id DESC LIMIT -1 OFFSET ?`, KEEP_REVISIONS).toArray();
    for (const { id } of old) {
      this.sql.exec("DELETE FROM revisions WHERE id = ?", id);
      this.sql.exec("DELETE FROM pieces WHERE doc = ?", `r${id}`);
    }
  }

  /** Compiles and signs `text` as `version`, writes its bundle and version record to KV. */
  async #store(text, version) {
    const doc = JSON.parse(text);
    doc.version = version;
    const source = JSON.stringify(doc, null, 2);
    let built;
    try {
      built = build(source, this.env.MM_SIGNING_KEY || undefined);
    } catch (e) {
      let diagnostics = [];
      try {
        diagnostics = JSON.parse(validate(source));
      } catch {}
      return { error: String(e.message ?? e), diagnostics };
    }
    await this.env.BUNDLES.put(`bundle:${built.hash}`, built.bytes);
    await this.env.BUNDLES.put(`version:${built.id}:${built.version}`, built.hash);
    // The highest version of the id ever published: the edge refuses older ones
    // without a rollback record, in every isolate.
    const latest = Number((await this.env.BUNDLES.get(`latest:${built.id}`)) ?? 0);
    if (!(latest >= built.version)) await this.env.BUNDLES.put(`latest:${built.id}`, String(built.version));
    return { built, source };
  }

  /** The lowest version above `floor` that no publish (here or from the CLI) recorded for `id`. */
  async #freeVersion(id, floor) {
    for (let v = floor + 1; v < floor + 1000; v++) {
      if (!Number.isSafeInteger(v)) break;
      if ((await this.env.BUNDLES.get(`version:${id}:${v}`)) === null) return v;
    }
    return null;
  }

  /**
   * Publishes a revision as the next version: compiled and signed, `bundle:<hash>` and
   * the version's record written, then `current`. The first publish of a workspace also
   * records what the edge served before (KV's `current`, or, when KV has none, the
   * workspace's starting document: the edge serves its embedded bundle then), so it can
   * be rolled back to. One publish or rollback at a time: nothing else runs in the
   * object meanwhile, so versions are numbered without gaps or repeats.
   */
  publish({ revision, message, author, dev }) {
    return this.ctx.blockConcurrencyWhile(() => this.#publish({ revision, message, author, dev }));
  }

  async #publish({ revision, message, author, dev }) {
    if (!this.env.MM_SIGNING_KEY && !dev) {
      return { error: "MM_SIGNING_KEY is not set: the edge refuses unsigned bundles outside development" };
    }
    if (this.env.MM_SIGNING_KEY && this.env.BUNDLE_PUBKEY) {
      let own;
      try {
        own = signingPublicKey(this.env.MM_SIGNING_KEY);
      } catch (e) {
        return { error: String(e.message ?? e) };
      }
      if (own !== this.env.BUNDLE_PUBKEY.trim()) {
        return { error: "MM_SIGNING_KEY is not the key of BUNDLE_PUBKEY: the edge would refuse what it signs" };
      }
    }
    const rev = this.open(revision);
    if (!rev) return { error: `no revision ${revision}` };
    const at = Date.now();
    const note = String(message ?? "").slice(0, MAX_MESSAGE);
    const doc = JSON.parse(rev.doc);
    if (this.sql.exec("SELECT COUNT(*) AS n FROM published").one().n === 0) {
      await this.#baseline(author, at);
    }
    const floor = Math.max(
      this.sql.exec("SELECT MAX(version) AS v FROM published").one().v ?? 0,
      Number.isSafeInteger(doc.version) ? doc.version : 0,
    );
    const version = await this.#freeVersion(String(doc.id ?? ""), floor);
    if (version === null) return { error: `no free version above ${floor}` };
    const stored = await this.#store(rev.doc, version);
    if (!stored.built) return stored;
    await this.env.BUNDLES.put("current", stored.built.hash);
    this.#record("publish", stored, revision, author, at, note);
    return { version: stored.built.version, hash: stored.built.hash, id: stored.built.id };
  }

  /** Records what the edge served before the workspace's first publish. */
  async #baseline(author, at) {
    const served = (await this.env.BUNDLES.get("current"))?.trim();
    if (served) {
      const bytes = await this.env.BUNDLES.get(`bundle:${served}`, "arrayBuffer");
      const header = bytes && describe(new Uint8Array(bytes));
      if (header) {
        this.sql.exec(
          "INSERT INTO published (kind, version, bundle, hash, revision, author, at, message) VALUES ('baseline', ?, ?, ?, NULL, ?, ?, ?)",
          header.version, header.id, served, author, at, "what the edge served before the studio's first publish");
      }
      return;
    }
    // No `current`: the edge serves the bundle it embeds, which the workspace started from.
    const first = this.sql.exec("SELECT MIN(id) AS id FROM revisions").one().id;
    const base = this.#read(`r${first}`);
    const version = Number.isSafeInteger(JSON.parse(base).version) ? JSON.parse(base).version : 1;
    const stored = await this.#store(base, version);
    if (stored.built) {
      this.#record("baseline", stored, first, author, at, "the starting document, as the edge served it before the first publish");
    }
  }

  #record(kind, { built, source }, revision, author, at, message) {
    this.sql.exec(
      "INSERT INTO published (kind, version, bundle, hash, revision, author, at, message) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
      kind, built.version, built.id, built.hash, revision, author, at, message);
    const seq = this.sql.exec("SELECT MAX(seq) AS s FROM published").one().s;
    this.#write(`p${seq}`, source);
  }

  /** Serves a published version again: `current` set to its bundle, still in KV. */
  rollback({ version, author, message }) {
    return this.ctx.blockConcurrencyWhile(() => this.#rollback({ version, author, message }));
  }

  async #rollback({ version, author, message }) {
    const target = this.#publishOf(version);
    if (!target) return { error: `version ${version} was never published here` };
    const stored = await this.env.BUNDLES.get(`bundle:${target.hash}`, "arrayBuffer");
    if (!stored) return { error: `bundle:${target.hash} (version ${version}) is no longer in KV` };
    // The rollback record first (signed like bundles), so the edge that reads the new
    // `current` serves this older version rather than refusing it as a downgrade.
    const latest = Number((await this.env.BUNDLES.get(`latest:${target.bundle}`)) ?? 0) || 0;
    const record = rollbackRecord(this.env.MM_SIGNING_KEY || undefined, target.bundle, target.version, target.hash,
      Math.max(latest, target.version), Math.floor(Date.now() / 1000));
    await this.env.BUNDLES.put(`rollback:${target.hash}`, record);
    await this.env.BUNDLES.put("current", target.hash);
    this.sql.exec(
      "INSERT INTO published (kind, version, bundle, hash, revision, author, at, message) VALUES ('rollback', ?, ?, ?, ?, ?, ?, ?)",
      target.version, target.bundle, target.hash, target.revision, author, Date.now(), String(message ?? `rolled back to version ${version}`).slice(0, MAX_MESSAGE));
    return { version: target.version, hash: target.hash, id: target.bundle };
  }
}
