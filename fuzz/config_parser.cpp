// Fuzz target: the configuration front end (lexer, includes, substitution, option parsing,
// validation, dryrun printer). Property: no crash, hang or leak on any input, and every
// configuration that parses prints to text that parses again without errors.
#include <cstdint>
#include <cstdlib>
#include <map>
#include <string>

#include "config/parser.hpp"
#include "config/printer.hpp"
#include "memory_loader.hpp"
#include "vdev/catalog.hpp"

namespace {

using namespace qvm;
using namespace qvm::config;

// Two in-memory files (main.qvmconf: the input; inc.qvmconf: its second half, includable), so
// the fuzzer can build include chains and cycles.
ParseOutput parse(fuzz::MemoryLoader& loader, std::vector<std::string> args) {
  ParseInput in;
  in.args = std::move(args);
  in.env = [](std::string_view n) -> std::optional<std::string> {
    if (n == "A") return std::string("64m");
    if (n == "E") return std::string();
    if (n == "S") return std::string("a b");
    return std::nullopt;
  };
  in.loader = &loader;
  in.schemas = [](std::string_view t) { return vdev::find_schema(t); };
  in.vdev_types = vdev::builtin_type_names();
  return parse_config(in);
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::string text(reinterpret_cast<const char*>(data), size);  // SAFETY: bytes viewed as chars
  fuzz::MemoryLoader loader;
  loader.files["main.qvmconf"] = text;
  loader.files["inc.qvmconf"] = text.substr(text.size() / 2);
  // Some inputs also exercise command-line entries: the first line split at spaces.
  std::vector<std::string> args{"@main.qvmconf"};
  if (!text.empty() && text[0] == '!') {
    std::string first = text.substr(1, text.find('\n'));
    size_t start = 0;
    while (start < first.size() && args.size() < 64) {
      size_t sp = first.find(' ', start);
      if (sp == std::string::npos) sp = first.size();
      args.push_back(first.substr(start, sp - start));
      start = sp + 1;
    }
  }
  ParseOutput out = parse(loader, args);
  if (out.ok()) {
    std::string printed = print_config(out.config);
    fuzz::MemoryLoader again;
    again.files["main.qvmconf"] = printed;
    ParseOutput re = parse(again, {"@main.qvmconf"});
    if (!re.ok()) {
      fprintf(stderr, "round trip failed:\n%s\n--- printed ---\n%s\n",
              re.diags.first_error().c_str(), printed.c_str());
      abort();
    }
  }
  return 0;
}
