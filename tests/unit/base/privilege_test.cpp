#include "base/privilege.hpp"

#include <gtest/gtest.h>

namespace qvm {
namespace {

// Debian's base system has nobody (65534) and nogroup (65534); root is refused.
TEST(Privilege, ResolvesNamesAndNumbers) {
  auto a = resolve_identity("nobody");
  ASSERT_TRUE(a.ok()) << a.error().message;
  EXPECT_EQ(a->uid, 65534u);
  EXPECT_EQ(a->gid, 65534u);
  EXPECT_EQ(a->user, "nobody");
  auto b = resolve_identity("65534:nogroup");
  ASSERT_TRUE(b.ok()) << b.error().message;
  EXPECT_EQ(b->uid, 65534u);
  EXPECT_EQ(b->gid, 65534u);
  auto c = resolve_identity("40000:40001");  // no passwd entry: both numbers given
  ASSERT_TRUE(c.ok()) << c.error().message;
  EXPECT_EQ(c->uid, 40000u);
  EXPECT_EQ(c->gid, 40001u);
  EXPECT_TRUE(c->user.empty());
}

TEST(Privilege, RefusesWhatItCannotHonour) {
  EXPECT_FALSE(resolve_identity("root").ok());
  EXPECT_FALSE(resolve_identity("0:0").ok());
  EXPECT_FALSE(resolve_identity("no-such-user-qvm").ok());
  EXPECT_FALSE(resolve_identity("nobody:no-such-group-qvm").ok());
  EXPECT_FALSE(resolve_identity("40000").ok());  // no passwd entry and no group
  EXPECT_FALSE(resolve_identity(":1").ok());
  EXPECT_FALSE(resolve_identity("1:").ok());
}

}  // namespace
}  // namespace qvm
