#include <cstring>

#include "base/result.hpp"

namespace qvm {

Error Error::from_errno(std::string what, int err) {
  what += ": ";
  what += std::strerror(err);
  return Error{std::move(what), err};
}

}  // namespace qvm
