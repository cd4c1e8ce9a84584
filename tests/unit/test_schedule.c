/* Schedule arithmetic against the reference values of lcd-reference.md §9
 * (computed there with torch 1.13 CPU). */
#include "schedule.h"
#include "test.h"

static noise_schedule sd15;

static void make_sd15(void) {
    char err[512];
    CHECK(schedule_make(&sd15, 1000, 0.00085, 0.012, "scaled_linear", err) == 0);
}

TEST(sd15_betas_and_alphas) {
    make_sd15();
    CHECK_NEAR(sd15.betas[0], 0.00084999995, 1e-10);
    CHECK_NEAR(sd15.betas[999], 0.011999999, 1e-9);
    CHECK_NEAR(sd15.alphas_cumprod[0], 0.99914998, 2e-6 * 0.99914998);
    CHECK_NEAR(sd15.alphas_cumprod[999], 0.0046600960, 2e-6 * 0.0046600960);
}

TEST(ddim_grid) {
    static const double abar_tau[50] = {
        0.982243955, 0.962894917, 0.941962302, 0.919471025, 0.895462453, 0.869994104, 0.843139827, 0.814989805,
        0.78564924, 0.755238056, 0.723890007, 0.691750348, 0.658975244, 0.625729144, 0.592182875, 0.558511496,
        0.524891973, 0.491500169, 0.458509147, 0.426086158, 0.394390553, 0.363571376, 0.333765447, 0.305095702,
        0.27766946, 0.251577556, 0.226893395, 0.203672364, 0.181952044, 0.161752418, 0.143076286, 0.125910446,
        0.11022681, 0.0959838554, 0.0831282735, 0.0715966821, 0.0613175184, 0.052212894, 0.0442004167, 0.0371949747,
        0.0311103798, 0.0258608777, 0.0213624872, 0.0175341498, 0.01429867, 0.0115834549, 0.00932107028,
        0.00744958688, 0.00591276633, 0.00466009602};
    make_sd15();
    int tau[50];
    double prev[50];
    CHECK(ddim_solver_grid(&sd15, 50, tau, prev) == 0);
    for (int i = 0; i < 50; i++) {
        CHECK(tau[i] == 19 + 20 * i);
        CHECKF(fabs(sd15.alphas_cumprod[tau[i]] - abar_tau[i]) <= 2e-6 * abar_tau[i], "abar(tau[%d]) = %.9g, want %.9g", i,
               sd15.alphas_cumprod[tau[i]], abar_tau[i]);
        if (i) CHECK(prev[i] == sd15.alphas_cumprod[tau[i - 1]]);
    }
    CHECK(prev[0] == sd15.alphas_cumprod[0]);
}

TEST(boundary_scalings_values) {
    float cs, co;
    boundary_scalings(0, 10, &cs, &co);
    CHECK(cs == 1.0f && co == 0.0f);
    boundary_scalings(19, 10, &cs, &co);
    CHECK_NEAR(cs, 6.925159596e-06, 1e-13);
    CHECK_NEAR(co, 0.999996543, 1e-7);
    boundary_scalings(259, 10, &cs, &co);
    CHECK_NEAR(cs, 3.726837861e-08, 1e-15);
    boundary_scalings(999, 10, &cs, &co);
    CHECK_NEAR(cs, 2.505007535e-09, 1e-16);
    CHECK(co == 1.0f);
}

/* The reference's 7 significant digits. Arguments reach 15000 rad, where one
 * ulp of a frequency moves an entry by up to ~4e-4 (§9): torch's vectorised
 * exp differs from a correctly rounded expf at 14 of the 128 frequencies,
 * and with it the sum by 8.8e-4; torch_expf reproduces torch's rounding. */
TEST(guidance_embedding_values) {
    float e[256];
    double sum = 0;
    guidance_embedding(6.5f, 256, e);
    for (int i = 0; i < 256; i++) sum += e[i];
    CHECK_NEAR(e[0], -0.0447847, 2e-6);
    CHECK_NEAR(e[1], 0.7628611, 2e-6);
    CHECK_NEAR(e[2], -0.8710300, 2e-6);
    CHECK_NEAR(e[3], 0.9947659, 2e-6);
    CHECK_NEAR(e[128], -0.9989967, 2e-6);
    CHECK_NEAR(e[131], 0.1021800, 2e-6);
    CHECK_NEAR(e[255], 0.7960839, 2e-6);
    CHECK_NEAR(sum, -0.686707, 2e-5);
    guidance_embedding(15.0f, 256, e);
    sum = 0;
    for (int i = 0; i < 256; i++) sum += e[i];
    CHECK_NEAR(e[0], 0.8934287, 2e-6);
    CHECK_NEAR(e[3], -0.2446025, 2e-6);
    CHECK_NEAR(sum, 15.910719, 2e-5);
}

TEST(lcm_timestep_lists) {
    static const int want[9][8] = {
        {0}, {999}, {999, 499}, {999, 679, 339}, {999, 759, 499, 259}, {0}, {999, 839, 679, 499, 339, 179}, {0},
        {999, 879, 759, 639, 499, 379, 259, 139}};
    char err[512];
    int ts[8];
    for (int n = 1; n <= 8; n++) {
        if (!want[n][0]) continue;
        CHECK(lcm_timesteps(1000, 50, n, 1.0f, ts, err) == n);
        for (int i = 0; i < n; i++) CHECKF(ts[i] == want[n][i], "n=%d i=%d: %d", n, i, ts[i]);
    }
    CHECK(lcm_timesteps(1000, 50, 4, 0.5f, ts, err) == 4);
    CHECK(ts[0] == 499 && ts[1] == 379 && ts[2] == 259 && ts[3] == 139);
    CHECK(lcm_timesteps(1000, 50, 51, 1.0f, ts, err) == -1);
}

int main(void) {
    RUN(sd15_betas_and_alphas);
    RUN(ddim_grid);
    RUN(boundary_scalings_values);
    RUN(guidance_embedding_values);
    RUN(lcm_timestep_lists);
    TEST_EXIT();
}
