// vdev mc146818 (spec §6.2.5): its schema and typed options.
#include "config/values.hpp"
#include "vdev/api/schema_util.hpp"
#include "vdev/schemas.hpp"

namespace qvm::vdev {
namespace {

Status check_reg(std::string_view s) {
  auto l = config::parse_number_list(s);
  if (!l || l->size() != 2 || (*l)[0] > 0x7f || (*l)[1] > 0xff)
    return make_error("expected INDEX,VALUE (CMOS index 0-0x7f, value 0-0xff), found '" +
                      std::string(s) + "'");
  return {};
}

Result<Mc146818Options> parse(const config::VdevConfig& v) {
  Mc146818Options o;
  for (const auto& reg : v.all("reg")) {
    QVM_TRY(check_reg(reg));
    auto l = QVM_TRY(config::parse_number_list(reg));
    o.regs.emplace_back(static_cast<uint8_t>(l[0]), static_cast<uint8_t>(l[1]));
  }
  return o;
}

}  // namespace

config::VdevSchema mc146818_schema() {
  using namespace schema;
  return {
      .type = "mc146818",
      .summary = "MC146818 real-time clock and CMOS",
      .options = {repeat(custom("reg", check_reg, "preset a CMOS register", {}, "INDEX,VALUE"))},
      .can_io = true,
      .default_loc = "io:0x70",
      .intr = config::IntrPolicy::kOptional,
      .x86_only = true,
      .parse = typed(&parse)};
}

}  // namespace qvm::vdev
