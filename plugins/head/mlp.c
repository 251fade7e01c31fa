/* mlp.c — head: { Linear -> LayerNorm -> activation -> dropout } per
 * hidden size, then Linear -> K. Parameters as a torch nn.Sequential names
 * them: "0.weight" (Linear), "1.weight" (LayerNorm), "4.weight" (next
 * Linear) ...; without LayerNorm the Linears are 0, 3, 6, ....
 * Body in core/head.c. */
#include "runner/kit/head.h"
#include "runner/runner.h"

static const runner_key keys[] = {
    {"hidden", RUNNER_T_INT_LIST, "[256]", "sizes of the hidden layers", "[1, 65536]"},
    {"activation", RUNNER_T_STRING, "\"gelu\"", "gelu (exact erf) | relu | tanh", "gelu|relu|tanh"},
    {"layer_norm", RUNNER_T_BOOL, "true", "LayerNorm after each hidden Linear"},
    {"dropout", RUNNER_T_FLOAT, "0.1", "dropout probability after each hidden activation, training only", "[0, 1)"},
    {0},
};

static int create(const runner_host *h, const runner_cfg *cfg, void **self)
{
    return head_create(h, cfg, HEAD_MLP, self);
}

static const runner_head_ops ops = {
    .per_token = 0,
    .bind = head_bind,
    .forward = head_forward,
    .backward = head_backward,
    .forward_keyed = head_forward_keyed,
};

RUNNER_DEFINE_PLUGIN(head, mlp,
    "multi-layer perceptron: (Linear, LayerNorm, activation, dropout) per hidden size, then Linear",
    keys, create, head_destroy, &ops)
