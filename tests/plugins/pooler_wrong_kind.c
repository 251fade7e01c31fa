/* A head in a pooler's file name. */
#define FIX_NAME "wrong_kind"
#define FIX_KIND RUNNER_KIND_HEAD
#include "fixture.h"
RUNNER_PLUGIN(fix_plugin)
