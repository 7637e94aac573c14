//! The web console: hand-written HTML, CSS and JavaScript under `crates/riffle-server/console/`,
//! embedded in the binary with `include_bytes!` and served at `GET /console/` on the API port
//! (`--no-console` turns it off: those paths then answer 404).
//!
//! The files are static. The page is a client like any other: it calls the public Kinesis JSON
//! API (`POST /` with `X-Amz-Target`), SigV4-signing in the browser when the server has
//! `--credentials`, so it obeys the same authentication, account scoping, policies and limits
//! as the SDKs. Nothing here reaches the API: a `GET` or `HEAD` under `/console` is answered
//! from the embedded files before the body is read or the target looked at, and other methods
//! under `/console` get 405.
//!
//! Every file goes out with its `Content-Type`, `X-Content-Type-Options: nosniff`, a strict
//! `Content-Security-Policy` (scripts, styles and connections to this origin only; no inline
//! script or style, no frames, no form posts), `Referrer-Policy: no-referrer`, and
//! `Cache-Control: no-cache` with an `ETag` (the MD5 of the file), so a browser revalidates
//! with `If-None-Match` and gets 304 until a new binary serves new files.

use std::sync::OnceLock;

use bytes::Bytes;
use http::{header, HeaderValue, Method, Request, Response, StatusCode};
use http_body_util::{BodyExt, Full};
use md5::{Digest, Md5};

use crate::http::ResponseBody;

/// Where the console lives; `/console` alone redirects here.
pub const PREFIX: &str = "/console/";

/// What the page may load and talk to: only this origin, no inline code, no framing.
const CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; \
     connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'";

/// One embedded file: its name under [`PREFIX`] (`""` is the page itself), type and bytes.
struct Asset {
    name: &'static str,
    content_type: &'static str,
    bytes: &'static [u8],
}

const ASSETS: &[Asset] = &[
    Asset {
        name: "",
        content_type: "text/html; charset=utf-8",
        bytes: include_bytes!("../console/index.html"),
    },
    Asset {
        name: "console.css",
        content_type: "text/css; charset=utf-8",
        bytes: include_bytes!("../console/console.css"),
    },
    Asset {
        name: "app.js",
        content_type: "text/javascript; charset=utf-8",
        bytes: include_bytes!("../console/app.js"),
    },
    Asset {
        name: "api.js",
        content_type: "text/javascript; charset=utf-8",
        bytes: include_bytes!("../console/api.js"),
    },
    Asset {
        name: "records.js",
        content_type: "text/javascript; charset=utf-8",
        bytes: include_bytes!("../console/records.js"),
    },
    Asset {
        name: "charts.js",
        content_type: "text/javascript; charset=utf-8",
        bytes: include_bytes!("../console/charts.js"),
    },
    Asset {
        name: "favicon.svg",
        content_type: "image/svg+xml",
        bytes: include_bytes!("../console/favicon.svg"),
    },
];

/// Each asset's `ETag`, computed once.
fn etags() -> &'static [String] {
    static ETAGS: OnceLock<Vec<String>> = OnceLock::new();
    ETAGS.get_or_init(|| {
        ASSETS
            .iter()
            .map(|asset| {
                let digest = Md5::digest(asset.bytes);
                let hex: String = digest.iter().map(|byte| format!("{byte:02x}")).collect();
                format!("\"{hex}\"")
            })
            .collect()
    })
}

/// Whether `path` is the console's (`/console` or anything under `/console/`).
fn is_console_path(path: &str) -> bool {
    path == "/console" || path.starts_with(PREFIX)
}

