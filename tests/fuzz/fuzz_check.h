#pragma once

// What every fuzz target shares: a check that turns a broken invariant into a crash, which
// libFuzzer reports with the input that caused it.

#include <cstdio>
#include <cstdlib>

// Aborts with the condition and place when `condition` is false. Unlike assert(), it is
// never compiled out.
#define FUZZ_CHECK(condition)                                                                \
  do {                                                                                       \
    if (!(condition)) {                                                                      \
      std::fprintf(stderr, "%s:%d: invariant broken: %s\n", __FILE__, __LINE__, #condition); \
      std::abort();                                                                          \
    }                                                                                        \
  } while (false)
