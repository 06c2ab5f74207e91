#include "memgate/coord/artifact.h"

#include <openssl/evp.h>
#include <openssl/rand.h>

#include <boost/json.hpp>
#include <algorithm>
#include <random>

#include "memgate/coord/lease.h"

namespace memgate::coord {

namespace json = boost::json;

std::string random_token() {
  // OpenSSL's CSPRNG: unpredictable to other holders, and reseeded after fork(),
  // so a forked child never repeats its parent's tokens.
  unsigned char bytes[16];
  if (RAND_bytes(bytes, sizeof bytes) != 1) {
    std::random_device rd;  // getrandom(2) on Linux; only if OpenSSL's generator fails
    for (unsigned char& b : bytes) b = static_cast<unsigned char>(rd());
  }
  static const char* hex = "0123456789abcdef";
  std::string out;
  out.reserve(32);
  for (unsigned char b : bytes) {
    out.push_back(hex[b >> 4]);
    out.push_back(hex[b & 15]);
  }
  return out;
}

std::string sha256_hex(std::string_view bytes) {
  Sha256 h;
  h.update(bytes);
  return h.hex();
}

namespace {
std::string to_hex(const unsigned char* digest, unsigned len) {
  static const char* hex = "0123456789abcdef";
  std::string out;
  for (unsigned i = 0; i < len; ++i) {
    out.push_back(hex[digest[i] >> 4]);
    out.push_back(hex[digest[i] & 15]);
  }
  return out;
}
}  // namespace

Sha256::Sha256() : ctx_(EVP_MD_CTX_new()) {
  EVP_DigestInit_ex(static_cast<EVP_MD_CTX*>(ctx_), EVP_sha256(), nullptr);
}

Sha256::~Sha256() { EVP_MD_CTX_free(static_cast<EVP_MD_CTX*>(ctx_)); }

void Sha256::update(std::string_view bytes) {
  EVP_DigestUpdate(static_cast<EVP_MD_CTX*>(ctx_), bytes.data(), bytes.size());
}

std::string Sha256::hex() {
  unsigned char digest[EVP_MAX_MD_SIZE];
  unsigned int len = 0;
  EVP_DigestFinal_ex(static_cast<EVP_MD_CTX*>(ctx_), digest, &len);
  return to_hex(digest, len);
}

std::string ArtifactMeta::to_json() const {
  json::object o;
  o["format"] = format;
  o["version"] = version;
  o["fence"] = fence;
  o["size"] = size;
  o["chunks"] = chunks;
  o["sha256"] = sha256;
  o["builder"] = builder;
  o["inputs"] = inputs;
  o["build_peak"] = build_peak;
  o["built_at_unix_ms"] = built_at_unix_ms;
  return json::serialize(o);
}

Result<ArtifactMeta> ArtifactMeta::from_json(std::string_view text, uint64_t max_size) {
  if (text.size() > kMaxMetaBytes) return InvalidArgument("artifact meta is longer than 64 KiB");
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
    auto text_field = [&](const char* key) -> std::string {
      const json::value* v = o.if_contains(key);
      return v && v->is_string() ? std::string(v->as_string().subview().substr(0, 256)) : std::string();
    };
    m.builder = text_field("builder");
    m.inputs = text_field("inputs");
    if (const json::value* v = o.if_contains("build_peak"); v && v->is_number()) m.build_peak = v->to_number<uint64_t>();
    if (const json::value* v = o.if_contains("built_at_unix_ms"); v && v->is_number())
      m.built_at_unix_ms = v->to_number<int64_t>();
  } catch (const std::exception&) {
    // Boost's messages carry its source locations: say what is wrong in our words.
    return InvalidArgument("artifact meta is incomplete or has a field of the wrong type or out of range");
  }
  if (m.size > max_size)
    return InvalidArgument("artifact meta declares " + std::to_string(m.size) + " bytes, above the bound of " +
                           std::to_string(max_size));
  // Every chunk holds at least one byte (an empty artifact is one empty chunk).
  if (m.chunks == 0 || m.chunks > std::max<uint64_t>(1, m.size))
    return InvalidArgument("artifact meta declares " + std::to_string(m.chunks) + " chunks for " +
                           std::to_string(m.size) + " bytes");
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

ArtifactMeta describe_artifact(const ChunkedBytes& bytes, const std::string& version, int64_t fence,
                               size_t chunk_size, std::vector<std::string_view>* chunks_out) {
  ArtifactMeta m;
  m.version = version;
  m.fence = fence;
  m.size = bytes.size();
  Sha256 h;
  std::vector<std::string_view> chunks;
  for (const std::string& piece : bytes.pieces()) {
    h.update(piece);
    size_t step = chunk_size == 0 ? piece.size() : chunk_size;
    for (size_t at = 0; at < piece.size(); at += step) chunks.push_back(std::string_view(piece).substr(at, step));
  }
  if (chunks.empty()) chunks.push_back({});
  m.chunks = chunks.size();
  m.sha256 = h.hex();
  if (chunks_out) *chunks_out = std::move(chunks);
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
