#include "memgate/startup/fleet.h"

namespace memgate::startup {
namespace {
// "mgart1\n<builder>\n<bytes>": short, versioned, and impossible to mistake for
// the start of a real artifact that lacks it.
constexpr std::string_view kMagic = "mgart1\n";
}  // namespace

std::string_view fleet_outcome_name(FleetOutcome outcome) {
  switch (outcome) {
    case FleetOutcome::kBuilt: return "built";
    case FleetOutcome::kLoaded: return "loaded";
    case FleetOutcome::kWaited: return "waited";
    case FleetOutcome::kTookOver: return "took_over";
    case FleetOutcome::kRebuiltBadArtifact: return "rebuilt_bad_artifact";
    case FleetOutcome::kLocal: return "local";
  }
  return "unknown";
}

Result<FleetOutcome> LocalFleetRunner::run(const FleetSpec&, const FleetCallbacks& cb) {
  if (cb.on_state) cb.on_state("building");
  Result<std::string> artifact = cb.build();
  if (!artifact.ok()) return artifact.status();
  if (cb.on_state) cb.on_state("loading_artifact");
  if (Status s = cb.load(*artifact); !s.ok()) return s;
  return FleetOutcome::kLocal;
}

std::string wrap_artifact(std::string_view builder, std::string_view bytes) {
  std::string out;
  out.reserve(kMagic.size() + builder.size() + 1 + bytes.size());
  out += kMagic;
  for (char c : builder) out += (c == '\n' ? ' ' : c);
  out += '\n';
  out += bytes;
  return out;
}

Unwrapped unwrap_artifact(std::string_view artifact) {
  if (artifact.substr(0, kMagic.size()) != kMagic) return {{}, artifact};
  std::string_view rest = artifact.substr(kMagic.size());
  size_t nl = rest.find('\n');
  if (nl == std::string_view::npos) return {{}, artifact};
  return {rest.substr(0, nl), rest.substr(nl + 1)};
}

}  // namespace memgate::startup
