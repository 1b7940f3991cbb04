// SPDX-License-Identifier: GPL-2.0
/*
 * hwfault: the kcrash crash lab's bad RAM.
 *
 * Every interval_ms milliseconds it picks a random page frame that the slab
 * allocator owns, finds a word in it that holds a pointer into the kernel's direct
 * map, and flips one random bit of it (bits 0..46, so the value stays in the
 * kernel half), as a failing DIMM would. The kernel trips over the corrupted
 * pointer wherever that object is next used: a different function each time.
 * Nothing is logged per flip, so the crash looks like what a fleet sees.
 *
 * Parameters: interval_ms (default 5), flips (stop after this many, 0: never),
 * start_ms (wait this long before the first flip).
 */
#include <linux/module.h>
#include <linux/kernel.h>
#include <linux/mm.h>
#include <linux/page-flags.h>
#include <linux/random.h>
#include <linux/workqueue.h>
#include <linux/mmzone.h>
#include <linux/nodemask.h>

static unsigned int interval_ms = 5;
module_param(interval_ms, uint, 0444);
static unsigned int flips;
module_param(flips, uint, 0444);
static unsigned int start_ms;
module_param(start_ms, uint, 0444);
static unsigned int done;
module_param(done, uint, 0444);

static struct delayed_work flip_work;

static bool flip_one(void)
{
	unsigned long pfn, max = 0;
	unsigned int tries;
	int nid;

	for_each_online_node(nid)
		max = max(max, node_end_pfn(nid));
	if (!max)
		return false;

	for (tries = 0; tries < 4096; tries++) {
		struct page *page;
		unsigned long *words;
		unsigned int i, start;

		pfn = get_random_u32() % max;
		if (!pfn_valid(pfn))
			continue;
		page = pfn_to_page(pfn);
		if (!PageSlab(page))
			continue;
		words = page_address(page);
		start = get_random_u32() % (PAGE_SIZE / sizeof(long));
		for (i = 0; i < PAGE_SIZE / sizeof(long); i++) {
			unsigned long *w = &words[(start + i) % (PAGE_SIZE / sizeof(long))];
			unsigned long v = READ_ONCE(*w);

			if (v < PAGE_OFFSET || !virt_addr_valid((void *)v))
				continue;
			WRITE_ONCE(*w, v ^ (1UL << (get_random_u32() % 47)));
			return true;
		}
	}
	return false;
}

static void flip_fn(struct work_struct *work)
{
	if (flip_one())
		done++;
	if (!flips || done < flips)
		schedule_delayed_work(&flip_work, msecs_to_jiffies(interval_ms));
}

static int __init hwfault_init(void)
{
	INIT_DELAYED_WORK(&flip_work, flip_fn);
	schedule_delayed_work(&flip_work, msecs_to_jiffies(start_ms + interval_ms));
	return 0;
}

static void __exit hwfault_exit(void)
{
	cancel_delayed_work_sync(&flip_work);
}

module_init(hwfault_init);
module_exit(hwfault_exit);
MODULE_LICENSE("GPL");
MODULE_DESCRIPTION("kcrash lab: flips bits in slab pointers, as bad RAM does");
