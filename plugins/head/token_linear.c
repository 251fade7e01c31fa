/* token_linear.c — per-token head for tagging (NER, slot filling): the
 * last layer's token states (B*T, C), dropout (training only), one Linear
 * layer C -> K ("0.weight", "0.bias"), logits (B*T, K). Labels sit on the
 * first word piece of each word; the other pieces and padding carry label
 * -1, which the loss ignores. Body in core/head.c. */
#include "runner/kit/head.h"
#include "runner/runner.h"

static const runner_key keys[] = {
    {"dropout", RUNNER_T_FLOAT, "0.1", "dropout probability on the token states, training only", "[0, 1)"},
    {0},
};

static int create(const runner_host *h, const runner_cfg *cfg, void **self)
{
    return head_create(h, cfg, HEAD_LINEAR, self);
}

static const runner_head_ops ops = {
    .per_token = 1,
    .bind = head_bind,
    .forward = head_forward,
    .backward = head_backward,
    .forward_keyed = head_forward_keyed,
};

RUNNER_DEFINE_PLUGIN(head, token_linear,
    "per-token Linear layer over the last layer's token states (tagging)",
    keys, create, head_destroy, &ops)
