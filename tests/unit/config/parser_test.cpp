// Grammar rules of spec §2: entries, contexts, includes, ordering, diagnostics.
#include "config/parser.hpp"

#include <gtest/gtest.h>

#include "test_util.hpp"

namespace qvm::config {
namespace {

using test::errors;
using test::kMem;
using test::MemLoader;
using test::parse_args;
using test::parse_text;

TEST(Parser, MinimalConfig) {
  auto o = parse_text("system g ram 0,0xa0000 ram 1m,127m");
  ASSERT_TRUE(o.ok()) << errors(o);
  EXPECT_EQ(*o.config.system, "g");
  ASSERT_EQ(o.config.memory.size(), 2u);
  EXPECT_EQ(o.config.cpu_count(), 1u);
}

TEST(Parser, LineBreaksCarryNoMeaning) {
  auto a = parse_text(std::string(kMem) + "cpu sched 8 ram 32m");
  auto b = parse_text(std::string(kMem) + "cpu\nram\n32m\nsched\n8");
  ASSERT_TRUE(a.ok()) << errors(a);
  ASSERT_TRUE(b.ok()) << errors(b);
  EXPECT_EQ(a.config.cpus[0].sched->priority, 8u);
  EXPECT_EQ(b.config.cpus[0].sched->priority, 8u);
  EXPECT_EQ(a.config.memory.size(), 3u);
  EXPECT_EQ(b.config.memory.size(), 3u);
}

TEST(Parser, LastValueWinsInAContext) {
  auto o = parse_text(std::string(kMem) + "cpu sched 8 sched 6");
  ASSERT_TRUE(o.ok()) << errors(o);
  EXPECT_EQ(o.config.cpus[0].sched->priority, 6u);
}

TEST(Parser, EachCpuAddsAVcpu) {
  auto o = parse_text(std::string(kMem) + "cpu cpu runmask 1 cpu");
  ASSERT_TRUE(o.ok()) << errors(o);
  EXPECT_EQ(o.config.cpu_count(), 3u);
  EXPECT_TRUE(o.config.cpus[0].runmask.empty());
  EXPECT_EQ(o.config.cpus[1].runmask, std::vector<uint32_t>{1});
}

TEST(Parser, ContextsEndAtTheNextContextOption) {
  auto o = parse_text(std::string(kMem) + "cpu vdev testdev sched 5");
  EXPECT_FALSE(o.ok());  // sched is not a testdev option
  EXPECT_NE(errors(o).find("unknown option 'sched' for vdev testdev"), std::string::npos)
      << errors(o);
}

TEST(Parser, ContextsDoNotSpanFiles) {
  MemLoader fs;
  fs.files["/cwd/a.qvmconf"] = std::string(kMem) + "cpu";
  auto o = parse_args({"@a.qvmconf", "sched", "5"}, &fs);
  ASSERT_FALSE(o.ok());
  EXPECT_NE(errors(o).find("<command line>:2:1: error: unknown option 'sched'"), std::string::npos)
      << errors(o);
}

TEST(Parser, ArgumentMustBeInTheSameFile) {
  MemLoader fs;
  fs.files["/cwd/a.qvmconf"] = std::string(kMem) + "cmdline";
  auto o = parse_args({"@a.qvmconf", "\"x\""}, &fs);
  ASSERT_FALSE(o.ok());
  EXPECT_NE(errors(o).find("a.qvmconf:1:26: error: option 'cmdline' needs an argument"),
            std::string::npos)
      << errors(o);
}

TEST(Parser, CommandLineEntriesUseTheSameSyntax) {
  MemLoader fs;
  fs.files["/cwd/g.qvmconf"] = std::string("system g ") + kMem;
  auto o = parse_args({"@g.qvmconf", "set", "fdt-dump-file", "/tmp/fdt.dtb", "dryrun"}, &fs);
  ASSERT_TRUE(o.ok()) << errors(o);
  EXPECT_TRUE(o.config.dryrun);
  EXPECT_EQ(*o.config.var("fdt-dump-file"), "/tmp/fdt.dtb");
}

TEST(Parser, CommandLineArgumentWithSpacesIsOneValue) {
  auto o = parse_args({"ram", "64m", "cmdline", "console=ttyS0 quiet"});
  ASSERT_TRUE(o.ok()) << errors(o);
  EXPECT_EQ(*o.config.cmdline, "console=ttyS0 quiet");
}

TEST(Parser, IncludesNestAndResolveRelativeToTheIncludingFile) {
  MemLoader fs;
  fs.files["/cwd/vm/main.qvmconf"] = "system g @parts/mem.qvmconf @parts/dev.qvmconf";
  fs.files["/cwd/vm/parts/mem.qvmconf"] = kMem;
  fs.files["/cwd/vm/parts/dev.qvmconf"] = "vdev testdev @../extra.qvmconf";
  fs.files["/cwd/vm/extra.qvmconf"] = "cpu cpu";
  auto o = parse_args({"@vm/main.qvmconf"}, &fs);
  ASSERT_TRUE(o.ok()) << errors(o);
  EXPECT_EQ(o.config.memory.size(), 2u);
  EXPECT_EQ(o.config.vdevs.size(), 1u);
  EXPECT_EQ(o.config.cpu_count(), 2u);
}

TEST(Parser, IncludeCycleIsReported) {
  MemLoader fs;
  fs.files["/cwd/a.qvmconf"] = std::string(kMem) + "@b.qvmconf";
  fs.files["/cwd/b.qvmconf"] = "cpu @a.qvmconf";
  auto o = parse_args({"@a.qvmconf"}, &fs);
  ASSERT_FALSE(o.ok());
  EXPECT_NE(
      errors(o).find("b.qvmconf:1:5: error: include cycle: /cwd/a.qvmconf -> /cwd/b.qvmconf -> "
                     "/cwd/a.qvmconf"),
      std::string::npos)
      << errors(o);
}

TEST(Parser, AnIncludeGraphThatFansOutIsStoppedByTheBudget) {
  // f0 includes f1 twice, f1 includes f2 twice, ... : 2^31 includes without a total budget.
  MemLoader fs;
  for (int i = 0; i < 31; ++i)
    fs.files["/cwd/f" + std::to_string(i) + ".qvmconf"] =
        "@f" + std::to_string(i + 1) + ".qvmconf @f" + std::to_string(i + 1) + ".qvmconf";
  fs.files["/cwd/f31.qvmconf"] = "cpu";
  auto o = parse_args({"@f0.qvmconf"}, &fs);
  ASSERT_FALSE(o.ok());
  EXPECT_NE(errors(o).find("more than 1024 includes in all"), std::string::npos) << errors(o);
  // Reported once (the second error is the missing RAM of this test configuration).
  EXPECT_EQ(o.diags.error_count(), 2u) << errors(o);
}

TEST(Parser, SelfIncludeIsACycle) {
  MemLoader fs;
  fs.files["/cwd/a.qvmconf"] = "@a.qvmconf";
  auto o = parse_args({"@a.qvmconf"}, &fs);
  EXPECT_NE(errors(o).find("include cycle"), std::string::npos);
}

TEST(Parser, MissingIncludeNamesTheFile) {
  MemLoader fs;
  auto o = parse_args({"ram", "1m", "@nope.qvmconf"}, &fs);
  ASSERT_FALSE(o.ok());
  EXPECT_NE(errors(o).find("<command line>:3:1: error: cannot open 'nope.qvmconf'"),
            std::string::npos)
      << errors(o);
}

TEST(Parser, SameFileTwiceIsFine) {
  MemLoader fs;
  fs.files["/cwd/c.qvmconf"] = "cpu";
  auto o = parse_args({"ram", "1m", "@c.qvmconf", "@c.qvmconf"}, &fs);
  ASSERT_TRUE(o.ok()) << errors(o);
  EXPECT_EQ(o.config.cpu_count(), 2u);
}

TEST(Parser, SystemMustBeFirst) {
  auto o = parse_text(std::string(kMem) + "system late");
  ASSERT_FALSE(o.ok());
  EXPECT_NE(errors(o).find("t.qvmconf:1:26: error: 'system' must be the first entry"),
            std::string::npos)
      << errors(o);
  EXPECT_FALSE(parse_text(std::string("system a system b ") + kMem).ok());
}

TEST(Parser, MemoryBeforeLoad) {
  auto o = parse_text("load /k ram 1m");
  ASSERT_FALSE(o.ok());
  EXPECT_NE(errors(o).find("t.qvmconf:1:1: error: 'load' before any 'ram' or 'rom'"),
            std::string::npos)
      << errors(o);
}

TEST(Parser, NoMemoryIsAnError) {
  auto o = parse_text("system x cpu");
  ASSERT_FALSE(o.ok());
  EXPECT_NE(errors(o).find("t.qvmconf:1:1: error: no guest memory"), std::string::npos)
      << errors(o);
}

TEST(Parser, SetQuestionNeedsNoMemory) {
  auto o = parse_args({"set", "?"});
  ASSERT_TRUE(o.ok()) << errors(o);
  EXPECT_TRUE(o.config.list_variables);
}

TEST(Parser, UnknownOptionSaysWhatWasExpected) {
  auto o = parse_text(std::string(kMem) + "\nrma 64m");
  ASSERT_FALSE(o.ok());
  std::string e = errors(o);
  EXPECT_NE(e.find("t.qvmconf:2:1: error: unknown option 'rma'; expected one of: system, cpu, ram"),
            std::string::npos)
      << e;
  EXPECT_EQ(o.diags.error_count(), 1u);  // "64m" is skipped, not reported again
}

TEST(Parser, QuotedStringIsNotAnOption) {
  auto o = parse_text(std::string(kMem) + "\"ram\" 1m");
  ASSERT_FALSE(o.ok());
  EXPECT_NE(errors(o).find("expected an option, found the quoted string \"ram\""),
            std::string::npos);
}

TEST(Parser, SeveralErrorsAreAllReported) {
  auto o = parse_text("ram 1x\nram 0,1m\ncpu sched 200\nunsupported foo ignore");
  EXPECT_EQ(o.diags.error_count(), 3u) << errors(o);
}

TEST(Parser, ErrorCountIsBounded) {
  std::string text = kMem;
  for (int i = 0; i < 500; ++i) text += "bad" + std::to_string(i) + " cpu ";
  auto o = parse_text(text);
  EXPECT_EQ(o.diags.error_count(), kMaxErrors);
}

TEST(Parser, IncludeDepthIsBounded) {
  MemLoader fs;
  for (int i = 0; i < 40; ++i)
    fs.files["/cwd/f" + std::to_string(i)] = "@f" + std::to_string(i + 1);
  fs.files["/cwd/f40"] = kMem;
  auto o = parse_args({"@f0"}, &fs);
  EXPECT_NE(errors(o).find("nested more than 32 deep"), std::string::npos);
}

TEST(Parser, SubstitutionOnTheCommandLineAndInFiles) {
  MemLoader fs;
  fs.files["/cwd/g.qvmconf"] = "ram ${RAM:-64m} cmdline \"root=${ROOT}\"";
  auto o = parse_args({"@g.qvmconf", "set", "gdb", "tcp:${PORT}"}, &fs,
                      {{"ROOT", "/dev/vda"}, {"PORT", "1234"}});
  ASSERT_TRUE(o.ok()) << errors(o);
  EXPECT_EQ(o.config.memory[0].size, 64u << 20);
  EXPECT_EQ(*o.config.cmdline, "root=/dev/vda");
  EXPECT_EQ(*o.config.var("gdb"), "tcp:1234");
}

TEST(Parser, UnsetVariableOnTheCommandLine) {
  auto o = parse_args({"ram", "${NOPE}"});
  ASSERT_FALSE(o.ok());
  EXPECT_NE(errors(o).find("<command line>:2:1: error: '${NOPE}'"), std::string::npos) << errors(o);
}

TEST(Parser, BlobTypeMustPrecedeLoad) {
  auto o = parse_text(std::string(kMem) + "initrd cpu");
  EXPECT_NE(errors(o).find("a blob type must be followed by 'load'"), std::string::npos)
      << errors(o);
  o = parse_text(std::string(kMem) + "initrd");
  EXPECT_FALSE(o.ok());
}

}  // namespace
}  // namespace qvm::config
