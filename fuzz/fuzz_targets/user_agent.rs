//! Arbitrary bytes as a `User-Agent` and a purpose header: classifying a request never
//! panics, is the same twice, and `is_bot` agrees with `device_type`.
#![no_main]

use libfuzzer_sys::fuzz_target;
use micromoment::context::DeviceType;
use micromoment::http::{context, device_type, is_bot, RequestParts};

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    let (ua, purpose) = text.split_once('\n').unwrap_or((text, ""));
    let kind = device_type(ua, None);
    assert_eq!(kind, device_type(ua, None));
    assert_eq!(is_bot(ua), kind == DeviceType::Bot);
    let ctx = context(&RequestParts { path: "/", user_agent: Some(ua), purpose: Some(purpose), ..RequestParts::default() });
    assert_eq!(ctx.device.kind, Some(kind));
});
