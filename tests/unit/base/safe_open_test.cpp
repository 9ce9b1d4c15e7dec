// base/safe_open: symlinks planted by another user are not followed; dump directories are checked.
#include "base/safe_open.hpp"

#include <fcntl.h>
#include <gtest/gtest.h>
#include <sys/stat.h>
#include <unistd.h>

#include <string>

namespace qvm {
namespace {

class SafeOpen : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = "/tmp/qvm-safe-XXXXXX";
    ASSERT_NE(::mkdtemp(dir_.data()), nullptr);
    target_ = dir_ + "/target";
    UniqueFd t(::open(target_.c_str(), O_WRONLY | O_CREAT, 0600));
    ASSERT_TRUE(t);
  }
  void TearDown() override {
    // Best effort: the files this test may have made.
    for (const char* n : {"/target", "/link", "/out", "/sub/A.dat", "/sub"})
      ::remove((dir_ + n).c_str());
    ::rmdir(dir_.c_str());
  }
  std::string dir_, target_;
};

TEST_F(SafeOpen, OwnSymlinksAreFollowedForeignOnesNot) {
  const std::string link = dir_ + "/link";
  ASSERT_EQ(::symlink(target_.c_str(), link.c_str()), 0);
  auto own = open_no_foreign_symlink(link, O_WRONLY | O_APPEND);
  ASSERT_TRUE(own) << own.error().message;  // owned by this user (or root)
  if (::geteuid() != 0) GTEST_SKIP() << "needs root to give the link to another user";
  ASSERT_EQ(::lchown(link.c_str(), 4242, 4242), 0);
  auto foreign = open_no_foreign_symlink(link, O_WRONLY | O_APPEND);
  ASSERT_FALSE(foreign);
  EXPECT_NE(foreign.error().message.find("owned by another user (uid 4242)"), std::string::npos)
      << foreign.error().message;
}

TEST_F(SafeOpen, PlainFilesOpenAndMissingOnesAreCreated) {
  auto out = open_no_foreign_symlink(dir_ + "/out", O_WRONLY | O_CREAT);
  ASSERT_TRUE(out) << out.error().message;
  struct stat st {};
  EXPECT_EQ(::stat((dir_ + "/out").c_str(), &st), 0);
}

TEST_F(SafeOpen, OutputDirectoriesAreCheckedAndFilesInThemNeverFollowLinks) {
  const std::string sub = dir_ + "/sub";
  auto d = open_output_dir(sub);  // created
  ASSERT_TRUE(d) << d.error().message;
  auto f = open_in_dir(d->get(), "A.dat");
  ASSERT_TRUE(f) << f.error().message;
  ASSERT_TRUE(write_all(f->get(), "abc", 3, "A.dat"));
  EXPECT_FALSE(open_in_dir(d->get(), "../escape"));
  // A link inside the directory is not followed, even our own.
  ASSERT_EQ(::symlink(target_.c_str(), (sub + "/L.dat").c_str()), 0);
  EXPECT_FALSE(open_in_dir(d->get(), "L.dat"));
  ::unlink((sub + "/L.dat").c_str());
  // A world-writable directory without the sticky bit is refused.
  ASSERT_EQ(::chmod(sub.c_str(), 0777), 0);
  EXPECT_FALSE(open_output_dir(sub));
  ASSERT_EQ(::chmod(sub.c_str(), 01777), 0);
  EXPECT_TRUE(open_output_dir(sub));
  ::chmod(sub.c_str(), 0755);
}

}  // namespace
}  // namespace qvm
