/* plot.c — gnuplot PNGs (see plot.h). */
#include "plot.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "proc.h"
#include "run.h"
#include "runner/kit/util.h"

static char **drawn;
static int ndrawn;

int plot_available(void)
{
    static int known = -1;
    if (known < 0)
        known = proc_in_path("gnuplot");
    return known;
}

static void remember(const char *path)
{
    char **d = realloc(drawn, (size_t)(ndrawn + 1) * sizeof *d);
    if (!d)
        return;
    drawn = d;
    if ((drawn[ndrawn] = str_dup(path)))
        ndrawn++;
}

void plot_list_print(FILE *f)
{
    for (int i = 0; i < ndrawn; i++) {
        fprintf(f, "%s%s", i ? ", " : "pictures: ", drawn[i]);
        free(drawn[i]);
    }
    if (ndrawn)
        fputc('\n', f);
    free(drawn);
    drawn = NULL;
    ndrawn = 0;
}

int plot_file(const char *dir, const char *png, int w, int h, const char *script, int *drawn_ok)
{
    char *path = str_printf("%s/%s", dir, png), *tmp = str_printf("%s/.%s.tmp", dir, png);
    sbuf s = {0};
    int rc = -1, status = -1;
    *drawn_ok = 0;
    if (!path || !tmp) {
        err_set("out of memory");
        goto done;
    }
    sb_printf(&s, "set terminal pngcairo noenhanced size %d,%d font 'sans,10'\nset output ", w, h);
    sb_quote(&s, tmp, 0);
    sb_printf(&s, "\n%s\nunset output\n", script);
    if (s.failed) {
        err_set("out of memory writing the script of %s", png);
        goto done;
    }
    static const char *const argv[] = {"gnuplot", NULL};
    if (proc_feed(argv, s.s, s.n, &status) != 0 || status != 0 || rename(tmp, path) != 0) {
        unlink(tmp);
    } else {
        remember(path);
        *drawn_ok = 1;
    }
    rc = 0;
done:
    sb_free(&s);
    free(path);
    free(tmp);
    return rc;
}

int plot_script(pipeline *pl, const char *png, int w, int h, const char *script)
{
    if (!plot_available()) {
        pipeline_log(pl, RUNNER_LOG_INFO, "gnuplot is not installed: %s not drawn", png);
        return 0;
    }
    int ok;
    if (plot_file(pl->out_dir, png, w, h, script, &ok) != 0)
        return -1;
    if (!ok) /* a missing picture is not a failed run */
        pipeline_log(pl, RUNNER_LOG_WARN, "gnuplot failed to draw %s", png);
    return 0;
}

void plot_datablock(sbuf *b, const char *name, const double *x, const double *y, int n)
{
    sb_printf(b, "$%s << EOD\n", name);
    for (int i = 0; i < n; i++)
        if (isfinite(x[i]) && isfinite(y[i]))
            sb_printf(b, "%.10g %.10g\n", x[i], y[i]);
    sb_printf(b, "EOD\n");
}

static void tics(sbuf *s, const char *axis, int n, const char *const *labels)
{
    sb_printf(s, "set %s (", axis);
    for (int i = 0; i < n; i++) {
        sb_printf(s, "%s", i ? ", " : "");
        sb_quote(s, labels[i], 40);
        sb_printf(s, " %d", i);
    }
    sb_printf(s, ")\n");
}

int plot_heatmap(pipeline *pl, const char *png, const char *title, int n, const double *m,
                 const char *const *labels)
{
    double lo = INFINITY, hi = -INFINITY;
    for (int i = 0; i < n; i++)
        for (int j = 0; j < n; j++)
            if (i != j) {
                lo = fmin(lo, m[i * n + j]);
                hi = fmax(hi, m[i * n + j]);
            }
    if (!(hi > lo)) {
        lo = -1;
        hi = 1;
    }
    sbuf s = {0};
    sb_printf(&s, "set title ");
    sb_quote(&s, title, 0);
    sb_printf(&s, "\nunset key\nset size ratio -1\nset lmargin 40\nset bmargin 16\n"
                  "set cbrange [%.6g:%.6g]\nset cblabel 'cosine (scale fitted to the off-diagonal values)'\n"
                  "set palette defined (0 '#f7fbff', 0.5 '#6baed6', 1 '#08306b')\n"
                  "set xrange [-0.5:%d.5]\nset yrange [%d.5:-0.5]\nset xtics rotate by 45 right font ',8'\n"
                  "set ytics font ',8'\n",
              lo, hi, n - 1, n - 1);
    tics(&s, "xtics", n, labels);
    tics(&s, "ytics", n, labels);
    sb_printf(&s, "$m << EOD\n");
    for (int i = 0; i < n; i++)
        for (int j = 0; j < n; j++)
            sb_printf(&s, "%d %d %.4f%s", j, i, m[i * n + j], "\n");
    sb_printf(&s, "EOD\nplot $m using 1:2:3 with image, $m using 1:2:(sprintf('%%.2f',$3)):($3 > %.6g ? 0xffffff : 0) "
                  "with labels font ',%d' textcolor rgb variable\n", (lo + hi) / 2, n > 12 ? 7 : 9);
    int rc = s.failed ? err_set("out of memory") : plot_script(pl, png, 1100, 1000, s.s);
    sb_free(&s);
    return rc;
}
