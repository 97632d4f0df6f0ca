// The baseline of the workerd load test: a Worker that only forwards to the origin, as
// a site without micromoment would run. `/healthz` answers without a subrequest: the
// floor of a JavaScript Worker under the same `wrangler dev`, beside micromoment's own.
export default {
  async fetch(request, env) {
    const url = new URL(request.url);
    if (url.pathname === "/healthz") return new Response("ok");
    const target = new URL(url.pathname + url.search, env.ORIGIN);
    return fetch(target, { method: request.method, headers: request.headers, redirect: "manual" });
  },
};
