/* Names itself differently from its file. */
#define FIX_NAME "someone_else"
#include "fixture.h"
RUNNER_PLUGIN(fix_plugin)
