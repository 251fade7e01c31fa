/* Exports a differently named entry symbol. */
#define FIX_NAME "no_symbol"
#include "fixture.h"
RUNNER_EXPORT const runner_plugin *runner_plugin_v0(void) { return &fix_plugin; }
