#include "config/lexer.hpp"

namespace qvm::config {
namespace {

bool is_space(char c) {
  return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f' || c == '\v';
}
bool is_name_start(char c) {
  return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || c == '_';
}
bool is_name_char(char c) {
  return is_name_start(c) || (c >= '0' && c <= '9');
}

// Walks text keeping line/column. Columns count bytes (1-based).
class Cursor {
 public:
  Cursor(std::string_view text, std::shared_ptr<const std::string> file, uint32_t line)
      : text_(text), file_(std::move(file)), line_(line) {}
  bool done() const { return pos_ >= text_.size(); }
  char peek(size_t ahead = 0) const {
    return pos_ + ahead < text_.size() ? text_[pos_ + ahead] : '\0';
  }
  char next() {
    char c = text_[pos_++];
    if (c == '\n') {
      ++line_;
      col_ = 1;
    } else {
      ++col_;
    }
    return c;
  }
  SrcLoc loc() const { return SrcLoc{file_, line_, col_}; }

 private:
  std::string_view text_;
  std::shared_ptr<const std::string> file_;
  uint32_t line_;
  uint32_t col_ = 1;
  size_t pos_ = 0;
};

// Handles a `$` at the cursor; appends the expansion to `out`. Returns false on error.
bool substitute(Cursor& cur, std::string& out, const EnvLookup& env, Diagnostics& diags) {
  SrcLoc at = cur.loc();
  cur.next();  // '$'
  if (cur.peek() == '$') {
    cur.next();
    out += '$';
    return true;
  }
  if (cur.peek() != '{') {
    out += '$';
    return true;
  }
  cur.next();  // '{'
  std::string name;
  while (!cur.done() && is_name_char(cur.peek()) && name.size() < 256) name += cur.next();
  if (name.empty() || !is_name_start(name[0])) {
    diags.error(at, "bad substitution: expected a variable name after '${'");
    return false;
  }
  std::optional<std::string> deflt;
  if (cur.peek() == ':' && cur.peek(1) == '-') {
    cur.next();
    cur.next();
    std::string d;
    while (!cur.done() && cur.peek() != '}' && cur.peek() != '\n' && d.size() < kMaxTokenBytes) {
      if (cur.peek() == '\0') {
        diags.error(cur.loc(), "unexpected NUL byte in a substitution default");
        return false;
      }
      d += cur.next();
    }
    deflt = std::move(d);
  }
  if (cur.peek() != '}') {
    diags.error(at, "bad substitution '${" + name + "': expected '}'");
    return false;
  }
  cur.next();
  std::optional<std::string> v = env ? env(name) : std::nullopt;
  if (v && !v->empty()) {
    out += *v;
  } else if (deflt) {
    out += *deflt;
  } else if (v) {
    // Set but empty, no default: expands to nothing (like the shell).
  } else {
    diags.error(at, "'${" + name + "}': environment variable " + name + " is not set (use ${" +
                        name + ":-default} to give a default)");
    return false;
  }
  return true;
}

}  // namespace

std::vector<Token> lex_file(std::string_view text, std::shared_ptr<const std::string> file,
                            const EnvLookup& env, Diagnostics& diags) {
  std::vector<Token> tokens;
  Cursor cur(text, file, 1);
  while (!cur.done() && !diags.saturated()) {
    char c = cur.peek();
    if (is_space(c)) {
      cur.next();
      continue;
    }
    if (c == '#') {
      while (!cur.done() && cur.peek() != '\n') cur.next();
      continue;
    }
    Token tok;
    tok.loc = cur.loc();
    bool ok = true;
    while (!cur.done()) {
      c = cur.peek();
      if (is_space(c) || c == '#') break;
      if (c == '\0') {
        diags.error(cur.loc(), "unexpected NUL byte (is this a binary file?)");
        return tokens;
      }
      if (c == '"') {
        SrcLoc open = cur.loc();
        cur.next();
        tok.quoted = true;
        bool closed = false;
        while (!cur.done()) {
          c = cur.peek();
          if (c == '"') {
            cur.next();
            closed = true;
            break;
          }
          if (c == '\0') break;
          if (c == '\\' && (cur.peek(1) == '"' || cur.peek(1) == '\\')) {
            cur.next();
            tok.text += cur.next();
          } else if (c == '$') {
            ok = substitute(cur, tok.text, env, diags) && ok;
          } else {
            tok.text += cur.next();
          }
          if (tok.text.size() > kMaxTokenBytes) break;
        }
        if (!closed) {
          diags.error(open, "unterminated quoted string (expected a closing '\"')");
          return tokens;
        }
      } else if (c == '$') {
        ok = substitute(cur, tok.text, env, diags) && ok;
      } else {
        tok.text += cur.next();
      }
      if (tok.text.size() > kMaxTokenBytes) {
        diags.error(tok.loc, "token longer than 1 MiB");
        return tokens;
      }
    }
    if (ok) tokens.push_back(std::move(tok));
    if (tokens.size() > kMaxTokens) {
      diags.error(tok.loc, "more than 1048576 tokens in one file");
      return tokens;
    }
  }
  return tokens;
}

Token lex_argument(std::string_view arg, std::shared_ptr<const std::string> file, uint32_t index,
                   const EnvLookup& env, Diagnostics& diags) {
  Token tok;
  Cursor cur(arg, file, index);
  tok.loc = cur.loc();
  while (!cur.done()) {
    if (cur.peek() == '\0') {
      diags.error(cur.loc(), "unexpected NUL byte in an argument");
      break;
    }
    if (cur.peek() == '$') {
      substitute(cur, tok.text, env, diags);
    } else {
      tok.text += cur.next();
    }
    if (tok.text.size() > kMaxTokenBytes) {
      diags.error(tok.loc, "argument longer than 1 MiB");
      break;
    }
  }
  // An argument that needed no quoting in a file is an ordinary word; one containing white space
  // can only be an option's argument, never an option.
  for (char c : tok.text)
    if (is_space(c)) tok.quoted = true;
  return tok;
}

}  // namespace qvm::config
