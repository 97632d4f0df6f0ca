// The baseline of the workerd load test: a Worker that only forwards to the origin, as
// a site without micromoment would run.
export default {
  async fetch(request, env) {
    const url = new URL(request.url);
    const target = new URL(url.pathname + url.search, env.ORIGIN);
    return fetch(target, { method: request.method, headers: request.headers, redirect: "manual" });
  },
};
