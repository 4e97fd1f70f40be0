# Thin wrappers over CMake.  "make run" and "make check" are the two
# commands of the README; both install missing Debian packages first.

BUILD ?= build
JOBS ?= $(shell nproc)
CMAKE_FLAGS ?=

.PHONY: all build run check unit integration deps-build deps-test clean

all: build

deps-build:
	@scripts/deps.sh build

deps-test:
	@scripts/deps.sh test

build: deps-build
	cmake -S . -B $(BUILD) $(CMAKE_FLAGS) >/dev/null
	cmake --build $(BUILD) -j $(JOBS)

# Start the server in the foreground on the embedded defaults (data in
# ./var, IMAP on 127.0.0.1:1143, IMAPS on 127.0.0.1:1993).
run: build
	./$(BUILD)/herald serve

# Build with -Werror and run every test (unit and integration).
check: deps-test
	cmake -S . -B $(BUILD) -DWERROR=ON $(CMAKE_FLAGS) >/dev/null
	cmake --build $(BUILD) -j $(JOBS)
	ctest --test-dir $(BUILD) --output-on-failure -j $(JOBS)

clean:
	rm -rf $(BUILD)
