// What is mapped into this process and from which files: the lines of
// /proc/self/maps, and the ELF objects the dynamic loader has loaded (the main
// binary and its shared libraries) with their GNU build ids. A heap profile
// needs both so that a profiler can tell which file, and which version of it,
// each address belongs to.
//
// Thread-safe: parse_proc_maps is pure; loaded_objects walks the loader's list
// under the loader's own lock (dl_iterate_phdr).
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "memgate/base/status.h"

namespace memgate::memory {

// One line of /proc/<pid>/maps: "start-end perms offset dev inode [path]".
struct MappedRegion {
  uint64_t start = 0;
  uint64_t end = 0;          // one past the last byte
  uint64_t file_offset = 0;
  bool executable = false;   // perms has 'x'
  std::string path;          // empty for anonymous memory; "[vdso]", "[heap]"... for the kernel's names
};

// Parses maps text. Fails with kInvalidArgument naming the line for a malformed
// one and kResourceExhausted past `max_regions` lines.
Result<std::vector<MappedRegion>> parse_proc_maps(std::string_view text, size_t max_regions = 1u << 16);

// An ELF object the dynamic loader knows, by the addresses of its executable
// segments (PT_LOAD with PF_X, load bias applied; the union when there are
// several).
struct LoadedObject {
  uint64_t text_start = 0;
  uint64_t text_end = 0;
  uint64_t bias = 0;     // run-time address minus the address in the file (dlpi_addr)
  std::string build_id;  // lower-case hex of its NT_GNU_BUILD_ID note; empty when it has none
  bool main = false;     // the program itself (the loader lists it first)
};

// Every loaded object with an executable segment, read from the program
// headers and notes the loader keeps mapped (dl_iterate_phdr), so no file is
// opened. Notes are walked within their segment's bounds; a build id over 64
// bytes is ignored.
std::vector<LoadedObject> loaded_objects();

// The GNU build id (lower-case hex) in a block of ELF notes (a PT_NOTE segment
// or an SHT_NOTE section); empty when there is none. Each note's sizes are
// checked against the block; an id over 64 bytes counts as none.
std::string gnu_build_id_in_notes(std::string_view notes);

// The loaded object whose executable segment holds `address`, or null.
const LoadedObject* object_at(const std::vector<LoadedObject>& objects, uint64_t address);

}  // namespace memgate::memory
