/* plot.h — PNG plots through gnuplot when it is installed (skipped with a
 * note otherwise): a labelled heatmap and line charts of CSV columns. */
#ifndef PLOT_H
#define PLOT_H

#include "pipeline.h"

int plot_available(void);
/* n x n matrix m (row-major) as a heatmap with values printed in cells. */
int plot_heatmap(pipeline *pl, const char *png, const char *title, int n, const double *m);
/* Run a gnuplot script (text) writing png atomically (png.tmp, rename). */
int plot_script(pipeline *pl, const char *png, const char *script);

#endif
