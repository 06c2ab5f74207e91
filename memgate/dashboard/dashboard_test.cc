#include "memgate/dashboard/dashboard.h"

#include <gtest/gtest.h>

#include <regex>
#include <string>

#include "memgate/dashboard/assets.h"

namespace memgate::dashboard {
namespace {

std::string header_of(const http::Response& r, std::string_view name) {
  for (auto& [k, v] : r.headers)
    if (k == name) return v;
  return "";
}

TEST(Dashboard, ThePageIsServedAtTheRootAndAtDashboardWithItsPolicy) {
  for (std::string_view path : {"/", "/dashboard", "/dashboard/"}) {
    http::Response r = respond(path, "");
    EXPECT_EQ(r.status, 200) << path;
    EXPECT_EQ(r.content_type, "text/html; charset=utf-8") << path;
    EXPECT_NE(r.body.find("<html"), std::string::npos) << path;
    EXPECT_EQ(header_of(r, "Cache-Control"), "no-cache");
    EXPECT_NE(header_of(r, "Content-Security-Policy").find("connect-src 'self'"), std::string::npos);
    EXPECT_EQ(header_of(r, "X-Content-Type-Options"), "nosniff");
  }
}

TEST(Dashboard, AMatchingETagIsAnswered304WithoutABody) {
  http::Response first = respond("/dashboard", "");
  std::string etag = header_of(first, "ETag");
  ASSERT_EQ(etag.size(), 18u) << etag;  // 16 hex digits, quoted
  http::Response again = respond("/dashboard", etag);
  EXPECT_EQ(again.status, 304);
  EXPECT_TRUE(again.body.empty());
  EXPECT_EQ(respond("/dashboard", "\"other\", " + etag).status, 304) << "one of a list";
  EXPECT_EQ(respond("/dashboard", "W/" + etag).status, 304) << "a weak comparison matches too";
  EXPECT_EQ(respond("/dashboard", "\"0000000000000000\"").status, 200);
}

TEST(Dashboard, AnUnknownFileIs404) {
  EXPECT_EQ(respond("/dashboard/assets/nope.js", "").status, 404);
  EXPECT_EQ(respond("/dashboard/../etc/passwd", "").status, 404);
}

TEST(Dashboard, EveryFileThePageNamesIsInTheBundleWithItsContentTypeAndKeptLong) {
  std::string page(find_asset("/dashboard/index.html")->body);
  std::regex ref(R"re((?:src|href)="(/dashboard/[^"]+)")re");
  int named = 0;
  for (auto it = std::sregex_iterator(page.begin(), page.end(), ref); it != std::sregex_iterator(); ++it) {
    std::string path = (*it)[1];
    ++named;
    const Asset* a = find_asset(path);
    ASSERT_NE(a, nullptr) << path << " is named by the page but not embedded";
    http::Response r = respond(path, "");
    EXPECT_EQ(r.status, 200);
    EXPECT_EQ(r.body.size(), a->body.size());
    if (path.ends_with(".js")) {
      EXPECT_EQ(r.content_type, "text/javascript; charset=utf-8");
    }
    if (path.ends_with(".css")) {
      EXPECT_EQ(r.content_type, "text/css; charset=utf-8");
    }
    if (path.starts_with("/dashboard/assets/")) {
      EXPECT_EQ(header_of(r, "Cache-Control"), "public, max-age=31536000, immutable");
    }
  }
  // The Vite build names its script and style; the fallback page names none.
  if (bundle_built()) {
    EXPECT_GE(named, 2) << page;
  } else {
    EXPECT_EQ(assets().size(), 1u);
  }
}

}  // namespace
}  // namespace memgate::dashboard
