/* png_write.h - 8-bit RGB PNG files with libpng, written atomically (temp
 * name + rename), so that a reader never sees half an image. */
#ifndef LCM_PNG_WRITE_H
#define LCM_PNG_WRITE_H

#include <stddef.h>

/* rgb: [height, width, 3] interleaved. text: optional tEXt chunks as
 * key/value pairs (n_text pairs), e.g. the sampling parameters. 0, or -1
 * with err. */
int png_write_rgb(const char *path, const unsigned char *rgb, int width, int height, const char *const *text,
                  int n_text, char *err);

#endif
