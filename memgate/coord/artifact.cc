#include "memgate/coord/artifact.h"

#include <openssl/evp.h>

#include <boost/json.hpp>
#include <random>

#include "memgate/coord/lease.h"

namespace memgate::coord {

namespace json = boost::json;

std::string random_token() {
  thread_local std::mt19937_64 rng([] {
    std::random_device rd;
    std::seed_seq seq{rd(), rd(), rd(), rd()};
    return std::mt19937_64(seq);
  }());
  static const char* hex = "0123456789abcdef";
  std::string out;
  out.reserve(32);
  for (int w = 0; w < 2; ++w) {
    uint64_t v = rng();
    for (int i = 0; i < 16; ++i) {
      out.push_back(hex[v & 15]);
      v >>= 4;
    }
  }
  return out;
}

std::string sha256_hex(std::string_view bytes) {
  unsigned char digest[EVP_MAX_MD_SIZE];
  unsigned int len = 0;
  EVP_Digest(bytes.data(), bytes.size(), digest, &len, EVP_sha256(), nullptr);
  static const char* hex = "0123456789abcdef";
  std::string out;
  for (unsigned i = 0; i < len; ++i) {
    out.push_back(hex[digest[i] >> 4]);
    out.push_back(hex[digest[i] & 15]);
  }
  return out;
}

std::string ArtifactMeta::to_json() const {
  json::object o;
  o["format"] = format;
  o["version"] = version;
  o["fence"] = fence;
  o["size"] = size;
  o["chunks"] = chunks;
  o["sha256"] = sha256;
  return json::serialize(o);
}

Result<ArtifactMeta> ArtifactMeta::from_json(std::string_view text) {
  boost::system::error_code ec;
  json::value v = json::parse(text, ec);
  if (ec || !v.is_object()) return InvalidArgument("artifact meta is not a JSON object");
  const auto& o = v.as_object();
  ArtifactMeta m;
  try {
    m.format = static_cast<int>(o.at("format").to_number<int64_t>());
    m.version = std::string(o.at("version").as_string());
    m.fence = o.at("fence").to_number<int64_t>();
    m.size = o.at("size").to_number<uint64_t>();
    m.chunks = o.at("chunks").to_number<uint64_t>();
    m.sha256 = std::string(o.at("sha256").as_string());
  } catch (const std::exception& e) {
    return InvalidArgument(std::string("artifact meta is incomplete: ") + e.what());
  }
  return m;
}

ArtifactMeta describe_artifact(std::string_view bytes, const std::string& version, int64_t fence,
                               size_t chunk_size) {
  ArtifactMeta m;
  m.version = version;
  m.fence = fence;
  m.size = bytes.size();
  if (chunk_size == 0) chunk_size = bytes.size() + 1;
  m.chunks = bytes.empty() ? 1 : (bytes.size() + chunk_size - 1) / chunk_size;
  m.sha256 = sha256_hex(bytes);
  return m;
}

std::string check_artifact(const ArtifactMeta& meta, std::string_view bytes, const std::string& version) {
  if (meta.format != kArtifactFormat) {
    return "format " + std::to_string(meta.format) + " (this build reads " + std::to_string(kArtifactFormat) + ")";
  }
  if (meta.version != version) return "version '" + meta.version + "', wanted '" + version + "'";
  if (bytes.size() != meta.size) {
    return "size " + std::to_string(bytes.size()) + ", meta says " + std::to_string(meta.size);
  }
  if (sha256_hex(bytes) != meta.sha256) return "checksum mismatch";
  return "";
}

}  // namespace memgate::coord
