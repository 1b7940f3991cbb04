/* A small program with inline chains, statics and structs, compiled by the tests. */
struct inner { long a; struct inner *next; };
struct outer { int flags; struct inner *in; long pad[3]; struct inner embedded; };

static inline __attribute__((always_inline)) long leaf(struct inner *p) { return p->a * 3; }
static inline __attribute__((always_inline)) long middle(struct outer *o) { return leaf(o->in) + o->flags; }

__attribute__((noinline)) long walk(struct outer *o)
{
	long sum = 0;
	for (struct inner *p = o->in; p; p = p->next)
		sum += leaf(p);
	return sum + middle(o);
}

__attribute__((noinline, cold)) long cold_path(struct outer *o) { return o->embedded.a + walk(o); }

static struct inner gi = { 7, 0 };
static struct outer go = { 1, &gi, {0}, {2, 0} };

int main(int argc, char **argv) { (void)argv; return (int)(walk(&go) + (argc > 5 ? cold_path(&go) : 0)); }
