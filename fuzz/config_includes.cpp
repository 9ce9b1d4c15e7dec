// Fuzz target: include graphs across several configuration files (spec §2 `@file`). The input is
// split at NUL bytes into up to eight in-memory files named "0".."7"; the command line is "@0". A
// file can include any other (or itself) any number of times, so the fuzzer builds chains,
// cycles, diamonds and fan-outs. Property: no crash, hang or leak, and the parse stays within the
// front end's total budget (config/source.hpp: includes, bytes, tokens) — libFuzzer's -timeout
// and -rss_limit_mb catch a budget that does not hold.
#include <cstdint>
#include <map>
#include <string>

#include "config/parser.hpp"
#include "memory_loader.hpp"
#include "vdev/catalog.hpp"

namespace {

using namespace qvm;
using namespace qvm::config;

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::string text(reinterpret_cast<const char*>(data), size);  // SAFETY: bytes viewed as chars
  fuzz::MemoryLoader loader;
  size_t start = 0;
  for (int i = 0; i < 8; i++) {
    size_t end = text.find('\0', start);
    loader.files[std::to_string(i)] =
        text.substr(start, end == std::string::npos ? end : end - start);
    if (end == std::string::npos) break;
    start = end + 1;
  }
  ParseInput in;
  in.args = {"@0"};
  in.env = [](std::string_view) -> std::optional<std::string> { return std::nullopt; };
  in.loader = &loader;
  in.schemas = [](std::string_view t) { return vdev::find_schema(t); };
  in.vdev_types = vdev::builtin_type_names();
  (void)parse_config(in);
  return 0;
}
