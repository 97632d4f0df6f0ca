// Peer (b) of the workerd comparison: the same slot decisions made by GrowthBook's JS
// SDK (1.8.0), as GrowthBook's edge app runs it: the features loaded once per isolate,
// a GrowthBook instance per request with the visitor's attributes, one feature per slot
// (force rules in priority order, the hero experiment with its weights, coverage and
// v2 hash), the journey in an HMAC-signed cookie, the page filled by HTMLRewriter.
// Caps and "one content per page" are attributes the Worker computes: GrowthBook has no
// notion of either.
import { GrowthBook } from "@growthbook/growthbook";
import { WINTER, intent, record, serve, shownIn, stageName } from "../common.js";

const WEEK = 7 * 86400;
const force = (value, condition) => ({ force: value, condition });
const FEATURES = {
  hero: {
    defaultValue: "brand-film",
    rules: [
      force("order-tracker", { stage: "purchase" }),
      force("service-reminder", { stage: "loyalty", serviceShown: { $lt: 2 } }),
      force("test-drive", { stage: "decision", testDriveShown: { $lt: 3 }, $or: [{ intentSuv: { $gte: 30 } }, { intentEv: { $gte: 30 } }] }),
      force("dealer-offer", { stage: "decision", city: { $exists: true } }),
      { key: "hero-test", variations: ["suv-teaser", "ev-teaser"], weights: [0.5, 0.5], coverage: 0.9, hashVersion: 2, condition: { stage: "consideration" } },
      // The holdout sees the slot's default, not a lower rule.
      force("brand-film", { stage: "consideration" }),
      force("suv-teaser", { stage: "awareness", utmCampaign: { $regex: "^suv-" } }),
      force("model-range", { stage: { $in: ["awareness", "consideration"] }, returning: true }),
    ],
  },
  sidebar: {
    defaultValue: "model-range",
    rules: [
      force("test-drive", { stage: "decision", hero: { $ne: "test-drive" } }),
      force("configurator-teaser", { stage: { $in: ["consideration", "decision"] }, seenBrandFilm: true }),
      force("finance-calculator", { stage: "decision" }),
      force("winter-check", { country: { $in: WINTER }, winterShown: { $lt: 2 } }),
    ],
  },
};

function decide(state, ctx, now) {
  const attributes = {
    id: state.id,
    stage: stageName(state),
    intentSuv: intent(state, "suv"),
    intentEv: intent(state, "ev"),
    city: ctx.city,
    country: ctx.country,
    utmCampaign: ctx.utm,
    returning: state.visits > 1,
    seenBrandFilm: Boolean(state.shown["brand-film"]),
    serviceShown: shownIn(state, "service-reminder", 2 * WEEK, now),
    testDriveShown: shownIn(state, "test-drive", WEEK, now),
    winterShown: shownIn(state, "winter-service", WEEK, now),
  };
  const gb = new GrowthBook({ attributes, features: FEATURES });
  const hero = gb.getFeatureValue("hero", "brand-film");
  gb.setAttributes({ ...attributes, hero });
  let sidebar = gb.getFeatureValue("sidebar", "model-range");
  if (sidebar === hero) sidebar = undefined;
  const periods = { "test-drive": WEEK, "service-reminder": 2 * WEEK };
  for (const content of [hero, sidebar].filter(Boolean)) record(state, content, periods[content] ?? Infinity, now);
  if (sidebar === "winter-check") record(state, "winter-service", WEEK, now);
  gb.destroy();
  return sidebar ? { hero, sidebar } : { hero };
}

export default { fetch: (request, env) => serve(request, env, decide) };
