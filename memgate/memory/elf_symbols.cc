// Reading an ELF file's function symbols: the header, the section headers, the
// chosen symbol table and the string table it links to, and the note sections
// for the build id, each with one pread of a size checked first. Only STT_FUNC
// and STT_GNU_IFUNC symbols that are defined and have a size are kept, sorted by
// address; a lookup is a binary search for the last one starting at or below
// the address, then a check that the address is inside it.
#include "memgate/memory/elf_symbols.h"

#include <elf.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>

#include "memgate/memory/process_maps.h"

namespace memgate::memory {
namespace {

class File {
 public:
  explicit File(const std::string& path) : fd_(::open(path.c_str(), O_RDONLY | O_CLOEXEC)) {
    struct stat st;
    if (fd_ >= 0 && ::fstat(fd_, &st) == 0) size_ = static_cast<uint64_t>(st.st_size);
  }
  ~File() {
    if (fd_ >= 0) ::close(fd_);
  }
  File(const File&) = delete;
  File& operator=(const File&) = delete;

  bool open() const { return fd_ >= 0; }
  uint64_t size() const { return size_; }
  // Whether [offset, offset + n) lies inside the file.
  bool holds(uint64_t offset, uint64_t n) const { return offset <= size_ && n <= size_ - offset; }
  // Reads exactly n bytes at offset into out (the range checked by the caller).
  bool read(uint64_t offset, size_t n, void* out) const {
    auto* p = static_cast<char*>(out);
    while (n > 0) {
      ssize_t got = ::pread(fd_, p, n, static_cast<off_t>(offset));
      if (got < 0 && errno == EINTR) continue;
      if (got <= 0) return false;
      p += got;
      n -= static_cast<size_t>(got);
      offset += static_cast<uint64_t>(got);
    }
    return true;
  }

 private:
  int fd_;
  uint64_t size_ = 0;
};

}  // namespace

Result<ElfSymbols> ElfSymbols::read(const std::string& path, const ElfSymbolLimits& limits) {
  File f(path);
  if (!f.open()) return NotFound("cannot open " + path + ": " + std::strerror(errno));
  Elf64_Ehdr eh;
  if (!f.holds(0, sizeof eh) || !f.read(0, sizeof eh, &eh) || std::memcmp(eh.e_ident, ELFMAG, SELFMAG) != 0 ||
      eh.e_ident[EI_CLASS] != ELFCLASS64 || eh.e_ident[EI_DATA] != ELFDATA2LSB ||
      eh.e_shentsize != sizeof(Elf64_Shdr))
    return InvalidArgument(path + " is not a 64-bit little-endian ELF file");
  if (eh.e_shnum > limits.max_sections) return ResourceExhausted(path + " has too many sections");
  std::vector<Elf64_Shdr> sections(eh.e_shnum);
  const uint64_t headers_bytes = uint64_t{eh.e_shnum} * sizeof(Elf64_Shdr);
  if (!f.holds(eh.e_shoff, headers_bytes) ||
      !f.read(eh.e_shoff, static_cast<size_t>(headers_bytes), sections.data()))
    return InvalidArgument(path + ": section headers outside the file");

  ElfSymbols out;
  const Elf64_Shdr* table = nullptr;
  for (const auto& s : sections) {
    if (s.sh_type == SHT_SYMTAB) table = &s;  // the full table wins
    if (s.sh_type == SHT_DYNSYM && !table) table = &s;
    if (s.sh_type == SHT_NOTE && out.build_id_.empty() && s.sh_size <= 4096 && f.holds(s.sh_offset, s.sh_size)) {
      std::string notes(s.sh_size, '\0');
      if (f.read(s.sh_offset, notes.size(), notes.data())) out.build_id_ = gnu_build_id_in_notes(notes);
    }
  }
  if (!table) return FailedPrecondition(path + " has no symbol table");
  if (table->sh_link >= sections.size()) return InvalidArgument(path + ": symbol table links no string table");
  const Elf64_Shdr& strings = sections[table->sh_link];
  if (table->sh_size > limits.max_table_bytes || strings.sh_size > limits.max_table_bytes)
    return ResourceExhausted(path + ": symbol tables over " + std::to_string(limits.max_table_bytes) + " bytes");
  if (table->sh_entsize != sizeof(Elf64_Sym) || !f.holds(table->sh_offset, table->sh_size) ||
      !f.holds(strings.sh_offset, strings.sh_size))
    return InvalidArgument(path + ": symbol tables outside the file");

  std::vector<Elf64_Sym> symbols(table->sh_size / sizeof(Elf64_Sym));
  out.names_.resize(strings.sh_size);
  if (!f.read(table->sh_offset, symbols.size() * sizeof(Elf64_Sym), symbols.data()) ||
      !f.read(strings.sh_offset, out.names_.size(), out.names_.data()))
    return InvalidArgument(path + ": cannot read its symbol tables");
  out.names_.push_back('\0');  // every name ends inside the table, even the last

  for (const auto& s : symbols) {
    const unsigned type = ELF64_ST_TYPE(s.st_info);
    if ((type != STT_FUNC && type != STT_GNU_IFUNC) || s.st_shndx == SHN_UNDEF || s.st_size == 0 ||
        s.st_name >= out.names_.size() || s.st_value > ~uint64_t{0} - s.st_size)
      continue;
    out.functions_.push_back({s.st_value, s.st_value + s.st_size, s.st_name});
  }
  std::sort(out.functions_.begin(), out.functions_.end(),
            [](const Function& a, const Function& b) { return a.start < b.start; });
  return out;
}

std::string_view ElfSymbols::function_at(uint64_t vaddr) const {
  auto it = std::upper_bound(functions_.begin(), functions_.end(), vaddr,
                             [](uint64_t v, const Function& f) { return v < f.start; });
  // Symbols may nest or alias; look back over the few that start at or below.
  for (int steps = 0; it != functions_.begin() && steps < 8; ++steps) {
    --it;
    if (vaddr < it->end) return std::string_view(names_.data() + it->name);
  }
  return {};
}

}  // namespace memgate::memory
