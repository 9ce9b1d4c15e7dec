#include "config/parser.hpp"

#include <algorithm>

#include "config/parser_impl.hpp"

namespace qvm::config {

ParseOutput parse_config(const ParseInput& in) {
  ParseOutput out;
  detail::Parser p(in, out);
  p.run();
  return out;
}

namespace detail {
namespace {

// Options that neither establish nor need a context, and those that establish one (spec §3).
constexpr std::string_view kGlobalKeywords[] = {
    "system", "cpu",    "ram",    "rom",  "reserve",     "load",   "cmdline", "pass",
    "vdev",   "set",    "logger", "dump", "unsupported", "safety", "dryrun",  "none",
    "auto",   "initrd", "data",   "acpi", "fdt",         "module"};

}  // namespace

void Parser::run() {
  auto cmdline_file = std::make_shared<const std::string>("<command line>");
  std::vector<Token> toks;
  for (size_t i = 0; i < in_.args.size(); ++i) {
    toks.push_back(
        lex_argument(in_.args[i], cmdline_file, static_cast<uint32_t>(i + 1), in_.env, out_.diags));
  }
  parse_tokens(toks, ".", 0);
  if (!out_.diags.saturated()) validate();
}

bool Parser::is_keyword(std::string_view word) const {
  return std::find(std::begin(kGlobalKeywords), std::end(kGlobalKeywords), word) !=
         std::end(kGlobalKeywords);
}

void Parser::skip_to_keyword(const std::vector<Token>& toks, size_t& i) {
  while (i < toks.size() &&
         (toks[i].quoted || (!is_keyword(toks[i].text) && toks[i].text[0] != '@')))
    ++i;
}

const Token* Parser::arg(const std::vector<Token>& toks, size_t& i, const Token& opt,
                         const char* expected) {
  if (i >= toks.size()) {
    error(opt.loc, "option '" + opt.text + "' needs an argument: expected " + expected +
                       " (an argument must follow its option in the same file)");
    return nullptr;
  }
  return &toks[i++];
}

void Parser::include(const Token& t, const std::string& dir, int depth) {
  std::string path = t.text.substr(1);
  if (path.empty()) {
    error(t.loc, "expected a file name after '@'");
    return;
  }
  if (depth >= kMaxIncludeDepth) {
    error(t.loc, "includes nested more than 32 deep");
    return;
  }
  if (over_budget_) return;  // reported once
  if (++includes_ > kMaxIncludes) {
    over_budget_ = true;
    error(t.loc, "more than 1024 includes in all (does an include graph fan out?)");
    return;
  }
  if (in_.loader == nullptr) {
    error(t.loc, "cannot include '" + path + "': no file access");
    return;
  }
  // Relative paths resolve against the including file's folder (the command line: the
  // current directory).
  if (path[0] != '/' && dir != ".") path = dir + "/" + path;
  auto canon = in_.loader->canonical(path);
  if (!canon) {
    error(t.loc, canon.error().message);
    return;
  }
  if (std::find(include_stack_.begin(), include_stack_.end(), *canon) != include_stack_.end()) {
    std::string chain;
    for (const auto& f : include_stack_) chain += f + " -> ";
    error(t.loc, "include cycle: " + chain + *canon);
    return;
  }
  auto text = in_.loader->read(*canon);
  if (!text) {
    error(t.loc, text.error().message);
    return;
  }
  total_bytes_ += text->size();
  if (total_bytes_ > kMaxTotalBytes) {
    over_budget_ = true;
    error(t.loc, "the configuration's files hold more than 64 MiB in all");
    return;
  }
  auto file = std::make_shared<const std::string>(path);
  auto toks = lex_file(*text, file, in_.env, out_.diags);
  total_tokens_ += toks.size();
  if (total_tokens_ > kMaxTotalTokens) {
    over_budget_ = true;
    error(t.loc, "the configuration's files hold more than 4194304 tokens in all");
    return;
  }
  std::string sub_dir = ".";
  if (auto slash = canon->rfind('/'); slash != std::string::npos)
    sub_dir = slash == 0 ? "/" : canon->substr(0, slash);
  include_stack_.push_back(*canon);
  parse_tokens(toks, sub_dir, depth + 1);
  include_stack_.pop_back();
}

void Parser::parse_tokens(const std::vector<Token>& toks, const std::string& dir, int depth) {
  // Contexts do not span files (spec §2.3): each file and the command line start without one.
  ctx_ = Ctx::kNone;
  pending_blob_.reset();
  size_t i = 0;
  while (i < toks.size() && !out_.diags.saturated()) {
    const Token& t = toks[i++];
    if (t.text.empty() && !t.quoted) continue;
    if (pending_blob_ && (t.quoted || (t.text != "load" && t.text != "pass"))) {
      error(pending_blob_loc_,
            "a blob type must be followed by 'load' (or 'pass'); found '" + t.text + "'");
      pending_blob_.reset();
    }
    if (t.quoted) {
      error(t.loc, "expected an option, found the quoted string \"" + t.text.substr(0, 60) + "\"");
      skip_to_keyword(toks, i);
      continue;
    }
    if (t.text[0] == '@') {
      ctx_ = Ctx::kNone;
      include(t, dir, depth);
      ctx_ = Ctx::kNone;
      continue;
    }
    if (t.text == "system" && any_entry_) {
      error(t.loc, "'system' must be the first entry of the configuration");
    }
    if (!any_entry_) first_loc_ = t.loc;
    any_entry_ = true;
    bool handled = false;
    switch (ctx_) {
      case Ctx::kCpu:
        handled = cpu_option(t, toks, i);
        break;
      case Ctx::kPass:
        handled = pass_option(t, toks, i);
        break;
      case Ctx::kVdev:
        handled = vdev_option(t, toks, i);
        break;
      case Ctx::kBadVdev:
        // The vdev type was unknown: its options cannot be checked; skip them quietly.
        if (!is_keyword(t.text)) {
          skip_to_keyword(toks, i);
          handled = true;
        }
        break;
      case Ctx::kNone:
        break;
    }
    if (handled) continue;
    if (global_option(t, toks, i)) continue;
    std::string msg = "unknown option '" + t.text.substr(0, 60) + "'";
    if (ctx_ == Ctx::kVdev && !cfg().vdevs.empty()) {
      const VdevConfig& v = cfg().vdevs.back();
      msg += " for vdev " + v.type + "; valid options: loc, intr, hostvector, name, log";
      if (v.schema)
        for (const auto& o : v.schema->options) msg += ", " + o.name;
      msg += " (or a global option)";
    } else if (ctx_ == Ctx::kCpu) {
      msg += "; after 'cpu' expected partition, runmask, sched, or a global option";
    } else if (ctx_ == Ctx::kPass) {
      msg += "; after 'pass' expected loc, intr, or a global option";
    } else {
      msg +=
          "; expected one of: system, cpu, ram, rom, reserve, [blob-type] load, cmdline, pass, "
          "vdev, set, logger, dump, unsupported, safety, dryrun, @file";
    }
    error(t.loc, msg);
    skip_to_keyword(toks, i);
  }
  if (pending_blob_) {
    error(pending_blob_loc_, "a blob type must be followed by 'load' in the same file");
    pending_blob_.reset();
  }
  ctx_ = Ctx::kNone;
}

}  // namespace detail
}  // namespace qvm::config
