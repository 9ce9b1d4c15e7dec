// qvm-shm: a host program as a client of qvm's shared-memory regions (spec §11.4's host side, the
// QNX hyp_shm_* equivalent; docs/shmem.md "qvm-shm"). It joins a region exactly as a guest's
// attachment does (shm/client.hpp): a slot, the data pages, a doorbell.
//
//   qvm-shm [--dir DIR] list
//   qvm-shm [--dir DIR] hold NAME SIZE            create NAME if missing; keep it until SIGINT/TERM
//   qvm-shm [--dir DIR] [--create SIZE] attach NAME
//       then one command per line on stdin (answers on stdout, one line each):
//         info | status | write OFF TEXT | writex OFF HEX | read OFF LEN | fill OFF LEN BYTE
//         notify MASK|all | wait [MS] | sleep MS | detach | quit
#include <dirent.h>
#include <poll.h>
#include <signal.h>
#include <sys/eventfd.h>
#include <sys/signalfd.h>
#include <unistd.h>

#include <cerrno>
#include <charconv>
#include <cstdio>
#include <cstring>
#include <memory>
#include <string>
#include <vector>

#include "base/log.hpp"
#include "shm/client.hpp"
#include "shm/region.hpp"

namespace {

using qvm::shm::Client;

int usage(FILE* f) {
  std::fputs(
      "usage: qvm-shm [--dir DIR] list\n"
      "       qvm-shm [--dir DIR] hold NAME SIZE\n"
      "       qvm-shm [--dir DIR] [--create SIZE] attach NAME   (commands on stdin)\n"
      "A client of qvm's shared-memory regions (docs/shmem.md). DIR: the regions' directory\n"
      "(default: the qvm runtime directory's shm/). SIZE: bytes, with k/M/G suffixes or 0x.\n"
      "Commands after attach, one per line: info | status | write OFF TEXT | writex OFF HEX |\n"
      "read OFF LEN | fill OFF LEN BYTE | notify MASK|all | wait [MS] | sleep MS | detach | quit\n",
      f);
  return f == stdout ? 0 : 2;
}

bool parse_u64(std::string_view s, uint64_t& out) {
  int base = 10;
  if (s.size() > 2 && s[0] == '0' && (s[1] == 'x' || s[1] == 'X')) {
    s.remove_prefix(2);
    base = 16;
  }
  uint64_t mult = 1;
  if (!s.empty()) {
    switch (s.back()) {
      case 'k':
      case 'K':
        mult = 1ull << 10;
        break;
      case 'm':
      case 'M':
        mult = 1ull << 20;
        break;
      case 'g':
      case 'G':
        mult = 1ull << 30;
        break;
      default:
        break;
    }
    if (mult != 1) s.remove_suffix(1);
  }
  auto [p, ec] = std::from_chars(s.data(), s.data() + s.size(), out, base);
  if (ec != std::errc() || p != s.data() + s.size() || s.empty()) return false;
  if (out > UINT64_MAX / mult) return false;
  out *= mult;
  return true;
}

std::vector<std::string> words(const std::string& line, size_t max) {
  std::vector<std::string> w;
  size_t i = 0;
  while (i < line.size() && w.size() + 1 < max) {
    while (i < line.size() && line[i] == ' ') ++i;
    if (i == line.size()) break;
    size_t j = line.find(' ', i);
    if (j == std::string::npos) j = line.size();
    w.push_back(line.substr(i, j - i));
    i = j;
  }
  while (i < line.size() && line[i] == ' ') ++i;
  if (i < line.size()) w.push_back(line.substr(i));  // the rest, spaces kept (write TEXT)
  return w;
}

int list(const std::string& dir) {
  DIR* d = ::opendir(dir.c_str());
  if (!d) {
    std::fprintf(stderr, "qvm-shm: %s: %s\n", dir.c_str(), std::strerror(errno));
    return 1;
  }
  while (dirent* e = ::readdir(d)) {
    if (std::strncmp(e->d_name, "r.", 2) != 0) continue;
    // The file name encodes the region name (region.cpp): decode %XX.
    std::string name;
    for (const char* p = e->d_name + 2; *p; ++p) {
      unsigned v;
      if (*p == '%' && p[1] && p[2] && std::sscanf(p + 1, "%2x", &v) == 1) {
        name += static_cast<char>(v);
        p += 2;
      } else {
        name += *p;
      }
    }
    qvm::shm::ClientOptions o;
    o.dir = dir;
    o.create = false;
    auto f = qvm::shm::RegionFile::open_locked(dir, name, 0,
                                               qvm::shm::RegionFile::Mode::kAttachOnly, 0600);
    if (!f) {
      std::printf("%s: %s\n", name.c_str(), f.error().message.c_str());
      continue;
    }
    (*f)->reap_dead();
    std::printf("%s pages=%u attached=0x%04x holders=%s\n", name.c_str(), (*f)->pages(),
                (*f)->header().attached, (*f)->holders_alive() ? "yes" : "no");
    (*f)->unlock();
  }
  ::closedir(d);
  return 0;
}

qvm::UniqueFd block_signals() {
  sigset_t s;
  sigemptyset(&s);
  sigaddset(&s, SIGINT);
  sigaddset(&s, SIGTERM);
  sigaddset(&s, SIGHUP);
  ::sigprocmask(SIG_BLOCK, &s, nullptr);
  ::signal(SIGPIPE, SIG_IGN);
  return qvm::UniqueFd(::signalfd(-1, &s, SFD_CLOEXEC));
}

int hold(const std::string& dir, const std::string& name, uint64_t size) {
  qvm::UniqueFd sig = block_signals();
  const uint64_t pages = (size + qvm::shm::kPage - 1) / qvm::shm::kPage;
  if (pages == 0 || pages > qvm::shm::kMaxPages) {
    std::fprintf(stderr, "qvm-shm: SIZE must be 1 byte to 4 GiB - 8 KiB\n");
    return 2;
  }
  auto h = qvm::shm::Holder::create(dir, name, static_cast<uint32_t>(pages));
  if (!h) {
    std::fprintf(stderr, "qvm-shm: hold %s: %s\n", name.c_str(), h.error().message.c_str());
    return 1;
  }
  std::printf("holding %s pages=%u\n", name.c_str(), (*h)->pages());
  std::fflush(stdout);
  pollfd p{sig.get(), POLLIN, 0};
  while (::poll(&p, 1, -1) < 0 && errno == EINTR) {
  }
  return 0;
}

// Waits up to `ms` (-1: forever) for the doorbell while serving the region's sockets; true if it
// rang.
bool wait_doorbell(Client& c, int ms, int sigfd) {
  const auto until = std::chrono::steady_clock::now() + std::chrono::milliseconds(ms);
  for (;;) {
    pollfd p[3] = {{c.doorbell_fd(), POLLIN, 0}, {c.poll_fd(), POLLIN, 0}, {sigfd, POLLIN, 0}};
    int left = -1;
    if (ms >= 0) {
      left = static_cast<int>(std::chrono::duration_cast<std::chrono::milliseconds>(
                                  until - std::chrono::steady_clock::now())
                                  .count());
      if (left < 0) left = 0;
    }
    const int n = ::poll(p, 3, left);
    if (n < 0 && errno == EINTR) continue;
    if (p[2].revents) return false;
    if (p[1].revents) c.service();
    if (p[0].revents) {
      uint64_t v;
      (void)!::read(c.doorbell_fd(), &v, sizeof v);
      return true;
    }
    if (n == 0) return false;
  }
}

int attach(const std::string& dir, const std::string& name, uint64_t create_size) {
  qvm::UniqueFd sig = block_signals();
  qvm::shm::ClientOptions o;
  o.dir = dir;
  o.create = create_size != 0;
  o.pages = static_cast<uint32_t>(std::min<uint64_t>(
      (create_size + qvm::shm::kPage - 1) / qvm::shm::kPage, qvm::shm::kMaxPages + 1ull));
  auto r = Client::attach(name, o);
  if (!r) {
    std::printf("error %s %s\n", qvm::shm::gss_name(qvm::shm::gss_from(r.error())),
                r.error().message.c_str());
    return 1;
  }
  std::unique_ptr<Client> c = std::move(*r);
  std::printf("attached idx=%u pages=%u attached=0x%04x\n", c->index(), c->pages(), c->attached());
  std::fflush(stdout);
  auto data = c->data();
  auto range_ok = [&](uint64_t off, uint64_t len) {
    return off <= data.size() && len <= data.size() - off;
  };
  auto run = [&](const std::string& line) -> bool {
    auto w = words(line, 3);
    if (w.empty()) return true;
    const std::string& cmd = w[0];
    uint64_t a = 0, b = 0;
    if (cmd == "quit" || cmd == "detach") {
      return false;
    } else if (cmd == "info") {
      std::printf("info name=%s idx=%u pages=%u attached=0x%04x pending=0x%04x\n",
                  c->name().c_str(), c->index(), c->pages(), c->attached(), c->pending());
    } else if (cmd == "status") {
      const uint32_t s = c->read_status();
      std::printf("status pending=0x%04x attached=0x%04x\n", s & 0xffff, s >> 16);
    } else if (cmd == "write" && w.size() == 3 && parse_u64(w[1], a) && range_ok(a, w[2].size())) {
      std::memcpy(data.data() + a, w[2].data(), w[2].size());
      if (range_ok(a + w[2].size(), 1)) data[a + w[2].size()] = 0;
      std::printf("wrote %zu\n", w[2].size());
    } else if (cmd == "writex" && w.size() == 3 && parse_u64(w[1], a) && w[2].size() % 2 == 0 &&
               range_ok(a, w[2].size() / 2)) {
      for (size_t i = 0; i < w[2].size() / 2; ++i)
        data[a + i] = static_cast<uint8_t>(std::stoul(w[2].substr(2 * i, 2), nullptr, 16));
      std::printf("wrote %zu\n", w[2].size() / 2);
    } else if (cmd == "read" && w.size() == 3 && parse_u64(w[1], a) && parse_u64(w[2], b) &&
               b <= 4096 && range_ok(a, b)) {
      std::string out;
      for (uint64_t i = 0; i < b; ++i) {
        const uint8_t ch = data[a + i];
        if (ch == 0) break;  // text up to the NUL (the guests' convention)
        out += (ch >= 32 && ch < 127 && ch != '\\') ? std::string(1, static_cast<char>(ch))
                                                    : qvm::strprintf("\\x%02x", ch);
      }
      std::printf("read '%s'\n", out.c_str());
    } else if (cmd == "fill" && w.size() == 3 && parse_u64(w[1], a)) {
      auto v = words(w[2], 2);
      uint64_t byte = 0;
      if (v.size() == 2 && parse_u64(v[0], b) && parse_u64(v[1], byte) && range_ok(a, b)) {
        std::memset(data.data() + a, static_cast<int>(byte & 0xff), b);
        std::printf("filled %llu\n", static_cast<unsigned long long>(b));
      } else {
        std::printf("error bad arguments\n");
      }
    } else if (cmd == "notify" && w.size() == 2 &&
               (w[1] == "all" || parse_u64(w[1].rfind("0x", 0) == 0 ? w[1] : "0x" + w[1], a))) {
      const uint32_t mask = w[1] == "all" ? Client::kAllButMe : static_cast<uint32_t>(a);
      c->notify(mask);
      std::printf("notified 0x%x\n", mask);
    } else if (cmd == "wait") {
      int ms = -1;
      if (w.size() >= 2 && parse_u64(w[1], a))
        ms = static_cast<int>(std::min<uint64_t>(a, 1u << 30));
      if (wait_doorbell(*c, ms, sig.get())) {
        const uint32_t s = c->read_status();
        std::printf("rang pending=0x%04x attached=0x%04x\n", s & 0xffff, s >> 16);
      } else {
        std::printf("timeout attached=0x%04x\n", c->attached());
      }
    } else if (cmd == "sleep" && w.size() == 2 && parse_u64(w[1], a)) {
      ::usleep(static_cast<useconds_t>(std::min<uint64_t>(a, 60000) * 1000));
      std::printf("slept\n");
    } else {
      std::printf("error unknown command or bad arguments: %s\n", line.c_str());
    }
    std::fflush(stdout);
    return true;
  };
  // Commands from stdin, read with read(2) so that poll(2) sees every byte: the region's sockets
  // are served while waiting (other clients attach meanwhile).
  std::string in;
  bool eof = false;
  for (bool go = true; go;) {
    for (size_t nl; go && (nl = in.find('\n')) != std::string::npos;) {
      std::string line = in.substr(0, nl);
      in.erase(0, nl + 1);
      if (!line.empty() && line.back() == '\r') line.pop_back();
      go = run(line);
    }
    if (!go) break;
    if (eof) {
      if (!in.empty()) run(in);
      break;
    }
    pollfd p[3] = {{0, POLLIN, 0}, {c->poll_fd(), POLLIN, 0}, {sig.get(), POLLIN, 0}};
    if (::poll(p, 3, -1) < 0) continue;
    if (p[2].revents) break;
    if (p[1].revents) c->service();
    if (!p[0].revents) continue;
    char buf[4096];
    const ssize_t n = ::read(0, buf, sizeof buf);
    if (n <= 0) {
      eof = n == 0 || errno != EINTR;
      continue;
    }
    in.append(buf, static_cast<size_t>(n));
    if (in.size() > (1u << 20)) break;  // no line is that long
  }
  c.reset();
  std::printf("detached\n");
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  std::vector<std::string> args(argv + 1, argv + argc);
  std::string dir = qvm::shm::default_dir();
  uint64_t create_size = 0;
  size_t i = 0;
  for (; i < args.size(); ++i) {
    if (args[i] == "--help" || args[i] == "-h") return usage(stdout);
    if (args[i] == "--dir" && i + 1 < args.size()) {
      dir = args[++i];
    } else if (args[i] == "--create" && i + 1 < args.size()) {
      if (!parse_u64(args[++i], create_size) || create_size == 0) return usage(stderr);
    } else {
      break;
    }
  }
  if (i >= args.size()) return usage(stderr);
  const std::string cmd = args[i++];
  if (cmd == "list" && i == args.size()) return list(dir);
  uint64_t size = 0;
  if (cmd == "hold" && i + 2 == args.size() && parse_u64(args[i + 1], size))
    return hold(dir, args[i], size);
  if (cmd == "attach" && i + 1 == args.size()) return attach(dir, args[i], create_size);
  return usage(stderr);
}
