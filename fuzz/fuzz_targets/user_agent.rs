//! Arbitrary bytes as a `User-Agent` and a purpose header: classifying a request never
//! panics, is the same twice, `is_bot` agrees with `device_type`, and a request's
//! context classifies the header as read (its first `MAX_HEADER` bytes).
#![no_main]

use libfuzzer_sys::fuzz_target;
use micromoment::context::DeviceType;
use micromoment::http::{context, device_type, is_bot, RequestParts, MAX_HEADER};

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    let (ua, purpose) = text.split_once('\n').unwrap_or((text, ""));
    let kind = device_type(ua, None);
    assert_eq!(kind, device_type(ua, None));
    assert_eq!(is_bot(ua), kind == DeviceType::Bot);
    let ctx = context(&RequestParts { path: "/", user_agent: Some(ua), purpose: Some(purpose), ..RequestParts::default() });
    let mut end = ua.len().min(MAX_HEADER);
    while !ua.is_char_boundary(end) {
        end -= 1;
    }
    assert_eq!(ctx.device.kind, Some(device_type(&ua[..end], None)));
});
