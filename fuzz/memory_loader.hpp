// In-memory configuration files for the configuration fuzz targets (config_parser,
// config_includes): names as `@file` entries spell them ("./x", "/cwd/x" and "x" are one file).
#pragma once

#include <map>
#include <string>

#include "config/source.hpp"

namespace qvm::fuzz {

class MemoryLoader final : public config::SourceLoader {
 public:
  std::map<std::string, std::string> files;
  Result<std::string> canonical(const std::string& path) override {
    std::string p = path;
    while (p.rfind("./", 0) == 0) p = p.substr(2);
    if (p.rfind("/cwd/", 0) == 0) p = p.substr(5);
    if (files.count(p) == 0) return make_error("cannot open '" + path + "'");
    return p;
  }
  Result<std::string> read(const std::string& p) override { return files.at(p); }
};

}  // namespace qvm::fuzz
