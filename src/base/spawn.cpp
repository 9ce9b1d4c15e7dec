#include "base/spawn.hpp"

#include <fcntl.h>
#include <signal.h>
#include <spawn.h>
#include <unistd.h>

namespace qvm {

Result<pid_t> spawn_command(const SpawnSpec& s) {
  if (s.argv.empty()) return make_error("no command");
  posix_spawn_file_actions_t fa;
  posix_spawn_file_actions_init(&fa);
  if (s.in >= 0)
    posix_spawn_file_actions_adddup2(&fa, s.in, 0);  // dup2 clears FD_CLOEXEC on 0
  else
    posix_spawn_file_actions_addopen(&fa, 0, "/dev/null", O_RDONLY, 0);
  if (s.out >= 0) posix_spawn_file_actions_adddup2(&fa, s.out, 1);
#if defined(__GLIBC__) && (__GLIBC__ > 2 || (__GLIBC__ == 2 && __GLIBC_MINOR__ >= 34))
  // Whatever qvm holds (KVM fds, disk images, sockets) stays out of the command, even an fd some
  // library opened without O_CLOEXEC.
  posix_spawn_file_actions_addclosefrom_np(&fa, 3);
#endif
  posix_spawnattr_t at;
  posix_spawnattr_init(&at);
  sigset_t none, deflt;
  sigemptyset(&none);
  sigemptyset(&deflt);
  for (int sig : {SIGPIPE, SIGINT, SIGTERM, SIGQUIT, SIGHUP, SIGUSR1, SIGUSR2, SIGALRM, SIGCHLD})
    sigaddset(&deflt, sig);
  posix_spawnattr_setsigmask(&at, &none);
  posix_spawnattr_setsigdefault(&at, &deflt);
  posix_spawnattr_setflags(&at, POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF);

  std::vector<std::string> args(s.argv), env(s.env);
  std::vector<char*> argv, envp;
  for (auto& a : args) argv.push_back(a.data());
  argv.push_back(nullptr);
  for (auto& e : env) envp.push_back(e.data());
  envp.push_back(nullptr);
  char* const* ep = env.empty() ? environ : envp.data();
  pid_t pid = -1;
  const int e = ::posix_spawnp(&pid, s.file.c_str(), &fa, &at, argv.data(), ep);
  posix_spawn_file_actions_destroy(&fa);
  posix_spawnattr_destroy(&at);
  if (e != 0) return Error::from_errno("cannot start '" + s.file + "'", e);
  return pid;
}

}  // namespace qvm
