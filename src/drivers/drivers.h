/* drivers.h — one function per kind of run; each reads the resolved
 * pipeline, builds its stages and writes into the run's folder. */
#ifndef DRIVERS_H
#define DRIVERS_H

#include "pipeline.h"

struct encoded;

int drive_tokenize(pipeline *pl);
int drive_embed(pipeline *pl);
int drive_sts(pipeline *pl);
int drive_train(pipeline *pl);
int drive_predict(pipeline *pl);
/* ids.txt and tokens.txt of encoded sentences in the run folder. */
int write_token_files(pipeline *pl, stage *tok, const struct encoded *e);

#endif
