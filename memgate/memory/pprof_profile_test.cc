#include "memgate/memory/pprof_profile.h"

#include <gtest/gtest.h>

#include <cstdint>
#include <limits>
#include <string>

#include "memgate/memory/gzip.h"
#include "memgate/memory/pprof_decode_testing.h"
#include "memgate/memory/proto_wire.h"

namespace memgate::memory {
namespace {

using testing::decode_profile;
using testing::read_fields;
using testing::read_packed;

TEST(ProtoWriter, VarintsRoundTripAtTheEdgesOfTheirSizes) {
  const uint64_t values[] = {0, 1, 127, 128, 16383, 16384, uint64_t{1} << 63, std::numeric_limits<uint64_t>::max()};
  const size_t sizes[] = {1, 1, 1, 2, 2, 3, 10, 10};
  ProtoWriter w;
  for (uint64_t v : values) w.varint(1, v);
  w.int64(2, -1);  // int64 is two's complement: ten bytes
  auto fields = read_fields(w.data());
  ASSERT_TRUE(fields);
  ASSERT_EQ(fields->size(), 9u);
  size_t expected_bytes = 0;
  for (size_t i = 0; i < 8; ++i) {
    EXPECT_EQ((*fields)[i].number, 1u);
    EXPECT_EQ((*fields)[i].wire_type, 0u);
    EXPECT_EQ((*fields)[i].varint, values[i]);
    EXPECT_EQ(ProtoWriter::varint_size(values[i]), sizes[i]) << values[i];
    expected_bytes += 1 + sizes[i];  // a one-byte key
  }
  EXPECT_EQ(static_cast<int64_t>((*fields)[8].varint), -1);
  expected_bytes += 1 + 10;
  EXPECT_EQ(w.data().size(), expected_bytes);
}

TEST(ProtoWriter, PackedFieldsCarryTheirTotalLengthAndEmptyOnesAreLeftOut) {
  ProtoWriter w;
  const uint64_t none[] = {0};
  w.packed(1, std::span<const uint64_t>(none, 0));
  EXPECT_TRUE(w.data().empty());
  const uint64_t values[] = {1, 300, 0};
  w.packed(3, values);
  // key (3 << 3 | 2), length 4 (1 + 2 + 1), then 01, ac 02, 00.
  EXPECT_EQ(w.data(), std::string("\x1a\x04\x01\xac\x02\x00", 6));
}

TEST(PprofProfile, AnEmptyProfileIsOnlyTheStringTablesEmptyFirstEntry) {
  // string_table[0] must be "" even when nothing refers to a string.
  EXPECT_EQ(encode_pprof(PprofProfile{}), std::string("\x32\x00", 2));
}

TEST(PprofProfile, AHeapProfileDecodesBackFieldByField) {
  PprofProfile p;
  p.sample_types = {{"inuse_objects", "count"}, {"inuse_space", "bytes"}};
  p.default_sample_type = "inuse_space";
  p.period_type = {"space", "bytes"};
  p.period = 524288;
  p.time_nanos = 1'700'000'000'123'456'789;
  p.comments = {"a comment"};
  p.mappings = {{0x555500001000, 0x555500200000, 0x1000, "/usr/bin/memgate", "0a1b2c", true},
                {0x7f0000010000, 0x7f0000090000, 0x10000, "/lib/libjemalloc.so.2", "", false}};
  p.locations = {{1, 0x555500001234, 1}, {2, 0x7f0000010042, 0}, {0, 0x42, 0}};
  p.functions = {{"ns::f(int)", "_ZN2ns1fEi"}};
  p.samples = {{{1, 2}, {3, 3 << 20}, {{"bytes", 1 << 20, "bytes"}}}, {{3}, {0, -5}, {}}};

  auto d = decode_profile(encode_pprof(p));
  ASSERT_TRUE(d);
  ASSERT_FALSE(d->strings.empty());
  EXPECT_EQ(d->strings[0], "");
  ASSERT_EQ(d->sample_types.size(), 2u);
  EXPECT_EQ(d->sample_types[0], std::make_pair(std::string("inuse_objects"), std::string("count")));
  EXPECT_EQ(d->sample_types[1], std::make_pair(std::string("inuse_space"), std::string("bytes")));
  EXPECT_EQ(d->default_sample_type, "inuse_space");
  EXPECT_EQ(d->period_type, std::make_pair(std::string("space"), std::string("bytes")));
  EXPECT_EQ(d->period, 524288);
  EXPECT_EQ(d->time_nanos, p.time_nanos);
  EXPECT_EQ(d->comments, std::vector<std::string>{"a comment"});

  ASSERT_EQ(d->mappings.size(), 2u);
  EXPECT_EQ(d->mappings[0].id, 1u);
  EXPECT_EQ(d->mappings[0].start, 0x555500001000u);
  EXPECT_EQ(d->mappings[0].limit, 0x555500200000u);
  EXPECT_EQ(d->mappings[0].offset, 0x1000u);
  EXPECT_EQ(d->mappings[0].filename, "/usr/bin/memgate");
  EXPECT_EQ(d->mappings[0].build_id, "0a1b2c");
  EXPECT_TRUE(d->mappings[0].has_functions);
  EXPECT_EQ(d->mappings[1].id, 2u);
  EXPECT_EQ(d->mappings[1].build_id, "");
  EXPECT_FALSE(d->mappings[1].has_functions);

  ASSERT_EQ(d->functions.size(), 1u);
  EXPECT_EQ(d->functions[0].id, 1u);
  EXPECT_EQ(d->functions[0].name, "ns::f(int)");
  EXPECT_EQ(d->functions[0].system_name, "_ZN2ns1fEi");

  ASSERT_EQ(d->locations.size(), 3u);
  EXPECT_EQ(d->locations[0].id, 1u);
  EXPECT_EQ(d->locations[0].mapping_id, 1u);
  EXPECT_EQ(d->locations[0].address, 0x555500001234u);
  EXPECT_EQ(d->locations[0].function_ids, std::vector<uint64_t>{1}) << "one line record naming the function";
  EXPECT_TRUE(d->locations[1].function_ids.empty()) << "an unnamed location has no line record";
  EXPECT_EQ(d->locations[2].id, 3u);
  EXPECT_EQ(d->locations[2].mapping_id, 0u) << "an address in no mapping leaves the field unset";

  ASSERT_EQ(d->samples.size(), 2u);
  EXPECT_EQ(d->samples[0].location_ids, (std::vector<uint64_t>{1, 2}));
  EXPECT_EQ(d->samples[0].values, (std::vector<int64_t>{3, 3 << 20}));
  EXPECT_EQ(d->samples[0].num_labels.at("bytes"), 1 << 20);
  EXPECT_EQ(d->samples[1].values, (std::vector<int64_t>{0, -5})) << "packed values keep a zero and a negative";
}

TEST(PprofProfile, EachStringIsInTheTableOnce) {
  PprofProfile p;
  p.sample_types = {{"inuse_space", "bytes"}};
  p.period_type = {"space", "bytes"};
  p.default_sample_type = "inuse_space";
  auto d = decode_profile(encode_pprof(p));
  ASSERT_TRUE(d);
  EXPECT_EQ(d->strings, (std::vector<std::string>{"", "inuse_space", "bytes", "space"}));
}

TEST(Gzip, CompressesToOneGzipMemberThatInflatesBack) {
  std::string data;
  for (int i = 0; i < 10000; ++i) data += "sample " + std::to_string(i % 97) + "\n";
  auto gz = gzip_compress(data);
  ASSERT_TRUE(gz.ok());
  ASSERT_GE(gz->size(), 18u);
  EXPECT_EQ(static_cast<unsigned char>((*gz)[0]), 0x1f);
  EXPECT_EQ(static_cast<unsigned char>((*gz)[1]), 0x8b);
  EXPECT_LT(gz->size(), data.size() / 4);
  EXPECT_EQ(testing::gunzip(*gz), data);
  auto empty = gzip_compress("");
  ASSERT_TRUE(empty.ok());
  EXPECT_EQ(testing::gunzip(*empty), "");
}

}  // namespace
}  // namespace memgate::memory
