/* plot.h — PNG pictures through gnuplot when it is installed (skipped
 * with a note otherwise). gnuplot is spawned without a shell (proc.h) and
 * reads its script on stdin; every text placed in a script (titles,
 * names, sentences, paths) goes through sb_quote. The pictures a run drew
 * are listed by plot_list_print for the run's last lines. */
#ifndef PLOT_H
#define PLOT_H

#include "pipeline.h"
#include "sbuf.h"

int plot_available(void);
/* Run a gnuplot script drawing into run-folder file png (written
 * atomically: a hidden temporary, then rename), w x h pixels. A failed
 * drawing is a warning, not a failed run. -1 only when out of memory. */
int plot_script(pipeline *pl, const char *png, int w, int h, const char *script);
/* The same in folder dir, without a pipeline: *drawn_ok says whether
 * gnuplot drew it (callers need not check plot_available first). */
int plot_file(const char *dir, const char *png, int w, int h, const char *script, int *drawn_ok);
/* n x n similarity matrix m (row-major) as a heatmap: rows and columns
 * labelled with labels[i] (cut to 40 characters), values in the cells,
 * colour scale fitted to the off-diagonal values. */
int plot_heatmap(pipeline *pl, const char *png, const char *title, int n, const double *m,
                 const char *const *labels);
/* Append "$name << EOD\n x y\n ... EOD\n" of the finite (x, y) pairs. */
void plot_datablock(sbuf *b, const char *name, const double *x, const double *y, int n);
/* Print "pictures: <dir>/a.png, ..." of this process's drawings (nothing
 * when none) and forget them. */
void plot_list_print(FILE *f);

#endif
