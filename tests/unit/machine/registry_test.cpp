// The two explicit lists of vdev types agree: every built-in factory (vdev/api/registry.cpp) has
// its schema (vdev/catalog.cpp), and every schema without a factory is a type this qvm refuses
// to start ("not implemented yet", listed here so a new one is a deliberate change).
#include <gtest/gtest.h>

#include <set>
#include <string>

#include "vdev/api/factories.hpp"
#include "vdev/catalog.hpp"

namespace qvm::vdev {
namespace {

TEST(VdevRegistry, EveryFactoryHasASchemaAndEverySchemaAFactoryOrAReason) {
  std::set<std::string> factories;
  for (const VdevFactory* f : builtin_factories()) {
    EXPECT_NE(find_schema(f->type), nullptr) << f->type;
    EXPECT_TRUE(factories.insert(std::string(f->type)).second) << "twice: " << f->type;
    EXPECT_EQ(find_factory(f->type), f);
  }
  const std::set<std::string> not_built = {};
  for (const auto& s : builtin_schemas()) {
    const bool built = factories.count(s.type) != 0;
    EXPECT_NE(built, not_built.count(s.type) != 0) << s.type;
  }
}

}  // namespace
}  // namespace qvm::vdev
