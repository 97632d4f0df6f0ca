// Peer (c) of the workerd comparison: the same slot decisions as micromoment's default
// bundle (fixtures/automotive.json: hero and sidebar), hand-written in JS, with the
// journey in an HMAC-signed cookie and the page filled by workerd's HTMLRewriter.
import { WINTER, bucket, intent, record, serve, shownIn, stageName } from "../common.js";

const WEEK = 7 * 86400;

function decide(state, ctx, now) {
  const stage = stageName(state);
  const shown = [];
  const pick = (content, id = content, period = Infinity) => {
    record(state, id, period, now);
    if (id !== content) record(state, content, Infinity, now);
    shown.push(content);
    return content;
  };
  let hero;
  if (stage === "purchase") hero = pick("order-tracker");
  else if (stage === "loyalty" && shownIn(state, "service-reminder", 2 * WEEK, now) < 2) hero = pick("service-reminder", "service-reminder", 2 * WEEK);
  else if (stage === "decision" && (intent(state, "suv") >= 30 || intent(state, "ev") >= 30) && shownIn(state, "test-drive", WEEK, now) < 3) hero = pick("test-drive", "test-drive", WEEK);
  else if (stage === "decision" && ctx.city) hero = pick("dealer-offer");
  else if (stage === "consideration") {
    const b = bucket("hero-test", state.id);
    hero = pick(b >= 0.9 ? "brand-film" : b < 0.45 ? "suv-teaser" : "ev-teaser");
  } else if (stage === "awareness" && ctx.utm?.startsWith("suv-")) hero = pick("suv-teaser");
  else if ((stage === "awareness" || stage === "consideration") && state.visits > 1) hero = pick("model-range");
  else hero = pick("brand-film");
  let sidebar;
  if (stage === "decision" && !shown.includes("test-drive")) sidebar = pick("test-drive");
  else if ((stage === "consideration" || stage === "decision") && state.shown["brand-film"] && !shown.includes("configurator-teaser")) sidebar = pick("configurator-teaser");
  else if (stage === "decision") sidebar = pick("finance-calculator");
  else if (WINTER.includes(ctx.country) && shownIn(state, "winter-service", WEEK, now) < 2) sidebar = pick("winter-check", "winter-service", WEEK);
  else sidebar = shown.includes("model-range") ? undefined : pick("model-range");
  return sidebar ? { hero, sidebar } : { hero };
}

export default { fetch: (request, env) => serve(request, env, decide) };
