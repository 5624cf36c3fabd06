/*
 * atelier-frameclock: lets an idle headless sway sleep.
 *
 * wlroots 0.15 (Debian 12) drives each headless output with a timer that
 * re-arms itself after every tick, at the output's refresh, whether or not
 * anything was drawn; sway 1.7 has two such outputs (HEADLESS-1 and its
 * hidden FALLBACK). An idle desktop thus wakes ~60 times a second, and each
 * wake costs sway a render attempt: about a third of a percent of a core per
 * desktop, most of a fleet's idle CPU. Newer wlroots arms the timer only
 * when a frame was committed; this library, preloaded into sway by
 * atelier-agent, gives 0.15 the same clock:
 *
 *   - a wlroots timer that re-arms itself from its own callback (the
 *     headless frame timer) stays armed only if wlr_output_commit was called
 *     for the same object since its last tick: after the last frame is
 *     committed, one more tick clears the output's frame_pending, and the
 *     timer then sleeps;
 *   - a commit on a sleeping output re-arms its timer for the next tick
 *     of the refresh's grid on the monotonic clock, so the tick that clears
 *     frame_pending comes when a free-running clock's would: 0 to one
 *     period after the commit, not always a full period (a second frame
 *     soon after the first, such as a program's answer just after the
 *     cursor moved, would otherwise wait longer than it did).
 *
 * A frame scheduled while the clock sleeps (damage, a screencopy request)
 * finds frame_pending clear and is sent at once by wlroots' idle callback,
 * so rendering never waits on the clock. The one thing that changes: frame
 * callbacks of a client that commits without damage wait for the next frame
 * rather than the next tick.
 *
 * Only timers whose callback lives in libwlroots are tracked; sway's own
 * (key repeat, its repaint timer) and every other library's pass through
 * untouched. Sway's event loop is single-threaded, so no locking.
 */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

struct wl_event_loop;
struct wl_event_source;
struct wlr_output;
typedef int (*timer_func)(void *data);

struct clock {
	struct clock *next;
	struct wl_event_source *source;
	timer_func func;
	void *data;        /* the wlr_headless_output, whose first member is its wlr_output */
	int delay;         /* the last delay the timer asked for, in ms */
	bool in_tick;      /* its callback is running */
	bool committed;    /* a commit of data since the last re-arm */
	bool sleeping;     /* a re-arm was held back */
};

static struct clock *clocks;

static struct wl_event_source *(*real_add_timer)(struct wl_event_loop *, timer_func, void *);
static int (*real_timer_update)(struct wl_event_source *, int);
static int (*real_source_remove)(struct wl_event_source *);
static bool (*real_output_commit)(struct wlr_output *);

#define RESOLVE(var, name) \
	do { if (!(var)) (var) = dlsym(RTLD_NEXT, (name)); } while (0)

/* Sway's children must not inherit the preload. */
__attribute__((constructor)) static void forget_preload(void) {
	unsetenv("LD_PRELOAD");
}

static bool in_wlroots(timer_func func) {
	Dl_info info;
	return dladdr((void *)func, &info) && info.dli_fname &&
	       strstr(info.dli_fname, "libwlroots") != NULL;
}

static struct clock *by_source(struct wl_event_source *source) {
	for (struct clock *c = clocks; c; c = c->next)
		if (c->source == source)
			return c;
	return NULL;
}

static int tick(void *arg) {
	struct clock *c = arg;
	c->in_tick = true;
	int ret = c->func(c->data);
	c->in_tick = false;
	return ret;
}

struct wl_event_source *wl_event_loop_add_timer(struct wl_event_loop *loop, timer_func func, void *data) {
	RESOLVE(real_add_timer, "wl_event_loop_add_timer");
	if (!in_wlroots(func))
		return real_add_timer(loop, func, data);
	struct clock *c = calloc(1, sizeof *c);
	if (!c)
		return real_add_timer(loop, func, data);
	c->func = func;
	c->data = data;
	c->source = real_add_timer(loop, tick, c);
	if (!c->source) {
		free(c);
		return NULL;
	}
	c->next = clocks;
	clocks = c;
	return c->source;
}

int wl_event_source_timer_update(struct wl_event_source *source, int ms_delay) {
	RESOLVE(real_timer_update, "wl_event_source_timer_update");
	struct clock *c = by_source(source);
	if (c) {
		if (c->in_tick && ms_delay > 0 && !c->committed) {
			c->delay = ms_delay;
			c->sleeping = true;
			return 0;
		}
		c->delay = ms_delay;
		c->sleeping = false;
		c->committed = false;
	}
	return real_timer_update(source, ms_delay);
}

int wl_event_source_remove(struct wl_event_source *source) {
	RESOLVE(real_source_remove, "wl_event_source_remove");
	for (struct clock **p = &clocks; *p; p = &(*p)->next) {
		if ((*p)->source == source) {
			struct clock *c = *p;
			*p = c->next;
			free(c);
			break;
		}
	}
	return real_source_remove(source);
}

/* The ms from now to the next multiple of period on the monotonic clock. */
static int until_next_tick(int period) {
	struct timespec now;
	if (clock_gettime(CLOCK_MONOTONIC, &now) != 0)
		return period;
	long long ms = (long long)now.tv_sec * 1000 + now.tv_nsec / 1000000;
	return period - (int)(ms % period);
}

bool wlr_output_commit(struct wlr_output *output) {
	RESOLVE(real_output_commit, "wlr_output_commit");
	RESOLVE(real_timer_update, "wl_event_source_timer_update");
	bool ok = real_output_commit(output);
	for (struct clock *c = clocks; c; c = c->next) {
		if (c->data != (void *)output)
			continue;
		c->committed = true;
		if (c->sleeping && c->delay > 0) {
			c->sleeping = false;
			real_timer_update(c->source, until_next_tick(c->delay));
		}
	}
	return ok;
}
