// Fuzzes what a chat-completions provider sends back: the status line, the
// headers, the framing (Content-Length, chunked with extensions and trailers,
// read to the end), a JSON answer, an SSE stream of completion chunks or an
// error body. The bytes go through replay_provider_response(), the code a call
// runs on its connection (Beast's reader into the kMaxReadBuffer-bounded buffer,
// the parser with the call's head and body limits, the SSE parser), handed over
// in reads of a size the input picks, so every split of a line, a chunk header
// or a head is reachable. The properties checked:
//   - a call ends in a status, never a crash, an exception or a hang (every
//     read makes progress: no more reads than bytes, plus the end);
//   - the read buffer never holds more than kMaxReadBuffer, the parser's body
//     never more than max_response_bytes, nor does the answer;
//   - the status is OK (then the provider said 200), unavailable, resource
//     exhausted, or cancelled when the caller stopped wanting the answer;
//   - what on_delta got is the answer, in order; an unstreamed call gets none;
//   - the status message is one line of ours; the provider's own words only
//     come back in provider_error, cut to 200 bytes (+ "...") and printable.
//
// Input: one byte of options, then the response.
//   bit 0     the call asked for a stream
//   bits 1-2  read size: 1, 7, 512 or 65536 bytes
//   bit 3     max_response_bytes 2048 (else the client's default, 1 MiB)
//   bit 4     the caller stops wanting the answer from the third read on
#include <cstdint>
#include <cstdlib>
#include <string>
#include <string_view>

#include "memgate/coach/chat_client.h"

namespace {

using memgate::Code;
using memgate::coach::kMaxReadBuffer;
using memgate::coach::replay_provider_response;
using memgate::coach::ReplayedResponse;
using memgate::coach::ReplayOptions;

void check(bool ok) {
  if (!ok) std::abort();
}

bool printable(std::string_view s) {
  for (char c : s) {
    auto u = static_cast<unsigned char>(c);
    if (u < 0x20 || u == 0x7f) return false;
  }
  return true;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size < 1) return 0;
  const uint8_t flags = data[0];
  std::string_view response(reinterpret_cast<const char*>(data + 1), size - 1);
  static constexpr size_t kPieces[] = {1, 7, 512, 65536};
  ReplayOptions o;
  o.stream = flags & 1;
  o.piece = kPieces[(flags >> 1) & 3];
  if (flags & 8) o.max_response_bytes = 2048;
  if (flags & 16) o.cancel_after_reads = 3;

  ReplayedResponse r;
  try {
    r = replay_provider_response(response, o);
  } catch (...) {
    std::abort();  // an exception escaped the reader
  }
  const auto& out = r.outcome;
  Code code = out.status.code();

  check(r.reads >= 1 && r.reads <= response.size() + 2);
  check(r.largest_read_buffer <= kMaxReadBuffer);
  check(r.largest_body <= o.max_response_bytes);
  check(out.content.size() <= o.max_response_bytes);

  check(code == Code::kOk || code == Code::kUnavailable || code == Code::kResourceExhausted ||
        (code == Code::kCancelled && o.cancel_after_reads > 0));
  if (code == Code::kOk) check(out.provider_status == 200);
  if (!out.status.ok()) check(!r.keep_alive);

  if (!o.stream) check(r.pieces.empty() && !r.headers);
  if (o.stream && code == Code::kOk) {
    std::string joined;
    for (const std::string& p : r.pieces) joined += p;
    check(joined == out.content);
  }

  check(out.status.message().size() < 200 && printable(out.status.message()));
  check(out.provider_error.size() <= 203 && printable(out.provider_error));
  if (!out.provider_error.empty()) check(out.provider_status != 200);
  return 0;
}
