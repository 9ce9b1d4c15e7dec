// Internal to the config library: the parser's state machine, shared by parser.cpp
// (token loop, includes), options.cpp (option handlers) and validate.cpp (cross checks).
#pragma once

#include <set>
#include <string>
#include <vector>

#include "config/lexer.hpp"
#include "config/parser.hpp"

namespace qvm::config::detail {

enum class Ctx { kNone, kCpu, kVdev, kBadVdev, kPass };

class Parser {
 public:
  Parser(const ParseInput& in, ParseOutput& out) : in_(in), out_(out) {}
  void run();

 private:
  // parser.cpp
  void parse_tokens(const std::vector<Token>& toks, const std::string& dir, int depth);
  void include(const Token& t, const std::string& dir, int depth);
  const Token* arg(const std::vector<Token>& toks, size_t& i, const Token& opt,
                   const char* expected);
  bool is_keyword(std::string_view word) const;
  void skip_to_keyword(const std::vector<Token>& toks, size_t& i);

  // options.cpp: each consumes its arguments from toks[i...].
  bool global_option(const Token& opt, const std::vector<Token>& toks, size_t& i);
  bool cpu_option(const Token& opt, const std::vector<Token>& toks, size_t& i);
  bool pass_option(const Token& opt, const std::vector<Token>& toks, size_t& i);
  bool vdev_option(const Token& opt, const std::vector<Token>& toks, size_t& i);
  void opt_memory(const Token& opt, const Token& a, MemConfig::Kind kind);
  void opt_reserve(const Token& opt, const Token& kind, const Token& a);
  void opt_load(const Token& opt, const Token& a);
  void opt_set(const Token& opt, const std::vector<Token>& toks, size_t& i);
  void opt_logger(const Token& filters, const Token& dest, LogRouting& routing);
  void opt_vdev(const Token& opt, const Token& type);

  // validate.cpp
  void validate();
  void place_memory();
  void check_vdevs();

  void error(const SrcLoc& loc, std::string msg) { out_.diags.error(loc, std::move(msg)); }
  void warning(const SrcLoc& loc, std::string msg) { out_.diags.warning(loc, std::move(msg)); }
  VmConfig& cfg() { return out_.config; }

  const ParseInput& in_;
  ParseOutput& out_;
  Ctx ctx_ = Ctx::kNone;
  std::optional<BlobType> pending_blob_;
  SrcLoc pending_blob_loc_;
  bool any_entry_ = false;
  bool memory_declared_ = false;
  SrcLoc first_loc_;
  std::vector<std::string> include_stack_;
  // The whole configuration's budget (source.hpp kMaxIncludes, kMaxTotalBytes, kMaxTotalTokens).
  size_t includes_ = 0, total_bytes_ = 0, total_tokens_ = 0;
  bool over_budget_ = false;
};

}  // namespace qvm::config::detail
