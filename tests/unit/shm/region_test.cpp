// Region files (shm/region.hpp): names, creation, holders, verification of what is found on disk.
#include "shm/region.hpp"

#include <fcntl.h>
#include <gtest/gtest.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstdlib>
#include <string>

#include "temp_dir.hpp"

namespace qvm::shm {
namespace {

using test::TempDir;

bool exists(const std::string& p) {
  struct stat st {};
  return ::lstat(p.c_str(), &st) == 0;
}

TEST(ShmRegion, FileNamesEncodeEveryByteOutsideAPortableSet) {
  EXPECT_EQ(region_file_name("abc_D-9"), "r.abc_D-9");
  EXPECT_EQ(region_file_name("../x"), "r.%2e%2e%2fx");
  EXPECT_EQ(region_file_name("a b.c"), "r.a%20b%2ec");
  EXPECT_EQ(region_file_name("\xff"), "r.%ff");
}

TEST(ShmRegion, NamesHaveOneTo31BytesAndNoNul) {
  EXPECT_TRUE(check_name("x"));
  EXPECT_TRUE(check_name(std::string(31, 'a')));
  EXPECT_FALSE(check_name(""));
  EXPECT_FALSE(check_name(std::string(32, 'a')));
  EXPECT_FALSE(check_name(std::string("a\0b", 3)));
  EXPECT_EQ(gss_from(check_name("").error()), Gss::kIllegalName);
}

TEST(ShmRegion, StatusNamesFollowTheSpecsOrder) {
  EXPECT_EQ(static_cast<uint32_t>(Gss::kOk), 0u);
  EXPECT_EQ(static_cast<uint32_t>(Gss::kDoesNotExist), 6u);
  EXPECT_STREQ(gss_name(Gss::kClientMax), "GSS_CLIENT_MAX");
}

TEST(ShmRegion, AHolderKeepsTheRegionAndTheLastOneRemovesIt) {
  TempDir d;
  auto h = Holder::create(d.path(), "held", 3);
  ASSERT_TRUE(h) << h.error().message;
  EXPECT_EQ((*h)->pages(), 3u);
  const std::string file = d.path() + "/" + region_file_name("held");
  ASSERT_TRUE(exists(file));
  struct stat st {};
  ASSERT_EQ(::stat(file.c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0600u);
  EXPECT_EQ(static_cast<uint64_t>(st.st_size), 4 * kPage);
  struct stat ds {};
  ASSERT_EQ(::stat(d.path().c_str(), &ds), 0);
  EXPECT_EQ(ds.st_mode & 0777, 0700u);
  {
    auto h2 = Holder::create(d.path(), "held", 9);  // exists: its size stays
    ASSERT_TRUE(h2);
    EXPECT_EQ((*h2)->pages(), 3u);
  }
  EXPECT_TRUE(exists(file));  // the first holder still holds it
  h->reset();
  EXPECT_FALSE(exists(file));
}

TEST(ShmRegion, AttachOnlyOfAMissingRegionIsDoesNotExist) {
  TempDir d;
  auto r = RegionFile::open_locked(d.path(), "none", 0, RegionFile::Mode::kAttachOnly, 0600);
  ASSERT_FALSE(r);
  EXPECT_EQ(gss_from(r.error()), Gss::kDoesNotExist);
  auto z = RegionFile::open_locked(d.path(), "none", 0, RegionFile::Mode::kCreateOrAttach, 0600);
  ASSERT_FALSE(z);
  EXPECT_EQ(gss_from(z.error()), Gss::kNoMem);
  auto big = RegionFile::open_locked(d.path(), "big", kMaxPages + 1,
                                     RegionFile::Mode::kCreateOrAttach, 0600);
  ASSERT_FALSE(big);
  EXPECT_EQ(gss_from(big.error()), Gss::kNoMem);
}

TEST(ShmRegion, AForeignOrCorruptFileIsRefused) {
  TempDir d;
  ASSERT_TRUE(Holder::create(d.path(), "seed", 1));  // creates the directory (and removes seed)
  const std::string file = d.path() + "/" + region_file_name("bad");
  const int fd = ::open(file.c_str(), O_CREAT | O_WRONLY, 0600);
  ASSERT_GE(fd, 0);
  ASSERT_EQ(::ftruncate(fd, 2 * kPage), 0);  // right size, no header
  ::close(fd);
  auto r = RegionFile::open_locked(d.path(), "bad", 1, RegionFile::Mode::kCreateOrAttach, 0600);
  ASSERT_FALSE(r);
  EXPECT_NE(r.error().message.find("not a qvm region"), std::string::npos) << r.error().message;
  // A symbolic link in its place is not followed.
  ::unlink(file.c_str());
  ASSERT_EQ(::symlink("/etc/passwd", file.c_str()), 0);
  auto s = RegionFile::open_locked(d.path(), "bad", 1, RegionFile::Mode::kCreateOrAttach, 0600);
  EXPECT_FALSE(s);
}

TEST(ShmRegion, ADirectoryOthersCanWriteIsRefused) {
  TempDir d;
  ASSERT_EQ(::mkdir(d.path().c_str(), 0777), 0);
  ASSERT_EQ(::chmod(d.path().c_str(), 0777), 0);
  auto h = Holder::create(d.path(), "x", 1);
  ASSERT_FALSE(h);
  EXPECT_NE(h.error().message.find("writable by others"), std::string::npos) << h.error().message;
}

}  // namespace
}  // namespace qvm::shm
