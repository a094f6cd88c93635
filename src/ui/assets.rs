//! The page's static files, embedded in the binary: no build step, no CDN, no web fonts.

pub const CSS: &str = include_str!("assets/app.css");
pub const JS: &str = include_str!("assets/app.js");
pub const FAVICON: &str = include_str!("assets/favicon.svg");
/// The favicon again, inline in the header.
pub const LOGO: &str = FAVICON;

/// The file served at `path`, with its content type.
pub fn lookup(path: &str) -> Option<(&'static str, &'static str)> {
    match path {
        "/assets/app.css" => Some(("text/css; charset=utf-8", CSS)),
        "/assets/app.js" => Some(("text/javascript; charset=utf-8", JS)),
        "/favicon.svg" | "/favicon.ico" => Some(("image/svg+xml", FAVICON)),
        _ => None,
    }
}
