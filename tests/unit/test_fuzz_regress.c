/* Replays the fuzzers' regression inputs (every file in tests/fuzz/regress/TARGET/) through
 * the harnesses' own code, without libFuzzer: the harness files are included
 * here with their checks turned into test failures. Sanitizer builds
 * (make test SANITIZE=1) catch the memory errors the fuzzer found. Other
 * builds run under a 4 GiB address-space limit, so that an allocation far
 * beyond the input, which libFuzzer's -malloc_limit_mb reports, fails here. */
#include <dirent.h>
#include <sys/resource.h>

#include "test.h"

#define FUZZ_CHECK(cond) CHECK(cond)

#define LLVMFuzzerTestOneInput fuzz_frame_one
#include "../fuzz/fuzz_frame.c"
#undef LLVMFuzzerTestOneInput

/* The safetensors harness where the reader exists. */
#if __has_include("safetensors.h")
#define HAVE_SAFETENSORS 1
#define LLVMFuzzerTestOneInput fuzz_safetensors_one
#include "../fuzz/fuzz_safetensors.c"
#undef LLVMFuzzerTestOneInput
#endif

#define LLVMFuzzerTestOneInput fuzz_image_one
#include "../fuzz/fuzz_image.c"
#undef LLVMFuzzerTestOneInput

typedef int (*fuzz_fn)(const uint8_t *, size_t);

/* Feeds every file of tests/fuzz/regress/<target>/ to fn; returns how many. */
static int replay(const char *target, fuzz_fn fn) {
    const char *top = getenv("LCM_TOP");
    char dir[512];
    snprintf(dir, sizeof dir, "%s/tests/fuzz/regress/%s", top ? top : ".", target);
    DIR *d = opendir(dir);
    CHECKF(d, "%s: cannot open", dir);
    int count = 0;
    struct dirent *de;
    while ((de = readdir(d))) {
        if (de->d_name[0] == '.') continue;
        char *path = path_join(dir, de->d_name), *data;
        size_t len;
        char err[LCM_ERRLEN];
        CHECKF(read_file(path, &data, &len, err) == 0, "%s", err);
        printf("# %s/%s (%zu bytes)\n", target, de->d_name, len);
        fn((const uint8_t *)data, len);
        free(data);
        free(path);
        count++;
    }
    closedir(d);
    return count;
}

TEST(frame_regressions) { CHECK(replay("fuzz_frame", fuzz_frame_one) > 0); }

#ifdef HAVE_SAFETENSORS
TEST(safetensors_regressions) { replay("fuzz_safetensors", fuzz_safetensors_one); }
#endif

TEST(image_regressions) { CHECK(replay("fuzz_image", fuzz_image_one) > 0); }

#if defined(__SANITIZE_ADDRESS__)
#define UNDER_ASAN 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define UNDER_ASAN 1
#endif
#endif

int main(void) {
    lcm_init("test_fuzz_regress");
#ifndef UNDER_ASAN /* ASan reserves terabytes of shadow address space */
    struct rlimit as = {(rlim_t)4 << 30, (rlim_t)4 << 30};
    setrlimit(RLIMIT_AS, &as);
#endif
    RUN(frame_regressions);
#ifdef HAVE_SAFETENSORS
    RUN(safetensors_regressions);
#endif
    RUN(image_regressions);
    TEST_EXIT();
}
