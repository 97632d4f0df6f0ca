// The npm package's TypeScript declarations for what crates/npm/src/lib.rs exports,
// included into the package's micromoment.d.ts by its `typescript_custom_section`; the
// request context's (`RequestContext`) are in context.d.ts, generated from the table of
// variables.
/** The JOURNEY_KEYS document: `{"current": "k2", "keys": {"k1": "<base64 ≥ 32 bytes>", "k2": "…"}}`. */
export interface JourneyKeys { current: string; keys: Record<string, string>; }
/** A time: Unix milliseconds (like `Date.now()`), an RFC 3339 string, or a `Date`. */
export type Instant = number | string | Date;
export interface DecideOptions {
  /** The visitor's token, from the `mm` cookie or `X-MM-Token`. */
  token?: string;
  /** Keys to verify the token and sign the new one; without them no token is issued. */
  keys?: JourneyKeys | string;
  /** The visitor's state by names, instead of a token (as `state` in an answer). */
  state?: object;
  context?: RequestContext;
  /** Slots to decide, in order (default: every slot of the bundle). */
  slots?: string[];
  /** This request's app event. */
  event?: string;
  now?: Instant;
  /** A new visitor's id, 32 hex digits (default: random). */
  visitor?: string;
  /** Add the trace: every candidate and why it was kept or skipped. */
  explain?: boolean;
}
export interface SlotDecision {
  slot: string; content: string; candidate: string | null; experiment?: string; variant?: string;
  reason: "candidate" | "experiment" | "holdout" | "default" | "consent";
  html?: string; json?: unknown; text?: string;
}
export interface Decision {
  stage: string;
  decisions: SlotDecision[];
  /** The new token, or null without keys or consent. */
  token: string | null;
  /** The visitor's new state, by names. */
  state: object;
  /** Exposure events to send to your analytics after answering. */
  exposures: object[];
  /** The triggers this request fired (docs/triggers.md), when any did: send them on. */
  triggers?: { trigger: string; send: string[]; delay_secs?: number; unless?: string; stage: string }[];
  trace?: object;
  /** The whole answer as a plain object (`state` is a getter, written when first read). */
  toJSON(): object;
}
/** `decide`'s options for a page: the page names its slots, and the visitor comes from the token. */
export type PageOptions = Omit<DecideOptions, "slots" | "state">;
/** A personalized page: the decision for the slots it names, and the page with them filled. */
export interface PersonalizedPage extends Decision {
  /** The page, each `[data-mm-slot]` element filled and tagged `data-mm-content`: text when
   *  the page was given as text, bytes when it was given as bytes. */
  html: string | Uint8Array;
}
export interface MintOptions {
  keys: JourneyKeys | string;
  stage?: string;
  segments?: string[];
  /** The person's profile id, 32 hex digits: the token is a linked device's (docs/profiles.md). */
  profile?: string;
  visitor?: string;
  /** Lifetime in seconds (default 30 days). */
  ttlSeconds?: number;
  now?: Instant;
}
export interface LinkOptions {
  keys: JourneyKeys | string;
  /** The person's profile id, 32 hex digits. */
  profile: string;
  /** How long the link works, in seconds (default 12 hours, at most 30 days). */
  ttlSeconds?: number;
  /** The campaign that sends it (1 to 64 bytes). */
  campaign?: string;
  now?: Instant;
}
/** What a verified identity link says. */
export interface IdentityLink {
  profile: string;
  /** The link's id, 32 hex digits: the profile records it once used; revoke it with
   *  `DELETE /v1/profiles/<profile>/links/<id>`. */
  id: string;
  issuedAt: string;
  expiresAt: string;
  campaign: string | null;
}
