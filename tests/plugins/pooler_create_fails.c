/* create() always fails. */
#define FIX_NAME "create_fails"
#define FIX_CREATE_FAILS 1
#include "fixture.h"
RUNNER_PLUGIN(fix_plugin)
