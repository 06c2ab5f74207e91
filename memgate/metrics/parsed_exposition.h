// Test helper: a small reader of the Prometheus text format, enough for tests to
// check what serialize() produced — every sample line parses, every family has a
// # TYPE line, and samples can be looked up by name and labels.
#pragma once

#include <cstdlib>
#include <map>
#include <optional>
#include <sstream>
#include <string>

namespace memgate::metrics {

struct ParsedExposition {
  std::map<std::string, std::string> types;    // family name -> "gauge", "counter", ...
  std::map<std::string, double> samples;       // "name{labels}" exactly as written -> value
  std::string error;                           // first malformed line, if any

  // The value of the only sample of `name` (with any labels), if exactly one exists.
  std::optional<double> only(const std::string& name) const {
    std::optional<double> found;
    for (const auto& [key, value] : samples) {
      if (key == name || key.starts_with(name + "{")) {
        if (found) return std::nullopt;
        found = value;
      }
    }
    return found;
  }
  std::optional<double> at(const std::string& series) const {
    auto it = samples.find(series);
    if (it == samples.end()) return std::nullopt;
    return it->second;
  }
};

inline ParsedExposition parse_exposition(const std::string& text) {
  ParsedExposition out;
  std::istringstream in(text);
  std::string line;
  while (std::getline(in, line)) {
    if (line.empty()) continue;
    if (line.starts_with("# TYPE ")) {
      std::istringstream fields(line.substr(7));
      std::string name, type;
      fields >> name >> type;
      if (type != "counter" && type != "gauge" && type != "histogram" && type != "summary" && type != "untyped") {
        if (out.error.empty()) out.error = line;
      }
      out.types[name] = type;
      continue;
    }
    if (line.starts_with("#")) continue;  // # HELP and comments
    size_t end = line.find('{') != std::string::npos ? line.find('}') + 1 : line.find(' ');
    if (end == std::string::npos || end == 0 || end >= line.size() || line[end] != ' ') {
      if (out.error.empty()) out.error = line;
      continue;
    }
    const std::string series = line.substr(0, end);
    const std::string value = line.substr(end + 1);
    char* parsed_end = nullptr;
    double v = std::strtod(value.c_str(), &parsed_end);
    if (parsed_end == value.c_str()) {
      if (out.error.empty()) out.error = line;
      continue;
    }
    out.samples[series] = v;
  }
  return out;
}

}  // namespace memgate::metrics
