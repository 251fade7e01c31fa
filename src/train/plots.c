/* plots.c — the training run's pictures (gnuplot, see plot.h):
 *   loss.png            per task: training loss smoothed (raw values faint),
 *                       dev loss connected with markers; best step marked
 *   dev_metrics.png     per task: the headline dev metric, connected with
 *                       markers; best step marked
 *   confusion_<t>.png   the best evaluation's confusion matrix: gold top to
 *                       bottom, predicted left to right, same class order,
 *                       counts in the cells, colour = row-normalised share
 *   grad_cosine.png     per pair of tasks: the gradient cosine on the
 *                       backbone (train.grad_cosine_every), connected with
 *                       markers; zero line, y in [-1, 1]
 *   loss_weights.png    per task: exp(-s_t) of uncertainty weighting
 * Every name placed in a script goes through sb_quote. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "trainer.h"
#include "runner/kit/util.h"

static const char *const colors[] = {"1f77b4", "d62728", "2ca02c", "9467bd", "ff7f0e",
                                     "8c564b", "e377c2", "7f7f7f", "bcbd22", "17becf"};
enum { NCOLORS = sizeof colors / sizeof colors[0], NAME_CHARS = 32 };

/* Task k's (step, value) pairs: train losses (metric NULL) or a dev value. */
static int tr_series(const trainer *tr, int k, const char *metric, double *x, double *y)
{
    int n = 0;
    for (int i = 0; i < tr->nrows; i++) {
        const log_row *r = &tr->rows[i];
        if (r->task != k || r->dev != (metric != NULL))
            continue;
        double v = metric ? NAN : r->loss;
        for (int j = 0; metric && j < r->v.n; j++)
            if (strcmp(r->v.name[j], metric) == 0)
                v = r->v.value[j];
        if (isfinite(v)) {
            x[n] = (double)r->step;
            y[n++] = v;
        }
    }
    return n;
}

/* Exponential moving average, debiased (as TensorBoard's smoothing), run
 * forward and then backward over the result: a zero-phase smoother, so
 * the line does not lag behind a falling loss (a one-sided average sits
 * above the raw values all along a decreasing curve). */
static void smooth(const double *y, double *s, int n)
{
    double w = n > 200 ? 0.95 : n > 40 ? 0.85 : 0.6, ema = 0, norm = 0;
    for (int i = 0; i < n; i++) {
        ema = w * ema + (1 - w) * y[i];
        norm = w * norm + (1 - w);
        s[i] = ema / norm;
    }
    ema = norm = 0;
    for (int i = n - 1; i >= 0; i--) {
        ema = w * ema + (1 - w) * s[i];
        norm = w * norm + (1 - w);
        s[i] = ema / norm;
    }
}

static void title_of(sbuf *s, const char *tname, const char *what)
{
    char *t = str_printf("%.*s%s %s", NAME_CHARS, tname, strlen(tname) > NAME_CHARS ? "..." : "", what);
    sb_quote(s, t ? t : what, 0);
    free(t);
}

static void mark_best(sbuf *s, const trainer *tr)
{
    if (tr->evals > 0)
        sb_printf(s, "set arrow from %lld, graph 0 to %lld, graph 1 nohead dt 2 lw 1.5 lc rgb '#444444'\n"
                     "set label 'best: step %lld' at %lld, graph 0.97 right offset -0.7,0 font ',9'\n",
                  (long long)tr->best_step, (long long)tr->best_step, (long long)tr->best_step,
                  (long long)tr->best_step);
}

static const char *head = "set grid\nset key outside right top vertical\nset xlabel 'step'\n"
                          "set offsets graph 0.02, graph 0.03, graph 0.05, graph 0.05\n";

/* loss.png; *plotted is how many series it holds. */
static void tr_loss_script(const trainer *tr, sbuf *s, double *x, double *y, double *sm, int *plotted)
{
    sbuf plot = {0};
    sb_printf(s, "%sset ylabel 'loss'\nset title 'training loss (smoothed; raw values faint) and dev loss'\n", head);
    mark_best(s, tr);
    for (int k = 0; k < tr->m.ntasks; k++) {
        const char *c = colors[k % NCOLORS], *name = tr->m.t[k].name;
        int n = tr_series(tr, k, NULL, x, y);
        if (n > 0) {
            smooth(y, sm, n);
            char raw[32], sl[32];
            snprintf(raw, sizeof raw, "raw%d", k);
            snprintf(sl, sizeof sl, "smooth%d", k);
            plot_datablock(s, raw, x, y, n);
            plot_datablock(s, sl, x, sm, n);
            sb_printf(&plot, "%s$raw%d with lines lw 1 lc rgb '#A0%s' notitle, $smooth%d with lines lw 2.5 lc rgb '#%s' title ",
                      *plotted ? ", " : "", k, c, k, c);
            title_of(&plot, name, "train (smoothed)");
            *plotted += 2;
        }
        n = tr_series(tr, k, "loss", x, y);
        if (n > 0) {
            char dv[32];
            snprintf(dv, sizeof dv, "dev%d", k);
            plot_datablock(s, dv, x, y, n);
            sb_printf(&plot, "%s$dev%d with linespoints dt 2 lw 2 pt 7 ps 1.2 lc rgb '#%s' title ",
                      *plotted ? ", " : "", k, c);
            title_of(&plot, name, "dev");
            (*plotted)++;
        }
    }
    sb_printf(s, "plot %s\n", plot.s ? plot.s : "");
    s->failed |= plot.failed;
    sb_free(&plot);
}

