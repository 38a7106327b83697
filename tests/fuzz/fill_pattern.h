// The fill pattern both fuzzers write into every block they hold and check
// after every step: 8-byte words derived from a per-block seed and the
// word's offset, so a copy shifted by any amount or truncated does not match.
#ifndef OBJARENA_TESTS_FUZZ_FILL_PATTERN_H
#define OBJARENA_TESTS_FUZZ_FILL_PATTERN_H

#include <cstddef>
#include <cstdint>
#include <cstring>

inline uint64_t PatternWord(uint64_t seed, size_t word) { return (seed + word) * 0x9E3779B97F4A7C15ull; }

inline void Fill(unsigned char *p, size_t size, uint64_t seed) {
    size_t words = size / 8;
    for (size_t w = 0; w < words; w++) {
        uint64_t v = PatternWord(seed, w);
        memcpy(p + w * 8, &v, 8);
    }
    uint64_t v = PatternWord(seed, words);
    memcpy(p + words * 8, &v, size % 8);
}

// First `size` bytes match the pattern? step > 1 samples every step-th word.
inline bool Matches(const unsigned char *p, size_t size, uint64_t seed, size_t step = 1) {
    size_t words = size / 8;
    for (size_t w = 0; w < words; w += step) {
        uint64_t v = PatternWord(seed, w), got;
        memcpy(&got, p + w * 8, 8);
        if (got != v) return false;
    }
    if (words) {  // always the last whole word
        uint64_t v = PatternWord(seed, words - 1), got;
        memcpy(&got, p + (words - 1) * 8, 8);
        if (got != v) return false;
    }
    uint64_t v = PatternWord(seed, words);
    return memcmp(p + words * 8, &v, size % 8) == 0;
}

#endif
