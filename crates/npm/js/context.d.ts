// Generated from the table of variables (src/context.rs) by tests/it/npm_types.rs: do
// not edit. After a change to the table, `UPDATE_EXPECT=1 cargo test -p micromoment-cli
// --test it npm_types` writes it again.
/** The request context, in the variable names of rules (`geo.city`, `device.type`, …). */
export interface RequestContext {
  channel?: "web" | "app" | "email" | "store" | "push";
  geo?: {
    country?: string;
    region?: string;
    city?: string;
    continent?: string;
    postal?: string;
    timezone?: string;
    lat?: number;
    lon?: number;
    colo?: string;
  };
  device?: {
    type?: "mobile" | "tablet" | "desktop" | "tv" | "bot";
    os?: string;
    browser?: string;
  };
  app?: {
    version?: string;
  };
  page?: {
    path?: string;
    host?: string;
    lang?: string;
    query?: Record<string, string>;
  };
  utm?: {
    source?: string;
    medium?: string;
    campaign?: string;
    term?: string;
    content?: string;
  };
  referrer?: {
    host?: string;
    kind?: "search" | "social" | "email" | "internal" | "direct" | "other";
  };
  event?: string;
  consent?: {
    personalization?: boolean;
  };
  /** Fetched ahead of time (prefetch, prerender): served, but no exposures. */
  prefetch?: boolean;
}
