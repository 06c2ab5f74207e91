// The operator's page on the admin listener: GET /, /dashboard and the bundle's
// files under /dashboard/.
//
// The files are the embedded bundle (assets.h): the same bytes for everyone,
// holding no figure of this instance. The page fetches everything it shows
// from the admin JSON routes (/debug/memory, /debug/memory/history,
// /debug/memory/routes, /debug/coord) and /startupz, sending the ADMIN_TOKEN
// it was opened with (/dashboard#token=...: a fragment never reaches a server,
// so never a log) as a bearer token. So the files themselves need no token,
// like /healthz; the data keeps the listener's rules.
//
// Every answer has a strong ETag (If-None-Match gives 304); the page itself is
// revalidated on each load, the content-hashed files under assets/ are kept a
// year. The page's Content-Security-Policy allows only this origin: no inline
// script, no outside network.
//
// Thread-safety: add_routes() as the Router is; the handlers are stateless.
#pragma once

#include "memgate/http/router.h"

namespace memgate::dashboard {

// Registers GET "/", "/dashboard" and the prefix "/dashboard/*" on `router`.
void add_routes(http::Router& router);

// The answer for one path (what the routes do), for tests.
http::Response respond(std::string_view path, std::string_view if_none_match);

}  // namespace memgate::dashboard
