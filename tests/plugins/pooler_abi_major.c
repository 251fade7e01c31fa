/* Built for ABI major 2. */
#define FIX_NAME "abi_major"
#define FIX_MAJOR 2
#include "fixture.h"
RUNNER_PLUGIN(fix_plugin)
