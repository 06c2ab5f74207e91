#include "memgate/base/units.h"

#include <gtest/gtest.h>

namespace memgate {
namespace {

using std::chrono::milliseconds;

TEST(ParseSize, AcceptsEveryDocumentedForm) {
  EXPECT_EQ(*parse_size("1610612736"), SizeSpec::Bytes(1610612736));
  EXPECT_EQ(*parse_size("1536MB"), SizeSpec::Bytes(1610612736));
  EXPECT_EQ(*parse_size("1.5GB"), SizeSpec::Bytes(1610612736));
  EXPECT_EQ(*parse_size("1.5 GiB"), SizeSpec::Bytes(1610612736));
  EXPECT_EQ(*parse_size("512KB"), SizeSpec::Bytes(512 * 1024));
  EXPECT_EQ(*parse_size("4096mb"), SizeSpec::Bytes(4096ull << 20));
  EXPECT_EQ(*parse_size("2G"), SizeSpec::Bytes(2ull << 30));
  EXPECT_EQ(*parse_size("0"), SizeSpec::Bytes(0));
}

TEST(ParseSize, AcceptsAShareOfTheLimit) {
  auto r = parse_size("75%");
  ASSERT_TRUE(r.ok());
  EXPECT_TRUE(r->is_share);
  EXPECT_DOUBLE_EQ(r->share, 0.75);
  EXPECT_EQ(r->resolve(4ull << 30), 3ull << 30);
  EXPECT_EQ(parse_size("100%")->resolve(1000), 1000u);
}

TEST(ParseSize, RejectsWhatItCannotRead) {
  for (const char* bad : {"", "GB", "-1GB", "1.5.2GB", "1.5XB", "0%", "101%", "abc", "1e3", "1.5", ".5GB",
                          "99999999999TB"}) {
    EXPECT_FALSE(parse_size(bad).ok()) << "accepted '" << bad << "'";
  }
}

TEST(ParseSize, PrintsAFormItParsesBack) {
  for (const char* text : {"1.5GB", "4GB", "512KB", "75%", "1536MB", "1000"}) {
    auto r = parse_size(text);
    ASSERT_TRUE(r.ok()) << text;
    auto back = parse_size(r->to_string());
    ASSERT_TRUE(back.ok()) << r->to_string();
    EXPECT_EQ(*back, *r) << text << " -> " << r->to_string();
  }
}

TEST(ParseDuration, AcceptsEveryDocumentedForm) {
  EXPECT_EQ(*parse_duration("15s"), milliseconds(15'000));
  EXPECT_EQ(*parse_duration("5m"), milliseconds(300'000));
  EXPECT_EQ(*parse_duration("250ms"), milliseconds(250));
  EXPECT_EQ(*parse_duration("1h"), milliseconds(3'600'000));
  EXPECT_EQ(*parse_duration("1.5s"), milliseconds(1'500));
  EXPECT_EQ(*parse_duration("0"), milliseconds(0));
  EXPECT_EQ(*parse_duration("0s"), milliseconds(0));
}

TEST(ParseDuration, RejectsBareNumbersAndUnknownUnits) {
  for (const char* bad : {"30", "", "s", "5d", "-1s", "0.1ms", "1..2s", "ms5"}) {
    EXPECT_FALSE(parse_duration(bad).ok()) << "accepted '" << bad << "'";
  }
}

TEST(ParseBool, AcceptsTheUsualSpellings) {
  for (const char* t : {"true", "TRUE", "1", "yes", "on"}) EXPECT_TRUE(*parse_bool(t)) << t;
  for (const char* f : {"false", "0", "no", "Off"}) EXPECT_FALSE(*parse_bool(f)) << f;
  EXPECT_FALSE(parse_bool("maybe").ok());
  EXPECT_FALSE(parse_bool("").ok());
}

TEST(ParseInt, ChecksItsRange) {
  EXPECT_EQ(*parse_int("8080", 0, 65535), 8080);
  EXPECT_FALSE(parse_int("65536", 0, 65535).ok());
  EXPECT_FALSE(parse_int("80a", 0, 65535).ok());
  EXPECT_FALSE(parse_int("", 0, 65535).ok());
}

TEST(Format, BytesAndDurationsReadWell) {
  EXPECT_EQ(format_bytes(512), "512 B");
  EXPECT_EQ(format_bytes(1536ull << 20), "1.5 GiB");
  EXPECT_EQ(format_duration(milliseconds(300'000)), "5m");
  EXPECT_EQ(format_duration(milliseconds(250)), "250ms");
}

}  // namespace
}  // namespace memgate
