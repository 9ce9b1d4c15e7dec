// Logging with the QNX qvm's message classes (spec §3.11, §8.6): fatal, internal, error, warn,
// info, debug, verbose are independent classes, each routed to one destination. Default routing
// is `logger fatal,internal,error,warn,info stderr`. A RateLimit guards every message a guest can
// provoke, so a hostile guest cannot flood the host log.
#pragma once

#include <array>
#include <chrono>
#include <cstdint>
#include <functional>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>

namespace qvm {

enum class LogClass : uint8_t { kFatal, kInternal, kError, kWarn, kInfo, kDebug, kVerbose };
inline constexpr int kLogClassCount = 7;

enum class LogDest : uint8_t { kNone, kStdout, kStderr, kSyslog };

std::string_view log_class_name(LogClass c);
std::string_view log_dest_name(LogDest d);
std::optional<LogClass> parse_log_class(std::string_view s);
std::optional<LogDest> parse_log_dest(std::string_view s);

// Which destination each class goes to.
struct LogRouting {
  std::array<LogDest, kLogClassCount> dest{};
  static LogRouting defaults();
  LogDest& operator[](LogClass c) { return dest[static_cast<size_t>(c)]; }
  LogDest operator[](LogClass c) const { return dest[static_cast<size_t>(c)]; }
  bool operator==(const LogRouting&) const = default;
};

// Where formatted lines end up; replaceable in tests.
using LogWriter = std::function<void(LogDest, LogClass, std::string_view line)>;

class Logger {
 public:
  explicit Logger(std::string prefix = "qvm", LogRouting routing = LogRouting::defaults());

  void set_routing(const LogRouting& r);
  LogRouting routing() const;
  bool enabled(LogClass c) const;
  void log(LogClass c, std::string_view msg);
  void logf(LogClass c, const char* fmt, ...) __attribute__((format(printf, 3, 4)));

  // The process-wide logger used by code without a more specific one.
  static Logger& global();
  // The logger of the code running on this thread: a vdev's own while its code runs (LogScope),
  // else global(). log_fatal() ... log_debug() write through it.
  static Logger& current();
  // Redirect all output of every Logger (tests capture lines this way). Empty = default writer.
  static void set_writer(LogWriter w);

 private:
  mutable std::mutex mu_;
  std::string prefix_;
  LogRouting routing_;
};

// Makes `l` the current logger of this thread until the scope ends (nullptr: no change). A vdev
// with its own `log` routing (spec §5 common vdev options) runs its construction, its register
// accesses and its event-loop callbacks inside one, so its messages obey that routing.
class LogScope {
 public:
  explicit LogScope(Logger* l);
  ~LogScope();
  LogScope(const LogScope&) = delete;
  LogScope& operator=(const LogScope&) = delete;
  // The innermost scope's logger on this thread, or nullptr.
  static Logger* active();

 private:
  Logger* prev_;
  bool set_;
};

// `fn` made to run in the log scope active now (unchanged when there is none): for callbacks a
// vdev registers, which run later on another stack.
template <typename F>
std::function<void()> in_log_scope(F fn) {
  Logger* l = LogScope::active();
  if (!l) return fn;
  return [l, fn = std::move(fn)]() mutable {
    LogScope s(l);
    fn();
  };
}

// Token bucket: at most `burst` messages, refilled at `per_second`. Suppressed messages are
// counted and reported with the next message that passes.
class RateLimit {
 public:
  RateLimit(double per_second = 5.0, double burst = 10.0)
      : rate_(per_second), burst_(burst), tokens_(burst) {}
  // Returns true if a message may be emitted now; `suppressed` gets the count skipped since.
  bool allow(std::chrono::steady_clock::time_point now, uint64_t* suppressed);

 private:
  std::mutex mu_;
  double rate_, burst_, tokens_;
  std::chrono::steady_clock::time_point last_{};
  uint64_t suppressed_ = 0;
};

void log_fatal(const char* fmt, ...) __attribute__((format(printf, 1, 2)));
void log_error(const char* fmt, ...) __attribute__((format(printf, 1, 2)));
void log_warn(const char* fmt, ...) __attribute__((format(printf, 1, 2)));
void log_info(const char* fmt, ...) __attribute__((format(printf, 1, 2)));
void log_debug(const char* fmt, ...) __attribute__((format(printf, 1, 2)));

// printf into a std::string.
std::string strprintf(const char* fmt, ...) __attribute__((format(printf, 1, 2)));

}  // namespace qvm
