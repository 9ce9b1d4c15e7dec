#include "config/lexer.hpp"

#include <gtest/gtest.h>

namespace qvm::config {
namespace {

struct Lexed {
  std::vector<Token> toks;
  Diagnostics diags;
};

Lexed lex(std::string_view text, std::map<std::string, std::string> env = {}) {
  Lexed l;
  EnvLookup e = [env](std::string_view n) -> std::optional<std::string> {
    auto it = env.find(std::string(n));
    if (it == env.end()) return std::nullopt;
    return it->second;
  };
  l.toks = lex_file(text, std::make_shared<const std::string>("f"), e, l.diags);
  return l;
}

std::vector<std::string> texts(const Lexed& l) {
  std::vector<std::string> t;
  for (const auto& k : l.toks) t.push_back(k.text);
  return t;
}

TEST(Lexer, WhitespaceAndNewlinesSeparateTokens) {
  auto l = lex("cpu sched 8\n\tram\r\n32m  ");
  EXPECT_EQ(texts(l), (std::vector<std::string>{"cpu", "sched", "8", "ram", "32m"}));
  EXPECT_FALSE(l.diags.has_errors());
}

TEST(Lexer, CommentsRunToEndOfLine) {
  auto l = lex("# a comment\nram 1m # trailing\n#last");
  EXPECT_EQ(texts(l), (std::vector<std::string>{"ram", "1m"}));
}

TEST(Lexer, HashEndsAWord) {
  auto l = lex("ram#x\n1m");
  EXPECT_EQ(texts(l), (std::vector<std::string>{"ram", "1m"}));
}

TEST(Lexer, LocationsAreLineAndColumn) {
  auto l = lex("ram 1m\n  cpu");
  ASSERT_EQ(l.toks.size(), 3u);
  EXPECT_EQ(l.toks[1].loc.str(), "f:1:5");
  EXPECT_EQ(l.toks[2].loc.str(), "f:2:3");
}

TEST(Lexer, QuotesKeepSpacesAndNewlines) {
  auto l = lex("cmdline \"console=ttyS0 root=/dev/vda\nquiet\" x");
  ASSERT_EQ(l.toks.size(), 3u);
  EXPECT_EQ(l.toks[1].text, "console=ttyS0 root=/dev/vda\nquiet");
  EXPECT_TRUE(l.toks[1].quoted);
  EXPECT_FALSE(l.toks[0].quoted);
  EXPECT_EQ(l.toks[2].loc.line, 2u);
}

TEST(Lexer, QuotedHashIsNotAComment) {
  auto l = lex("cmdline \"a # b\"");
  ASSERT_EQ(l.toks.size(), 2u);
  EXPECT_EQ(l.toks[1].text, "a # b");
}

TEST(Lexer, MixedQuotedWord) {
  auto l = lex("hostdev >\"|gzip > x\"");
  ASSERT_EQ(l.toks.size(), 2u);
  EXPECT_EQ(l.toks[1].text, ">|gzip > x");
}

TEST(Lexer, EscapesInsideQuotes) {
  auto l = lex(R"(x "a\"b\\c\d")");
  ASSERT_EQ(l.toks.size(), 2u);
  EXPECT_EQ(l.toks[1].text, R"(a"b\c\d)");
}

TEST(Lexer, EmptyQuotedStringIsAToken) {
  auto l = lex("cmdline \"\"");
  ASSERT_EQ(l.toks.size(), 2u);
  EXPECT_EQ(l.toks[1].text, "");
  EXPECT_TRUE(l.toks[1].quoted);
}

TEST(Lexer, UnterminatedQuoteIsAnErrorAtTheQuote) {
  auto l = lex("ram 1m\ncmdline \"abc");
  ASSERT_TRUE(l.diags.has_errors());
  EXPECT_EQ(l.diags.first_error(),
            "f:2:9: error: unterminated quoted string (expected a closing '\"')");
}

TEST(Lexer, NulByteIsAnError) {
  auto l = lex(std::string_view("ram\0x", 5));
  ASSERT_TRUE(l.diags.has_errors());
  EXPECT_NE(l.diags.first_error().find("NUL"), std::string::npos);
}

TEST(Substitution, Basic) {
  auto l = lex("load ${DIR}/bzImage", {{"DIR", "/vm"}});
  EXPECT_EQ(texts(l), (std::vector<std::string>{"load", "/vm/bzImage"}));
}

TEST(Substitution, DefaultWhenUnsetOrEmpty) {
  auto l = lex("ram ${RAM:-64m} x${E:-d}", {{"E", ""}});
  EXPECT_EQ(texts(l), (std::vector<std::string>{"ram", "64m", "xd"}));
  EXPECT_FALSE(l.diags.has_errors());
}

TEST(Substitution, DollarDollarIsLiteral) {
  auto l = lex("x $$HOME \"$${A}\" a$b", {{"A", "no"}});
  EXPECT_EQ(texts(l), (std::vector<std::string>{"x", "$HOME", "${A}", "a$b"}));
}

TEST(Substitution, InsideQuotes) {
  auto l = lex("cmdline \"root=${ROOT} quiet\"", {{"ROOT", "/dev/vda"}});
  ASSERT_EQ(l.toks.size(), 2u);
  EXPECT_EQ(l.toks[1].text, "root=/dev/vda quiet");
}

TEST(Substitution, ValueWithSpacesStaysOneToken) {
  auto l = lex("name ${N}", {{"N", "a b"}});
  ASSERT_EQ(l.toks.size(), 2u);
  EXPECT_EQ(l.toks[1].text, "a b");
}

TEST(Substitution, UnsetWithoutDefaultIsAnErrorAtItsLocation) {
  auto l = lex("ram 1m\n  load ${KERNEL}");
  ASSERT_TRUE(l.diags.has_errors());
  EXPECT_EQ(l.diags.first_error(),
            "f:2:8: error: '${KERNEL}': environment variable KERNEL is not set (use "
            "${KERNEL:-default} to give a default)");
}

TEST(Substitution, NulInDefaultIsAnError) {
  auto l = lex(std::string_view("load ${K:-a\0b}", 15));
  EXPECT_TRUE(l.diags.has_errors());
}

TEST(Substitution, Malformed) {
  EXPECT_TRUE(lex("x ${").diags.has_errors());
  EXPECT_TRUE(lex("x ${A").diags.has_errors());
  EXPECT_TRUE(lex("x ${1A}").diags.has_errors());
  EXPECT_TRUE(lex("x ${A:-b").diags.has_errors());
}

TEST(LexArgument, OneArgumentIsOneToken) {
  Diagnostics d;
  EnvLookup env = [](std::string_view) -> std::optional<std::string> { return "v"; };
  Token t = lex_argument("console=ttyS0 x=${A}",
                         std::make_shared<const std::string>("<command line>"), 3, env, d);
  EXPECT_EQ(t.text, "console=ttyS0 x=v");
  EXPECT_TRUE(t.quoted);  // contains a space: only usable as an argument
  EXPECT_EQ(t.loc.str(), "<command line>:3:1");
}

TEST(LexArgument, NulIsAnError) {
  Diagnostics d;
  lex_argument(std::string_view("a\0b", 3), std::make_shared<const std::string>("<command line>"),
               1, {}, d);
  EXPECT_TRUE(d.has_errors());  // argv cannot hold NUL; fuzzed arguments can
}

}  // namespace
}  // namespace qvm::config
