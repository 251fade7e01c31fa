/* Built for ABI 1.0, older than the host: accepted. */
#define FIX_NAME "abi_old"
#define FIX_MINOR 0
#include "fixture.h"
RUNNER_PLUGIN(fix_plugin)
