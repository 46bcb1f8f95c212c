//! The page and its scripts, embedded in the binary: no Node, no CDN, nothing fetched at run
//! time. uPlot (MIT, `uplot@1.6.32` from npm) is kept with its licence in `cli/assets/uplot/`.

/// An embedded file: its URL path, content type and bytes.
pub struct Asset {
    pub path: &'static str,
    pub content_type: &'static str,
    pub body: &'static [u8],
}

/// A script of the page: an ES module under `/js/`.
macro_rules! script {
    ($name:literal) => {
        Asset {
            path: concat!("/js/", $name),
            content_type: "text/javascript; charset=utf-8",
            body: include_bytes!(concat!("../../assets/js/", $name)),
        }
    };
}

pub const ASSETS: [Asset; 11] = [
    Asset { path: "/", content_type: "text/html; charset=utf-8", body: include_bytes!("../../assets/index.html") },
    Asset { path: "/app.css", content_type: "text/css; charset=utf-8", body: include_bytes!("../../assets/app.css") },
    script!("app.js"),
    script!("common.js"),
    script!("table.js"),
    script!("series.js"),
    script!("charts.js"),
    script!("system.js"),
    Asset {
        path: "/uPlot.iife.min.js",
        content_type: "text/javascript; charset=utf-8",
        body: include_bytes!("../../assets/uplot/uPlot.iife.min.js"),
    },
    Asset {
        path: "/uPlot.min.css",
        content_type: "text/css; charset=utf-8",
        body: include_bytes!("../../assets/uplot/uPlot.min.css"),
    },
    Asset {
        path: "/LICENSE-uPlot.txt",
        content_type: "text/plain; charset=utf-8",
        body: include_bytes!("../../assets/uplot/LICENSE"),
    },
];

/// The asset at `path`, if any.
pub fn find(path: &str) -> Option<&'static Asset> {
    let path = if path == "/index.html" { "/" } else { path };
    ASSETS.iter().find(|asset| asset.path == path)
}
