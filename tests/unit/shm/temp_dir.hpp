// A private directory for one test's regions: /tmp/qvm-shm-test.XXXXXX/shm (created by the code
// under test), removed with everything in it at the end.
#pragma once

#include <cstdlib>
#include <string>

namespace qvm::shm::test {

class TempDir {
 public:
  TempDir() {
    char t[] = "/tmp/qvm-shm-test.XXXXXX";
    base_ = ::mkdtemp(t);
    path_ = base_ + "/shm";
  }
  ~TempDir() { (void)!std::system(("rm -rf '" + base_ + "'").c_str()); }
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;
  const std::string& path() const { return path_; }

 private:
  std::string base_, path_;
};

}  // namespace qvm::shm::test
