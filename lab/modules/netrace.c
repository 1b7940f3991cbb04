// SPDX-License-Identifier: GPL-2.0
/*
 * netrace: the kcrash crash lab's receive-path race.
 *
 * A packet handler (dev_add_pack, ETH_P_ALL, bound to one NIC) counts every frame
 * the NIC receives into a per-device flow table, from net_rx_action ->
 * __netif_receive_skb_core in softirq. A delayed work item rebuilds that table
 * every period_ms milliseconds. The buggy rebuild tears the old table down before
 * the new one is published and frees it without waiting for a grace period, so a
 * packet arriving during the rebuild reads a NULL table (or, on SMP, a freed one):
 * the oops lands in netrace_rcv, under the NIC's NAPI poll, in the same frames
 * every time, and the more packets arrive per second, the sooner one lands in the
 * window. An idle guest receives almost nothing and almost never crashes; a UDP
 * flood crashes it in seconds.
 *
 * Parameters:
 *   fixed=1          the same code with the race closed: the new table is built and
 *                    published first, the old one freed after synchronize_rcu()
 *   buggy_from=ABI   the race exists only on kernels whose release (uname -r) is at
 *                    or after ABI in version order (digit runs compare as numbers);
 *                    empty: always. The regression between packaged kernels that the
 *                    lab bisects is simulated by this gate; the kernels, boots, loads
 *                    and crashes are real.
 *   ifname, period_ms, buckets: which NIC, how often, how big the table.
 */
#include <linux/module.h>
#include <linux/kernel.h>
#include <linux/netdevice.h>
#include <linux/skbuff.h>
#include <linux/workqueue.h>
#include <linux/slab.h>
#include <linux/mm.h>
#include <linux/rcupdate.h>
#include <linux/utsname.h>
#include <linux/ctype.h>
#include <linux/overflow.h>

static bool fixed;
module_param(fixed, bool, 0444);
MODULE_PARM_DESC(fixed, "close the race (publish before free, RCU grace period)");
static char *buggy_from = "";
module_param(buggy_from, charp, 0444);
MODULE_PARM_DESC(buggy_from, "the race exists only on kernel releases at or after this one");
static char *ifname = "eth0";
module_param(ifname, charp, 0444);
static unsigned int period_ms = 50;
module_param(period_ms, uint, 0644);
static unsigned int buckets = 256;
module_param(buckets, uint, 0444);

struct flow_bucket {
	u64 packets;
	u64 bytes;
};

struct flow_table {
	unsigned long generation;
	unsigned int mask;
	struct flow_bucket b[];
};

struct netrace_dev {
	struct net_device *dev;
	struct flow_table __rcu *table;
	struct packet_type pt;
	struct delayed_work rebuild;
	bool racy;
};

static struct netrace_dev nrd;

/* release_cmp compares two kernel releases: digit runs as numbers, the rest byte-wise. */
static int release_cmp(const char *a, const char *b)
{
	while (*a && *b) {
		if (isdigit(*a) && isdigit(*b)) {
			unsigned long x = 0, y = 0;

			while (isdigit(*a))
				x = x * 10 + (*a++ - '0');
			while (isdigit(*b))
				y = y * 10 + (*b++ - '0');
			if (x != y)
				return x < y ? -1 : 1;
			continue;
		}
		if (*a != *b)
			return (unsigned char)*a < (unsigned char)*b ? -1 : 1;
		a++;
		b++;
	}
	return *a ? 1 : (*b ? -1 : 0);
}

static struct flow_table *flow_table_alloc(unsigned int n, unsigned long generation)
{
	struct flow_table *t = kvmalloc(struct_size(t, b, n), GFP_KERNEL);
	unsigned int i;

	if (!t)
		return NULL;
	t->generation = generation;
	t->mask = n - 1;
	for (i = 0; i < n; i++) {
		t->b[i].packets = 0;
		t->b[i].bytes = 0;
		if ((i & 1023) == 1023)
			cond_resched();
	}
	return t;
}

static int netrace_rcv(struct sk_buff *skb, struct net_device *dev,
		       struct packet_type *pt, struct net_device *orig_dev)
{
	struct netrace_dev *nd = pt->af_packet_priv;
	struct flow_table *t;
	struct flow_bucket *b;

	rcu_read_lock();
	/* The table is always there: the rebuild publishes a new one before it frees the old. */
	t = rcu_dereference(nd->table);
	b = &t->b[skb_get_hash(skb) & t->mask];
	b->packets++;
	b->bytes += skb->len;
	rcu_read_unlock();
	consume_skb(skb);
	return NET_RX_SUCCESS;
}

static void netrace_rebuild(struct work_struct *work)
{
	struct netrace_dev *nd = container_of(to_delayed_work(work), struct netrace_dev, rebuild);
	struct flow_table *old = rcu_dereference_protected(nd->table, 1);
	unsigned long generation = old ? old->generation + 1 : 1;
	struct flow_table *new;

	if (nd->racy) {
		/* Tear down, then rebuild: readers in softirq see NULL in between. */
		RCU_INIT_POINTER(nd->table, NULL);
		kvfree(old);
		new = flow_table_alloc(buckets, generation);
		rcu_assign_pointer(nd->table, new);
	} else {
		new = flow_table_alloc(buckets, generation);
		if (new) {
			rcu_assign_pointer(nd->table, new);
			synchronize_rcu();
			kvfree(old);
		}
	}
	schedule_delayed_work(&nd->rebuild, msecs_to_jiffies(period_ms));
}

static int __init netrace_init(void)
{
	const char *release = init_utsname()->release;
	struct flow_table *t;

	if (!buckets || (buckets & (buckets - 1))) {
		pr_err("netrace: buckets=%u is not a power of two\n", buckets);
		return -EINVAL;
	}
	nrd.dev = dev_get_by_name(&init_net, ifname);
	if (!nrd.dev) {
		pr_err("netrace: no device %s\n", ifname);
		return -ENODEV;
	}
	t = flow_table_alloc(buckets, 1);
	if (!t) {
		dev_put(nrd.dev);
		return -ENOMEM;
	}
	RCU_INIT_POINTER(nrd.table, t);
	nrd.racy = !fixed && (!buggy_from[0] || release_cmp(release, buggy_from) >= 0);
	nrd.pt.type = htons(ETH_P_ALL);
	nrd.pt.dev = nrd.dev;
	nrd.pt.func = netrace_rcv;
	nrd.pt.af_packet_priv = &nrd;
	INIT_DELAYED_WORK(&nrd.rebuild, netrace_rebuild);
	dev_add_pack(&nrd.pt);
	schedule_delayed_work(&nrd.rebuild, msecs_to_jiffies(period_ms));
	pr_info("netrace: %s: flow table of %u buckets, rebuilt every %u ms (%s; kernel %s, buggy_from=%s)\n",
		ifname, buckets, period_ms, nrd.racy ? "racy" : (fixed ? "fixed" : "not affected"),
		release, buggy_from[0] ? buggy_from : "any");
	return 0;
}

static void __exit netrace_exit(void)
{
	dev_remove_pack(&nrd.pt);
	cancel_delayed_work_sync(&nrd.rebuild);
	synchronize_net();
	kvfree(rcu_dereference_protected(nrd.table, 1));
	dev_put(nrd.dev);
}

module_init(netrace_init);
module_exit(netrace_exit);
MODULE_LICENSE("GPL");
MODULE_DESCRIPTION("kcrash lab: a receive-path race whose crash rate grows with the packet rate");