/* dev_metrics.png: each task's headline metric. */
static void tr_metric_script(const trainer *tr, sbuf *s, double *x, double *y, int *plotted)
{
    sbuf plot = {0};
    sb_printf(s, "%sset ylabel 'dev metric'\nset title 'headline dev metric per task'\n", head);
    mark_best(s, tr);
    for (int k = 0; k < tr->m.ntasks; k++) {
        const char *metric = tr->final_v[k].n ? tr->final_v[k].name[0] : "loss";
        int n = tr_series(tr, k, metric, x, y);
        if (n == 0)
            continue;
        char dv[32];
        snprintf(dv, sizeof dv, "m%d", k);
        plot_datablock(s, dv, x, y, n);
        sb_printf(&plot, "%s$m%d with linespoints lw 2 pt 7 ps 1.2 lc rgb '#%s' title ", *plotted ? ", " : "", k,
                  colors[k % NCOLORS]);
        title_of(&plot, tr->m.t[k].name, metric);
        (*plotted)++;
        for (int i = 0; i < n; i++)
            if (x[i] == (double)tr->best_step) { /* the selected evaluation: a ring */
                char bl[32];
                snprintf(bl, sizeof bl, "b%d", k);
                plot_datablock(s, bl, x + i, y + i, 1);
                sb_printf(&plot, ", $b%d with points pt 6 ps 3 lw 2 lc rgb '#%s' notitle", k, colors[k % NCOLORS]);
            }
    }
    sb_printf(s, "plot %s\n", plot.s ? plot.s : "");
    s->failed |= plot.failed;
    sb_free(&plot);
}

/* The run rows' (step, value) pairs of one named value. */
static int tr_run_series(const trainer *tr, const char *name, double *x, double *y)
{
    int n = 0;
    for (int i = 0; i < tr->nrows; i++)
        for (int j = 0; tr->rows[i].task < 0 && j < tr->rows[i].v.n; j++)
            if (strcmp(tr->rows[i].v.name[j], name) == 0 && isfinite(tr->rows[i].v.value[j])) {
                x[n] = (double)tr->rows[i].step;
                y[n++] = tr->rows[i].v.value[j];
            }
    return n;
}

/* One picture of the run rows' values named prefix*: a series each
 * (titled by the rest of the name), connected with markers. cosine: a zero
 * line and y in [-1, 1]. */
static void tr_run_script(const trainer *tr, sbuf *s, const char *prefix, int cosine, double *x, double *y,
                          int *plotted)
{
    sbuf plot = {0};
    size_t lp = strlen(prefix);
    int nn;
    const char **names = tr_run_names(tr, &nn);
    if (nn < 0) {
        s->failed = 1;
        return;
    }
    sb_printf(s, "%s%s", head, cosine ? "set ylabel 'cosine'\nset yrange [-1:1]\n"
                                        "set title 'gradient cosine between tasks on the shared backbone (raw task losses)'\n"
                                        "set arrow from graph 0, first 0 to graph 1, first 0 nohead lw 1.5 lc rgb '#444444'\n"
                                      : "set ylabel 'exp(-s_t)'\nset title 'learned loss weights exp(-s_t) (uncertainty)'\n");
    for (int c = 0; c < nn; c++) {
        int n = strncmp(names[c], prefix, lp) == 0 ? tr_run_series(tr, names[c], x, y) : 0;
        if (n == 0)
            continue;
        char blk[32];
        snprintf(blk, sizeof blk, "r%d", *plotted);
        plot_datablock(s, blk, x, y, n);
        sb_printf(&plot, "%s$r%d with linespoints lw 2 pt 7 ps 1.0 lc rgb '#%s' title ", *plotted ? ", " : "",
                  *plotted, colors[*plotted % NCOLORS]);
        sb_quote(&plot, names[c] + lp, NAME_CHARS * 2 + 1);
        (*plotted)++;
    }
    free(names);
    sb_printf(s, "plot %s\n", plot.s ? plot.s : "");
    s->failed |= plot.failed;
    sb_free(&plot);
}

