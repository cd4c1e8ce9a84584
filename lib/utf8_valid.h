/* utf8_valid.h - strict UTF-8 validation, as Python's bytes.decode("utf-8"):
 * no overlong forms, no surrogates (U+D800..U+DFFF), nothing above U+10FFFF,
 * no truncated sequences. A BOM is valid (it stays U+FEFF); NUL is valid. */
#ifndef LCM_UTF8_VALID_H
#define LCM_UTF8_VALID_H

#include <stddef.h>

/* -1 if valid, else the byte offset of the first invalid sequence. */
long utf8_invalid_at(const char *s, size_t len);

#endif
