// A line-at-a-time reader of jemalloc's heap_v2 text. Each line is one of: the
// header, a counts line ("t*:" totals, "t<N>:" per thread), a stack ("@ ..."),
// or the blank line / MAPPED_LIBRARIES: marker that ends the samples. A "t*:"
// line before the first stack is the whole profile's; after a stack, it is that
// stack's and must come before the next one. Numbers are parsed with
// std::from_chars, so an overflowing figure is an error, not a wrap.
#include "memgate/memory/jemalloc_heap_dump.h"

#include <charconv>
#include <string>

namespace memgate::memory {
namespace {

struct Counts {
  uint64_t objects = 0, bytes = 0, accumulated_objects = 0, accumulated_bytes = 0;
};

class Cursor {
 public:
  explicit Cursor(std::string_view s) : s_(s) {}
  void skip_spaces() {
    while (!s_.empty() && s_.front() == ' ') s_.remove_prefix(1);
  }
  bool literal(std::string_view lit) {
    if (!s_.starts_with(lit)) return false;
    s_.remove_prefix(lit.size());
    return true;
  }
  bool number(uint64_t* out, int base = 10) {
    auto [ptr, ec] = std::from_chars(s_.data(), s_.data() + s_.size(), *out, base);
    if (ec != std::errc() || ptr == s_.data()) return false;
    s_.remove_prefix(static_cast<size_t>(ptr - s_.data()));
    return true;
  }
  bool done() const { return s_.empty(); }

 private:
  std::string_view s_;
};

// "A: B [C: D]" (what follows "t*:" or "t<N>:").
bool parse_counts(Cursor& c, Counts* out) {
  c.skip_spaces();
  if (!c.number(&out->objects) || !c.literal(":")) return false;
  c.skip_spaces();
  if (!c.number(&out->bytes)) return false;
  c.skip_spaces();
  if (!c.literal("[") || !c.number(&out->accumulated_objects) || !c.literal(":")) return false;
  c.skip_spaces();
  if (!c.number(&out->accumulated_bytes) || !c.literal("]")) return false;
  c.skip_spaces();
  return c.done();
}

Status bad_line(size_t line_no, std::string_view why) {
  return InvalidArgument("heap dump line " + std::to_string(line_no) + ": " + std::string(why));
}

}  // namespace

Result<HeapDump> parse_jemalloc_heap_dump(std::string_view text, const HeapDumpLimits& limits) {
  if (text.size() > limits.max_text_bytes)
    return ResourceExhausted("heap dump of " + std::to_string(text.size()) + " bytes is over the limit of " +
                             std::to_string(limits.max_text_bytes));
  HeapDump dump;
  size_t line_no = 0;
  size_t frames_total = 0;
  bool header_totals = false;
  bool stack_has_counts = true;  // no stack open yet
  while (!text.empty()) {
    size_t eol = text.find('\n');
    std::string_view line = text.substr(0, eol);
    text.remove_prefix(eol == std::string_view::npos ? text.size() : eol + 1);
    ++line_no;
    if (!line.empty() && line.back() == '\r') line.remove_suffix(1);

    if (line_no == 1) {
      Cursor c(line);
      if (!c.literal("heap_v2/") || !c.number(&dump.sample_interval) || !c.done() || dump.sample_interval == 0)
        return bad_line(line_no, "not a jemalloc heap_v2 profile (expected heap_v2/<interval>)");
      continue;
    }
    if (line.empty() || line == "MAPPED_LIBRARIES:") break;  // the samples end here

    if (line.starts_with("@")) {
      if (!stack_has_counts) return bad_line(line_no, "a stack without its t*: counts");
      if (dump.stacks.size() >= limits.max_stacks)
        return ResourceExhausted("heap dump has more than " + std::to_string(limits.max_stacks) + " stacks");
      HeapDumpStack stack;
      Cursor c(line.substr(1));
      for (;;) {
        c.skip_spaces();
        if (c.done()) break;
        uint64_t address = 0;
        if (!c.literal("0x") || !c.number(&address, 16)) return bad_line(line_no, "a frame is not a hex address");
        if (stack.frames.size() >= limits.max_frames_per_stack)
          return ResourceExhausted("heap dump line " + std::to_string(line_no) + ": more than " +
                                   std::to_string(limits.max_frames_per_stack) + " frames");
        if (++frames_total > limits.max_frames_total)
          return ResourceExhausted("heap dump has more than " + std::to_string(limits.max_frames_total) + " frames");
        stack.frames.push_back(address);
      }
      dump.stacks.push_back(std::move(stack));
      stack_has_counts = false;
      continue;
    }

    Cursor c(line);
    c.skip_spaces();
    if (!c.literal("t")) return bad_line(line_no, "neither a stack, a counts line nor the end of the samples");
    Counts counts;
    if (c.literal("*:")) {
      if (!parse_counts(c, &counts)) return bad_line(line_no, "malformed t*: counts");
      if (dump.stacks.empty()) {
        if (header_totals) return bad_line(line_no, "a second t*: total before the first stack");
        header_totals = true;
        dump.live_objects = counts.objects;
        dump.live_bytes = counts.bytes;
      } else {
        if (stack_has_counts) return bad_line(line_no, "a second t*: line for one stack");
        HeapDumpStack& s = dump.stacks.back();
        s.live_objects = counts.objects;
        s.live_bytes = counts.bytes;
        s.accumulated_objects = counts.accumulated_objects;
        s.accumulated_bytes = counts.accumulated_bytes;
        stack_has_counts = true;
      }
      continue;
    }
    uint64_t thread = 0;
    if (!c.number(&thread) || !c.literal(":") || !parse_counts(c, &counts))
      return bad_line(line_no, "malformed per-thread counts");
  }
  if (line_no == 0) return InvalidArgument("heap dump is empty");
  if (!header_totals) return InvalidArgument("heap dump has no t*: totals");
  if (!stack_has_counts) return InvalidArgument("heap dump ends inside a stack (no t*: counts)");
  return dump;
}

}  // namespace memgate::memory
