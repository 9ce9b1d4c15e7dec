# The two commands of the README:
#   make run    install dependencies, build, boot the demo guest on this console
#   make check  install dependencies, run every test (what CI runs)
.PHONY: run check check-full build deps clean format install

JOBS ?= $(shell nproc)
PREFIX ?= /usr/local

deps:
	./scripts/install-deps.sh

build: deps
	cmake -S . -B build-release -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
	cmake --build build-release -j $(JOBS) --target qvm qvm-test-guest

run: build
	./scripts/run-demo.sh

# qvm, the vdev API headers (include/qvm/) and qvm-vdev.pc under $(PREFIX) (docs/vdev-api.md); the
# prefix is configured in, since qvm looks for vdevs in $(PREFIX)/lib/qvm/vdev.
install: deps
	cmake -S . -B build-release -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo -DCMAKE_INSTALL_PREFIX=$(PREFIX) >/dev/null
	cmake --build build-release -j $(JOBS) --target qvm
	cmake --install build-release

check: deps
	./scripts/check.sh

# Everything check runs plus the long virtual-test-host scenarios (CTest label "full").
check-full: deps
	QVM_CHECK_FULL=1 ./scripts/check.sh

format:
	clang-format -i $$(git ls-files 'src/*.cpp' 'src/*.hpp' 'tests/unit/*.cpp' 'tests/unit/*.hpp' 'fuzz/*.cpp')

clean:
	rm -rf build build-release build-fuzz
