//! `webhook`: [Standard Webhooks](https://www.standardwebhooks.com/) v1. The body goes
//! as it is, with `webhook-id` (the message id, the same on every redelivery, so a
//! receiver counts it once), `webhook-timestamp` (when it is sent) and
//! `webhook-signature`: `v1,` and the base64 HMAC-SHA256 of `id.timestamp.body`, keyed
//! by the secret's bytes (`whsec_<base64>`). It never sends what it could not sign.

use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;
use hmac::{Hmac, Mac};
use sha2::Sha256;

use super::{CallError, Delivery, DestinationKind, HttpCall, SecretError};
use crate::time::UnixSeconds;

/// The signed `POST` of the delivery's body to `url`, sent at `now`.
pub(super) fn call(
    delivery: &Delivery,
    secret: &str,
    url: &str,
    now: UnixSeconds,
) -> Result<HttpCall, CallError> {
    let signature =
        signature(secret, &delivery.id, now, &delivery.body).map_err(|error| {
            CallError::Secret {
                var: delivery.secret_var.clone(),
                error,
            }
        })?;
    Ok(HttpCall::json(url, delivery.body.clone())
        .header("webhook-id", delivery.id.clone())
        .header("webhook-timestamp", now.to_string())
        .header("webhook-signature", signature))
}

/// A secret that cannot sign: not `whsec_` and base64, as Standard Webhooks writes one.
fn malformed(problem: &'static str) -> SecretError {
    SecretError {
        kind: DestinationKind::Webhook,
        expected: "whsec_<base64> (Standard Webhooks)",
        problem,
    }
}

/// The `webhook-signature` header of Standard Webhooks v1: `v1,` and the base64
/// HMAC-SHA256, keyed by the secret's bytes, of `id.timestamp.body`.
fn signature(
    secret: &str,
    id: &str,
    timestamp: UnixSeconds,
    body: &str,
) -> Result<String, SecretError> {
    let encoded = secret
        .strip_prefix("whsec_")
        .ok_or_else(|| malformed("no whsec_ prefix"))?;
    let key = STANDARD
        .decode(encoded)
        .map_err(|_| malformed("not base64"))?;
    if key.is_empty() {
        return Err(malformed("empty"));
    }
    let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(&key)
        .map_err(|_| malformed("unusable key"))?;
    mac.update(id.as_bytes());
    mac.update(b".");
    mac.update(timestamp.to_string().as_bytes());
    mac.update(b".");
    mac.update(body.as_bytes());
    Ok(format!(
        "v1,{}",
        STANDARD.encode(mac.finalize().into_bytes())
    ))
}

#[cfg(test)]
mod tests {
    use super::super::tests::{delivery, settings};
    use super::*;

    /// The example of the Standard Webhooks specification and its reference libraries.
    #[test]
    fn the_specifications_example_signs_as_published() {
        let signature = signature(
            "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw",
            "msg_p5jXN8AQM9LWM0D4loKWxJek",
            1_614_265_330,
            r#"{"test": 2432232314}"#,
        )
        .unwrap();
        assert_eq!(signature, "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=");
    }

    #[test]
    fn malformed_secrets_are_typed_errors() {
        for (bad, why) in [
            ("MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw", "no whsec_ prefix"),
            ("whsec_!!!", "not base64"),
            ("whsec_", "empty"),
        ] {
            assert_eq!(
                signature(bad, "m", 1, "{}"),
                Err(malformed(why)),
                "{bad}"
            );
        }
    }

    /// The call, header by header: the body as it is, signed for the time it is sent.
    #[test]
    fn a_webhook_is_the_body_signed_with_its_id_and_time() {
        let d = delivery(DestinationKind::Webhook, Some("MM_DEST_CRM_URL"));
        let call = d.call(settings, 1_796_170_000).expect("a call");
        let signed = signature(
            "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw",
            "msg_0123456789abcdef01234567",
            1_796_170_000,
            &d.body,
        )
        .unwrap();
        assert_eq!(call.url, "https://crm.example/hooks/1");
        assert_eq!(
            call.headers,
            [
                ("Content-Type", "application/json".to_owned()),
                (
                    "User-Agent",
                    concat!("micromoment/", env!("CARGO_PKG_VERSION")).to_owned()
                ),
                ("webhook-id", "msg_0123456789abcdef01234567".to_owned()),
                ("webhook-timestamp", "1796170000".to_owned()),
                ("webhook-signature", signed.clone()),
            ]
        );
        assert_eq!(
            signed, "v1,ij1pFbM05WlGWcj7i325fjFAJ5FufXs3njOEZZMAfCc=",
            "as Python's hmac signs it: a change of what is signed breaks every receiver"
        );
        assert_eq!(call.body, r#"{"type":"trigger","trigger":"basket-rescue"}"#);
    }

    #[test]
    fn a_secret_that_cannot_sign_makes_no_call() {
        let mut d = delivery(DestinationKind::Webhook, Some("MM_DEST_CRM_URL"));
        d.secret_var = "MM_DEST_CRM_URL".to_owned();
        assert_eq!(
            d.call(settings, 1).map_err(|e| e.to_string()),
            Err("MM_DEST_CRM_URL: the webhook secret is not whsec_<base64> (Standard Webhooks): no whsec_ prefix".to_owned())
        );
    }
}
