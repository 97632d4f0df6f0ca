//! Reading bodies with bounds: request bodies that stop at a byte limit whatever the
//! headers claim, and a response body of known small size in one native read.
//!
//! A Worker isolate has 128 MB for every request it serves at once, so a body is read
//! chunk by chunk and refused as soon as it passes the limit (the rest is never read).

use wasm_bindgen::JsCast;
use worker::wasm_bindgen_futures::JsFuture;
use worker::{js_sys, web_sys, Request};

/// Why a body was not read.
#[derive(Debug)]
pub enum BodyError {
    /// More than the limit arrived (or was declared).
    TooLarge,
    /// The stream failed.
    Unreadable(String),
}

/// How much of a body past the limit is read (and dropped) before giving up on it: a
/// client that sent a little too much still gets its 413 on a connection it can use
/// again; past this, the stream is cancelled and the rest never read.
const DRAIN: usize = 1024 * 1024;

/// Reads the request body, at most `max` bytes. A declared `Content-Length` over the
/// limit is refused before reading; a chunked body is refused once it passes the
/// limit: what follows is dropped as it arrives, up to [`DRAIN`] more bytes, then the
/// stream is cancelled. Memory never holds more than `max` bytes of it.
pub async fn read_body(req: &Request, max: usize) -> Result<Vec<u8>, BodyError> {
    let declared = req
        .headers()
        .get("Content-Length")
        .ok()
        .flatten()
        .and_then(|l| l.trim().parse::<u64>().ok());
    if declared.is_some_and(|len| len > max as u64) {
        return Err(BodyError::TooLarge);
    }
    let Some(stream) = req.inner().body() else {
        return Ok(Vec::new());
    };
    let reader: web_sys::ReadableStreamDefaultReader = stream
        .get_reader()
        .dyn_into()
        .map_err(|_| BodyError::Unreadable("not a byte stream".into()))?;
    let mut body = Vec::new();
    let mut seen: usize = 0;
    loop {
        let chunk = JsFuture::from(reader.read())
            .await
            .map_err(|e| BodyError::Unreadable(format!("{e:?}")))?;
        let done = js_sys::Reflect::get(&chunk, &"done".into())
            .ok()
            .and_then(|d| d.as_bool())
            .unwrap_or(true);
        if done {
            return if seen > max {
                Err(BodyError::TooLarge)
            } else {
                Ok(body)
            };
        }
        let Ok(value) = js_sys::Reflect::get(&chunk, &"value".into()) else {
            return Ok(body);
        };
        let bytes = js_sys::Uint8Array::new(&value);
        let len = bytes.length() as usize;
        seen = seen.saturating_add(len);
        if seen > max {
            // Over the limit: dropped as it arrives, then not read at all.
            body = Vec::new();
            if seen > max.saturating_add(DRAIN) {
                let _ = reader.cancel();
                return Err(BodyError::TooLarge);
            }
            continue;
        }
        let start = body.len();
        body.resize(start + len, 0);
        if let Some(room) = body.get_mut(start..) {
            bytes.copy_to(room);
        }
    }
}

/// A response's whole body in one native read (`arrayBuffer()` of its stream), for a
/// body whose length is known to be small: `worker::Response::bytes` reads the stream
/// chunk by chunk instead, a promise and a copy through the glue for each.
pub async fn whole_body(response: &worker::Response) -> Result<Vec<u8>, String> {
    let stream = match response.body() {
        worker::ResponseBody::Empty => return Ok(Vec::new()),
        worker::ResponseBody::Body(bytes) => return Ok(bytes.clone()),
        worker::ResponseBody::Stream(stream) => stream,
    };
    let reading = web_sys::Response::new_with_opt_readable_stream(Some(stream))
        .and_then(|r| r.array_buffer())
        .map_err(|e| format!("{e:?}"))?;
    let buffer = JsFuture::from(reading)
        .await
        .map_err(|e| format!("{e:?}"))?;
    Ok(js_sys::Uint8Array::new(&buffer).to_vec())
}
