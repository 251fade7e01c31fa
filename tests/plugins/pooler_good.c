/* A well-formed pooler. */
#define FIX_NAME "good"
#include "fixture.h"
RUNNER_PLUGIN(fix_plugin)
