// Lexer for the qvm configuration language (spec §2.2, design §5):
//  - `#` starts a comment to the end of the line (outside quotes);
//  - tokens are separated by white space; line breaks carry no meaning;
//  - double quotes group text with spaces (newlines allowed inside); `\"` and `\\` escape;
//  - textual substitution `${NAME}`, `${NAME:-default}`, `$$` (a literal `$`) is applied inside
//    and outside quotes. The substituted text never creates new tokens. A `$` followed by
//    anything else stays literal.
#pragma once

#include <string>
#include <string_view>
#include <vector>

#include "config/diagnostics.hpp"
#include "config/source.hpp"

namespace qvm::config {

struct Token {
  std::string text;
  SrcLoc loc;
  bool quoted = false;  // contained a quoted part: never an option keyword or include
};

// Splits file text into tokens. Errors (unterminated quote, undefined variable, NUL byte) go to
// `diags`; the lexer then continues after the bad token where it can.
std::vector<Token> lex_file(std::string_view text, std::shared_ptr<const std::string> file,
                            const EnvLookup& env, Diagnostics& diags);

// One command-line argument is one token (the shell already split and unquoted it);
// substitution still applies.
Token lex_argument(std::string_view arg, std::shared_ptr<const std::string> file, uint32_t index,
                   const EnvLookup& env, Diagnostics& diags);

}  // namespace qvm::config
