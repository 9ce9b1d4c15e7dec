# The two commands of the README:
#   make run    install dependencies, build, boot the demo guest on this console
#   make check  install dependencies, run every test (what CI runs)
.PHONY: run check check-full build deps clean format

JOBS ?= $(shell nproc)

deps:
	./scripts/install-deps.sh

build: deps
	cmake -S . -B build-release -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
	cmake --build build-release -j $(JOBS) --target qvm qvm-test-guest

run: build
	./scripts/run-demo.sh

check: deps
	./scripts/check.sh

# Everything check runs plus the long virtual-test-host scenarios (CTest label "full").
check-full: deps
	QVM_CHECK_FULL=1 ./scripts/check.sh

format:
	clang-format -i $$(git ls-files 'src/*.cpp' 'src/*.hpp' 'tests/unit/*.cpp' 'tests/unit/*.hpp' 'fuzz/*.cpp')

clean:
	rm -rf build build-release build-fuzz
