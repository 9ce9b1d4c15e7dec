#include "base/result.hpp"

#include <fcntl.h>
#include <gtest/gtest.h>
#include <unistd.h>

#include "base/unique_fd.hpp"

namespace qvm {
namespace {

Result<int> half(int x) {
  if (x % 2 != 0) return make_error("odd");
  return x / 2;
}

Result<int> quarter(int x) {
  int h = QVM_TRY(half(x));
  return QVM_TRY(half(h));
}

Status check_even(int x) {
  QVM_TRY(half(x));
  return {};
}

TEST(Result, ValueAndError) {
  auto r = half(4);
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(*r, 2);
  auto e = half(3);
  ASSERT_FALSE(e.ok());
  EXPECT_EQ(e.error().message, "odd");
}

TEST(Result, TryPropagates) {
  EXPECT_EQ(*quarter(8), 2);
  EXPECT_FALSE(quarter(6).ok());  // 6 -> 3 -> odd
  EXPECT_EQ(quarter(6).error().message, "odd");
  EXPECT_TRUE(check_even(2).ok());
  EXPECT_FALSE(check_even(1).ok());
}

TEST(Result, FromErrno) {
  Error e = Error::from_errno("open x", ENOENT);
  EXPECT_EQ(e.sys_errno, ENOENT);
  EXPECT_NE(e.message.find("open x: "), std::string::npos);
}

TEST(UniqueFd, ClosesOnceAndMoves) {
  int raw = ::open("/dev/null", O_RDONLY);
  ASSERT_GE(raw, 0);
  {
    UniqueFd a(raw);
    UniqueFd b(std::move(a));
    EXPECT_FALSE(a.valid());
    EXPECT_EQ(b.get(), raw);
  }
  EXPECT_EQ(::fcntl(raw, F_GETFD), -1);  // closed
}

}  // namespace
}  // namespace qvm
