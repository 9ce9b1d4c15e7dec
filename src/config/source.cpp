#include "config/source.hpp"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <climits>
#include <cstdlib>

#include "base/unique_fd.hpp"

namespace qvm::config {

std::string SrcLoc::str() const {
  std::string s = file ? *file : std::string("<unknown>");
  s += ':';
  s += std::to_string(line);
  s += ':';
  s += std::to_string(col);
  return s;
}

Result<std::string> FileSourceLoader::canonical(const std::string& path) {
  char buf[PATH_MAX];
  if (::realpath(path.c_str(), buf) == nullptr)
    return Error::from_errno("cannot open '" + path + "'", errno);
  return std::string(buf);
}

Result<std::string> FileSourceLoader::read(const std::string& path) {
  // O_NONBLOCK: opening a FIFO (or a device) must not wait for a writer; only regular files are
  // read (for which the flag changes nothing).
  UniqueFd fd(::open(path.c_str(), O_RDONLY | O_CLOEXEC | O_NONBLOCK));
  if (!fd) return Error::from_errno("cannot open '" + path + "'", errno);
  struct stat st {};
  if (::fstat(fd.get(), &st) != 0) return Error::from_errno("cannot stat '" + path + "'", errno);
  if (!S_ISREG(st.st_mode)) return make_error("'" + path + "' is not a regular file");
  if (static_cast<uint64_t>(st.st_size) > kMaxFileBytes)
    return make_error("'" + path + "' is larger than 16 MiB; not a configuration file");
  std::string text;
  char chunk[65536];
  for (;;) {
    ssize_t n = ::read(fd.get(), chunk, sizeof chunk);
    if (n < 0) {
      if (errno == EINTR) continue;
      return Error::from_errno("cannot read '" + path + "'", errno);
    }
    if (n == 0) break;
    text.append(chunk, static_cast<size_t>(n));
    if (text.size() > kMaxFileBytes) return make_error("'" + path + "' is larger than 16 MiB");
  }
  return text;
}

EnvLookup process_environment() {
  return [](std::string_view name) -> std::optional<std::string> {
    std::string n(name);
    const char* v = std::getenv(n.c_str());
    if (v == nullptr) return std::nullopt;
    return std::string(v);
  };
}

}  // namespace qvm::config
