/* fuzz_safetensors.c - libFuzzer harness for the safetensors reader.
 *
 * The input is the whole file. It goes into a memfd opened through its
 * /proc/self/fd path, so st_open maps it as it would a file on disk. When
 * st_open accepts it, every tensor must lie inside the file with exactly the
 * size its dtype and shape need, names must be sorted and unique, lookup by
 * name must find each tensor, and every byte of data and metadata is read.
 * tests/unit/test_fuzz_regress.c replays tests/fuzz/regress/fuzz_safetensors/
 * through the same function. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "safetensors.h"
#include "tensor.h"
#include "util.h"

#include "fuzz_check.h"

static void st_fuzz_check_tensor(const st_file *f, const st_tensor *t) {
    FUZZ_CHECK(t->name && t->ndim >= 0 && t->ndim <= TENSOR_MAXDIM);
    int64_t n = shape_numel(t->ndim, t->shape);
    FUZZ_CHECK(n >= 0 && (size_t)n * dtype_size(t->dtype) == t->nbytes);
    FUZZ_CHECK(t->offset <= st_file_size(f) && t->nbytes <= st_file_size(f) - t->offset);
    fuzz_touch(t->name, strlen(t->name));
    fuzz_touch(t->data, t->nbytes);
    FUZZ_CHECK(st_find(f, t->name) == t);

    char err[LCM_ERRLEN];
    tensor *dst = tensor_new(NULL, DT_F32, 1, &n);
    FUZZ_CHECK(st_tensor_copy(t, dst, err) == 0);
    fuzz_touch(dst->data, tensor_nbytes(dst));
    tensor_free(dst);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t len) {
    int fd = memfd_create("fuzz-st", 0);
    FUZZ_CHECK(fd >= 0);
    FUZZ_CHECK(write(fd, data, len) == (ssize_t)len);
    char path[64], err[LCM_ERRLEN] = "";
    snprintf(path, sizeof path, "/proc/self/fd/%d", fd);
    st_file *f = st_open(path, err);
    if (!f) {
        FUZZ_CHECK(err[0]); /* refused, with a message */
        close(fd);
        return 0;
    }
    FUZZ_CHECK(st_file_size(f) == len);
    int n = st_count(f);
    FUZZ_CHECK(n >= 0);
    for (int i = 0; i < n; i++) {
        const st_tensor *t = st_at(f, i);
        st_fuzz_check_tensor(f, t);
        if (i) FUZZ_CHECK(strcmp(st_at(f, i - 1)->name, t->name) < 0); /* sorted, unique */
    }
    for (int i = 0; i < n && n <= 256; i++) /* no two tensors share bytes */
        for (int j = i + 1; j < n; j++) {
            const st_tensor *a = st_at(f, i), *b = st_at(f, j);
            if (a->nbytes && b->nbytes) FUZZ_CHECK(a->offset + a->nbytes <= b->offset || b->offset + b->nbytes <= a->offset);
        }
    for (int i = 0; i < st_meta_count(f); i++) {
        const char *k, *v;
        st_meta_at(f, i, &k, &v);
        fuzz_touch(k, strlen(k));
        fuzz_touch(v, strlen(v));
        FUZZ_CHECK(st_meta_get(f, k) == v);
    }
    st_close(f);
    close(fd);
    return 0;
}
