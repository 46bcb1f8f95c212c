//! `runstore serve`: a local, read-only web viewer of the store: the runs table, metric charts
//! with runs overlaid, what resuming did (attempts, archived branches, forks), live updates.
//!
//! The server is `tiny_http` on a few threads: the viewer is a read-only loopback server with
//! a handful of clients, and every read is a blocking redb read, so an async runtime would add
//! build time and dependencies without making anything faster. One module per job: `http`
//! (requests, replies, the `Host` check), `routes`, `catalog` (the runs table), `api` (one
//! run's JSON), `summary` (whole curves kept between requests), `assets` (the embedded page).

mod api;
mod assets;
mod catalog;
mod http;
mod routes;
mod summary;

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;

use runstore::Store;

use crate::exit::Failure;
use crate::output;
use http::{HostCheck, Reply, Request};
use routes::Viewer;

/// Threads that answer requests: a page load fetches a few files and one series per chart.
const THREADS: usize = 4;

/// Serve a read-only web viewer: runs, charts, live updates.
#[derive(Debug, clap::Args)]
#[command(after_help = "\
Read-only: no request changes the store. Every file of the page is inside the
binary. Listens on 127.0.0.1 unless told otherwise; with --host 0.0.0.0 anyone
who can reach the machine can read the store. Requests naming another host
than the bound address or localhost are refused (DNS rebinding). --port 0
picks a free port; the first line printed gives the address.

Examples:
  runstore serve                      # http://127.0.0.1:6006/
  runstore --dir /scratch/runs serve --port 8080")]
pub struct Args {
    /// The port to listen on; 0 picks a free one.
    #[arg(long, default_value_t = 6006)]
    port: u16,
    /// The address to listen on.
    #[arg(long, default_value = "127.0.0.1")]
    host: IpAddr,
}

pub fn run(store: &Store, args: &Args) -> Result<(), Failure> {
    let requested = SocketAddr::new(args.host, args.port);
    let server = tiny_http::Server::http(requested)
        .map_err(|error| Failure::input(format!("cannot listen on {requested}: {error}")))?;
    let bound = server.server_addr().to_ip().unwrap_or(requested);
    if !bound.ip().is_loopback() {
        output::warn(&format!(
            "listening on {bound}: anyone who can reach this machine on port {} can read the store",
            bound.port()
        ));
    }
    output::stdout_line(&format!("serving {} at http://{bound}/ (Ctrl-C stops)", store.path().display()))?;
    let server = Arc::new(server);
    let viewer = Arc::new(Viewer::new(store.clone()));
    let hosts = Arc::new(HostCheck::new(bound));
    let workers: Vec<_> = (0..THREADS)
        .map(|n| {
            let (server, viewer, hosts) = (Arc::clone(&server), Arc::clone(&viewer), Arc::clone(&hosts));
            std::thread::Builder::new()
                .name(format!("serve-{n}"))
                .spawn(move || {
                    for request in server.incoming_requests() {
                        answer(&viewer, &hosts, request);
                    }
                })
                .map_err(|error| Failure::input(format!("cannot start a server thread: {error}")))
        })
        .collect::<Result<_, _>>()?;
    for worker in workers {
        let _ = worker.join();
    }
    Ok(())
}

/// Answers one request; a handler that panics costs its request a 500, not the thread.
fn answer(viewer: &Viewer, hosts: &HostCheck, request: tiny_http::Request) {
    let host = request.headers().iter().find(|header| header.field.equiv("Host")).map(|header| header.value.as_str());
    let started = std::time::Instant::now();
    let reply = if host.is_none_or(|host| !hosts.allows(host)) {
        Reply::error(403, "this server answers only to its own address or localhost (DNS rebinding protection)")
    } else {
        let method = request.method().as_str().to_string();
        let parsed = Request::new(&method, request.url());
        std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| viewer.handle(&parsed)))
            .unwrap_or_else(|_| Reply::error(500, "internal error, please report it"))
    };
    // The length is known: send it, rather than chunks past 32 KiB.
    let mut response =
        tiny_http::Response::from_data(reply.body).with_status_code(reply.status).with_chunked_threshold(usize::MAX);
    let cache = if reply.cacheable { "no-cache" } else { "no-store" };
    // The time spent answering, for the browser's developer tools and the benchmarks.
    let timing = format!("handler;dur={:.3}", started.elapsed().as_secs_f64() * 1000.0);
    let headers = [("Content-Type", reply.content_type), ("Cache-Control", cache), ("Server-Timing", timing.as_str())];
    for (field, value) in headers.into_iter().chain(http::SECURITY_HEADERS) {
        if let Ok(header) = tiny_http::Header::from_bytes(field.as_bytes(), value.as_bytes()) {
            response.add_header(header);
        }
    }
    // The client may have gone; nothing to do about it.
    let _ = request.respond(response);
}