/* grad_cosine.png and loss_weights.png, when the run has their values. */
static int tr_run_plots(trainer *tr, double *x, double *y)
{
    static const char *const prefix[2] = {"grad_cosine.", "loss_weight."}, *const png[2] = {"grad_cosine.png",
                                                                                           "loss_weights.png"};
    for (int p = 0; p < 2; p++) {
        sbuf s = {0};
        int plotted = 0;
        tr_run_script(tr, &s, prefix[p], p == 0, x, y, &plotted);
        int rc = s.failed ? err_set("out of memory") : plotted ? plot_script(tr->pl, png[p], 1100, 700, s.s) : 0;
        sb_free(&s);
        if (rc != 0)
            return -1;
    }
    return 0;
}

static int tr_confusion_plot(trainer *tr, int k)
{
    const task *t = &tr->m.t[k];
    const int64_t *cm = tr->best_cm ? tr->best_cm[k] : NULL;
    int K = t->n_labels;
    if (!cm || K > 40 || t->mlm)
        return 0;
    sbuf s = {0};
    sb_printf(&s, "unset key\nset title ");
    title_of(&s, t->name, "confusion matrix (dev, best step); colour: share of the gold row");
    sb_printf(&s, "\nset xlabel 'predicted'\nset ylabel 'gold'\nset size ratio -1\nset cbrange [0:1]\n"
                  "set palette defined (0 '#ffffff', 1 '#08306b')\nset xrange [-0.5:%d.5]\nset yrange [%d.5:-0.5]\n"
                  "set xtics rotate by 45 right\n",
              K - 1, K - 1);
    for (int axis = 0; axis < 2; axis++) {
        sb_printf(&s, "set %s (", axis ? "ytics" : "xtics");
        for (int j = 0; j < K; j++) {
            sb_printf(&s, "%s", j ? ", " : "");
            sb_quote(&s, j < t->train.ds.n_names ? t->train.ds.names[j] : "?", 20);
            sb_printf(&s, " %d", j);
        }
        sb_printf(&s, ")\n");
    }
    sb_printf(&s, "$cm << EOD\n");
    for (int i = 0; i < K; i++) {
        int64_t row = 0;
        for (int j = 0; j < K; j++)
            row += cm[(size_t)i * K + j];
        for (int j = 0; j < K; j++)
            sb_printf(&s, "%d %d %.6f %lld\n", j, i, row ? (double)cm[(size_t)i * K + j] / (double)row : 0.0,
                      (long long)cm[(size_t)i * K + j]);
    }
    sb_printf(&s, "EOD\nplot $cm using 1:2:3 with image, $cm using 1:2:(sprintf('%%d', int($4))):($3 > 0.5 ? 0xffffff : 0) "
                  "with labels tc rgb variable font ',%d'\n",
              K > 12 ? 7 : 11);
    char *png = str_printf("confusion_%s.png", t->name);
    int size = K > 12 ? 1100 : 800;
    int rc = !png || s.failed ? err_set("out of memory") : plot_script(tr->pl, png, size, size, s.s);
    free(png);
    sb_free(&s);
    return rc;
}

int tr_draw_plots(trainer *tr)
{
    size_t n = (size_t)tr->nrows + 1;
    double *x = malloc(n * sizeof *x), *y = malloc(n * sizeof *y), *sm = malloc(n * sizeof *sm);
    sbuf a = {0}, b = {0};
    int rc = -1, pa = 0, pb = 0;
    if (!x || !y || !sm) {
        err_set("out of memory");
        goto done;
    }
    tr_loss_script(tr, &a, x, y, sm, &pa);
    tr_metric_script(tr, &b, x, y, &pb);
    if (a.failed || b.failed) {
        err_set("out of memory");
        goto done;
    }
    if ((pa && plot_script(tr->pl, "loss.png", 1100, 700, a.s) != 0) ||
        (pb && plot_script(tr->pl, "dev_metrics.png", 1100, 700, b.s) != 0))
        goto done;
    for (int k = 0; k < tr->m.ntasks; k++)
        if (tr_confusion_plot(tr, k) != 0)
            goto done;
    if (tr_run_plots(tr, x, y) != 0)
        goto done;
    rc = 0;
done:
    sb_free(&a);
    sb_free(&b);
    free(x);
    free(y);
    free(sm);
    return rc;
}