/// The console's answer to `request`, or `None` when the request is not the console's (and
/// goes on to the API). With the console off, `GET`/`HEAD` of its paths get 404.
pub fn answer<B>(enabled: bool, request: &Request<B>) -> Option<Response<ResponseBody>> {
    let path = request.uri().path();
    if !is_console_path(path) {
        return None;
    }
    let method = request.method();
    let reading = method == Method::GET || method == Method::HEAD;
    if !enabled {
        return reading.then(|| plain(StatusCode::NOT_FOUND, "Not Found\n"));
    }
    if !reading {
        let mut response = plain(StatusCode::METHOD_NOT_ALLOWED, "Method Not Allowed\n");
        response
            .headers_mut()
            .insert(header::ALLOW, HeaderValue::from_static("GET, HEAD"));
        return Some(response);
    }
    let Some(name) = path.strip_prefix(PREFIX) else {
        // `/console` without the slash: the page's relative links need it.
        let mut response = plain(StatusCode::PERMANENT_REDIRECT, "");
        response
            .headers_mut()
            .insert(header::LOCATION, HeaderValue::from_static(PREFIX));
        return Some(response);
    };
    let Some(index) = ASSETS.iter().position(|asset| asset.name == name) else {
        return Some(plain(StatusCode::NOT_FOUND, "Not Found\n"));
    };
    let asset = &ASSETS[index];
    let etag = &etags()[index];
    let fresh = request
        .headers()
        .get_all(header::IF_NONE_MATCH)
        .iter()
        .filter_map(|value| value.to_str().ok())
        .flat_map(|list| list.split(','))
        .any(|tag| {
            let tag = tag.trim();
            tag == "*" || tag.strip_prefix("W/").unwrap_or(tag) == etag
        });
    let (status, body) = if fresh {
        (StatusCode::NOT_MODIFIED, Bytes::new())
    } else if method == Method::HEAD {
        (StatusCode::OK, Bytes::new())
    } else {
        (StatusCode::OK, Bytes::from_static(asset.bytes))
    };
    let mut response = Response::new(full(body));
    *response.status_mut() = status;
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static(asset.content_type),
    );
    if method == Method::HEAD && !fresh {
        headers.insert(header::CONTENT_LENGTH, HeaderValue::from(asset.bytes.len()));
    }
    if let Ok(value) = HeaderValue::from_str(etag) {
        headers.insert(header::ETAG, value);
    }
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    security_headers(headers);
    Some(response)
}

/// The headers every console answer carries.
fn security_headers(headers: &mut http::HeaderMap) {
    headers.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(CSP),
    );
    headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    headers.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    headers.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
}

fn full(bytes: Bytes) -> ResponseBody {
    Full::new(bytes).map_err(|never| match never {}).boxed()
}

fn plain(status: StatusCode, text: &'static str) -> Response<ResponseBody> {
    let mut response = Response::new(full(Bytes::from_static(text.as_bytes())));
    *response.status_mut() = status;
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    security_headers(headers);
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    fn get(path: &str, method: Method) -> Request<()> {
        Request::builder()
            .method(method)
            .uri(path)
            .body(())
            .expect("a valid request")
    }

    #[test]
    fn only_console_paths_are_taken() {
        for path in ["/", "/consoles", "/metrics", "/x/console/"] {
            assert!(answer(true, &get(path, Method::GET)).is_none(), "{path}");
            assert!(answer(false, &get(path, Method::GET)).is_none(), "{path}");
        }
        // With the console off, POSTs under /console go on as before (to the API).
        assert!(answer(false, &get("/console/", Method::POST)).is_none());
    }

    #[test]
    fn every_asset_is_linked_from_the_page_or_a_module() {
        // A file embedded but never referenced is dead weight; one referenced but not
        // embedded would 404. Every reference in the page and the modules names an asset.
        let text: String = ASSETS
            .iter()
            .map(|asset| String::from_utf8_lossy(asset.bytes).into_owned())
            .collect();
        for asset in ASSETS.iter().filter(|asset| !asset.name.is_empty()) {
            assert!(
                text.contains(&format!("./{}", asset.name)),
                "{} is not referenced",
                asset.name
            );
        }
    }

    #[test]
    fn etags_match_and_give_304() {
        let first = answer(true, &get("/console/app.js", Method::GET)).expect("served");
        assert_eq!(first.status(), StatusCode::OK);
        let etag = first.headers()[header::ETAG].clone();
        let request = Request::builder()
            .uri("/console/app.js")
            .header(header::IF_NONE_MATCH, etag)
            .body(())
            .expect("a valid request");
        let again = answer(true, &request).expect("served");
        assert_eq!(again.status(), StatusCode::NOT_MODIFIED);
    }
}
