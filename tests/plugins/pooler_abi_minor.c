/* Built for a newer minor than the host has. */
#define FIX_NAME "abi_minor"
#define FIX_MINOR (RUNNER_ABI_MINOR + 1)
#include "fixture.h"
RUNNER_PLUGIN(fix_plugin)
