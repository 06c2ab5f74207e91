// ElfSymbols: the function symbols of one ELF file, to name the addresses of a
// heap profile inside memgate itself, as Go's runtime names its own.
//
// Why in-process: a native profile that holds only addresses leaves naming to
// the reader, and readers differ. `go tool pprof` names a frame only from a
// DWARF subprogram that carries its own name, which GCC's C++ functions in
// namespaces do not (theirs is on the declaration they point to), so it shows a
// memgate profile as one "[memgate]" line; a Pyroscope backend fed by Grafana
// Alloy shows what the profile names. The symbol table names every function.
// Addresses, mappings and build ids stay in the profile for readers that want to
// add file and line information themselves.
//
// The file's .symtab is used (present unless the binary was stripped), else its
// .dynsym (what a Debian shared library keeps). The file is read with pread, and
// every size and offset is checked against the file and the limits below before
// anything is allocated. Not thread-safe to build; const lookups are.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "memgate/base/status.h"

namespace memgate::memory {

struct ElfSymbolLimits {
  uint64_t max_table_bytes = 64u << 20;  // the symbol table, and its string table, each
  size_t max_sections = 1u << 16;
};

class ElfSymbols {
 public:
  // Reads the function symbols of the 64-bit little-endian ELF file at `path`
  // (what this process runs). Fails with kNotFound when it cannot be opened,
  // kInvalidArgument when it is not such a file or a table lies outside it,
  // kResourceExhausted past a limit, and kFailedPrecondition when it has no
  // symbol table at all.
  static Result<ElfSymbols> read(const std::string& path, const ElfSymbolLimits& limits = {});

  // The lower-case hex of the file's GNU build id note; empty when it has none.
  const std::string& build_id() const { return build_id_; }

  // The symbol (mangled, as in the file) of the function whose range holds
  // `vaddr`, an address in the file's own terms (a run-time address minus the
  // object's load bias); empty when no function holds it.
  std::string_view function_at(uint64_t vaddr) const;

  size_t size() const { return functions_.size(); }

 private:
  struct Function {
    uint64_t start = 0;
    uint64_t end = 0;
    uint32_t name = 0;  // offset in names_
  };
  std::vector<Function> functions_;  // sorted by start
  std::string names_;                // the string table, NUL-terminated
  std::string build_id_;
};

}  // namespace memgate::memory
