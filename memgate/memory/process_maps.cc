// /proc/self/maps lines and the loader's view of the loaded ELF objects.
//
// Build ids are read from memory, not from files: each object's PT_NOTE
// segments are mapped with it, so the notes can be walked in place at load bias
// + p_vaddr. A note is an Elf_Nhdr (name size, descriptor size, type) followed
// by the name and the descriptor, each padded to 4 bytes; the build id is the
// descriptor of the note of type NT_GNU_BUILD_ID named "GNU". Every size is
// checked against what is left of the segment before it is used.
#include "memgate/memory/process_maps.h"

#include <elf.h>
#include <link.h>

#include <charconv>
#include <cstring>

namespace memgate::memory {
namespace {

bool hex_field(std::string_view& s, char stop, uint64_t* out) {
  auto [ptr, ec] = std::from_chars(s.data(), s.data() + s.size(), *out, 16);
  if (ec != std::errc() || ptr == s.data()) return false;
  s.remove_prefix(static_cast<size_t>(ptr - s.data()));
  if (stop == '\0') return true;
  if (s.empty() || s.front() != stop) return false;
  s.remove_prefix(1);
  return true;
}

// The next space-separated word, and the spaces after it.
std::string_view word(std::string_view& s) {
  size_t end = s.find(' ');
  std::string_view w = s.substr(0, end);
  s.remove_prefix(end == std::string_view::npos ? s.size() : end);
  while (!s.empty() && s.front() == ' ') s.remove_prefix(1);
  return w;
}

constexpr size_t kMaxBuildIdBytes = 64;

std::string to_hex(const unsigned char* p, size_t n) {
  static constexpr char kDigits[] = "0123456789abcdef";
  std::string out;
  out.reserve(n * 2);
  for (size_t i = 0; i < n; ++i) {
    out.push_back(kDigits[p[i] >> 4]);
    out.push_back(kDigits[p[i] & 0xf]);
  }
  return out;
}

size_t align4(size_t n) { return (n + 3) & ~size_t{3}; }

}  // namespace

std::string gnu_build_id_in_notes(std::string_view notes) {
  const auto* base = reinterpret_cast<const unsigned char*>(notes.data());
  const size_t size = notes.size();
  size_t at = 0;
  while (size - at >= sizeof(ElfW(Nhdr))) {
    ElfW(Nhdr) h;
    std::memcpy(&h, base + at, sizeof h);
    at += sizeof h;
    size_t name_size = align4(h.n_namesz), desc_size = align4(h.n_descsz);
    if (name_size > size - at || desc_size > size - at - name_size) return "";  // runs past the segment
    const unsigned char* name = base + at;
    const unsigned char* desc = name + name_size;
    if (h.n_type == NT_GNU_BUILD_ID && h.n_namesz == 4 && std::memcmp(name, "GNU", 4) == 0 && h.n_descsz > 0 &&
        h.n_descsz <= kMaxBuildIdBytes)
      return to_hex(desc, h.n_descsz);
    at += name_size + desc_size;
  }
  return "";
}

namespace {

int collect(struct dl_phdr_info* info, size_t, void* data) {
  auto* out = static_cast<std::vector<LoadedObject>*>(data);
  LoadedObject o;
  o.bias = info->dlpi_addr;
  o.main = out->empty();  // the loader lists the program first
  for (ElfW(Half) i = 0; i < info->dlpi_phnum; ++i) {
    const ElfW(Phdr)& p = info->dlpi_phdr[i];
    if (p.p_type == PT_LOAD && (p.p_flags & PF_X) && p.p_memsz > 0) {
      uint64_t start = info->dlpi_addr + p.p_vaddr, end = start + p.p_memsz;
      if (o.text_end == 0 || start < o.text_start) o.text_start = start;
      if (end > o.text_end) o.text_end = end;
    } else if (p.p_type == PT_NOTE && o.build_id.empty()) {
      o.build_id = gnu_build_id_in_notes(
          std::string_view(reinterpret_cast<const char*>(info->dlpi_addr + p.p_vaddr), p.p_memsz));
    }
  }
  if (o.text_end != 0 || o.main) out->push_back(std::move(o));
  return 0;
}

}  // namespace

Result<std::vector<MappedRegion>> parse_proc_maps(std::string_view text, size_t max_regions) {
  std::vector<MappedRegion> out;
  size_t line_no = 0;
  while (!text.empty()) {
    size_t eol = text.find('\n');
    std::string_view line = text.substr(0, eol);
    text.remove_prefix(eol == std::string_view::npos ? text.size() : eol + 1);
    ++line_no;
    if (line.empty()) continue;
    if (out.size() >= max_regions)
      return ResourceExhausted("more than " + std::to_string(max_regions) + " mapped regions");
    MappedRegion r;
    std::string_view s = line;
    std::string_view range = word(s), perms = word(s), offset = word(s);
    std::string_view dev = word(s), inode = word(s);
    if (!hex_field(range, '-', &r.start) || !hex_field(range, '\0', &r.end) || !range.empty() || r.end < r.start ||
        perms.size() != 4 || !hex_field(offset, '\0', &r.file_offset) || !offset.empty() || dev.empty() ||
        inode.empty())
      return InvalidArgument("maps line " + std::to_string(line_no) + " is malformed");
    r.executable = perms[2] == 'x';
    r.path = std::string(s);
    out.push_back(std::move(r));
  }
  return out;
}

std::vector<LoadedObject> loaded_objects() {
  std::vector<LoadedObject> out;
  dl_iterate_phdr(collect, &out);
  return out;
}

const LoadedObject* object_at(const std::vector<LoadedObject>& objects, uint64_t address) {
  for (const auto& o : objects)
    if (address >= o.text_start && address < o.text_end) return &o;
  return nullptr;
}

}  // namespace memgate::memory
