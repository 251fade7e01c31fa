/* drivers.c — the table of runs a pipeline can ask for (`run = "..."`). */
#include "drivers.h"

const driver drivers[] = {
    {"tokenize", "sentences of `input` to ids.txt and tokens.txt", drive_tokenize},
    {0, 0, 0},
};
