/* utf8_valid.c - strict UTF-8 validation (Unicode Table 3-7 well-formed
 * byte sequences, which is what Python's decoder accepts). */
#include <stdint.h>

#include "utf8_valid.h"

/* Length of the well-formed sequence at s[0..n), or 0 if there is none. */
static int sequence_length(const uint8_t *s, size_t n) {
    uint8_t b = s[0];
    if (b < 0x80) return 1;
    int len;
    uint8_t lo = 0x80, hi = 0xbf; /* allowed range of the second byte */
    if (b >= 0xc2 && b <= 0xdf) len = 2;
    else if (b >= 0xe0 && b <= 0xef) {
        len = 3;
        if (b == 0xe0) lo = 0xa0;      /* overlong */
        else if (b == 0xed) hi = 0x9f; /* surrogates */
    } else if (b >= 0xf0 && b <= 0xf4) {
        len = 4;
        if (b == 0xf0) lo = 0x90;      /* overlong */
        else if (b == 0xf4) hi = 0x8f; /* above U+10FFFF */
    } else {
        return 0; /* 0x80..0xc1 and 0xf5..0xff never start a sequence */
    }
    if ((size_t)len > n || s[1] < lo || s[1] > hi) return 0;
    for (int i = 2; i < len; i++)
        if (s[i] < 0x80 || s[i] > 0xbf) return 0;
    return len;
}

long utf8_invalid_at(const char *str, size_t len) {
    const uint8_t *s = (const uint8_t *)str;
    size_t i = 0;
    while (i < len) {
        int n = sequence_length(s + i, len - i);
        if (!n) return (long)i;
        i += (size_t)n;
    }
    return -1;
}
