#include "memgate/startup/fleet.h"

#include <openssl/evp.h>

namespace memgate::startup {

FleetKey make_fleet_key(const FleetSpec& spec, std::string_view inputs) {
  // SHA-256 of "version\n inputs", 64 bits of it: short enough for key names,
  // far from colliding among the handful of inputs a fleet sees at once.
  std::string text = spec.version + "\n" + std::string(inputs);
  unsigned char digest[EVP_MAX_MD_SIZE];
  unsigned int len = 0;
  EVP_Digest(text.data(), text.size(), digest, &len, EVP_sha256(), nullptr);
  static const char* hex = "0123456789abcdef";
  FleetKey key;
  key.spec = spec;
  for (unsigned i = 0; i < 8 && i < len; ++i) {
    key.fingerprint.push_back(hex[digest[i] >> 4]);
    key.fingerprint.push_back(hex[digest[i] & 15]);
  }
  key.inputs = std::string(inputs.substr(0, 200));
  return key;
}

Result<FleetOutcome> LocalFleetRunner::run(const FleetKey&, const FleetCallbacks& cb) {
  if (cb.may_build) {
    if (Status st = cb.may_build(); !st.ok()) return st;
  }
  if (cb.on_state) cb.on_state("building");
  uint64_t peak = 0;
  Result<ChunkedBytes> artifact = cb.build(&peak);
  if (!artifact.ok()) return artifact.status();
  if (cb.on_state) cb.on_state("loading_artifact");
  ArtifactInfo info;
  info.size = artifact->size();
  info.build_peak = peak;
  auto source = take_source(std::move(*artifact));
  if (Status s = cb.load(*source, info, true); !s.ok()) return s;
  return FleetOutcome::kLocal;
}

}  // namespace memgate::startup
