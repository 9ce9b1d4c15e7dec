// Helpers for config tests: an in-memory file system and a fake environment.
#pragma once

#include <gtest/gtest.h>

#include <map>
#include <string>
#include <vector>

#include "config/parser.hpp"
#include "vdev/catalog.hpp"

namespace qvm::config::test {

class MemLoader final : public SourceLoader {
 public:
  std::map<std::string, std::string> files;  // absolute path -> text
  Result<std::string> canonical(const std::string& path) override {
    std::string p = path[0] == '/' ? path : "/cwd/" + path;
    // Normalise "/a/./b" and "/a/x/../b".
    std::vector<std::string> parts;
    size_t i = 0;
    while (i < p.size()) {
      size_t j = p.find('/', i);
      if (j == std::string::npos) j = p.size();
      std::string seg = p.substr(i, j - i);
      if (seg == "..") {
        if (!parts.empty()) parts.pop_back();
      } else if (!seg.empty() && seg != ".") {
        parts.push_back(seg);
      }
      i = j + 1;
    }
    std::string c;
    for (auto& s : parts) c += "/" + s;
    if (!files.count(c)) return make_error("cannot open '" + path + "': No such file or directory");
    return c;
  }
  Result<std::string> read(const std::string& p) override { return files.at(p); }
};

inline ParseOutput parse_args(std::vector<std::string> args, MemLoader* loader = nullptr,
                              std::map<std::string, std::string> env = {}) {
  ParseInput in;
  in.args = std::move(args);
  in.env = [env](std::string_view n) -> std::optional<std::string> {
    auto it = env.find(std::string(n));
    if (it == env.end()) return std::nullopt;
    return it->second;
  };
  in.loader = loader;
  in.schemas = [](std::string_view t) { return vdev::find_schema(t); };
  in.vdev_types = vdev::builtin_type_names();
  return parse_config(in);
}

// Parses `text` as the file /cwd/t.qvmconf given as @t.qvmconf, plus extra command-line args.
inline ParseOutput parse_text(const std::string& text, std::vector<std::string> extra = {},
                              std::map<std::string, std::string> env = {}) {
  static MemLoader loader;
  loader.files.clear();
  loader.files["/cwd/t.qvmconf"] = text;
  std::vector<std::string> args{"@t.qvmconf"};
  for (auto& e : extra) args.push_back(e);
  return parse_args(args, &loader, std::move(env));
}

// A minimal valid memory layout to prepend in tests that check other options.
inline const char* kMem = "ram 0,0xa0000 ram 1m,63m ";

inline std::string errors(const ParseOutput& o) {
  std::string s;
  for (const auto& d : o.diags.all()) s += d.str() + "\n";
  return s;
}

inline ParseOutput with_mem(const std::string& s) {
  return parse_text(std::string(kMem) + s);
}

// The configuration must fail with an error message containing `fragment`.
inline void expect_error(const ParseOutput& o, const std::string& fragment) {
  EXPECT_FALSE(o.ok());
  EXPECT_NE(errors(o).find(fragment), std::string::npos) << "missing: " << fragment << "\n"
                                                         << errors(o);
}

}  // namespace qvm::config::test
