#include "vdev/api/char_endpoints.hpp"

#include <fcntl.h>
#include <signal.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <thread>

#include "base/log.hpp"
#include "base/safe_open.hpp"
#include "base/spawn.hpp"

namespace qvm::vdev {
namespace {

// Never through a symlink another user planted (base/safe_open.hpp): a hostdev file is read into
// the guest or written with qvm's privileges.
Result<UniqueFd> open_path(const std::string& path, int flags) {
  auto fd = open_no_foreign_symlink(path, flags);
  if (!fd) return make_error("hostdev: " + fd.error().message);
  return fd;
}

}  // namespace

ChildProcess::~ChildProcess() {
  int status = 0;
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(2);
  while (::waitpid(pid_, &status, WNOHANG) == 0) {
    if (std::chrono::steady_clock::now() >= deadline) {
      ::kill(pid_, SIGKILL);
      ::waitpid(pid_, &status, 0);
      return;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
}

Result<std::vector<std::string>> split_command(std::string_view command) {
  std::vector<std::string> words;
  std::string cur;
  bool in_word = false;
  char quote = 0;
  for (char c : command) {
    if (quote) {
      if (c == quote)
        quote = 0;
      else
        cur.push_back(c);
    } else if (c == '\'' || c == '"') {
      quote = c;
      in_word = true;
    } else if (c == ' ' || c == '\t') {
      if (in_word) words.push_back(std::move(cur));
      cur.clear();
      in_word = false;
    } else {
      cur.push_back(c);
      in_word = true;
    }
  }
  if (quote)
    return make_error("hostdev: unclosed quote in the command '" + std::string(command) + "'");
  if (in_word) words.push_back(std::move(cur));
  if (words.empty()) return make_error("hostdev: '|' names no command");
  return words;
}

Result<CharEndpoints> open_char_endpoints(const std::vector<std::string>& hostdevs, bool dryrun) {
  CharEndpoints ep;
  for (const auto& h : hostdevs) {
    char dir = 0;
    std::string path = h;
    if (!path.empty() && (path[0] == '<' || path[0] == '>')) {
      dir = path[0];
      path = path.substr(1);
    }
    if (!path.empty() && path[0] == '|') {
      const auto words = QVM_TRY(split_command(path.substr(1)));
      if (dryrun) {
        ep.description += " " + h + " (started when the VM runs)";
        continue;
      }
      // Both ways: one socket for the command's stdin and stdout; one way: a pipe.
      int fds[2];
      UniqueFd ours, theirs;
      if (dir == 0) {
        if (::socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, fds) != 0)
          return Error::from_errno("hostdev: socketpair", errno);
        ours.reset(fds[0]);
        theirs.reset(fds[1]);
      } else {
        if (::pipe2(fds, O_CLOEXEC) != 0) return Error::from_errno("hostdev: pipe", errno);
        ours.reset(dir == '>' ? fds[1] : fds[0]);
        theirs.reset(dir == '>' ? fds[0] : fds[1]);
      }
      auto started = spawn_command(
          {words[0], words, {}, dir == '<' ? -1 : theirs.get(), dir == '>' ? -1 : theirs.get()});
      if (!started) return make_error("hostdev: " + started.error().message);
      const pid_t pid = *started;
      ep.children.push_back(std::make_unique<ChildProcess>(pid));
      if (dir != '>') ep.in = ours.get();
      if (dir != '<') ep.out = ours.get();
      ep.description += " " + h + " (pid " + std::to_string(pid) + ")";
      ep.owned.push_back(std::move(ours));
      continue;
    }
    if (path == "-") {
      if (dir != '>') ep.in = STDIN_FILENO;
      if (dir != '<') ep.out = STDOUT_FILENO;
      ep.description += " stdio";
      continue;
    }
    if (path == "pty" && dir == 0 && dryrun) {
      ep.description += " pty (created when the VM runs)";
      continue;
    }
    if (path == "pty" && dir == 0) {
      UniqueFd m(::posix_openpt(O_RDWR | O_NOCTTY | O_CLOEXEC));
      if (!m || ::grantpt(m.get()) != 0 || ::unlockpt(m.get()) != 0)
        return Error::from_errno("cannot create a pseudo-terminal", errno);
      const char* name = ::ptsname(m.get());
      log_info("serial port on pseudo-terminal %s", name ? name : "?");
      ep.in = ep.out = m.get();
      ep.description += std::string(" pty:") + (name ? name : "?");
      ep.owned.push_back(std::move(m));
      continue;
    }
    int flags = dir == '<'   ? O_RDONLY
                : dir == '>' ? (O_WRONLY | O_CREAT | O_APPEND)
                             : (O_RDWR | O_CREAT);
    struct stat st {};
    if (dryrun && (flags & O_CREAT) && ::lstat(path.c_str(), &st) != 0) {
      if (errno != ENOENT) return Error::from_errno("hostdev: " + path, errno);
      const auto slash = path.rfind('/');
      const std::string parent = slash == std::string::npos ? "."
                                 : slash == 0               ? "/"
                                                            : path.substr(0, slash);
      if (::access(parent.c_str(), W_OK | X_OK) != 0)
        return Error::from_errno("hostdev: cannot create " + path + " in " + parent, errno);
      ep.description += " " + h + " (created when the VM runs)";
      continue;
    }
    if (dryrun) flags &= ~O_CREAT;
    UniqueFd fd = QVM_TRY(open_path(path, flags));
    if (dir != '>') ep.in = fd.get();
    if (dir != '<') ep.out = fd.get();
    ep.description += " " + h;
    ep.owned.push_back(std::move(fd));
  }
  return ep;
}

}  // namespace qvm::vdev
