/* linear.c — head: dropout on the pooled input (training only), then one
 * Linear layer D -> K ("0.weight", "0.bias"). Body in core/head.c. */
#include "runner/kit/head.h"
#include "runner/runner.h"

static const runner_key keys[] = {
    {"dropout", RUNNER_T_FLOAT, "0.0", "dropout probability on the input, training only", "[0, 1)"},
    {0},
};

static int create(const runner_host *h, const runner_cfg *cfg, void **self)
{
    return head_create(h, cfg, HEAD_LINEAR, self);
}

static const runner_head_ops ops = {
    .per_token = 0,
    .bind = head_bind,
    .forward = head_forward,
    .backward = head_backward,
    .forward_keyed = head_forward_keyed,
};

RUNNER_DEFINE_PLUGIN(head, linear,
    "one Linear layer on the pooled embedding (input dropout optional)",
    keys, create, head_destroy, &ops)
