# Thin wrappers over CMake.  "make run" and "make check" are the two
# commands of the README; both install missing Debian packages first.

BUILD ?= build
JOBS ?= $(shell nproc)
CMAKE_FLAGS ?=

# Sanitizer and fuzzing builds (docs/FUZZING.md).  ASAN_CC may be gcc or
# clang; the fuzzers need clang.
ASAN_BUILD ?= build-asan
ASAN_CC ?= cc
FUZZ_BUILD ?= build-fuzz
FUZZ_SECONDS ?= 60
FUZZ_SMOKE_SECONDS ?= 10
FUZZ_TARGETS ?=
SAN_FLAGS = -DSAN=address,undefined

.PHONY: all build run check check-plain check-asan fuzz fuzz-build \
	fuzz-smoke valgrind deps-build deps-test clean

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

# The README's test command (and .ci/run's): three lanes one after the
# other, since they share ports and cores; the first that fails stops it.
# A -Werror build with unit and integration tests (check-plain), the same
# under ASan+UBSan (check-asan), then every fuzz target briefly from its
# seeds (fuzz-smoke).  11 to 13 minutes on 2 busy cores (docs/FUZZING.md,
# "How CI uses them").
check: deps-test
	$(MAKE) --no-print-directory check-plain
	$(MAKE) --no-print-directory check-asan
	$(MAKE) --no-print-directory fuzz-smoke

# Build with -Werror and run every test (unit and integration).
check-plain: deps-test
	cmake -S . -B $(BUILD) -DWERROR=ON $(CMAKE_FLAGS) >/dev/null
	cmake --build $(BUILD) -j $(JOBS)
	ctest --test-dir $(BUILD) --output-on-failure -j $(JOBS)

# The same with AddressSanitizer and UndefinedBehaviorSanitizer (leak
# checking included; any report fails the test).  HERALD_SANITIZERS tells
# the tests the binaries are sanitized, e.g. to skip RSS bounds, which
# ASan's quarantine and redzones make meaningless.
UBSAN_OPTIONS ?= print_stacktrace=1
export UBSAN_OPTIONS
check-asan: deps-test
	CC=$(ASAN_CC) cmake -S . -B $(ASAN_BUILD) -DWERROR=ON $(SAN_FLAGS) \
		$(CMAKE_FLAGS) >/dev/null
	cmake --build $(ASAN_BUILD) -j $(JOBS)
	HERALD_SANITIZERS=address,undefined \
		ctest --test-dir $(ASAN_BUILD) --output-on-failure -j $(JOBS)

# libFuzzer targets (fuzz/): "make fuzz" runs each for FUZZ_SECONDS on its
# corpus, which grows in $(FUZZ_BUILD)/fuzz-corpus/; "make fuzz-smoke" runs
# each briefly from the committed seeds only.  FUZZ_TARGETS="mime seqset"
# picks some.  Crashing inputs land in $(FUZZ_BUILD)/fuzz-crashes/.
fuzz-build: deps-test
	CC=clang cmake -S . -B $(FUZZ_BUILD) -DFUZZ=ON $(SAN_FLAGS) >/dev/null
	cmake --build $(FUZZ_BUILD) -j $(JOBS) --target fuzzers

fuzz: fuzz-build
	fuzz/run.sh $(FUZZ_BUILD) $(FUZZ_SECONDS) $(FUZZ_TARGETS)

fuzz-smoke: fuzz-build
	fuzz/run.sh -s $(FUZZ_BUILD) $(FUZZ_SMOKE_SECONDS) $(FUZZ_TARGETS)

# Every unit test binary of the normal build under valgrind (the nightly
# lane of STYLE.md section 15): errors and definite or possible leaks fail.
# Logs in $(BUILD)/valgrind/.  Needs Debian's valgrind package.
VALGRIND = valgrind -q --error-exitcode=1 --leak-check=full
valgrind: build
	@mkdir -p $(BUILD)/valgrind; fail=""; \
	for t in $(BUILD)/tests/test_*; do \
		[ -f "$$t" ] && [ -x "$$t" ] || continue; \
		n=$${t##*/}; \
		if (cd $(BUILD)/tests && \
		    HERALD_CORPUS=$(CURDIR)/../shared/corpus \
		    $(VALGRIND) ./$$n) >$(BUILD)/valgrind/$$n.log 2>&1; \
		then echo "valgrind $$n: ok"; \
		else echo "valgrind $$n: FAILED ($(BUILD)/valgrind/$$n.log)"; \
			fail="$$fail $$n"; fi; \
	done; \
	test -z "$$fail"

clean:
	rm -rf $(BUILD)
