// Dump destinations (destination.hpp, spec §3.13).
#include "dump/destination.hpp"

#include <fcntl.h>
#include <signal.h>
#include <spawn.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <mutex>
#include <thread>

#include "base/log.hpp"
#include "base/safe_open.hpp"
#include "base/spawn.hpp"

extern char** environ;

namespace qvm::dump {
namespace {

constexpr int kMaxAttempt = 9;  // spec §3.13: -1 ... -9

std::mutex g_strays_mu;
std::vector<pid_t> g_strays;  // dump commands still running after their dump

// An existing directory, checked like every output directory of qvm (base/safe_open.hpp). Unlike
// acpi-dump-dir it is not created: a mistyped `dump` path fails the dump and says so.
Result<UniqueFd> open_dir(const std::string& dir) {
  struct stat st {};
  if (::lstat(dir.c_str(), &st) != 0)
    return Error::from_errno("dump directory '" + dir + "'", errno);
  return open_output_dir(dir);
}

Result<Written> to_directory(const std::string& dir, std::string_view prefix, const std::tm& tm,
                             const CoreInput& in, const WriteOptions& wo) {
  UniqueFd dfd = QVM_TRY(open_dir(dir));
  CreatedFile f = QVM_TRY(create_file(dfd.get(), prefix, tm));
  const std::string path = (!dir.empty() && dir.back() == '/' ? dir : dir + "/") + f.name;
  auto n = write_core(f.fd.get(), in, wo);
  if (!n) {
    // A truncated core would mislead whoever opens it later.
    (void)::unlinkat(dfd.get(), f.name.c_str(), 0);
    return Error{"cannot write '" + path + "': " + n.error().message, n.error().sys_errno};
  }
  return Written{path, *n};
}

// Why a child ended, for messages; empty when it exited with 0.
std::string child_failure(int status) {
  if (WIFEXITED(status))
    return WEXITSTATUS(status) == 0 ? "" : "exited with " + std::to_string(WEXITSTATUS(status));
  if (WIFSIGNALED(status)) return std::string("killed by ") + ::strsignal(WTERMSIG(status));
  return "ended oddly (status " + std::to_string(status) + ")";
}

// A spawned `/bin/sh -c command`: the spawn attributes and file actions live only as long as the
// spawn; the write end of its stdin pipe is returned.
struct Spawned {
  pid_t pid = -1;
  UniqueFd stdin_w;
};

Result<Spawned> spawn_shell(const std::string& command, const std::string& dump_name) {
  int p[2];
  if (::pipe2(p, O_CLOEXEC) != 0) return Error::from_errno("pipe", errno);
  UniqueFd rd(p[0]), wr(p[1]);

  std::vector<std::string> env;
  for (char** e = environ; e && *e; ++e)
    if (std::strncmp(*e, "QVM_DUMP_NAME=", 14) != 0) env.emplace_back(*e);
  env.push_back("QVM_DUMP_NAME=" + dump_name);
  auto started = spawn_command({"/bin/sh", {"sh", "-c", command}, env, rd.get(), -1});
  if (!started)
    return make_error("cannot start /bin/sh -c '" + command + "': " + started.error().message);
  const pid_t pid = *started;
  // Non-blocking: a command that stops reading must not hold the VM (WriteOptions::stall).
  const int fl = ::fcntl(wr.get(), F_GETFL);
  if (fl < 0 || ::fcntl(wr.get(), F_SETFL, fl | O_NONBLOCK) != 0) {
    const int err = errno;
    wr.reset();  // EOF: the shell ends
    Spawned s{pid, {}};
    std::lock_guard lk(g_strays_mu);
    g_strays.push_back(s.pid);
    return Error::from_errno("fcntl on the dump pipe", err);
  }
  return Spawned{pid, std::move(wr)};
}

// Waits for `pid` up to `wait`; false if it is still running (then it joins the strays).
bool reap(pid_t pid, std::chrono::milliseconds wait, int* status) {
  const auto deadline = std::chrono::steady_clock::now() + wait;
  for (;;) {
    const pid_t r = ::waitpid(pid, status, WNOHANG);
    if (r == pid) return true;
    if (r < 0 && errno == EINTR) continue;
    if (r < 0) {  // ECHILD: someone else reaped it; nothing to wait for
      *status = 0;
      return true;
    }
    if (std::chrono::steady_clock::now() >= deadline) break;
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  std::lock_guard lk(g_strays_mu);
  g_strays.push_back(pid);
  return false;
}

Result<Written> to_command(const std::string& command, const std::string& dump_name,
                           const CoreInput& in, const CommandOptions& opts) {
  reap_children();
  Spawned s = QVM_TRY(spawn_shell(command, dump_name));
  auto n = write_core(s.stdin_w.get(), in, opts.write);
  s.stdin_w.reset();  // EOF: the command can finish
  int status = 0;
  const bool ended = reap(s.pid, opts.reap_wait, &status);
  const std::string what = "dump command '" + command + "'";
  if (!n) {
    std::string why = n.error().message;
    if (ended && !child_failure(status).empty()) why += "; it " + child_failure(status);
    return Error{what + ": " + why, n.error().sys_errno};
  }
  if (!ended)
    return make_error(what + " took the whole core but had not ended " +
                      std::to_string(opts.reap_wait.count()) +
                      " ms later (left running; the dump may be incomplete)");
  if (const std::string f = child_failure(status); !f.empty()) return make_error(what + " " + f);
  return Written{what, *n};
}

}  // namespace

Result<Destination> Destination::parse(std::string_view option) {
  Destination d;
  if (!option.empty() && option.front() == '|') {
    d.kind = Kind::kCommand;
    d.target = std::string(option.substr(1));
  } else {
    d.target = std::string(option);
  }
  if (d.target.empty()) return make_error("dump: expected a directory or \"|command\"");
  return d;
}

std::string Destination::describe() const {
  return kind == Kind::kCommand ? "command '" + target + "'" : "directory " + target;
}

Status check_destination(const Destination& dest) {
  if (dest.kind == Destination::Kind::kDirectory) QVM_TRY(open_dir(dest.target));
  return {};
}

std::string file_name(std::string_view prefix, const std::tm& tm, int attempt) {
  std::string s =
      strprintf("%.*s-%04d%02d%02d-%02d%02d%02d", static_cast<int>(prefix.size()), prefix.data(),
                tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec);
  if (attempt > 0) s += "-" + std::to_string(attempt);
  return s + ".gcore";
}

Result<CreatedFile> create_file(int dirfd, std::string_view prefix, const std::tm& tm) {
  for (int attempt = 0; attempt <= kMaxAttempt; ++attempt) {
    std::string name = file_name(prefix, tm, attempt);
    // O_EXCL never follows a symlink at the name (it counts as existing); O_NOFOLLOW says so
    // twice.
    UniqueFd fd(::openat(dirfd, name.c_str(),
                         O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC | O_NOCTTY, 0600));
    if (fd) return CreatedFile{std::move(fd), std::move(name)};
    if (errno != EEXIST) return Error::from_errno("cannot create '" + name + "'", errno);
  }
  return make_error("no unique dump file name: " + file_name(prefix, tm, 0) + " and -1 ... -" +
                    std::to_string(kMaxAttempt) + " exist");
}

Result<Written> write_dump(const Destination& dest, std::string_view prefix, std::time_t when,
                           const CoreInput& in, const CommandOptions& opts) {
  std::tm tm{};
  if (!::localtime_r(&when, &tm)) return make_error("localtime failed");
  if (dest.kind == Destination::Kind::kDirectory)
    return to_directory(dest.target, prefix, tm, in, opts.write);
  return to_command(dest.target, file_name(prefix, tm, 0), in, opts);
}

size_t reap_children() {
  std::lock_guard lk(g_strays_mu);
  std::erase_if(g_strays, [](pid_t pid) {
    int status = 0;
    const pid_t r = ::waitpid(pid, &status, WNOHANG);
    if (r == 0) return false;
    if (r == pid) {
      if (const std::string f = child_failure(status); !f.empty())
        log_warn("dump command (pid %d) %s", static_cast<int>(pid), f.c_str());
    }
    return true;  // reaped, or not ours any more (ECHILD)
  });
  return g_strays.size();
}

std::vector<pid_t> stray_children() {
  std::lock_guard lk(g_strays_mu);
  return g_strays;
}

}  // namespace qvm::dump
