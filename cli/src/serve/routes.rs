//! Which handler answers which request. Every endpoint reads; anything but GET and HEAD is
//! refused.
//!
//! | path | answer |
//! |---|---|
//! | `/`, `/app.css`, `/js/*.js`, `/uPlot.*`, `/LICENSE-uPlot.txt` | the embedded page |
//! | `/api/runs?q=&state=&sort=&desc=&offset=&limit=` | one page of the runs table |
//! | `/api/runs/{id}` | a run's detail: attempts, branches, metrics |
//! | `/api/runs/{id}/series?metric=&width=&from=&to=&branches=` | chart data |
//! | `/api/runs/{id}/system?metric=&width=` | a system metric's samples against time |
//! | `/api/live?ids=a,b` | the status of the runs on the page |

use std::sync::Mutex;

use runstore::Store;

use super::api;
use super::assets;
use super::catalog::{self, Catalog, Query};
use super::http::{self, Reply, Request};
use super::summary::Summaries;

/// Rows of the runs table per page at most.
const MAX_PAGE: usize = 1000;

/// What every request handler shares.
pub struct Viewer {
    pub store: Store,
    pub catalog: Mutex<Catalog>,
    pub summaries: Summaries,
}

impl Viewer {
    pub fn new(store: Store) -> Viewer {
        Viewer { store, catalog: Mutex::new(Catalog::default()), summaries: Summaries::default() }
    }

    /// The reply to `request`.
    pub fn handle(&self, request: &Request) -> Reply {
        if request.method != "GET" && request.method != "HEAD" {
            return Reply::error(405, "the viewer only reads: use GET");
        }
        if let Some(asset) = assets::find(request.path) {
            return Reply::asset(asset.content_type, asset.body);
        }
        let segments: Vec<String> = match request.path.strip_prefix("/api/") {
            Some(rest) => rest.split('/').map(http::decode).collect(),
            None => return Reply::error(404, "no such page"),
        };
        match segments.iter().map(String::as_str).collect::<Vec<_>>().as_slice() {
            ["runs"] => self.runs(request),
            ["runs", id] => api::detail(&self.store, id),
            ["runs", id, "series"] => api::series(&self.store, &self.summaries, id, request),
            ["runs", id, "system"] => api::system(&self.store, id, request),
            ["live"] => api::live(&self.store, request),
            _ => Reply::error(404, "no such endpoint"),
        }
    }

    /// `GET /api/runs`.
    fn runs(&self, request: &Request) -> Reply {
        let number = |key: &str, default: usize| request.param(key).map_or(Ok(default), str::parse::<usize>);
        let (Ok(offset), Ok(limit)) = (number("offset", 0), number("limit", 100)) else {
            return Reply::error(400, "offset and limit must be whole numbers");
        };
        let query = Query {
            text: request.param("q").map(str::to_string),
            state: request.param("state").map(str::to_string),
            sort: request.param("sort").unwrap_or("updated").to_string(),
            descending: request.param("desc").map_or(request.param("sort").is_none(), |desc| desc == "1"),
            offset,
            limit: limit.min(MAX_PAGE),
        };
        let rows = {
            // A request that panicked holding the cache left whole entries only: go on with it.
            let mut catalog = self.catalog.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
            match catalog.rows(&self.store) {
                Ok(rows) => rows,
                Err(error) => return api::error_reply(&error),
            }
        };
        Reply::json(&catalog::page(&rows, &query))
    }
}
