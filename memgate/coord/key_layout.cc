// Key names and slots. The slot function is Redis Cluster's own (cluster spec:
// CRC16-CCITT/XMODEM, polynomial 0x1021, initial value 0, over the hash tag).
#include "memgate/coord/key_layout.h"

namespace memgate::coord {
namespace {

bool has_hash_tag(std::string_view name) { return hash_tag_of(name).size() != name.size(); }

TaskKeys layout(std::string base) {
  TaskKeys k;
  k.fence = base + ":fence";
  k.done = base + ":done";
  k.meta = base + ":artifact";
  k.peaks = base + ":peaks";
  k.lock = std::move(base);
  return k;
}

}  // namespace

std::string TaskKeys::chunk(int64_t fence_number, uint64_t index) const {
  return meta + ":" + std::to_string(fence_number) + ":" + std::to_string(index);
}

TaskKeys task_keys(std::string_view name) {
  if (has_hash_tag(name)) return layout(std::string(name));
  return layout("{" + std::string(name) + "}");
}

TaskKeys legacy_task_keys(std::string_view name) { return layout(std::string(name)); }

std::string_view hash_tag_of(std::string_view key) {
  size_t open = key.find('{');
  if (open == std::string_view::npos) return key;
  size_t close = key.find('}', open + 1);
  if (close == std::string_view::npos || close == open + 1) return key;
  return key.substr(open + 1, close - open - 1);
}

uint16_t key_slot(std::string_view key) {
  uint16_t crc = 0;
  for (unsigned char c : hash_tag_of(key)) {
    crc ^= static_cast<uint16_t>(c) << 8;
    for (int i = 0; i < 8; ++i) crc = (crc & 0x8000) ? static_cast<uint16_t>((crc << 1) ^ 0x1021) : static_cast<uint16_t>(crc << 1);
  }
  return crc & 16383;
}

}  // namespace memgate::coord
