//! The demo site (docs/studio.md): in development (`MM_DEV=1`) with no `ORIGIN`, the edge serves a few pages of an
//! imaginary car brand whose markup names the automotive fixture's slots (`banner`,
//! `hero`, `sidebar`), so the first page a newcomer opens is personalized, and every
//! publish and preview from the studio has a real page to show on. The pages go through
//! the same path as an origin's page read whole ([`proxy::whole`]): the same decision,
//! token, exposures and headers.

use worker::{Context as WorkerContext, Env, Headers, Method, Request, Response, Result};

use super::error;
use super::proxy;
use super::turn::{Syncs, Turn};

const HEAD: &str = include_str!("../demo/head.html");
const FOOT: &str = include_str!("../demo/foot.html");

/// The page of a path, with its title, or `None` when the site has no such page.
fn page_of(path: &str) -> Option<(&'static str, &'static str)> {
    Some(match path.trim_end_matches('/') {
        "" | "/index.html" => ("Home", include_str!("../demo/index.html")),
        "/models" => ("Models", include_str!("../demo/models.html")),
        "/models/suv/terra" => ("Acme Terra", include_str!("../demo/terra.html")),
        "/models/ev/volt" => ("Acme Volt", include_str!("../demo/volt.html")),
        "/offers" => ("Offers", include_str!("../demo/offers.html")),
        _ => return None,
    })
}

/// Serves a page of the demo site, personalized; `404` for any other path.
pub async fn page(req: Request, env: &Env, ctx: &WorkerContext) -> Result<Response> {
    let path = req.path();
    let Some((title, body)) = page_of(&path) else {
        return error(404, "not found");
    };
    let method = req.method();
    if !matches!(method, Method::Get | Method::Head) {
        return super::method_not_allowed("GET, HEAD");
    }
    let turn = Turn::begin(&req, env, Syncs::PageViews).await;
    let page = [HEAD.replace("{{title}}", title).as_str(), body, FOOT].concat();
    let headers = Headers::new();
    headers.set("Content-Type", "text/html; charset=utf-8")?;
    proxy::whole(page.into_bytes(), &path, headers, 200, env, ctx, turn).await
}
