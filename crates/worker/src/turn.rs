//! One request's turn at the edge, the same for the API and the page proxy:
//! [`Turn::begin`] reads the request and opens its visitor (`session::open`: the token
//! verified once, a new visitor's id drawn there), and for a linked device due for a
//! sync, syncs it with its profile (waited at most `MM_PROFILE_WAIT_MS`); the face then
//! decides through `session` with [`Turn::request`]; [`Turn::finish`] ends it: the push
//! to the profile (after a late sync), the new token on the response, and after the
//! response the request's records and fired triggers. A request that decided nothing
//! ends with [`Turn::abandon`], so a late sync still lands.

use std::rc::Rc;

use worker::{Env, Headers, Request, Result};

use super::cache::Active;
use super::platform::{self, Background};
use super::request::{self, Incoming};
use super::{attach_token, cache, profile, records, triggers};
use micromoment::record::Event;
use micromoment::session::{self, Entropy, Opened, Outcome, Request as SessionRequest};
use micromoment::token::Keys;

/// Which of a linked device's requests may sync with its profile.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Syncs {
    /// An API call (an app's decision, its events).
    Always,
    /// A page view only (`Incoming::navigation`): not the page's images, scripts and
    /// API calls through the proxy.
    PageViews,
}

pub(crate) struct Turn {
    /// What the request says.
    pub incoming: Incoming,
    /// The clock at its start.
    pub now: i64,
    /// The journey keys, if they load.
    pub keys: Option<Rc<Keys>>,
    /// Who it comes from.
    pub opened: Opened,
    /// A sync that did not answer in time, to await after the response.
    pending: Option<profile::Pending>,
    /// The live data loaded for it ([`Turn::load_feeds`]).
    feeds: Option<micromoment::feed::Feeds>,
}

impl Turn {
    /// Reads `req` and opens its visitor; a linked device syncs with its profile when a
    /// sync is due and `syncs` allows it.
    pub(crate) async fn begin(req: &Request, env: &Env, syncs: Syncs) -> Turn {
        let mut turn = Turn::open(req, env);
        if syncs == Syncs::Always || turn.incoming.navigation {
            turn.sync(env).await;
        }
        turn
    }

    /// Syncs a linked device with its profile when a sync is due, for the context as it
    /// now is (a face that reads more of the context from the body syncs after that).
    pub(crate) async fn sync(&mut self, env: &Env) {
        self.pending = profile::sync(env, &mut self.opened, &self.incoming.context, self.now).await;
    }

    /// Reads `req` and opens its visitor, with no profile work (a preview).
    pub(crate) fn open(req: &Request, env: &Env) -> Turn {
        let now = platform::now();
        let incoming = request::read(req, env);
        let keys = cache::keys(env);
        let opened = session::open(
            incoming.visitor(),
            keys.as_deref(),
            now,
            Entropy::Source(&platform::entropy),
        );
        Turn {
            incoming,
            now,
            keys,
            opened,
            pending: None,
            feeds: None,
        }
    }

    /// Loads the live data the bundle's feed lookups need for this request (nothing
    /// for a bundle without any), each read within `MM_FEED_TIMEOUT_MS`.
    pub(crate) async fn load_feeds(&mut self, env: &Env, bundle: &micromoment::bundle::Bundle) {
        if bundle.feed_keys.is_empty() {
            return;
        }
        let wants = session::feed_wants(bundle, self.keys(), &self.request());
        if wants.keys.is_empty() && wants.whole.is_empty() {
            return;
        }
        self.feeds = Some(super::feeds::load(env, bundle, &wants, self.now).await);
    }

    /// The request for `session`, every slot, no event: faces set what else they need.
    pub(crate) fn request(&self) -> SessionRequest<'_> {
        SessionRequest {
            feeds: self.feeds.as_ref(),
            ..SessionRequest::new(
                session::Visitor::Opened(&self.opened),
                &self.incoming.context,
                self.now,
                Entropy::Source(&platform::entropy),
            )
        }
    }

    /// The keys, for `session`.
    pub(crate) fn keys(&self) -> Option<&Keys> {
        self.keys.as_deref()
    }

    /// Nothing was decided: a late sync still lands.
    pub(crate) fn abandon(self, env: &Env, bg: &impl Background) {
        profile::push(env, bg, self.pending, None);
    }

    /// Ends a decided request: the push to the profile, the new token on `headers`, and
    /// after the response its records (exposures, and conversions of `events` and of
    /// the context's own event) and its fired triggers.
    pub(crate) fn finish(
        self,
        env: &Env,
        bg: &impl Background,
        active: &Active,
        outcome: &Outcome<'_>,
        headers: &Headers,
        events: &[Event<'_>],
    ) -> Result<()> {
        profile::push(env, bg, self.pending, outcome.push.clone());
        attach_token(headers, &self.incoming, outcome.token.as_deref())?;
        let context = &self.incoming.context;
        // An app's `event` (the only one a GET may carry) is a conversion when a goal
        // names it.
        let own = context
            .event
            .as_deref()
            .map(|name| Event { name, value: None });
        let all: Vec<Event<'_>> = if events.is_empty() {
            own.into_iter().collect()
        } else {
            events.to_vec()
        };
        records::send(env, bg, active, &outcome.decision, context, &all);
        let deliveries =
            micromoment::deliver::deliveries(&active.bundle, &outcome.decision, context);
        let opted_out = micromoment::opted_out(context, &outcome.decision.state);
        let plan = triggers::plan(
            &active.bundle,
            deliveries,
            &outcome.decision.state,
            opted_out,
            self.now,
            all.iter().map(|e| e.name).chain(context.event.as_deref()),
        );
        triggers::send(env, bg, plan, self.incoming.client.clone());
        // A person seen before (never a cookie-less request, a crawler or a prefetch)
        // watches the feed rows the content shown was chosen on.
        let nobody =
            context.device.kind == Some(micromoment::context::DeviceType::Bot) || context.prefetch;
        if !outcome.decision.watches.is_empty()
            && self.opened.state().is_some()
            && !opted_out
            && !nobody
        {
            super::feeds::watch(env, bg, &active.bundle, &outcome.decision, self.now);
        }
        Ok(())
    }
}
