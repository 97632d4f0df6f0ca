// One workspace's drafts, revisions and published versions (docs/studio.md): a
// SQLite-backed Durable Object, so saves and publishes are serialized: a revision is
// saved on the one it was edited from or not at all, and versions are numbered without
// gaps or repeats. Publishing compiles, signs and writes KV here too: `bundle:<hash>`,
// `version:<id>:<version>`, then `current`.
import { DurableObject } from "cloudflare:workers";
import { build, validate } from "./engine.js";

/** The largest document a revision holds, in bytes of UTF-8. */
export const MAX_DOC = 4 * 1024 * 1024;
/** Documents are stored in pieces below SQLite's 2 MB value limit. */
const PIECE = 512 * 1024;
/** The longest revision or publish message. */
export const MAX_MESSAGE = 500;
/** Revisions kept: past this, the oldest that no publish refers to are deleted. */
const KEEP_REVISIONS = 1000;

const bytes = (text) => new TextEncoder().encode(text).length;

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
    for (let n = 0, at = 0; at < text.length || n === 0; n++, at += PIECE) {
      this.sql.exec("INSERT INTO pieces (doc, n, text) VALUES (?, ?, ?)", doc, n, text.slice(at, at + PIECE));
    }
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
    return { version: live.version, hash: live.hash, revision: live.revision, doc: this.#read(`p${this.#publishOf(live.version).seq}`) };
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
    try {
      JSON.parse(doc);
    } catch (e) {
      return { error: `not JSON: ${e.message}` };
    }
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
      return { error: String(e.message ?? e), diagnostics: JSON.parse(validate(source)) };
    }
    await this.env.BUNDLES.put(`bundle:${built.hash}`, built.bytes);
    await this.env.BUNDLES.put(`version:${built.id}:${built.version}`, built.hash);
    return { built, source };
  }

  /**
   * Publishes a revision as the next version: compiled and signed, `bundle:<hash>` and
   * the version's record written, then `current`. The first publish of a workspace
   * also stores its first revision at its own version (the baseline), so that what the
   * edge served before can be rolled back to.
   */
  async publish({ revision, message, author }) {
    const rev = this.open(revision);
    if (!rev) return { error: `no revision ${revision}` };
    const at = Date.now();
    const note = String(message ?? "").slice(0, MAX_MESSAGE);
    const ever = this.sql.exec("SELECT MAX(version) AS v FROM published").one().v;
    if (ever === null) {
      const first = this.sql.exec("SELECT MIN(id) AS id FROM revisions").one().id;
      const base = this.#read(`r${first}`);
      const version = Number(JSON.parse(base).version) || 1;
      const stored = await this.#store(base, version);
      if (stored.built && first !== revision) {
        this.#record("baseline", stored, first, author, at, "the starting document, as served before the first publish");
      }
    }
    const floor = this.sql.exec("SELECT MAX(version) AS v FROM published").one().v ?? 0;
    const version = Math.max(floor, Number(JSON.parse(rev.doc).version) || 0) + 1;
    const stored = await this.#store(rev.doc, version);
    if (!stored.built) return stored;
    await this.env.BUNDLES.put("current", stored.built.hash);
    this.#record("publish", stored, revision, author, at, note);
    return { version: stored.built.version, hash: stored.built.hash, id: stored.built.id };
  }

  #record(kind, { built, source }, revision, author, at, message) {
    this.sql.exec(
      "INSERT INTO published (kind, version, bundle, hash, revision, author, at, message) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
      kind, built.version, built.id, built.hash, revision, author, at, message);
    const seq = this.sql.exec("SELECT MAX(seq) AS s FROM published").one().s;
    this.#write(`p${seq}`, source);
  }

  /** Serves a published version again: `current` set to its bundle, still in KV. */
  async rollback({ version, author, message }) {
    const target = this.#publishOf(version);
    if (!target) return { error: `version ${version} was never published here` };
    const stored = await this.env.BUNDLES.get(`bundle:${target.hash}`, "arrayBuffer");
    if (!stored) return { error: `bundle:${target.hash} (version ${version}) is no longer in KV` };
    await this.env.BUNDLES.put("current", target.hash);
    this.sql.exec(
      "INSERT INTO published (kind, version, bundle, hash, revision, author, at, message) VALUES ('rollback', ?, ?, ?, ?, ?, ?, ?)",
      target.version, target.bundle, target.hash, target.revision, author, Date.now(), String(message ?? `rolled back to version ${version}`).slice(0, MAX_MESSAGE));
    return { version: target.version, hash: target.hash, id: target.bundle };
  }
}
