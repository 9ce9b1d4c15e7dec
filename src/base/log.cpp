#include "base/log.hpp"

#include <syslog.h>
#include <unistd.h>

#include <cstdarg>
#include <cstdio>

namespace qvm {
namespace {

constexpr std::array<std::string_view, kLogClassCount> kClassNames = {
    "fatal", "internal", "error", "warn", "info", "debug", "verbose"};
constexpr std::array<std::string_view, 4> kDestNames = {"none", "stdout", "stderr", "slog"};

std::mutex g_writer_mu;
LogWriter g_writer;  // empty: default_write

int syslog_priority(LogClass c) {
  switch (c) {
    case LogClass::kFatal:
      return LOG_CRIT;
    case LogClass::kInternal:
      return LOG_ERR;
    case LogClass::kError:
      return LOG_ERR;
    case LogClass::kWarn:
      return LOG_WARNING;
    case LogClass::kInfo:
      return LOG_INFO;
    case LogClass::kDebug:
    case LogClass::kVerbose:
      return LOG_DEBUG;
  }
  return LOG_INFO;
}

void default_write(LogDest d, LogClass c, std::string_view line) {
  switch (d) {
    case LogDest::kNone:
      return;
    case LogDest::kStdout:
    case LogDest::kStderr: {
      std::string s(line);
      s += '\n';
      // One write(2) per line keeps lines from different threads whole.
      ssize_t r = ::write(d == LogDest::kStdout ? 1 : 2, s.data(), s.size());
      (void)r;
      return;
    }
    case LogDest::kSyslog:
      ::syslog(syslog_priority(c), "%.*s", static_cast<int>(line.size()), line.data());
      return;
  }
}

std::string vstrprintf(const char* fmt, va_list ap) {
  va_list ap2;
  va_copy(ap2, ap);
  int n = std::vsnprintf(nullptr, 0, fmt, ap2);
  va_end(ap2);
  if (n <= 0) return {};
  std::string s(static_cast<size_t>(n) + 1, '\0');
  std::vsnprintf(s.data(), s.size(), fmt, ap);
  s.resize(static_cast<size_t>(n));
  return s;
}

}  // namespace

std::string_view log_class_name(LogClass c) {
  return kClassNames[static_cast<size_t>(c)];
}
std::string_view log_dest_name(LogDest d) {
  return kDestNames[static_cast<size_t>(d)];
}

std::optional<LogClass> parse_log_class(std::string_view s) {
  for (size_t i = 0; i < kClassNames.size(); ++i)
    if (kClassNames[i] == s) return static_cast<LogClass>(i);
  return std::nullopt;
}

std::optional<LogDest> parse_log_dest(std::string_view s) {
  for (size_t i = 0; i < kDestNames.size(); ++i)
    if (kDestNames[i] == s) return static_cast<LogDest>(i);
  if (s == "syslog") return LogDest::kSyslog;  // Linux name for QNX slog
  return std::nullopt;
}

LogRouting LogRouting::defaults() {
  LogRouting r;
  r.dest.fill(LogDest::kNone);
  for (auto c :
       {LogClass::kFatal, LogClass::kInternal, LogClass::kError, LogClass::kWarn, LogClass::kInfo})
    r[c] = LogDest::kStderr;
  return r;
}

Logger::Logger(std::string prefix, LogRouting routing)
    : prefix_(std::move(prefix)), routing_(routing) {}

void Logger::set_routing(const LogRouting& r) {
  std::lock_guard lk(mu_);
  routing_ = r;
}

LogRouting Logger::routing() const {
  std::lock_guard lk(mu_);
  return routing_;
}

bool Logger::enabled(LogClass c) const {
  std::lock_guard lk(mu_);
  return routing_[c] != LogDest::kNone || c == LogClass::kInternal;
}

void Logger::log(LogClass c, std::string_view msg) {
  LogDest d;
  std::string line;
  {
    std::lock_guard lk(mu_);
    d = routing_[c];
    line = prefix_;
  }
  line += ": ";
  line += log_class_name(c);
  line += ": ";
  line += msg;
  std::lock_guard lk(g_writer_mu);
  auto write = g_writer ? g_writer : LogWriter(default_write);
  write(d, c, line);
  // spec §3.11: internal messages always also go to the system log.
  if (c == LogClass::kInternal && d != LogDest::kSyslog) write(LogDest::kSyslog, c, line);
}

void Logger::logf(LogClass c, const char* fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  std::string s = vstrprintf(fmt, ap);
  va_end(ap);
  log(c, s);
}

Logger& Logger::global() {
  static Logger logger;
  return logger;
}

namespace {
thread_local Logger* tl_scope = nullptr;
}  // namespace

Logger& Logger::current() {
  return tl_scope ? *tl_scope : global();
}

LogScope::LogScope(Logger* l) : prev_(tl_scope), set_(l != nullptr) {
  if (set_) tl_scope = l;
}

LogScope::~LogScope() {
  if (set_) tl_scope = prev_;
}

Logger* LogScope::active() {
  return tl_scope;
}

void Logger::set_writer(LogWriter w) {
  std::lock_guard lk(g_writer_mu);
  g_writer = std::move(w);
}

bool RateLimit::allow(std::chrono::steady_clock::time_point now, uint64_t* suppressed) {
  std::lock_guard lk(mu_);
  if (last_ != std::chrono::steady_clock::time_point{}) {
    double dt = std::chrono::duration<double>(now - last_).count();
    if (dt > 0) tokens_ = std::min(burst_, tokens_ + dt * rate_);
  }
  last_ = now;
  if (tokens_ >= 1.0) {
    tokens_ -= 1.0;
    if (suppressed) *suppressed = suppressed_;
    suppressed_ = 0;
    return true;
  }
  ++suppressed_;
  return false;
}

#define QVM_LOG_FN(fn, cls)              \
  void fn(const char* fmt, ...) {        \
    va_list ap;                          \
    va_start(ap, fmt);                   \
    std::string s = vstrprintf(fmt, ap); \
    va_end(ap);                          \
    Logger::current().log(cls, s);       \
  }
QVM_LOG_FN(log_fatal, LogClass::kFatal)
QVM_LOG_FN(log_error, LogClass::kError)
QVM_LOG_FN(log_warn, LogClass::kWarn)
QVM_LOG_FN(log_info, LogClass::kInfo)
QVM_LOG_FN(log_debug, LogClass::kDebug)
#undef QVM_LOG_FN

std::string strprintf(const char* fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  std::string s = vstrprintf(fmt, ap);
  va_end(ap);
  return s;
}

}  // namespace qvm
