#include "memgate/base/json_escape.h"

#include <gtest/gtest.h>

#include <boost/json/parse.hpp>

namespace memgate {
namespace {

TEST(JsonEscape, QuotesBackslashesAndControlCharactersAreEscaped) {
  EXPECT_EQ(json_escape(R"(say "hi" \ bye)"), R"(say \"hi\" \\ bye)");
  EXPECT_EQ(json_escape("a\nb\rc\td"), R"(a\nb\rc\td)");
  EXPECT_EQ(json_escape(std::string_view("\x01\x1f", 2)), R"(\u0001\u001f)");
  EXPECT_EQ(json_escape(std::string_view("\0", 1)), R"(\u0000)");
}

TEST(JsonEscape, Utf8AndPlainTextPassUnchanged) {
  EXPECT_EQ(json_escape("plain text — déjà vu"), "plain text — déjà vu");
  std::string out = "prefix:";
  append_json_escaped(out, "x\"y");
  EXPECT_EQ(out, R"(prefix:x\"y)");
}

TEST(JsonEscape, EveryByteRoundTripsThroughAJsonParser) {
  std::string all;
  for (int c = 1; c < 0x80; ++c) all += static_cast<char>(c);
  boost::system::error_code ec;
  auto v = boost::json::parse("\"" + json_escape(all) + "\"", ec);
  ASSERT_FALSE(ec) << ec.message();
  EXPECT_EQ(std::string(v.as_string().c_str()), all);
}

}  // namespace
}  // namespace memgate
